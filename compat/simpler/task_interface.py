"""``simpler.task_interface`` on the simulator (upstream ``python/simpler/task_interface.py``)."""

from compat.callables import ArgDirection, ChipCallable, CoreCallable
from compat.errors import NotSimulated
from compat.names import WorkerType
from compat.runtime import CallConfig, RuntimeEnv, TaskArgs, get_dtype_name, get_element_size
from sim.remote.refs import RemoteBufferExport, RemoteBufferHandle, RemoteTensorRef
from sim.tensors import Tensor
from sim.types import DataType, TensorArgType

__all__ = [
    "ArgDirection",
    "CallConfig",
    "ChipCallable",
    "ChipStorageTaskArgs",
    "ChipTensor",
    "ChipWorker",
    "CoreCallable",
    "DataType",
    "RemoteBufferExport",
    "RemoteBufferHandle",
    "RemoteTensorRef",
    "RuntimeEnv",
    "TaskArgs",
    "Tensor",
    "TensorArgType",
    "WorkerType",
    "arg_direction_name",
    "get_dtype_name",
    "get_element_size",
]


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
