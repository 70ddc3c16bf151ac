"""The remote layer plugged into the simulator's core (:mod:`sim.plugins`).

Importing this module registers :data:`PLUGIN` with the core; ``sim/__init__`` does so, so every
``Worker`` has ``add_remote_worker`` and ``register(RemoteCallable(...), workers=[...])``.
Spec: upstream ``docs/remote-l3-worker-design.md``, "Worker Identity and Callable Routing" and
"Remote Worker Session" (``init()`` opens every session and waits for HELLO READY), and
``docs/remote-l3-worker-design/buffers-and-transports.md`` (the ``remote_*`` memory calls).

The hooks, each delegating to the module that holds the behaviour:

- ``children`` -- a parent's :class:`sim.remote.hub.RemoteSet` (ids, registrations, lanes,
  submit placement, run fence, close);
- ``is_remote_target`` -- a :class:`sim.remote.spec.RemoteCallable`;
- ``start`` -- :func:`sim.remote.hub.start_remote` (fault-plan check, then the sessions);
- ``buffers`` -- :func:`sim.remote.buffers.registry_for`;
- ``is_fault_plan`` -- a :class:`sim.remote.faults.FaultPlan` (``SimConfig(faults=...)``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sim.plugins import plug_remote
from sim.remote.buffers import BufferRegistry, registry_for
from sim.remote.faults import FaultPlan
from sim.remote.hub import RemoteSet, start_remote
from sim.remote.spec import RemoteCallable

if TYPE_CHECKING:
    from sim.simulation import Simulation
    from sim.worker import Worker


class RemoteLayer:
    """The :class:`sim.plugins.RemotePlugin` of :mod:`sim.remote`."""

    def children(self, worker: Worker) -> RemoteSet:
        return RemoteSet(worker)

    def is_remote_target(self, target: Any) -> bool:
        return isinstance(target, RemoteCallable)

    def start(self, root: Worker, sim: Simulation) -> None:
        start_remote(root, sim)

    def buffers(self, worker: Worker, api: str) -> BufferRegistry:
        return registry_for(worker, api)

    def is_fault_plan(self, faults: Any) -> bool:
        return isinstance(faults, FaultPlan)


PLUGIN = RemoteLayer()
plug_remote(PLUGIN)
