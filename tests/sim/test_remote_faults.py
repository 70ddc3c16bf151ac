"""Link and session faults on remote L3 endpoints: health expiry, timeouts, delay, clog, determinism.

Spec: upstream ``docs/remote-l3-worker-design/protocol.md`` "Ordering" (independent health lane;
on expiry the in-flight TASK/CONTROL gets a fabricated failure, the endpoint leaves the
schedulable set for the session, pending slots with no eligible target fail),
``docs/remote-l3-worker-design.md`` "Failure Semantics" (every blocking wait is bounded) and
``DESIGN.md`` "Determinism" (same seed, same trace).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reference import get_kernel
from sim import SimConfig, TaskArgs, Worker
from sim.errors import EndpointFailure, InvalidArgument, SimError, SimulationHang
from sim.remote.endpoint import EndpointState
from sim.remote.faults import FaultPlan, FrameFault, LinkClog, LinkCut, LinkDelay, SessionCrash
from sim.remote.spec import RemoteCallable, RemoteWorkerSpec
from sim.trace import EventKind

CHAIN = "sim.remote.examples:chain"
NOOP = "sim.remote.examples:noop"
INTERVAL, TIMEOUT = 1000.0, 20000.0  # health lane of the test profile
CMD_TIMEOUT_S = 0.1


@pytest.fixture(scope="module")
def profile(tmp_path_factory) -> Path:
    from importlib import resources

    text = resources.files("sim").joinpath("profiles", "a2a3.toml").read_text(encoding="utf-8")
    text = text.replace("health_interval_us = 200000.0", f"health_interval_us = {INTERVAL}")
    text = text.replace("health_timeout_us = 30000000.0", f"health_timeout_us = {TIMEOUT}")
    assert f"health_timeout_us = {TIMEOUT}" in text
    path = tmp_path_factory.mktemp("profile") / "fast_health.toml"
    path.write_text(text, encoding="utf-8")
    return path


def build(profile: Path, faults=None, seed: int = 5):
    w = Worker(level=4, num_sub_workers=1, remote_session_timeout_s=CMD_TIMEOUT_S,
               sim=SimConfig(seed=seed, profile=profile, faults=faults))
    local = w.add_worker(Worker(level=3, device_ids=[0]))
    r1 = w.add_remote_worker(RemoteWorkerSpec("127.0.0.1:9000", "a2a3sim", device_ids=(0,)))
    r2 = w.add_remote_worker(RemoteWorkerSpec("127.0.0.1:9001", "a2a3sim", device_ids=(0,)))
    w.register(get_kernel("add"))
    h = w.register(RemoteCallable(CHAIN), workers=[r1, r2])
    return w, local, r1, r2, h


def scalars(n: int) -> TaskArgs:
    ta = TaskArgs()
    ta.add_scalar(n)
    return ta


def outcomes(w) -> dict[str, tuple[str, str | None]]:
    rec = w.take_record()
    return {k: (t.outcome.value, t.error_class) for k, t in rec.tasks.items() if t.node == "l4"}


def test_health_frames_flow_while_a_long_task_runs(profile) -> None:
    w, _, r1, _, h = build(profile)
    w.init()
    w.run(lambda o, a, c: o.submit_next_level(h, scalars(4), worker=r1))
    health = [e for e in w.simulation.trace.of_kind(EventKind.FRAME) if e.subject.startswith("HEALTH")]
    assert len(health) >= 20  # ~32 ms run, 1 ms interval
    assert all(e.detail.startswith("<- health") for e in health)
    assert outcomes(w) == {"l4:r1:t1": ("COMPLETED", None)}
    w.close()


def test_health_lane_cut_fails_in_flight_and_pending_work_and_never_readmits(profile) -> None:
    w, _, r1, r2, h = build(profile, FaultPlan((LinkCut(1, at_us=5000.0, lanes="health"),)))
    w.init()

    def orch(o, a, c):
        o.submit_next_level(h, scalars(6), worker=r1)  # ~48 ms: outlives the health timeout
        o.submit_next_level(h, scalars(1), worker=r1)  # queued behind it
        o.submit_next_level(h, scalars(1), worker=r2)  # another endpoint: unaffected

    with pytest.raises(SimError):
        w.run(orch)
    got = outcomes(w)
    assert got["l4:r1:t1"] == ("FAILED", "ENDPOINT_FAILURE")
    assert got["l4:r1:t2"] == ("FAILED", "ENDPOINT_FAILURE")
    assert got["l4:r1:t3"] == ("COMPLETED", None)
    ep = w._remote.endpoints[r1]
    assert ep.state is EndpointState.FAILED and "health expired" in ep.failure
    fail_t = next(e.t for e in w.simulation.trace.of_kind(EventKind.FAIL) if e.subject == "endpoint")
    assert TIMEOUT - INTERVAL - 200 <= fail_t - 5000.0 <= TIMEOUT  # last HEALTH before the cut + timeout
    # The command lane still works, and later frames do not re-admit the endpoint.
    w.simulation.env.run(until=w.simulation.now + 100_000)
    assert ep.state is EndpointState.FAILED
    with pytest.raises(EndpointFailure):
        w.run(lambda o, a, c: o.submit_next_level(h, scalars(1), worker=r1))
    w.close()


def test_session_crash_mid_task_is_an_endpoint_failure(profile) -> None:
    w, _, r1, _, h = build(profile, FaultPlan((SessionCrash(1, at_us=3000.0),)))
    w.init()
    with pytest.raises(SimError):
        w.run(lambda o, a, c: o.submit_next_level(h, scalars(2), worker=r1))
    assert outcomes(w) == {"l4:r1:t1": ("FAILED", "ENDPOINT_FAILURE")}
    assert any(e.subject == "SessionCrash" for e in w.simulation.trace.of_kind(EventKind.FAULT))
    w.close()


def test_dropped_completion_fails_by_command_timeout(profile) -> None:
    w, _, r1, _, h = build(profile, FaultPlan((FrameFault(1, "COMPLETION", ordinal=1),)))
    w.init()
    t0 = w.simulation.now
    with pytest.raises(SimError):
        w.run(lambda o, a, c: o.submit_next_level(h, scalars(1), worker=r1))
    assert outcomes(w) == {"l4:r1:t1": ("FAILED", "ENDPOINT_FAILURE")}
    assert "no reply within" in w._remote.endpoints[r1].failure
    assert w.simulation.now - t0 >= CMD_TIMEOUT_S * 1e6
    w.close()


def _completion_time(profile, faults) -> float:
    w, _, r1, _, h = build(profile, faults)
    w.init()
    w.run(lambda o, a, c: o.submit_next_level(h, scalars(1), worker=r1))
    t = next(e.t for e in w.simulation.trace.of_kind(EventKind.END) if e.subject == "l4:r1:t1")
    w.close()
    return t


def test_link_delay_and_clog_postpone_frames(profile) -> None:
    base = _completion_time(profile, None)
    delayed = _completion_time(profile, FaultPlan((LinkDelay(1, start_us=0.0, extra_us=500.0),)))
    assert delayed >= base + 2 * 500.0  # the TASK and the COMPLETION each wait (HELLOs too)
    clogged = _completion_time(profile, FaultPlan((LinkClog(1, start_us=0.0, end_us=4000.0),)))
    assert clogged >= 4000.0 and clogged > base
    frame_delay = _completion_time(profile, FaultPlan((FrameFault(1, "TASK", action="delay", ordinal=1,
                                                                  delay_us=700.0),)))
    assert frame_delay == pytest.approx(base + 700.0)


def test_post_init_register_over_a_cut_link_fails_and_grants_nothing(profile) -> None:
    w, _, r1, r2, _ = build(profile, FaultPlan((LinkCut(1, at_us=1000.0),)))
    w.init()
    w.simulation.env.run(until=2000.0)
    n_live = len(w._registry.live)
    with pytest.raises(EndpointFailure):
        w.register(RemoteCallable(NOOP), workers=[r1, r2])
    assert len(w._registry.live) == n_live
    ctl = [e.subject for e in w.simulation.trace.of_kind(EventKind.CONTROL) if e.scope.startswith("l4.w2")]
    assert any(s.startswith("ABORT_REGISTER_CALLABLE") for s in ctl)  # the prepared endpoint was rolled back
    w.close()


def test_every_injected_fault_is_in_the_trace(profile) -> None:
    faults = (LinkCut(1, 90_000.0), LinkDelay(2, 10.0, 5.0), LinkClog(1, 1.0, 2.0), SessionCrash(2, 95_000.0),
              FrameFault(2, "TASK", action="delay", ordinal=1, delay_us=3.0))
    w, _, r1, r2, h = build(profile, FaultPlan(faults))
    w.init()
    w.run(lambda o, a, c: [o.submit_next_level(h, scalars(1), worker=r) for r in (r1, r2)])
    kinds = [e.subject for e in w.simulation.trace.of_kind(EventKind.FAULT)]
    for name in ("LinkCut", "LinkDelay", "LinkClog", "SessionCrash", "FrameFault"):
        assert name in kinds
    assert any("delayed +3us" in e.detail for e in w.simulation.trace.of_kind(EventKind.FAULT))
    w.close()


@pytest.mark.parametrize("make", [
    lambda: LinkCut(1, -1.0), lambda: LinkCut(1, 5.0, lanes="data"), lambda: LinkDelay(1, 0.0, 0.0),
    lambda: LinkClog(1, 5.0, 5.0), lambda: FrameFault(1, "PING", ordinal=1), lambda: FrameFault(1, "TASK"),
    lambda: FrameFault(1, "TASK", ordinal=1, probability=0.5), lambda: FrameFault(1, "TASK", ordinal=0),
    lambda: FrameFault(1, "TASK", action="delay", ordinal=1), lambda: FaultPlan(("cut",)),
    lambda: SessionCrash(True, 1.0), lambda: SimConfig(faults=[LinkCut(1, 1.0)]),
])
def test_fault_plan_validation(make) -> None:
    with pytest.raises(InvalidArgument):
        make()


def test_fault_naming_a_non_remote_worker_is_rejected_at_init(profile) -> None:
    w, _, _, _, _ = build(profile, FaultPlan((LinkCut(0, 1.0),)))  # worker 0 is the local L3
    with pytest.raises(InvalidArgument, match="remote workers are"):
        w.init()
    w.close()


# ---------------------------------------------------------------------- property

_W = st.sampled_from([1, 2])
_T = st.floats(0.0, 60_000.0, allow_nan=False)
_FAULT = st.one_of(
    st.builds(LinkCut, _W, _T, st.sampled_from(["both", "health"])),
    st.builds(LinkDelay, _W, _T, st.floats(1.0, 3000.0)),
    st.builds(lambda w, a, d: LinkClog(w, a, a + d), _W, _T, st.floats(1.0, 20_000.0)),
    st.builds(SessionCrash, _W, _T),
    st.builds(FrameFault, _W, st.sampled_from(["TASK", "COMPLETION", "HEALTH", "HELLO"]), st.just("drop"),
              st.integers(1, 3)),
    st.builds(lambda w, f, p: FrameFault(w, f, probability=p), _W,
              st.sampled_from(["TASK", "COMPLETION", "HEALTH"]), st.floats(0.05, 1.0)),
)


def _scenario(profile: Path, plan: FaultPlan, seed: int) -> tuple[str, float, list[str]]:
    w, local, r1, r2, h = build(profile, plan, seed)
    inner = w._children[0]
    k = inner.register(get_kernel("add"))
    import numpy as np

    x, y = np.ones(8, np.float32), np.zeros(8, np.float32)

    def l3(o, a, c):
        ta = TaskArgs()
        from sim import TensorArgType

        ta.add_tensor(x, TensorArgType.INPUT)
        ta.add_tensor(x, TensorArgType.INPUT)
        ta.add_tensor(y, TensorArgType.OUTPUT)
        o.submit_next_level(k, ta, worker=0)

    hl = w.register(l3)

    def orch(o, a, c):
        for r in (r1, r2):
            o.submit_next_level(h, scalars(2), worker=r)
            o.submit_next_level(h, scalars(1), worker=r)
        o.submit_next_level(hl, TaskArgs(), worker=local)

    try:
        w.init()
    except SimError as exc:
        assert not isinstance(exc, SimulationHang)
        w.close()
        return w.simulation.trace.digest(), w.simulation.now, []
    try:
        w.run(orch)
    except SimulationHang:
        raise
    except SimError:
        pass
    # Every task of the parent's tree is terminal; work inside a remote session whose endpoint the
    # parent abandoned may still be running (that host goes on), and the record calls it uncertain.
    remote_scopes = tuple(f"l4.w{r}." for r in (r1, r2))
    # A consumed slot has left the task log (its row is written): what is still live is checked.
    live = w.simulation.log.live()
    states = [t.state.name for t in live if not t.node.scope.startswith(remote_scopes)]
    orphans = {t.name for t in live if not t.terminal}
    rec = w.take_record()
    assert all(rec.tasks[n].error_class == "UNCERTAIN_STATE" for n in orphans)
    assert all(t.outcome.value in ("COMPLETED", "FAILED", "NOT_RUN") for t in rec.tasks.values())
    w.close()
    return w.simulation.trace.digest(), w.simulation.now, states


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(faults=st.lists(_FAULT, max_size=3), seed=st.integers(0, 3))
def test_any_fault_plan_ends_terminal_bounded_and_deterministic(profile, faults, seed) -> None:
    plan = FaultPlan(tuple(faults))
    digest, now, states = _scenario(profile, plan, seed)
    assert all(s in ("COMPLETED", "FAILED", "CONSUMED") for s in states)
    # start-up timeout + a few command/health timeouts + the work itself
    assert now <= 60_000.0 + 6 * CMD_TIMEOUT_S * 1e6
    assert _scenario(profile, plan, seed)[0] == digest
