"""The core's plug-in point for next-level children that are not local Workers (remote L3s).

The simulator's core (levels, registration, orchestrator, scheduler, lanes, trace, record,
worker) never imports :mod:`sim.remote`. What a parent Worker needs of its remote children is
the interface below; :mod:`sim.remote.plugin` implements it and registers itself here when the
package is imported (``sim/__init__`` imports it, so ``from sim import Worker`` has it).
Upstream ``docs/remote-l3-worker-design.md``, "Worker Identity and Callable Routing", is the
contract: ``add_remote_worker`` needs a level >= 4 parent and draws its stable NEXT_LEVEL worker
id from the id space ``add_worker`` uses; ``register(RemoteCallable(...), workers=[...])`` returns
a handle in ``REMOTE_TASK_DISPATCHER``; ``init()`` opens every session.

A next-level child is offered to the engine as a :class:`sim.lanes.Lane` (its kind:
``lane.remote`` is True for a remote worker id). The hooks, in the order a run meets them:

- :meth:`RemotePlugin.children` -- ``Worker.add_remote_worker``: the parent's
  :class:`RemoteChildren`, created at the first remote child;
- :meth:`RemotePlugin.is_remote_target` -- ``Worker.register``: a target routed to
  :meth:`RemoteChildren.register` instead of the local registry;
- :meth:`RemoteChildren.make_lane` -- elaboration (``init()``), one lane per remote worker id;
- :meth:`RemotePlugin.start` -- ``init()``, after the local fault check: open the sessions;
- :meth:`RemoteChildren.placement` / ``check_submit`` / ``submitted`` -- a NEXT_LEVEL submit on a
  node with remote lanes;
- :meth:`RemoteChildren.fence` -- the end of ``Worker.run`` (the run fence);
- :meth:`RemoteChildren.close` -- ``Worker.close`` and a failed ``init()``;
- :meth:`RemotePlugin.buffers` -- ``Worker.remote_malloc`` and the other remote-memory calls;
- :meth:`RemotePlugin.is_fault_plan` -- ``SimConfig(faults=...)``: the fault plan
  (``sim.remote.faults.FaultPlan``) is the remote layer's vocabulary.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

from sim.errors import NotSupported

if TYPE_CHECKING:
    from sim.lanes import Lane
    from sim.node import Node
    from sim.registry import CallableHandle, Registration
    from sim.simulation import Simulation
    from sim.task import Task
    from sim.worker import Worker


class RemoteChildren(Protocol):
    """Everything one parent Worker holds about its remote NEXT_LEVEL children."""

    specs: dict[int, Any]  # remote worker id -> its spec, in add order

    def add(self, spec: Any, next_id: int, mode: str) -> int: ...
    def add_group(self, spec: Any, next_id: int, mode: str) -> tuple[int, ...]: ...
    def global_nodes(self) -> list[Any]: ...
    def register(self, target: Any, workers: Any) -> Registration: ...
    def unregister(self, handle: CallableHandle) -> Registration: ...
    def make_lane(self, node: Node, scope: str, wid: int) -> Lane: ...
    def placement(self, node: Node, wids: Sequence[int], api: str) -> list[Any] | None: ...
    def check_submit(self, reg: Registration, eps: list[Any], args_list: Sequence[Any], api: str) -> None: ...
    def submitted(self, eps: list[Any], task: Task, remote_args: bool) -> None: ...
    def fence(self) -> None: ...
    def close(self) -> None: ...


class RemotePlugin(Protocol):
    """The remote layer as the core sees it (one per process, see :func:`plug_remote`)."""

    def children(self, worker: Worker) -> RemoteChildren: ...
    def is_remote_target(self, target: Any) -> bool: ...
    def start(self, root: Worker, sim: Simulation) -> None: ...
    def buffers(self, worker: Worker, api: str) -> Any: ...
    def is_fault_plan(self, faults: Any) -> bool: ...


_plugin: RemotePlugin | None = None


def plug_remote(plugin: RemotePlugin) -> None:
    """Install the remote layer (called once by :mod:`sim.remote.plugin` when it is imported)."""
    global _plugin
    _plugin = plugin


def remote_plugin() -> RemotePlugin | None:
    """The installed remote layer, or None."""
    return _plugin


def require_remote(api: str) -> RemotePlugin:
    """The installed remote layer; ``api`` is NOT_SUPPORTED without one."""
    if _plugin is None:
        raise NotSupported(f"{api}: no remote layer is installed (import sim.remote.plugin)")
    return _plugin
