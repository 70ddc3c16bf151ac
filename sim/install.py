"""Whole-scope callable install and cleanup: all-or-nothing publish, uncertain pairs, tombstones.

Spec: upstream ``docs/callable-identity-registration.md``, "Runtime Contracts" (a successful
``Worker.register`` means every active child in the handle's namespace installed it),
"Registration Failure Contract" (the parent publishes the handle only after every target of the
scope confirmed; on any failure it drops the unpublished entry, sends cleanup to the targets that
may have installed, and a cleanup it cannot confirm marks that target/hashid pair uncertain),
"Dispatch Contract" (an uncertain pair is never dispatched) and "Local Control Contract"
(REGISTER_CALLABLE increments, UNREGISTER_CALLABLE decrements the target-local refcount); and
``docs/remote-l3-worker-design/protocol.md``, "CONTROL Payload" (multi-endpoint registration:
PREPARE on every selected worker, then COMMIT, or ABORT the prepared; a commit failure or timeout
keeps the handle unpublished and cleans up; abort/cleanup failure leaves only the affected
worker/hashid pair cleanup-uncertain; final unregister leaves a worker/hashid tombstone until the
cleanup is confirmed or the endpoint is failed for the session).

Two scopes of targets share the state and retry policy kept here:

- **local** targets -- the chips (``LOCAL_CHIP``), and the SUB children plus next-level Worker
  children (``LOCAL_PYTHON``) of one Worker's node. As upstream's local broadcast, one phase:
  REGISTER_CALLABLE to every target, then the reverse UNREGISTER_CALLABLE to every target that
  confirmed (or may have applied) it if any target failed. Each target keeps its own
  ``hashid -> refcount`` table (:attr:`ScopeInstall.tables`), seeded at first use from the
  startup snapshot (the registrations made before ``init()``). In the simulator a local control
  succeeds unless a :class:`~sim.control_faults.LocalControlFault` says otherwise; it takes no
  virtual time.
- **remote** targets -- the endpoints a ``RemoteCallable`` was registered on: two phases over each
  endpoint's ordered command lane (PREPARE / COMMIT / ABORT, then UNREGISTER), failed by a
  ``ControlFault`` or any link/session fault. That protocol is the remote layer's
  (:mod:`sim.remote.registration`, which imports this module; this module, like the rest of the
  core, does not import :mod:`sim.remote`).

State is kept per **(target, hashid) pair**, keyed by the target's scope name in the owning
Worker's registry: ``registry.uncertain`` (never dispatched, never re-registered this session --
upstream's ``REGISTER_CLEANUP_UNCERTAIN``) and ``registry.tombstones`` (final unregister sent, not
confirmed -- a re-register is ``REGISTER_TOMBSTONE_ACTIVE``). This follows the doc, which scopes
the state to "that target/hashid pair". Upstream's code (``python/simpler/worker.py``,
``_uncertain_hashids``) is coarser: it blocks the digest itself, on every target, for the whole
Worker lifetime. A pair on an endpoint that has *failed* is not recorded: a failed endpoint is out
of the session for good, which the doc names as the other way a tombstone ends.

A tombstoned pair's cleanup is retried in virtual time every :data:`RETRY_INTERVAL_US`, at most
:data:`MAX_CLEANUP_RETRIES` times; a confirmed retry clears the tombstone, an exhausted one turns
the pair cleanup-uncertain. Upstream leaves the retry policy open; this one keeps runs bounded.
An unregister whose cleanup is not confirmed still consumes the handle and returns normally, as
upstream's best-effort unregister does; the tombstone (and, later, the uncertain pair) is what a
user can observe.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sim.callable_identity import CallableDescriptor, TargetNamespace
from sim.control_faults import ControlMatcher, LocalControlFault, describe_local
from sim.errors import (
    InvalidArgument,
    RegisterPartialFailure,
    TombstoneActive,
    UncertainState,
)
from sim.lanes import ChipLane, WorkerLane
from sim.simulation import Simulation, fire_at
from sim.trace import EventKind

if TYPE_CHECKING:
    from sim.registry import CallableRegistry, Registration
    from sim.worker import Worker

RETRY_INTERVAL_US = 1000.0
MAX_CLEANUP_RETRIES = 3

OK = "ok"
ERROR = "error"
TIMEOUT = "timeout"


# ---------------------------------------------------------------------- pair state


def blocked(registry: CallableRegistry, digest: bytes, key: str) -> str | None:
    """Why the (``key``, ``digest``) pair cannot take a new registration, or None."""
    if key in registry.uncertain.get(digest, ()):
        return "uncertain"
    if key in registry.tombstones.get(digest, ()):
        return "tombstone"
    return None


def _mark(table: dict[bytes, set[str]], digest: bytes, key: str) -> None:
    table.setdefault(digest, set()).add(key)


def _clear(table: dict[bytes, set[str]], digest: bytes, key: str) -> None:
    keys = table.get(digest)
    if keys is not None:
        keys.discard(key)
        if not keys:
            del table[digest]


def _check_pairs(registry: CallableRegistry, digest: bytes, hashid: str, targets: list[tuple[str, str]],
                 namespace: str) -> None:
    """Reject a register whose scope holds an uncertain or tombstoned pair for this hashid."""
    for key, label in targets:
        why = blocked(registry, digest, key)
        if why == "uncertain":
            raise UncertainState(f"REGISTER_CLEANUP_UNCERTAIN: register {namespace} {hashid} on {label}: an "
                                 f"earlier cleanup of this hashid there was never confirmed; the pair is unusable "
                                 f"for this session (restart the Worker to use it again)")
        if why == "tombstone":
            raise TombstoneActive(f"REGISTER_TOMBSTONE_ACTIVE: register {namespace} {hashid} on {label}: its final "
                                  f"unregister is not confirmed yet; retry after the cleanup is confirmed")


def check_dispatch(registry: CallableRegistry, reg: Registration, scopes: Any, api: str) -> None:
    """Submit-time: refuse a handle whose hashid is cleanup-uncertain on a target lane (``scopes``).

    Called only when ``registry.uncertain`` is non-empty. SUB placement is not chosen by the user,
    so for SUB submits ``scopes`` is the whole SUB pool: one uncertain SUB child blocks the handle.
    """
    keys = registry.uncertain.get(reg.descriptor.digest)
    if not keys:
        return
    for scope in scopes:
        if scope in keys:
            raise UncertainState(f"{api}: {reg.name!r} ({reg.descriptor.hashid}) is cleanup-uncertain on {scope}; "
                                 f"it is not dispatched there in this session (REGISTER_CLEANUP_UNCERTAIN)")


# ---------------------------------------------------------------------- local targets


class LocalTarget:
    """One local child in a namespace's scope: its identity table and its control faults."""

    __slots__ = ("faults", "key", "label", "table")

    def __init__(self, key: str, label: str, table: dict[bytes, int], faults: ControlMatcher) -> None:
        self.key = key
        self.label = label
        self.table = table
        self.faults = faults


