"""Whole-scope registration: two-phase remote install, local broadcast, uncertain pairs, tombstones.

Spec: upstream ``docs/callable-identity-registration.md`` ("Runtime Contracts", "Registration
Failure Contract", "Dispatch Contract", "Local Control Contract") and
``docs/remote-l3-worker-design/protocol.md`` ("CONTROL Payload": multi-endpoint registration with
PREPARE / COMMIT / ABORT, partial failure outcomes, final-unregister tombstones; "Ordering").
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sim import SimConfig, TaskArgs, Worker
from sim.callable_identity import describe_import_target
from sim.errors import (
    EndpointFailure,
    InvalidArgument,
    RegisterPartialFailure,
    SimError,
    SimulationHang,
    TombstoneActive,
    UncertainState,
)
from sim.install import MAX_CLEANUP_RETRIES, RETRY_INTERVAL_US, scope_install
from sim.remote.endpoint import EndpointState
from sim.remote.faults import ControlFault, FaultPlan, FrameFault, LinkCut, LocalControlFault, SessionCrash
from sim.remote.spec import RemoteCallable, RemoteWorkerSpec
from sim.trace import EventKind

NOOP = "sim.remote.examples:noop"
FAIL = "sim.remote.examples:fail"
CMD_TIMEOUT_S = 0.05
DIGEST = describe_import_target(NOOP).digest


@pytest.fixture(scope="module")
def profile(tmp_path_factory) -> Path:
    from importlib import resources

    text = resources.files("sim").joinpath("profiles", "a2a3.toml").read_text(encoding="utf-8")
    text = text.replace("health_interval_us = 200000.0", "health_interval_us = 1000.0")
    text = text.replace("health_timeout_us = 30000000.0", "health_timeout_us = 20000.0")
    assert "health_timeout_us = 20000.0" in text
    path = tmp_path_factory.mktemp("profile") / "fast_health.toml"
    path.write_text(text, encoding="utf-8")
    return path


def build(profile: Path, *faults, seed: int = 1):
    """A small L4: local L3 child (id 0, scope l4.w0), remote L3s 1 and 2, one SUB (l4.sub0)."""
    w = Worker(level=4, num_sub_workers=1, remote_session_timeout_s=CMD_TIMEOUT_S,
               sim=SimConfig(seed=seed, profile=profile, faults=FaultPlan(faults)))
    local = w.add_worker(Worker(level=3, device_ids=[0]))
    r1 = w.add_remote_worker(RemoteWorkerSpec("127.0.0.1:9000", "a2a3sim", device_ids=(0,)))
    r2 = w.add_remote_worker(RemoteWorkerSpec("127.0.0.1:9001", "a2a3sim", device_ids=(0,)))
    return w, local, r1, r2


def session_has(w, wid: int, digest: bytes = DIGEST) -> bool:
    s = w._remote.endpoints[wid].session
    return digest in s.registry or digest in s.staged


def controls(w, scope: str) -> list[str]:
    return [e.subject.split("#")[0] for e in w.simulation.trace.of_kind(EventKind.CONTROL) if e.scope == scope]


def calls(w) -> list[tuple[str, bool, str | None]]:
    return [(c.call, c.ok, c.error_class) for c in w._calls if c.call in ("register", "unregister")]


def sub_fn(*args) -> None:
    """A Python callable that runs as a SUB task (``fn(args)``) or a next-level orchestration (``fn(o, a, c)``)."""


def run_ok(w, orch) -> None:
    w.run(orch)  # raises TaskFailure if any task failed
    # Consumed slots have left the task log as rows (sim.tasklog); none has an error, nor has a live one.
    log = w.simulation.log
    assert not log.batch.errors
    assert all(t.terminal and t.error is None for t in log.live())


# ---------------------------------------------------------------------- remote two-phase


def test_prepare_failure_aborts_the_prepared_and_publishes_nothing(profile) -> None:
    w, _, r1, r2 = build(profile, ControlFault("prepare", 2, ordinal=1))
    w.init()
    n_live = len(w._registry.live)
    with pytest.raises(RegisterPartialFailure, match="REGISTER_PARTIAL_FAILURE"):
        w.register(RemoteCallable(NOOP), workers=[r1, r2])
    assert len(w._registry.live) == n_live and not w._remote.eligible
    assert not session_has(w, r1) and not session_has(w, r2)
    assert all(not ep.digests for ep in w._remote.endpoints.values())
    assert "ABORT_REGISTER_CALLABLE" in controls(w, "l4.w1.l3")
    assert "COMMIT_REGISTER_CALLABLE" not in controls(w, "l4.w1.l3")
    assert not w._registry.uncertain and not w._registry.tombstones
    assert any(e.subject.startswith("PREPARE_REGISTER_CALLABLE") for e in w.simulation.trace.of_kind(EventKind.FAULT))
    assert calls(w) == [("register", False, "REGISTER_PARTIAL_FAILURE")]
    w.close()


def test_commit_failure_aborts_the_uncommitted_and_unregisters_the_committed(profile) -> None:
    w, _, r1, r2 = build(profile, ControlFault("commit", 2, ordinal=1))
    w.init()
    with pytest.raises(RegisterPartialFailure):
        w.register(RemoteCallable(NOOP), workers=[r1, r2])
    assert controls(w, "l4.w1.l3")[-1] == "UNREGISTER_CALLABLE"
    assert controls(w, "l4.w2.l3")[-1] == "ABORT_REGISTER_CALLABLE"
    assert not session_has(w, r1) and not session_has(w, r2) and not w._remote.eligible
    h = w.register(RemoteCallable(NOOP), workers=[r1, r2])  # the second COMMIT is not faulted
    run_ok(w, lambda o, a, c: [o.submit_next_level(h, TaskArgs(), worker=r) for r in (r1, r2)])
    assert calls(w) == [("register", False, "REGISTER_PARTIAL_FAILURE"), ("register", True, None)]
    w.close()


def test_commit_timeout_fails_that_endpoint_and_cleans_up_the_others(profile) -> None:
    w, _, r1, r2 = build(profile, ControlFault("commit", 2, ordinal=1, outcome="timeout"))
    w.init()
    with pytest.raises(EndpointFailure, match="REGISTER_PARTIAL_FAILURE"):
        w.register(RemoteCallable(NOOP), workers=[r1, r2])
    assert w._remote.endpoints[r2].state is EndpointState.FAILED
    assert not session_has(w, r1) and not w._remote.eligible
    assert not w._registry.uncertain  # a failed endpoint leaves the session; no pair is kept for it
    h = w.register(RemoteCallable(NOOP), workers=[r1])  # the other worker stays usable
    run_ok(w, lambda o, a, c: o.submit_next_level(h, TaskArgs(), worker=r1))
    w.close()


def test_unconfirmed_cleanup_marks_exactly_that_worker_hashid_pair(profile) -> None:
    w, _, r1, r2 = build(profile, ControlFault("commit", 2, ordinal=1), ControlFault("unregister", 1, ordinal=1))
    w.init()
    with pytest.raises(UncertainState, match="REGISTER_CLEANUP_UNCERTAIN"):
        w.register(RemoteCallable(NOOP), workers=[r1, r2])
    assert w._registry.uncertain == {DIGEST: {"l4.w1"}}
    assert not w._remote.eligible and not any(ep.digests for ep in w._remote.endpoints.values())
    with pytest.raises(UncertainState):  # not re-registered on that worker in this session
        w.register(RemoteCallable(NOOP), workers=[r1, r2])
    h = w.register(RemoteCallable(NOOP), workers=[r2])  # the same hashid elsewhere is fine
    other = w.register(RemoteCallable(FAIL), workers=[r1])  # and another hashid on that worker too
    assert other.hashid != h.hashid
    run_ok(w, lambda o, a, c: o.submit_next_level(h, TaskArgs(), worker=r2))
    assert calls(w) == [("register", False, "UNCERTAIN_STATE"), ("register", False, "UNCERTAIN_STATE"),
                        ("register", True, None), ("register", True, None)]
    w.close()


def test_final_unregister_leaves_a_tombstone_until_cleanup_is_confirmed(profile) -> None:
    w, _, r1, r2 = build(profile, ControlFault("unregister", 1, ordinal=1))
    w.init()
    h = w.register(RemoteCallable(NOOP), workers=[r1, r2])
    w.unregister(h)  # the handle is consumed; r1's cleanup is not confirmed yet
    assert w._registry.tombstones == {DIGEST: {"l4.w1"}}
    assert session_has(w, r1) and not session_has(w, r2)
    with pytest.raises(TombstoneActive, match="REGISTER_TOMBSTONE_ACTIVE"):
        w.register(RemoteCallable(NOOP), workers=[r1])
    h2 = w.register(RemoteCallable(NOOP), workers=[r2])  # the tombstone is per worker
    sim = w.simulation
    sim.env.run(until=sim.now + RETRY_INTERVAL_US + 1000.0)  # the retried UNREGISTER is confirmed
    assert not w._registry.tombstones and not session_has(w, r1)
    h3 = w.register(RemoteCallable(NOOP), workers=[r1])
    run_ok(w, lambda o, a, c: [o.submit_next_level(h2, TaskArgs(), worker=r2),
                               o.submit_next_level(h3, TaskArgs(), worker=r1)])
    assert calls(w) == [("register", True, None), ("unregister", True, None),
                        ("register", False, "TOMBSTONE_ACTIVE"), ("register", True, None), ("register", True, None)]
    w.close()


def test_a_tombstone_whose_cleanup_never_confirms_becomes_uncertain(profile) -> None:
    w, _, r1, _r2 = build(profile, ControlFault("unregister", 1, probability=1.0))
    w.init()
    w.unregister(w.register(RemoteCallable(NOOP), workers=[r1]))
    sim = w.simulation
    sim.env.run(until=sim.now + (MAX_CLEANUP_RETRIES + 1) * (RETRY_INTERVAL_US + 1000.0))
    assert not w._registry.tombstones and w._registry.uncertain == {DIGEST: {"l4.w1"}}
    with pytest.raises(UncertainState):
        w.register(RemoteCallable(NOOP), workers=[r1])
    n = sum(1 for e in sim.trace.of_kind(EventKind.FAULT) if e.subject.startswith("UNREGISTER_CALLABLE"))
    assert n == 1 + MAX_CLEANUP_RETRIES  # every injected fault is in the trace
    w.close()


# ---------------------------------------------------------------------- local whole-scope


def test_local_install_failure_reverse_unregisters_the_confirmed_children(profile) -> None:
    w, _, _, _ = build(profile, LocalControlFault("l4.sub0", "register", ordinal=1))
    w.init()
    desc_before = dict(w._registry.tables.items())
    with pytest.raises(RegisterPartialFailure, match="SUB"):
        w.register(sub_fn)
    assert not any(w._registry.tables[ns] for ns in desc_before) and not w._registry.live
    tables = scope_install(w).tables
    assert set(tables) == {"l4.sub0", "l4.w0"} and all(not t for t in tables.values())
    assert controls(w, "l4.w0") == ["REGISTER_CALLABLE", "UNREGISTER_CALLABLE"]
    h = w.register(sub_fn)  # second attempt is not faulted: installed on both children
    assert all(t == {h.digest: 1} for t in scope_install(w).tables.values())
    run_ok(w, lambda o, a, c: (o.submit_sub(h), o.submit_next_level(h, TaskArgs(), worker=0)))
    w.close()


def test_local_cleanup_failure_blocks_only_that_child_for_dispatch_and_register(profile) -> None:
    w, local, _, _ = build(profile, LocalControlFault("l4.sub0", "register", ordinal=1),
                           LocalControlFault("l4.w0", "unregister", ordinal=1))
    h = w.register(sub_fn)  # before init: carried by the startup snapshot
    w.init()
    with pytest.raises(UncertainState, match="REGISTER_CLEANUP_UNCERTAIN"):
        w.register(sub_fn)  # a duplicate registration is a refcount increment on every child
    assert w._registry.uncertain == {h.digest: {"l4.w0"}}
    assert w._registry.refcount(h) == 1
    with pytest.raises(UncertainState):
        w.run(lambda o, a, c: o.submit_next_level(h, TaskArgs(), worker=local))  # not dispatched there
    run_ok(w, lambda o, a, c: o.submit_sub(h))  # the SUB child still runs it
    with pytest.raises(UncertainState):
        w.register(sub_fn)  # nor re-registered while a child of the scope is uncertain
    assert calls(w) == [("register", True, None), ("register", False, "UNCERTAIN_STATE"),
                        ("register", False, "UNCERTAIN_STATE")]
    w.close()


def test_local_final_unregister_tombstone(profile) -> None:
    w, _, _, _ = build(profile, LocalControlFault("l4.sub0", "unregister", ordinal=1))
    w.init()
    h = w.register(sub_fn)
    w.unregister(h)
    assert w._registry.tombstones == {h.digest: {"l4.sub0"}}
    with pytest.raises(TombstoneActive):
        w.register(sub_fn)
    w.simulation.env.run(until=w.simulation.now + RETRY_INTERVAL_US + 1.0)
    assert not w._registry.tombstones and all(not t for t in scope_install(w).tables.values())
    h2 = w.register(sub_fn)
    run_ok(w, lambda o, a, c: o.submit_sub(h2))
    w.close()


def test_nested_worker_chip_scope_is_installed_whole(profile) -> None:
    from reference import get_kernel

    w, _, _, _ = build(profile, LocalControlFault("l4.w0.chip0", "register", ordinal=1))
    w.init()
    inner = w._children[0]
    with pytest.raises(RegisterPartialFailure, match="chip"):
        inner.register(get_kernel("add"))
    k = inner.register(get_kernel("add"))
    assert scope_install(inner).tables == {"l4.w0.chip0": {k.digest: 1}}
    w.close()


# ---------------------------------------------------------------------- fault plan


@pytest.mark.parametrize("make", [
    lambda: ControlFault("prepare", 1, ordinal=1, outcome="lost"),
    lambda: ControlFault("bogus", 1, ordinal=1),
    lambda: LocalControlFault("l4.sub0", "prepare", ordinal=1),
    lambda: LocalControlFault("", "register", ordinal=1),
    lambda: LocalControlFault("l4.sub0", "register"),
    lambda: LocalControlFault("l4.sub0", "register", probability=0.0),
])
def test_control_fault_validation(make) -> None:
    with pytest.raises(InvalidArgument):
        make()


def test_control_fault_names_and_local_targets(profile) -> None:
    assert ControlFault("commit", 1, ordinal=1).control == "COMMIT_REGISTER_CALLABLE"
    w, _, _, _ = build(profile, LocalControlFault("l4.sub9", "register", ordinal=1))
    with pytest.raises(InvalidArgument, match="not a local child"):
        w.init()
    w.close()


# ---------------------------------------------------------------------- properties

_R = st.sampled_from([1, 2])
_CONTROL = st.sampled_from(["prepare", "commit", "abort", "unregister"])
_OUTCOME = st.sampled_from(["error", "error", "timeout"])
_FAULT = st.one_of(
    st.builds(lambda c, w, n, o: ControlFault(c, w, ordinal=n, outcome=o), _CONTROL, _R, st.integers(1, 2), _OUTCOME),
    st.builds(lambda c, w, p: ControlFault(c, w, probability=p), _CONTROL, _R, st.floats(0.1, 1.0)),
    st.builds(lambda t, c, n, o: LocalControlFault(t, c, ordinal=n, outcome=o), st.sampled_from(["l4.sub0", "l4.w0"]),
              st.sampled_from(["register", "unregister"]), st.integers(1, 2), _OUTCOME),
    st.builds(LinkCut, _R, st.floats(0.0, 3000.0)),
    st.builds(SessionCrash, _R, st.floats(0.0, 3000.0)),
    st.builds(lambda w, n: FrameFault(w, "CONTROL_REPLY", ordinal=n), _R, st.integers(1, 4)),
)
# Pairs that make a cleanup unconfirmable: a publish fails on one target, its cleanup on another.
_PAIR = st.one_of(
    st.just(()),
    st.builds(lambda first, w, second: (ControlFault(first, w, ordinal=1), ControlFault(second, 3 - w, ordinal=1)),
              st.sampled_from(["prepare", "commit"]), _R, st.sampled_from(["abort", "unregister"])),
    st.builds(lambda o: (LocalControlFault("l4.sub0", "register", ordinal=2),
                         LocalControlFault("l4.w0", "unregister", ordinal=1, outcome=o)), _OUTCOME),
    st.just((LocalControlFault("l4.w0", "register", ordinal=1), LocalControlFault("l4.sub0", "unregister", ordinal=1))),
)
_OP = st.one_of(
    st.tuples(st.just("reg_remote"), st.sampled_from([NOOP, FAIL]), st.sampled_from([(1,), (2,), (1, 2)])),
    st.tuples(st.just("reg_local")),
    st.tuples(st.just("unreg"), st.integers(0, 5)),
    st.tuples(st.just("submit"), st.integers(0, 5), st.sampled_from([0, 1, 2, "sub"])),
    st.tuples(st.just("advance")),
)


def _check_visibility(w) -> None:
    """(a): a hashid is visible exactly where the parent's tables say, except on uncertain pairs."""
    reg = w._registry
    for ep in w._remote.endpoints.values():
        if ep.state is not EndpointState.READY:
            continue
        s = ep.session
        blocked = {d for d, keys in reg.uncertain.items() if ep.scope in keys}
        blocked |= {d for d, keys in reg.tombstones.items() if ep.scope in keys}
        visible = set(s.registry) - blocked
        expected = {d for d, n in ep.digests.items() if n} - blocked
        assert visible == expected, (ep.scope, visible, expected)
        assert not (set(s.staged) - blocked), ep.scope  # no prepared entry outlives a register call
    if w._scope_install is not None:
        from sim.callable_identity import TargetNamespace

        for ns, targets in w._scope_install.targets.items():
            if ns is TargetNamespace.REMOTE_TASK_DISPATCHER:
                continue
            want = {d: slot.refcount for d, slot in reg.tables[ns].items()}
            for t in targets:
                skip = {d for d, keys in reg.uncertain.items() if t.key in keys}
                skip |= {d for d, keys in reg.tombstones.items() if t.key in keys}
                got = {d: n for d, n in t.table.items() if d not in skip}
                assert got == {d: n for d, n in want.items() if d not in skip}, (t.key, got, want)


