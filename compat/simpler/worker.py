"""``simpler.worker`` on the simulator (upstream ``python/simpler/worker.py``)."""

from compat.names import RemoteWorkerSpec, WorkerType
from compat.runtime import RunHandle, Worker
from sim.remote.spec import MpiL3GroupSpec, RemoteCallable

__all__ = ["MpiL3GroupSpec", "RemoteCallable", "RemoteWorkerSpec", "RunHandle", "Worker", "WorkerType"]