class ScopeInstall:
    """One Worker's local install scopes, built at first post-``init()`` register or unregister."""

    def __init__(self, worker: Worker) -> None:
        node = worker._node
        assert node is not None
        sim = node.sim
        self.worker = worker
        self.sim = sim
        plan = sim.config.faults
        local = [f for f in plan.faults if isinstance(f, LocalControlFault)] if plan is not None else []
        registry = worker._registry
        self.targets: dict[TargetNamespace, list[LocalTarget]] = {}
        for ns in (TargetNamespace.LOCAL_CHIP, TargetNamespace.LOCAL_PYTHON):
            if ns is TargetNamespace.LOCAL_CHIP:
                lanes = [(lane, f"chip[{lane.index}]") for lane in node.nl_lanes if isinstance(lane, ChipLane)]
            else:
                lanes = [(lane, f"SUB[{lane.index}]") for lane in node.sub_lanes]
                lanes += [(lane, f"NEXT_LEVEL[{lane.index}]") for lane in node.nl_lanes if isinstance(lane, WorkerLane)]
            snapshot = {d: s.refcount for d, s in registry.tables[ns].items()}
            self.targets[ns] = [
                LocalTarget(lane.scope, f"{label} ({lane.scope})", dict(snapshot),
                            ControlMatcher(tuple(f for f in local if f.target == lane.scope),
                                          sim.stream(f"faults.{lane.scope}.control")))
                for lane, label in lanes]

    @property
    def tables(self) -> dict[str, dict[bytes, int]]:
        """Every local target's identity table, by scope (for inspection)."""
        return {t.key: t.table for ts in self.targets.values() for t in ts}

    def _control(self, target: LocalTarget, control: str, digest: bytes, purge: bool = False) -> str:
        """Apply one local REGISTER/UNREGISTER on ``target``; return ok, error or timeout."""
        name = "REGISTER_CALLABLE" if control == "register" else "UNREGISTER_CALLABLE"
        tr = self.sim.trace
        now = self.sim.now
        fault = target.faults.hit(control) if target.faults.faults else None
        if fault is not None:
            tr.add(now, EventKind.FAULT, target.key, name, describe_local(fault))
            self.sim.hit("LocalControlFault")
            if fault.outcome == ERROR:
                tr.add(now, EventKind.CONTROL, target.key, name, "error: injected")
                return ERROR
        table = target.table
        if control == "register":
            table[digest] = table.get(digest, 0) + 1
        elif purge or table.get(digest, 0) <= 1:
            table.pop(digest, None)
        else:
            table[digest] -= 1
        if fault is not None:
            tr.add(now, EventKind.CONTROL, target.key, name, "applied, unconfirmed")
            return TIMEOUT
        tr.add(now, EventKind.CONTROL, target.key, name, "ok")
        return OK

    def register(self, desc: CallableDescriptor, name: str) -> None:
        """Install ``desc`` on every local target of its namespace, or on none (raises)."""
        targets = self.targets.get(desc.namespace, [])
        registry = self.worker._registry
        ns = desc.namespace.name
        _check_pairs(registry, desc.digest, desc.hashid, [(t.key, t.label) for t in targets], ns)
        results = [self._control(t, "register", desc.digest) for t in targets]
        failed = [t.label for t, r in zip(targets, results, strict=True) if r != OK]
        if not failed:
            return
        # Reverse-unregister every target that confirmed (or may have applied) the install.
        uncertain = []
        for t, r in zip(targets, results, strict=True):
            if r == ERROR:
                continue
            if self._control(t, "unregister", desc.digest) != OK:
                _mark(registry.uncertain, desc.digest, t.key)
                uncertain.append(t.label)
        what = (f"register {ns} {name!r} ({desc.hashid}) failed on {', '.join(failed)} of "
                f"{len(targets)} targets; nothing was published")
        if uncertain:
            raise UncertainState(f"REGISTER_CLEANUP_UNCERTAIN: {what}; cleanup not confirmed on "
                                 f"{', '.join(uncertain)}, which the hashid can no longer use in this session")
        raise RegisterPartialFailure(f"REGISTER_PARTIAL_FAILURE: {what}; cleanup confirmed")

    def unregister(self, reg: Registration, final: bool) -> None:
        """Propagate one released handle (a refcount decrement) to every local target."""
        desc = reg.descriptor
        registry = self.worker._registry
        for t in self.targets.get(desc.namespace, []):
            if t.key in registry.uncertain.get(desc.digest, ()):
                continue  # its refcount is unknown already; the pair stays blocked
            if self._control(t, "unregister", desc.digest) == OK:
                continue
            if final:
                _mark(registry.tombstones, desc.digest, t.key)
                self._retry_local(t, desc.digest, 1)
            else:
                _mark(registry.uncertain, desc.digest, t.key)

    def _retry_local(self, target: LocalTarget, digest: bytes, attempt: int) -> None:
        registry = self.worker._registry

        def retry() -> None:
            if target.key not in registry.tombstones.get(digest, ()):
                return
            ok = self._control(target, "unregister", digest, purge=True) == OK
            _after_retry(self.sim, registry, target.key, digest, attempt, ok,
                         lambda: self._retry_local(target, digest, attempt + 1))

        fire_at(self.sim.env, RETRY_INTERVAL_US, retry)


