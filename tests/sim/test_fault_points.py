"""Named fault points inside the model (``sim.faultpoints``) and the record of which faults took effect.

Each point is checked for its modeled effect: ``slow_sub`` / ``slow_chip`` stretch a task by the
factor (upstream ``docs/task-flow.md`` §5), ``dispatch_late`` shifts a start (``docs/worker-manager.md``),
``ring_full`` blocks the Orchestrator as back-pressure and fails RESOURCE_EXHAUSTED past the timeout
(``docs/orchestrator.md`` §5 "Back-pressure rationale"), ``control_reply_lost`` fails the endpoint by
command timeout, ``health_late`` postpones HEALTH frames until the health watch expires and
``task_reply_late`` postpones a COMPLETION (``docs/remote-l3-worker-design/protocol.md`` "Ordering",
"CONTROL Payload"). Draws are seeded per site (``DESIGN.md`` "Determinism").
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from reference import get_kernel
from sim import SimConfig, TaskArgs, TensorArgType, TensorSpec, Worker, modeled_duration
from sim.errors import EndpointFailure, InvalidArgument, ResourceExhausted, SimError
from sim.faultpoints import FAULT_POINTS, FaultPoint
from sim.remote.endpoint import EndpointState
from sim.remote.faults import FaultPlan, FrameFault, LinkCut, SessionCrash, describe
from sim.remote.spec import RemoteCallable, RemoteWorkerSpec
from sim.trace import EventKind

NOOP = "sim.remote.examples:noop"
CHAIN = "sim.remote.examples:chain"
SUB_US = 100.0


@modeled_duration(SUB_US)
def work(args) -> None:
    return None


def plan(*faults) -> FaultPlan | None:
    return FaultPlan(faults) if faults else None


def l3(*faults, seed: int = 1, subs: int = 2, timeout_us: float = 10e6) -> tuple[Worker, object]:
    w = Worker(level=3, num_sub_workers=subs, device_ids=[0],
               sim=SimConfig(seed=seed, data_mode="timing", faults=plan(*faults), backpressure_timeout_us=timeout_us))
    h = w.register(work)
    w.init()
    return w, h


def subs(h, n: int):
    return lambda o, a, c: [o.submit_sub(h, TaskArgs()) for _ in range(n)]


def span(rec, task: str) -> float:
    t = rec.tasks[task]
    return t.end - t.start


def point_events(w: Worker, name: str) -> list:
    return [e for e in w.simulation.trace.of_kind(EventKind.FAULT) if e.detail.startswith(f"point {name}")
            and e.subject != "FaultPoint"]


# ---------------------------------------------------------------------- validation and catalog


def test_catalog_is_closed_ordered_and_documented() -> None:
    assert list(FAULT_POINTS)[:7] == ["slow_sub", "slow_chip", "dispatch_late", "ring_full", "control_reply_lost",
                                      "health_late", "task_reply_late"]
    assert all(isinstance(doc, str) and doc for doc in FAULT_POINTS.values())


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"name": "slow_everything"}, "name"),
    ({"name": "slow_sub", "probability": 0.0}, "probability"),
    ({"name": "slow_sub", "probability": 1.5}, "probability"),
    ({"name": "slow_sub", "probability": True}, "probability"),
    ({"name": "slow_sub", "factor": 0.5}, "factor"),
    ({"name": "slow_sub", "factor": math.inf}, "factor"),
    ({"name": "health_late", "delay_us": 0.0}, "delay_us"),
    ({"name": "health_late", "delay_us": math.nan}, "delay_us"),
    ({"name": "health_late", "delay_us": "1ms"}, "delay_us"),
    ({"name": "slow_sub", "target": ""}, "target"),
    ({"name": "slow_sub", "target": "l3."}, "target"),
    ({"name": "slow_sub", "target": 3}, "target"),
])
def test_bad_fault_point_names_the_field(kwargs, field) -> None:
    with pytest.raises(InvalidArgument, match=rf"FaultPoint\.{field} must"):
        FaultPoint(**kwargs)


def test_plan_accepts_points_and_describes_them() -> None:
    p = FaultPoint("slow_sub", probability=0.5, factor=4, target="l3.sub1")
    fp = FaultPlan((p, LinkCut(1, 10.0)))
    assert fp.faults[0] is p and describe(p) == "point slow_sub x4 p=0.5 at l3.sub1"
    fp.check_workers([1])  # the point names no worker


def test_unknown_target_is_rejected_at_init() -> None:
    w = Worker(level=3, num_sub_workers=1, sim=SimConfig(faults=FaultPlan((FaultPoint("slow_sub", target="l3.sub7"),))))
    with pytest.raises(InvalidArgument, match=r"l3\.sub7.*scopes are .*l3\.sub0"):
        w.init()


def test_no_point_costs_nothing_on_the_sites() -> None:
    w, _ = l3()
    assert w.simulation.points is None and w._node.points is None
    assert all(lane.points is None for lane in w._node.sub_lanes + w._node.nl_lanes)
    w2, _ = l3(FaultPoint("slow_sub", target="l3.sub1"))
    # Only the site the point can reach is bound.
    assert [lane.points is not None for lane in w2._node.sub_lanes] == [False, True]
    assert w2._node.nl_lanes[0].points is None and w2._node.points is None


# ---------------------------------------------------------------------- local points


def test_slow_sub_stretches_a_sub_task_by_the_factor() -> None:
    base, h = l3()
    base.run(subs(h, 1))
    slow, h2 = l3(FaultPoint("slow_sub", factor=7))
    slow.run(subs(h2, 1))
    b, s = base.take_record(), slow.take_record()
    assert span(s, "l3:r1:t1") == pytest.approx(7 * span(b, "l3:r1:t1"))
    assert s.metadata["virtual_time_us"] > b.metadata["virtual_time_us"] + 5 * SUB_US
    assert [e.detail for e in s.events if e.kind is EventKind.FAULT and e.subject == "l3:r1:t1"] == \
        ["point slow_sub x7"]


def chip_args() -> TaskArgs:
    ta = TaskArgs()
    ta.add_tensor(TensorSpec((4096,), "float32"))
    ta.add_tensor(TensorSpec((4096,), "float32"))
    ta.add_tensor(TensorSpec((4096,), "float32"), TensorArgType.OUTPUT)
    return ta


def test_slow_chip_stretches_a_chip_task_and_leaves_sub_tasks_alone() -> None:
    def run(*faults):
        w = Worker(level=3, device_ids=[0], num_sub_workers=1, sim=SimConfig(data_mode="timing", faults=plan(*faults)))
        add, h = w.register(get_kernel("add")), w.register(work)
        w.init()
        w.run(lambda o, a, c: (o.submit_next_level(add, chip_args(), worker=0), o.submit_sub(h, TaskArgs())))
        return w.take_record()

    b, s = run(), run(FaultPoint("slow_chip", factor=3))
    assert span(s, "l3:r1:t1") == pytest.approx(3 * span(b, "l3:r1:t1"))
    assert span(s, "l3:r1:t2") == pytest.approx(span(b, "l3:r1:t2"))
    assert s.metadata["faults_hit"] == {"point:slow_chip": 1}


def test_dispatch_late_shifts_the_start() -> None:
    base, h = l3()
    base.run(subs(h, 1))
    late, h2 = l3(FaultPoint("dispatch_late", delay_us=250.0))
    late.run(subs(h2, 1))
    b, s = base.take_record(), late.take_record()
    assert s.tasks["l3:r1:t1"].start == pytest.approx(b.tasks["l3:r1:t1"].start + 250.0)
    assert span(s, "l3:r1:t1") == pytest.approx(span(b, "l3:r1:t1"))


def test_ring_full_blocks_the_orchestrator_as_back_pressure() -> None:
    base, h = l3()
    base.run(subs(h, 2))
    full, h2 = l3(FaultPoint("ring_full", delay_us=400.0))
    full.run(subs(h2, 2))
    b, s = base.take_record(), full.take_record()
    blocked = [e for e in s.events if e.kind is EventKind.BLOCKED]
    assert [e.subject for e in blocked] == ["l3:r1:t1", "l3:r1:t2"]  # every allocation passes the point
    assert blocked[1].t == pytest.approx(400.0)  # the second waited behind the first, then on its own
    assert s.tasks["l3:r1:t2"].start == pytest.approx(b.tasks["l3:r1:t2"].start + 800.0, abs=50.0)
    assert s.metadata["faults_hit"] == {"point:ring_full": 2}


def test_ring_full_past_the_back_pressure_timeout_is_resource_exhausted() -> None:
    w, h = l3(FaultPoint("ring_full", delay_us=2000.0), timeout_us=1000.0)
    with pytest.raises(ResourceExhausted):
        w.run(subs(h, 2))
    rec = w.take_record()
    assert {t.outcome.value for t in rec.tasks.values()} == {"NOT_RUN"}  # the blocked submits never ran
    assert "RESOURCE_EXHAUSTED" in {t.error_class for t in rec.tasks.values()}
    # A wait equal to the timeout still ends in time.
    w2, h2 = l3(FaultPoint("ring_full", delay_us=1000.0), timeout_us=1000.0)
    w2.run(subs(h2, 2))


def test_target_limits_a_point_to_its_scope() -> None:
    w, h = l3(FaultPoint("slow_sub", target="l3.sub1"))
    w.run(subs(h, 6))
    assert {e.scope for e in point_events(w, "slow_sub")} == {"l3.sub1"}
    assert w.take_record().metadata["faults_hit"]["point:slow_sub"] == len(point_events(w, "slow_sub"))


# ---------------------------------------------------------------------- determinism and probability


def fired(seed: int) -> tuple[list[str], list]:
    w, h = l3(FaultPoint("slow_sub", probability=0.5, factor=2), seed=seed)
    w.run(subs(h, 64))
    rec = w.take_record()
    return sorted(e.subject for e in point_events(w, "slow_sub")), [tuple(e) for e in rec.events]


def test_probability_draws_are_deterministic_per_seed() -> None:
    a, trace_a = fired(3)
    b, trace_b = fired(3)
    c, _ = fired(4)
    assert a == b and trace_a == trace_b
    assert a != c
    assert 10 < len(a) < 54 and 10 < len(c) < 54  # p=0.5 over 64 passes


def test_a_point_does_not_shift_other_components_draws() -> None:
    """Jitter draws come from the lane's own stream, so enabling a point moves no other draw."""
    def starts(*faults):
        w = Worker(level=3, num_sub_workers=2, sim=SimConfig(seed=9, data_mode="timing", jitter=0.3,
                                                             faults=plan(*faults)))
        h = w.register(work)
        w.init()
        w.run(subs(h, 8))
        return w.take_record()

    b = starts()
    s = starts(FaultPoint("slow_sub", probability=0.5, factor=1.0))  # fires, changes nothing
    assert [span(s, k) for k in b.tasks] == pytest.approx([span(b, k) for k in b.tasks])


