"""A parent Worker's remote children: ids, registrations, elaboration, start-up and close.

Spec: upstream ``docs/remote-l3-worker-design.md``:

- "Worker Identity and Callable Routing": ``add_remote_worker`` needs a level >= 4 parent and
  returns a stable NEXT_LEVEL worker id from the id space ``add_worker`` uses;
  ``register(RemoteCallable(...), workers=[...])`` needs an explicit non-empty list of remote
  worker ids and returns a ``PYTHON_IMPORT`` handle in ``REMOTE_TASK_DISPATCHER``; registrations
  made before ``init()`` travel in the bootstrap manifest, later ones as
  PREPARE/COMMIT(/ABORT)_REGISTER_CALLABLE controls, all-or-nothing across the listed workers;
  the final unregister sends UNREGISTER_CALLABLE.
- "Fork-Safe Remote Process Model" / "Remote Worker Session": ``init()`` opens every session and
  waits for HELLO READY; if any session fails to start, every session already opened is closed
  before ``init()`` raises (seed 001 review, "Partial Init Failure Can Leak Remote Sessions").
  Pre-init chip-kernel registrations of the parent are installed on every session's inner L3
  Worker (resolved there with :func:`sim.remote.session.get_inner_handle`).

:class:`RemoteSet` is the core's ``sim.plugins.RemoteChildren``: the parent Worker reaches it only
through that interface (installed by :mod:`sim.remote.plugin`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from simpy.events import Event

from sim.callable_identity import describe_import_target, format_hashid
from sim.comm.global_domain import GlobalNode
from sim.errors import EndpointFailure, InvalidArgument, InvalidState, SimError, UnknownWorker
from sim.registry import CallableHandle, Registration
from sim.remote.buffers import capture_slot_refs
from sim.remote.endpoint import (
    EndpointState,
    RemoteEndpoint,
    RemoteLane,
    check_remote_submit,
    remote_endpoints,
    track_remote,
)
from sim.remote.faults import FaultPlan, SessionCrash, SessionHang
from sim.remote.global_domain import RemoteDomainPort
from sim.remote.link import LinkModel
from sim.remote.registration import remote_final_unregister, remote_install
from sim.remote.session import BootstrapManifest
from sim.remote.spec import MpiL3GroupSpec, RemoteCallable, RemoteWorkerSpec
from sim.remote.wire import ControlName

if TYPE_CHECKING:
    from collections.abc import Sequence

    from sim.node import Node
    from sim.simulation import Simulation
    from sim.task import Task
    from sim.worker import Worker

_DISPATCHER = "REMOTE_TASK_DISPATCHER"


class RemoteSet:
    """Everything one parent Worker knows about its remote NEXT_LEVEL children.

    The core's :class:`sim.plugins.RemoteChildren`: the parent Worker calls it, never the reverse.
    """

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.specs: dict[int, RemoteWorkerSpec] = {}
        self.eligible: dict[int, tuple[int, ...]] = {}
        self.endpoints: dict[int, RemoteEndpoint] = {}
        self.groups: list[tuple[int, ...]] = []  # MPI L3 groups (add_mpirun_worker_group), worker ids per rank
        self._pre: dict[int, dict[bytes, int]] = {}  # per-worker hashid counts before elaboration
        self._buffers: Any = None  # sim.remote.buffers.BufferRegistry, at the first remote-memory call

    # ------------------------------------------------------------------ composition

    def add(self, spec: Any, next_id: int, mode: str) -> int:
        if not isinstance(spec, RemoteWorkerSpec):
            raise InvalidArgument(f"add_remote_worker expects a RemoteWorkerSpec, got {type(spec).__name__}")
        spec.check_mode(mode)
        self.specs[next_id] = spec
        return next_id

    def add_group(self, spec: Any, next_id: int, mode: str) -> tuple[int, ...]:
        """``add_mpirun_worker_group``: one simulated remote L3 per MPI rank, ids in rank order."""
        if not isinstance(spec, MpiL3GroupSpec):
            raise InvalidArgument(f"add_mpirun_worker_group expects a MpiL3GroupSpec, got {type(spec).__name__}")
        ranks = spec.rank_specs()
        for r in ranks:
            r.check_mode(mode)
        ids = tuple(range(next_id, next_id + len(ranks)))
        for wid, r in zip(ids, ranks, strict=True):
            self.specs[wid] = r
        self.groups.append(ids)
        return ids

    def global_nodes(self) -> list[GlobalNode]:
        """Every remote L3 as a Global CommDomain node, reached through its session (sim.remote.global_domain)."""
        out = []
        for wid in sorted(self.endpoints):
            ep, spec = self.endpoints[wid], self.specs[wid]
            kind = "MPI L3 rank" if any(wid in g for g in self.groups) else "remote L3 worker"
            out.append(GlobalNode(wid, len(spec.device_ids), spec.platform, spec.comm_profile,
                                  spec.global_device_ranks, f"{kind} {wid} ({spec.endpoint})", RemoteDomainPort(ep)))
        return out

    # ------------------------------------------------------------------ registration

    def _check_workers(self, workers: Any) -> tuple[int, ...]:
        if workers is None or isinstance(workers, str | bytes):
            raise InvalidArgument("register(RemoteCallable): workers=[...] must list the remote worker ids "
                                  "returned by add_remote_worker (no implicit broadcast)")
        try:
            ids = list(workers)
        except TypeError:
            raise InvalidArgument(f"register: workers must be a list of worker ids, got {workers!r}") from None
        if not ids:
            raise InvalidArgument("register(RemoteCallable): workers must be a non-empty list of remote worker ids")
        for w in ids:
            if isinstance(w, bool) or not isinstance(w, int):
                raise InvalidArgument(f"register: worker ids are ints, got {w!r}")
            if w not in self.specs:
                raise UnknownWorker(f"register: worker {w} is not a remote worker of this Worker "
                                    f"(remote worker ids: {sorted(self.specs) or 'none'})")
        if len(set(ids)) != len(ids):
            raise InvalidArgument(f"register: workers repeats a worker id: {ids}")
        return tuple(ids)

    def register(self, target: Any, workers: Any) -> Registration:
        if not isinstance(target, RemoteCallable):
            raise InvalidArgument(f"register: workers= applies to RemoteCallable targets only, got "
                                  f"{type(target).__name__}")
        ids = self._check_workers(workers)
        desc = describe_import_target(target.target)
        state = self.worker._state.value
        if state == "RUNNING":
            raise InvalidState("register(RemoteCallable) during a run; register before or between runs")
        if state == "READY":
            self._install(desc.digest, target.target, ids)
        reg = self.worker._registry.install(desc, target, target.target, None)
        self.eligible[reg.handle._serial] = ids
        for w in ids:
            ep_digests = self._digests(w)
            ep_digests[desc.digest] = ep_digests.get(desc.digest, 0) + 1
        return reg

    def _digests(self, wid: int) -> dict[bytes, int]:
        ep = self.endpoints.get(wid)
        if ep is None:  # before elaboration: keep the counts on a placeholder
            return self._pre.setdefault(wid, {})
        return ep.digests

    def unregister(self, handle: CallableHandle) -> Registration:
        reg = self.worker._registry.unregister(handle)
        ids = self.eligible.pop(handle._serial, ())
        digest = reg.descriptor.digest
        drop: list[RemoteEndpoint] = []
        for w in ids:
            counts = self._digests(w)
            counts[digest] -= 1
            if counts[digest] == 0:
                del counts[digest]
                ep = self.endpoints.get(w)
                if ep is not None and ep.state is EndpointState.READY:
                    drop.append(ep)
        if drop:  # tombstone each pair until its UNREGISTER is confirmed (sim.remote.registration)
            remote_final_unregister(self, digest, drop)
        return reg

    def _install(self, digest: bytes, target: str, ids: tuple[int, ...]) -> None:
        """Post-init registration: PREPARE on every new endpoint, then COMMIT, or clean up (sim.remote.registration)."""
        remote_install(self, digest, format_hashid(digest), target, ids)

    def _controls(self, eps: list[RemoteEndpoint], name: ControlName, command: Any) -> list[SimError | None]:
        """Send one CONTROL to each endpoint, run virtual time until every reply (or failure) is in."""
        sim = self.worker.simulation
        results: list[SimError | None] = [None] * len(eps)
        events = []
        for i, ep in enumerate(eps):
            ev = Event(sim.env)
            events.append(ev)

            def reply(err: str | None, cls: str | None, _p: Any, i: int = i, ev: Event = ev) -> None:
                if err is not None:
                    results[i] = EndpointFailure(err) if cls == "ENDPOINT_FAILURE" else InvalidArgument(err)
                ev.succeed()

            try:
                ep.send_control(name, command, reply)
            except SimError as exc:
                results[i] = exc
                ev.succeed()
        sim.env.run(until=sim.env.all_of(events))
        return results

    # ------------------------------------------------------------------ elaboration

    def make_lane(self, node: Node, scope: str, wid: int) -> RemoteLane:
        sim = node.sim
        spec = self.specs[wid]
        link_cost = sim.profile.transports.get(spec.transport)
        if link_cost is None:
            raise InvalidArgument(f"profile {sim.profile.name!r} has no [transport.{spec.transport}] parameters")
        link = LinkModel(sim, f"{scope}.link", link_cost, wid, sim.config.faults)
        ep = RemoteEndpoint(node, scope, wid, spec, link, self._timeout_us())
        ep.digests.update(self._pre.pop(wid, {}))
        self.endpoints[wid] = ep
        return RemoteLane(node, scope, wid, ep)

    def _timeout_us(self) -> float:
        return float(self.worker._config.get("remote_session_timeout_s", 30.0)) * 1e6

    # ------------------------------------------------------------------ submit (sim.orchestrator)

    def placement(self, node: Node, wids: Sequence[int], api: str) -> list[RemoteEndpoint] | None:
        """The endpoints behind ``wids`` if they are all remote, None if all local; mixing is rejected."""
        return remote_endpoints(node, wids, api)

    def check_submit(self, reg: Registration, eps: list[RemoteEndpoint], args_list: Sequence[Any], api: str) -> None:
        """Placement contract for remote targets: eligibility, liveness and argument representability."""
        check_remote_submit(self.worker, reg, eps, args_list, api)

    def submitted(self, eps: list[RemoteEndpoint], task: Task, remote_args: bool) -> None:
        """Track the task on its endpoints; its remote handles hold slot references until it is terminal."""
        track_remote(eps, task)
        if remote_args:
            capture_slot_refs(task)

    def fence(self) -> None:
        """Run fence: deferred remote frees whose references drained go now."""
        if self._buffers is not None:
            self._buffers.fence()

    # ------------------------------------------------------------------ start-up and close

    def _manifest(self, sim: Simulation, wid: int, ep: RemoteEndpoint) -> BootstrapManifest:
        w = self.worker
        spec = self.specs[wid]
        dispatcher: dict[bytes, tuple[str, str]] = {}
        inner: list[tuple[str, Any]] = []
        for serial, reg in sorted(w._registry.live.items()):
            ns = reg.descriptor.namespace.name
            if ns == _DISPATCHER and wid in self.eligible.get(serial, ()):
                dispatcher.setdefault(reg.descriptor.digest, (reg.descriptor.hashid, reg.target.target))
            elif ns == "LOCAL_CHIP" and all(h != reg.descriptor.hashid for h, _ in inner):
                inner.append((reg.descriptor.hashid, reg.target))
        session_id = int(sim.stream(f"{ep.scope}.session").integers(1, 1 << 62))
        return BootstrapManifest(
            session_id=session_id, worker_id=wid, parent_worker_level=w._level, platform=spec.platform,
            runtime=spec.runtime, device_ids=spec.device_ids, num_sub_workers=spec.num_sub_workers,
            transport=spec.transport, listen_host=spec.listen_host,
            allow_non_loopback_bind=spec.allow_non_loopback_session_bind,
            remote_task_dispatcher=tuple(dispatcher.values()), inner_chip_callables=tuple(inner))

    def start(self, sim: Simulation) -> None:
        """Open every session and run virtual time until each is READY; on any failure close all and raise."""
        plan: FaultPlan | None = sim.config.faults
        if not self.endpoints:
            return
        done = Event(sim.env)
        outcome: dict[str, Any] = {"left": len(self.endpoints), "error": None}

        def resolved(err: SimError | None) -> None:
            outcome["left"] -= 1
            if err is not None and outcome["error"] is None:
                outcome["error"] = err
            if (err is not None or outcome["left"] == 0) and not done.triggered:
                done.succeed()

        try:
            for wid, ep in self.endpoints.items():
                crashes = [f.at_us for f in (plan.for_worker(wid) if plan else ()) if isinstance(f, SessionCrash)]
                if crashes:  # counted in Simulation.fault_hits once virtual time reaches it
                    sim.hit_at(min(crashes), "SessionCrash")
                hangs = [f.at_us for f in (plan.for_worker(wid) if plan else ()) if isinstance(f, SessionHang)]
                if hangs:
                    sim.hit_at(min(hangs), "SessionHang")
                ep.open(self._manifest(sim, wid, ep), min(crashes) if crashes else None, self._timeout_us(),
                        resolved, hang_at=min(hangs) if hangs else None)
            sim.env.run(until=done)
        except BaseException:
            self.close()
            raise
        if outcome["error"] is not None:
            self.close()
            raise outcome["error"]

    def close(self) -> None:
        """Close every session that was opened; idempotent. Pending remote frees go (or are recorded
        UNCERTAIN) before SHUTDOWN."""
        if self._buffers is not None:
            self._buffers.close()
        for ep in self.endpoints.values():
            ep.close()


def start_remote(root: Worker, sim: Simulation) -> None:
    """``init()`` hook: check the fault plan against the tree's remote worker ids, then open the sessions."""
    sets = [w._remote for w in root._walk() if w._remote is not None]
    plan = sim.config.faults
    if plan is not None:
        plan.check_workers(sorted({wid for rs in sets for wid in rs.specs}))
    for rs in sets:
        rs.start(sim)