def _after_retry(sim: Simulation, registry: CallableRegistry, key: str, digest: bytes, attempt: int, ok: bool,
                 again: Callable[[], None]) -> None:
    if ok:
        _clear(registry.tombstones, digest, key)
        sim.trace.add(sim.now, EventKind.CONTROL, key, "tombstone", "cleanup confirmed")
    elif attempt < MAX_CLEANUP_RETRIES:
        again()
    else:
        _clear(registry.tombstones, digest, key)
        _mark(registry.uncertain, digest, key)
        sim.trace.add(sim.now, EventKind.FAIL, key, "tombstone", f"cleanup unconfirmed after {attempt} retries; "
                      f"the pair is cleanup-uncertain")


def scope_install(worker: Worker) -> ScopeInstall:
    """The Worker's local install scopes (created on first use after ``init()``)."""
    si = worker._scope_install
    if si is None:
        si = worker._scope_install = ScopeInstall(worker)
    return si


def check_local_faults(root: Worker) -> None:
    """``init()`` hook: every LocalControlFault must name a local child of the tree; trace each one."""
    sim = root.simulation
    plan = sim.config.faults
    faults = [f for f in plan.faults if isinstance(f, LocalControlFault)] if plan is not None else []
    if not faults:
        return
    scopes = set()
    for w in root._walk():
        if w._node is not None and w._level > 2:
            scopes.update(lane.scope for lane in w._node.sub_lanes)
            scopes.update(lane.scope for lane in w._node.nl_lanes if isinstance(lane, ChipLane | WorkerLane))
    for f in faults:
        if f.target not in scopes:
            raise InvalidArgument(f"fault plan: {f!r} names {f.target!r}, which is not a local child; local "
                                  f"children are {', '.join(sorted(scopes)) or 'none'}")
        sim.trace.add(0.0, EventKind.FAULT, f.target, type(f).__name__, describe_local(f))
