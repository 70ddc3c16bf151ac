"""``simpler.task_interface`` on the simulator (upstream ``python/simpler/task_interface.py``)."""

import ctypes
import struct
from enum import IntEnum
from typing import Any

from compat.callables import ArgDirection, ChipCallable, CoreCallable
from compat.errors import NotSimulated
from compat.names import WorkerType
from compat.runtime import CallConfig, RuntimeEnv, TaskArgs, get_dtype_name, get_element_size
from sim.comm.domain import ChipDomainContext, CommBufferSpec, CommDomainHandle
from sim.comm.global_domain import GlobalCommDomainHandle, GlobalCommDomainView
from sim.errors import InvalidArgument
from sim.remote.refs import RemoteBufferExport, RemoteBufferHandle
from sim.remote.refs import RemoteTensorRef as _SimRemoteTensorRef
from sim.remote.wire_base import MAX_TENSOR_DIMS, RemoteAddressSpace
from sim.task import TaskState as _SimTaskState
from sim.tensors import Tensor
from sim.types import DataType, TensorArgType

__all__ = [
    "MAX_TENSOR_DIMS",
    "ArgDirection",
    "CallConfig",
    "ChipCallable",
    "ChipDomainContext",
    "ChipStorageTaskArgs",
    "ChipTensor",
    "ChipWorker",
    "CommBufferSpec",
    "CommDomainHandle",
    "CoreCallable",
    "DataType",
    "GlobalCommDomainHandle",
    "GlobalCommDomainView",
    "RemoteAddressSpace",
    "RemoteBufferExport",
    "RemoteBufferHandle",
    "RemoteTensorRef",
    "RuntimeEnv",
    "TaskArgs",
    "TaskState",
    "Tensor",
    "TensorArgType",
    "WorkerType",
    "arg_direction_name",
    "get_dtype_name",
    "get_element_size",
    "scalar_to_uint64",
]

# Upstream's values (``src/common/hierarchical/types.h``). The simulator's engine numbers the same
# states in lifecycle order (:class:`sim.task.TaskState`); the names are the same.
TaskState = IntEnum("TaskState", [("FREE", 0), ("PENDING", 1), ("READY", 2), ("RUNNING", 3), ("COMPLETED", 4),
                                  ("FAILED", 5), ("CONSUMED", 6), ("BUILDING", 7)], module=__name__)
TaskState.__doc__ = "A task slot's state, with the native runtime's values; ``TaskState[sim_state.name]`` maps one."
assert {m.name for m in TaskState} == {m.name for m in _SimTaskState}


def scalar_to_uint64(value: Any) -> int:
    """A scalar task argument as its ``uint64`` bits: a Python float as IEEE single precision
    (zero-extended), a ctypes float / double as its own bits, any other int-like value mod 2**64."""
    if isinstance(value, float):
        return struct.unpack("<I", struct.pack("<f", value))[0]
    if isinstance(value, ctypes.c_float):
        return ctypes.c_uint32.from_buffer_copy(value).value
    if isinstance(value, ctypes.c_double):
        return ctypes.c_uint64.from_buffer_copy(value).value
    if isinstance(value, ctypes._SimpleCData):
        return int(value.value) & 0xFFFF_FFFF_FFFF_FFFF
    return int(value) & 0xFFFF_FFFF_FFFF_FFFF


class RemoteTensorRef(_SimRemoteTensorRef):
    """The simulator's remote tensor reference with upstream's constructor fields.

    ``nbytes`` defaults to ``shape`` x ``dtype`` and may only restate it (the simulator sizes a
    view from its shape); ``inline_payload`` builds a HOST_INLINE reference, as
    :meth:`host_inline` does.
    """

    __slots__ = ()

    def __init__(self, handle: Any, offset: int = 0, shape: Any = (), dtype: Any = DataType.FLOAT32,
                 nbytes: int | None = None, inline_payload: bytes = b"") -> None:
        inline = isinstance(handle, RemoteBufferHandle) and handle._space is RemoteAddressSpace.HOST_INLINE
        if inline or inline_payload:
            if not inline and not isinstance(handle, RemoteBufferHandle):
                raise InvalidArgument(f"RemoteTensorRef.handle must be a RemoteBufferHandle, got "
                                      f"{type(handle).__name__}")
            if not inline:
                raise InvalidArgument("inline_payload is only valid for a HOST_INLINE RemoteTensorRef")
            built = _SimRemoteTensorRef.host_inline(inline_payload, shape=shape, dtype=dtype)
            for name in _SimRemoteTensorRef.__slots__:
                setattr(self, name, getattr(built, name))
        else:
            super().__init__(handle, offset, shape, dtype)
        if nbytes is not None and int(nbytes) != self._nbytes:
            raise InvalidArgument(f"RemoteTensorRef.nbytes {nbytes} differs from shape {self._shape} x "
                                  f"{self._dtype.name} = {self._nbytes} bytes (the simulator sizes a view by its "
                                  "shape)")


def arg_direction_name(direction: ArgDirection) -> str:
    """The name of an ArgDirection (``IN``, ``OUT``, ...)."""
    return ArgDirection(int(direction)).name


class _DirectChipAPI:
    """The direct ``ChipWorker`` API (raw device pointers) is below what the simulator models."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        raise NotSimulated(f"{type(self).__name__}: the direct chip API is not simulated; use Worker(level=2) with "
                           "malloc / Buffer.tensor / TaskArgs instead")

    @classmethod
    def make(cls, *args: object, **kwargs: object) -> None:
        cls()


class ChipTensor(_DirectChipAPI):
    """Not simulated (see :class:`_DirectChipAPI`)."""


class ChipStorageTaskArgs(_DirectChipAPI):
    """Not simulated (see :class:`_DirectChipAPI`)."""


class ChipWorker(_DirectChipAPI):
    """Not simulated (see :class:`_DirectChipAPI`)."""