# ---------------------------------------------------------------------- remote points


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


def l4(profile: Path, *faults, seed: int = 1):
    w = Worker(level=4, num_sub_workers=1, remote_session_timeout_s=0.05,
               sim=SimConfig(seed=seed, profile=profile, faults=plan(*faults)))
    r1 = w.add_remote_worker(RemoteWorkerSpec("127.0.0.1:9000", "a2a3sim", device_ids=(0,)))
    r2 = w.add_remote_worker(RemoteWorkerSpec("127.0.0.1:9001", "a2a3sim", device_ids=(0,)))
    w.register(get_kernel("add"))  # the chip kernel the remote ``chain`` runs
    return w, r1, r2


def scalars(n: int) -> TaskArgs:
    ta = TaskArgs()
    ta.add_scalar(n)
    return ta


def test_control_reply_lost_fails_the_endpoint_by_command_timeout(profile) -> None:
    w, r1, r2 = l4(profile, FaultPoint("control_reply_lost", target="l4.w1"))
    w.init()
    with pytest.raises(EndpointFailure):
        w.register(RemoteCallable(NOOP), workers=[r1, r2])
    failed, other = w._remote.endpoints[r2], w._remote.endpoints[r1]
    assert failed.scope == "l4.w1"
    assert failed.state is EndpointState.FAILED and "got no reply within" in failed.failure
    assert other.state is EndpointState.READY  # the point is limited to l4.w1
    # The session applied the control before its reply was lost.
    assert point_events(w, "control_reply_lost")[0].scope == "l4.w1.l3"
    assert w.take_record().metadata["faults_hit"] == {"point:control_reply_lost": 1}
    w.close()


