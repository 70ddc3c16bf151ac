"""``HwAPI``: the runtime-shaped API of the ``hw`` backend (the real ``simpler`` package).

The platform is the user's choice: ``HwAPI(platform=...)`` or the ``TIERBED_HW_PLATFORM``
environment variable (default ``a2a3sim``). Chip kernels are available only when the user gives a
kernel map: ``HwAPI(kernels={name: chip_callable})`` or ``TIERBED_HW_KERNELS=module:attribute``
naming such a dict; without one, a chip worker or kernel makes the case NOT_SUPPORTED.
Names the real package does not have (``WorkerType``, ``TensorSpec``, the remote names, ...) make
the case NOT_SUPPORTED when it touches them, never a silent pass.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterable, Mapping
from typing import Any

from conformance.backends import NotSupportedByBackend, RuntimeAPI
from hw_backend import errors as hw_errors
from hw_backend.adapter import HwTaskArgs, HwWorker

DEFAULT_PLATFORM = "a2a3sim"

#: Names a case may use that the adapter does not provide on hw (yet).
_ABSENT = ("WorkerType", "TensorSpec", "RemoteWorkerSpec", "RemoteCallable", "RemoteTensorRef",
           "RemoteBufferHandle", "RemoteBufferExport")


class _MissingKernel:
    """What ``rt.kernel(name)`` gives without a kernel map: registering it is NOT_SUPPORTED."""

    __tierbed_missing_kernel__ = True

    def __init__(self, name: str) -> None:
        self.name = name


def _kernel_map_from_env() -> Mapping[str, Any] | None:
    spec = os.environ.get("TIERBED_HW_KERNELS")
    if not spec:
        return None
    module, _, attr = spec.partition(":")
    return getattr(importlib.import_module(module), attr or "KERNELS")


_APIS: dict[int, HwAPI] = {}


def _live_api(key: int) -> HwAPI:
    return _APIS[key]


class HwAPI(RuntimeAPI):
    """Drives the real runtime through :class:`~hw_backend.adapter.HwWorker`.

    Cases write nested orchestration functions that close over ``rt``; the runtime pickles such a
    function into its registration, so the API pickles as a name for this process's instance (a
    child process of the runtime holds a copy of it), not as its state.
    """

    name = "hw"
    features = frozenset({"timing", "concurrency"})

    def __init__(self, seed: int = 0, *, platform: str | None = None,
                 kernels: Mapping[str, Any] | None = None) -> None:
        super().__init__(seed)
        from simpler.callable_identity import CallableHandle
        from simpler.task_interface import CallConfig, DataType, TensorArgType

        self.platform = platform or os.environ.get("TIERBED_HW_PLATFORM") or DEFAULT_PLATFORM
        self.kernels = kernels if kernels is not None else _kernel_map_from_env()
        self.TaskArgs = HwTaskArgs
        self.TensorArgType = TensorArgType
        self.CallConfig = CallConfig
        self.DataType = DataType
        self.errors = hw_errors
        self.CallableHandle = CallableHandle
        _APIS[id(self)] = self

    def __reduce__(self) -> Any:
        return (_live_api, (id(self),))

    def __getattr__(self, name: str) -> Any:
        if name in _ABSENT:
            raise NotSupportedByBackend(f"the hw adapter does not provide {name} (absent from the real package "
                                        "or not adapted yet)")
        raise AttributeError(name)

    def describe(self) -> dict[str, Any]:
        import importlib.metadata

        out = super().describe()
        out["platform"] = self.platform
        try:
            out["runtime_version"] = importlib.metadata.version("simpler")
        except importlib.metadata.PackageNotFoundError:
            out["runtime_version"] = "unknown"
        out["kernels"] = "map" if self.kernels else "none"
        return out

    def Worker(self, level: int, *, faults: Iterable[Any] | None = None, **config: Any) -> Any:
        if faults:
            raise NotSupportedByBackend("the hw backend cannot inject faults yet")
        if (int(level) <= 2 or config.get("device_ids")) and not self.kernels:
            raise NotSupportedByBackend("chip workers (L2, or L3 device_ids) on hw need compiled kernels; "
                                        "no kernel map given")
        w = HwWorker(level, platform=self.platform, **config)
        self.workers.append(w)
        return w

    def kernel(self, name: str) -> Any:
        if not self.kernels:
            return _MissingKernel(name)
        try:
            return self.kernels[name]
        except KeyError:
            raise NotSupportedByBackend(f"the hw kernel map has no kernel {name!r}") from None

    def error_class(self, exc: BaseException) -> str:
        return hw_errors.error_class(exc)
