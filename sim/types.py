"""The runtime's shared vocabulary: worker types, tensor tags, data types and CallConfig.

Models the enums of upstream ``src/common/task_interface/tensor.h`` (``TensorArgType``),
``src/common/task_interface/data_type.h`` (``DataType``) and the public ``CallConfig``
documented in ``docs/user/reference/python-api.md`` ("``CallConfig``"). Worker types follow
the level-aware proposal of seed 000 (CHIP / SUB / DIST), which upstream currently
spells ``NEXT_LEVEL`` / ``SUB`` (``src/common/hierarchical/types.h``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum, IntEnum

import ml_dtypes
import numpy as np

from sim.errors import InvalidArgument


class WorkerType(Enum):
    """What kind of child a Worker holds (seed 000, "Level rules")."""

    CHIP = "CHIP"  # an L2 chip (ChipWorker)
    SUB = "SUB"  # a forked Python SubWorker
    DIST = "DIST"  # a lower-level hierarchical Worker (L3 under L4, ...)


class TensorArgType(IntEnum):
    """Per-tensor tag that drives dependency inference (``docs/orchestrator.md`` §7, §8b)."""

    INPUT = 0
    OUTPUT = 1
    INOUT = 2
    OUTPUT_EXISTING = 3
    NO_DEP = 4


#: Tags whose tensor is looked up in the TensorMap (a RAW edge on the last writer).
LOOKUP_TAGS = frozenset({TensorArgType.INPUT, TensorArgType.INOUT})
#: Tags whose tensor makes this task the new producer in the TensorMap.
INSERT_TAGS = frozenset({TensorArgType.OUTPUT, TensorArgType.INOUT, TensorArgType.OUTPUT_EXISTING})


class DataType(IntEnum):
    """Element types with upstream's numeric values (``data_type.h``)."""

    FLOAT32 = 0
    FLOAT16 = 1
    INT32 = 2
    INT16 = 3
    INT8 = 4
    UINT8 = 5
    BFLOAT16 = 6
    INT64 = 7
    UINT64 = 8
    UINT16 = 9
    UINT32 = 10
    BOOL = 11
    FP8E4M3FN = 12  # MX block-scale types, A5 only; one byte per element on the host
    FP8E8M0 = 13
    FP4E2M1 = 14  # two values packed per byte upstream; modeled as one ml_dtypes element per byte

    @property
    def numpy(self) -> np.dtype:
        """The numpy dtype for this element type (bfloat16 through ``ml_dtypes``)."""
        return _TO_NUMPY[self]

    @property
    def itemsize(self) -> int:
        return _TO_NUMPY[self].itemsize

    @classmethod
    def from_numpy(cls, dtype: object) -> DataType:
        """The DataType of a numpy dtype; raises InvalidArgument for unsupported ones."""
        dt = np.dtype(dtype)  # type: ignore[call-overload]
        try:
            return _FROM_NUMPY[dt]
        except KeyError:
            raise InvalidArgument(f"numpy dtype {dt} has no runtime DataType") from None


_TO_NUMPY: dict[DataType, np.dtype] = {
    DataType.FLOAT32: np.dtype(np.float32),
    DataType.FLOAT16: np.dtype(np.float16),
    DataType.INT32: np.dtype(np.int32),
    DataType.INT16: np.dtype(np.int16),
    DataType.INT8: np.dtype(np.int8),
    DataType.UINT8: np.dtype(np.uint8),
    DataType.BFLOAT16: np.dtype(ml_dtypes.bfloat16),
    DataType.INT64: np.dtype(np.int64),
    DataType.UINT64: np.dtype(np.uint64),
    DataType.UINT16: np.dtype(np.uint16),
    DataType.UINT32: np.dtype(np.uint32),
    DataType.BOOL: np.dtype(np.bool_),
    DataType.FP8E4M3FN: np.dtype(ml_dtypes.float8_e4m3fn),
    DataType.FP8E8M0: np.dtype(ml_dtypes.float8_e8m0fnu),
    DataType.FP4E2M1: np.dtype(ml_dtypes.float4_e2m1fn),
}
_FROM_NUMPY: dict[np.dtype, DataType] = {v: k for k, v in _TO_NUMPY.items()}
#: Element size in bytes, indexed by DataType value (upstream ``get_element_size``).
ELEMENT_SIZES: tuple[int, ...] = tuple(_TO_NUMPY[d].itemsize for d in DataType)


