"""``simpler_setup`` on the simulator: builds are recorded, not compiled.

Models the calls ``docs/user/reference/python-api.md`` ("``simpler_setup``") lists and the
signatures of upstream ``simpler_setup/kernel_compiler.py``, ``pto_isa.py``, ``elf_parser.py``
and ``torch_interop.py``: ``KernelCompiler(platform).compile_incore(source_path, core_type,
pto_isa_root, extra_include_dirs)`` and ``compile_orchestration(runtime_name, source_path)``
return :class:`~compat.callables.BuiltBinary` records of the source they were given;
``get_orchestration_include_dirs`` returns names that exist nowhere; ``ensure_pto_isa_root``
clones nothing; ``extract_text_section`` passes a record through. The source file must exist,
as a compiler would require.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from compat.callables import BuiltBinary
from compat.host import is_torch_tensor
from sim.cost import profile_for_platform
from sim.types import DataType

#: Where the simulated "project" lives: a name for include paths, never read.
SIM_PROJECT_ROOT = Path("<tierbed-simulated-simpler>")
_CORE_TYPES = ("aiv", "aic")
_RUNTIMES = ("tensormap_and_ringbuffer", "host_build_graph")


def _existing(source_path: Any, api: str) -> str:
    path = os.fspath(source_path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{api}: source file not found: {path}")
    return path


class KernelCompiler:
    """Records what would be compiled (see the module docstring)."""

    def __init__(self, platform: str = "a2a3") -> None:
        profile_for_platform(platform)  # an unknown platform fails here, as upstream's constructor does
        self.platform = platform
        self.project_root = SIM_PROJECT_ROOT

    def get_orchestration_include_dirs(self, runtime_name: str) -> list[str]:
        if runtime_name not in _RUNTIMES:
            raise ValueError(f"unknown runtime {runtime_name!r}; known: {', '.join(_RUNTIMES)}")
        return [str(self.project_root / "src" / "runtime" / runtime_name), str(self.project_root / "src" / "common")]

    def compile_incore(self, source_path: Any, core_type: str = "aiv", pto_isa_root: str | None = None,
                       extra_include_dirs: list[str] | None = None, build_dir: str | None = None) -> BuiltBinary:
        if core_type not in _CORE_TYPES:
            raise ValueError(f"compile_incore: core_type must be one of {_CORE_TYPES}, got {core_type!r}")
        return BuiltBinary(_existing(source_path, "compile_incore"), "incore", core_type)

    def compile_orchestration(self, runtime_name: str, source_path: Any, extra_include_dirs: list[str] | None = None,
                              build_dir: str | None = None) -> BuiltBinary:
        if runtime_name not in _RUNTIMES:
            raise ValueError(f"compile_orchestration: unknown runtime {runtime_name!r}")
        return BuiltBinary(_existing(source_path, "compile_orchestration"), "orchestration", runtime_name)


def ensure_pto_isa_root(verbose: bool = False) -> str:
    """The (simulated) pto-isa checkout: a name only; nothing is cloned."""
    return str(SIM_PROJECT_ROOT / "pto-isa")


def extract_text_section(obj_input: Any) -> bytes:
    """A recorded binary passes through (there is no ELF to cut)."""
    if isinstance(obj_input, BuiltBinary):
        return obj_input
    if isinstance(obj_input, str | os.PathLike):
        return BuiltBinary(_existing(obj_input, "extract_text_section"), "incore", "text")
    return bytes(obj_input)


_TORCH_NAMES = {
    "float32": DataType.FLOAT32, "float16": DataType.FLOAT16, "bfloat16": DataType.BFLOAT16,
    "int32": DataType.INT32, "int16": DataType.INT16, "int8": DataType.INT8, "uint8": DataType.UINT8,
    "int64": DataType.INT64, "uint64": DataType.UINT64, "uint16": DataType.UINT16, "uint32": DataType.UINT32,
    "bool": DataType.BOOL, "float8_e4m3fn": DataType.FP8E4M3FN,
}


def torch_dtype_to_datatype(dt: Any) -> DataType:
    """The DataType of a ``torch.dtype``; KeyError for one the runtime has no name for."""
    return _TORCH_NAMES[str(dt).removeprefix("torch.")]


def make_tensor_arg(worker: Any, tensor: Any) -> Any:
    """A task tensor over a host torch tensor (or numpy array), shapes and dtype taken from it."""
    if is_torch_tensor(tensor):
        dt = _TORCH_NAMES.get(str(tensor.dtype).removeprefix("torch."))
        if dt is None:
            raise ValueError(f"Unsupported tensor dtype: {tensor.dtype}")
        if tensor.device.type != "cpu":
            raise ValueError(f"make_tensor_arg requires a CPU tensor, got device={tensor.device}.")
        if not tensor.is_contiguous():
            raise ValueError("make_tensor_arg requires a contiguous tensor; call tensor.contiguous() first.")
        return worker.make_tensor_arg(tensor, shapes=tuple(int(s) for s in tensor.shape), dtype=int(dt))
    dt = DataType.from_numpy(tensor.dtype)
    return worker.make_tensor_arg(tensor, shapes=tuple(int(s) for s in tensor.shape), dtype=int(dt))
