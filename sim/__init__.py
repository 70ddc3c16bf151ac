"""tierbed's executable spec: a deterministic discrete-event model of the simpler runtime.

The public names mirror the real package's Python API (``docs/user/reference/python-api.md``)
so that a case written against one runs on the other::

    from sim import Worker, WorkerType, TaskArgs, TensorArgType, CallConfig, DataType, CallableHandle
    from sim import RemoteWorkerSpec, RemoteCallable, RemoteTensorRef  # the remote-L3 layer

Importing the package also plugs the remote-L3 layer (:mod:`sim.remote.plugin`) into the core
(:mod:`sim.plugins`): ``Worker.add_remote_worker`` and ``RemoteCallable`` registration need it.
"""

from sim.cost import modeled_duration
from sim.errors import ErrorClass, SimError
from sim.record import Outcome, RunRecord
from sim.registry import CallableHandle

# The remote-L3 layer plugs into the core here (sim.plugins); the core never imports sim.remote.
from sim.remote import plugin as _remote_plugin  # noqa: F401 - registers the remote layer
from sim.remote.refs import RemoteBufferExport, RemoteBufferHandle, RemoteTensorRef
from sim.remote.spec import RemoteCallable, RemoteWorkerSpec
from sim.simulation import SimConfig
from sim.task_args import TaskArgs, TaskArgsView
from sim.tensors import Buffer, Tensor, TensorSpec
from sim.types import CallConfig, DataType, TensorArgType, WorkerType
from sim.worker import Worker

__all__ = [
    "Buffer",
    "CallConfig",
    "CallableHandle",
    "DataType",
    "ErrorClass",
    "Outcome",
    "RemoteBufferExport",
    "RemoteBufferHandle",
    "RemoteCallable",
    "RemoteTensorRef",
    "RemoteWorkerSpec",
    "RunRecord",
    "SimConfig",
    "SimError",
    "TaskArgs",
    "TaskArgsView",
    "Tensor",
    "TensorArgType",
    "TensorSpec",
    "Worker",
    "WorkerType",
    "modeled_duration",
]