def test_health_late_past_the_health_timeout_fails_the_endpoint(profile) -> None:
    w, r1, _ = l4(profile, FaultPoint("health_late", delay_us=30000.0))
    h = w.register(RemoteCallable(CHAIN), workers=[r1])
    w.init()
    with pytest.raises(SimError):
        w.run(lambda o, a, c: o.submit_next_level(h, scalars(6), worker=r1))  # ~48 ms
    late = point_events(w, "health_late")
    assert late and late[0].detail == "point health_late +30000us" and late[0].subject.startswith("HEALTH#")
    assert "health expired" in w._remote.endpoints[r1].failure
    w.close()


def test_health_late_within_the_timeout_is_harmless_but_shows(profile) -> None:
    w, r1, _ = l4(profile, FaultPoint("health_late", probability=0.5, delay_us=3000.0))
    h = w.register(RemoteCallable(CHAIN), workers=[r1])
    w.init()
    w.run(lambda o, a, c: o.submit_next_level(h, scalars(2), worker=r1))
    late = point_events(w, "health_late")
    assert late
    sent = {e.subject: e.t for e in w.simulation.trace.of_kind(EventKind.FRAME) if e.subject.startswith("HEALTH#")}
    assert all(sent[e.subject] == pytest.approx(e.t + 3000.0) for e in late if e.subject in sent)
    w.close()