# Dtypes named by a string ("float32"), as parsed: parsing one costs more than building the
# TensorSpec that names it. Bounded, as the strings come from the user.
_DTYPE_OF_STR: dict[str, np.dtype] = {}
_DTYPE_CACHE_MAX = 256


def as_numpy_dtype(dtype: object) -> np.dtype:
    """Accept a DataType, its int value, or anything numpy understands; return a numpy dtype."""
    if dtype.__class__ is str:
        dt = _DTYPE_OF_STR.get(dtype)  # type: ignore[call-overload]
        if dt is None:
            dt = _as_numpy_dtype(dtype)
            if len(_DTYPE_OF_STR) < _DTYPE_CACHE_MAX:
                _DTYPE_OF_STR[dtype] = dt  # type: ignore[index]
        return dt
    return _as_numpy_dtype(dtype)


def _as_numpy_dtype(dtype: object) -> np.dtype:
    if isinstance(dtype, DataType):
        return dtype.numpy
    if isinstance(dtype, int) and not isinstance(dtype, bool):
        try:
            return DataType(dtype).numpy
        except ValueError:
            raise InvalidArgument(f"{dtype} is not a DataType value") from None
    try:
        dt = np.dtype(dtype)  # type: ignore[call-overload]
    except TypeError:
        raise InvalidArgument(f"{dtype!r} is not a data type") from None
    DataType.from_numpy(dt)  # rejects dtypes the runtime has no name for
    return dt


_DIAGNOSTIC_FIELDS = ("enable_chip_swimlane", "enable_dump_args", "enable_pmu", "enable_dep_gen",
                      "enable_scope_stats")
_RUNTIME_ENV_KEYS = frozenset(("ring_dep_pool", "ring_heap", "ring_task_window"))  # python-api.md, CallConfig


@dataclass
class CallConfig:
    """Per-call configuration (``docs/user/reference/python-api.md``, "``CallConfig``").

    The simulator honours ``validate()``'s contract: a diagnostic switched on
    without ``output_prefix`` is rejected, as is an unknown ``runtime_env`` key.
    """

    aicpu_thread_num: int = 0
    enable_chip_swimlane: int = 0
    enable_dump_args: int = 0
    enable_pmu: int = 0
    enable_dep_gen: int = 0
    enable_scope_stats: int = 0
    output_prefix: str = ""
    runtime_env: dict[str, int] = field(default_factory=dict)

    def validate(self) -> None:
        """Raise InvalidArgument if a diagnostic lacks ``output_prefix`` or a field is out of range."""
        for name in ("aicpu_thread_num", *_DIAGNOSTIC_FIELDS):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | np.integer):
                raise InvalidArgument(f"CallConfig.{name} must be an int, got {value!r}")
        if not isinstance(self.output_prefix, str):
            raise InvalidArgument(f"CallConfig.output_prefix must be a str, got {self.output_prefix!r}")
        if not isinstance(self.runtime_env, dict):
            raise InvalidArgument(f"CallConfig.runtime_env must be a dict, got {self.runtime_env!r}")
        if self.aicpu_thread_num < 0:
            raise InvalidArgument(f"CallConfig.aicpu_thread_num must be >= 0, got {self.aicpu_thread_num}")
        if not 0 <= self.enable_chip_swimlane <= 4:
            raise InvalidArgument(
                f"CallConfig.enable_chip_swimlane must be 0-4, got {self.enable_chip_swimlane}")
        on = [f for f in _DIAGNOSTIC_FIELDS if getattr(self, f)]
        if on and not self.output_prefix:
            raise InvalidArgument(f"CallConfig.{on[0]} is enabled but output_prefix is empty; set output_prefix")
        unknown = sorted(set(self.runtime_env) - _RUNTIME_ENV_KEYS)
        if unknown:
            raise InvalidArgument(
                f"CallConfig.runtime_env has unknown key {unknown[0]!r}; known: {', '.join(sorted(_RUNTIME_ENV_KEYS))}")