def _scenario(profile: Path, faults: tuple, ops: list, seed: int) -> str:
    w, _, _, _ = build(profile, *faults, seed=seed)
    pre = w.register(sub_fn)
    handles = [pre]
    try:
        w.init()
    except SimError as exc:
        assert not isinstance(exc, SimulationHang)
        w.close()
        return w.simulation.trace.digest()
    sim = w.simulation
    for op in ops:
        try:
            if op[0] == "reg_remote":
                handles.append(w.register(RemoteCallable(op[1]), workers=list(op[2])))
            elif op[0] == "reg_local":
                handles.append(w.register(sub_fn))
            elif op[0] == "unreg" and handles:
                w.unregister(handles.pop(op[1] % len(handles)))
            elif op[0] == "submit" and handles:
                h = handles[op[1] % len(handles)]
                if op[2] == "sub":
                    w.run(lambda o, a, c, h=h: o.submit_sub(h))
                else:
                    w.run(lambda o, a, c, h=h, t=op[2]: o.submit_next_level(h, TaskArgs(), worker=t))
            elif op[0] == "advance":
                sim.env.run(until=sim.now + 2 * RETRY_INTERVAL_US)
        except SimulationHang:
            raise
        except SimError:
            pass
        _check_visibility(w)
    sim.env.run()  # (d): every pending retry, timeout and frame drains in bounded virtual time
    assert sim.now <= 20 * CMD_TIMEOUT_S * 1e6 + 100_000.0
    _check_visibility(w)
    # (c): every task and every control is terminal
    assert all(t.terminal for t in sim.log.live())  # a consumed slot (its row written) is terminal
    for ep in w._remote.endpoints.values():
        assert ep.inflight is None and not ep.queue, ep.scope
    assert not w._registry.tombstones  # each tombstone was confirmed or turned uncertain
    w.close()
    return sim.trace.digest()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pair=_PAIR, faults=st.lists(_FAULT, max_size=3), ops=st.lists(_OP, min_size=1, max_size=10),
       seed=st.integers(0, 3))
def test_any_register_sequence_with_faults_stays_consistent_terminal_bounded_deterministic(
        profile, pair, faults, ops, seed) -> None:
    plan = (*pair, *faults)
    digest = _scenario(profile, plan, ops, seed)
    assert _scenario(profile, plan, ops, seed) == digest