def test_task_reply_late_delays_the_completion(profile) -> None:
    def end(*faults) -> tuple[float, dict]:
        w, r1, _ = l4(profile, *faults)
        h = w.register(RemoteCallable(CHAIN), workers=[r1])
        w.init()
        w.run(lambda o, a, c: (o.submit_next_level(h, scalars(1), worker=r1),
                               o.submit_next_level(h, scalars(1), worker=r1)))
        rec = w.take_record()
        w.close()
        return rec.tasks["l4:r1:t2"].end, rec.metadata["faults_hit"]

    (base, _), (late, hits) = end(), end(FaultPoint("task_reply_late", delay_us=700.0))
    assert late == pytest.approx(base + 2 * 700.0)  # the second waited behind the first's stalled reply
    assert hits == {"point:task_reply_late": 2}


# ---------------------------------------------------------------------- which faults took effect


def test_faults_hit_counts_and_resets_per_record() -> None:
    w, h = l3(FaultPoint("slow_sub", target="l3.sub0"), subs=1)
    w.run(subs(h, 3))
    assert w.simulation.fault_hits == {"point:slow_sub": 3}
    assert w.take_record().metadata["faults_hit"] == {"point:slow_sub": 3}
    assert w.take_record().metadata["faults_hit"] == {}
    base, hb = l3()
    base.run(subs(hb, 1))
    assert base.take_record().metadata["faults_hit"] == {}


def test_faults_hit_counts_frames_controls_and_crashes(profile) -> None:
    from sim.remote.faults import ControlFault

    w, r1, r2 = l4(profile, FrameFault(0, "HEALTH", probability=1.0), ControlFault("prepare", 1, ordinal=1),
                   SessionCrash(1, at_us=10e6), LinkCut(1, at_us=20e6))
    h = w.register(RemoteCallable(CHAIN), workers=[r1])
    w.init()
    with pytest.raises(SimError):
        w.register(RemoteCallable(NOOP), workers=[r1, r2])
    w.run(lambda o, a, c: o.submit_next_level(h, scalars(1), worker=r1))
    hits = w.take_record().metadata["faults_hit"]
    assert list(hits) == sorted(hits)
    assert hits["ControlFault"] == 1 and hits["FrameFault"] >= 1
    assert "SessionCrash" not in hits and "LinkCut" not in hits  # virtual time never reached them
    w.simulation.env.run(until=10e6 + 1)
    assert w.take_record().metadata["faults_hit"].get("SessionCrash") == 1
    w.close()
