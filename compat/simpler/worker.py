"""``simpler.worker`` on the simulator (upstream ``python/simpler/worker.py``)."""

from compat.names import RemoteWorkerSpec, WorkerType
from compat.runtime import RunHandle, Worker
from sim.remote.spec import RemoteCallable

__all__ = ["RemoteCallable", "RemoteWorkerSpec", "RunHandle", "Worker", "WorkerType"]
