"""``simpler.task_interface`` on the simulator (upstream ``python/simpler/task_interface.py``)."""

from compat.callables import ArgDirection, ChipCallable, CoreCallable
from compat.names import WorkerType
from compat.runtime import CallConfig, RuntimeEnv, TaskArgs, get_dtype_name, get_element_size
from sim.remote.refs import RemoteBufferExport, RemoteBufferHandle, RemoteTensorRef
from sim.tensors import Tensor
from sim.types import DataType, TensorArgType

__all__ = ["ArgDirection", "CallConfig", "ChipCallable", "CoreCallable", "DataType", "RemoteBufferExport",
           "RemoteBufferHandle", "RemoteTensorRef", "RuntimeEnv", "TaskArgs", "Tensor", "TensorArgType", "WorkerType",
           "arg_direction_name", "get_dtype_name", "get_element_size"]


def arg_direction_name(direction: ArgDirection) -> str:
    """The name of an ArgDirection (``IN``, ``OUT``, ...)."""
    return ArgDirection(int(direction)).name
