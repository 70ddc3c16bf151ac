"""A crashed session is the session process's death; a hung one is alive but silent.

Spec: upstream ``docs/remote-l3-worker-design/protocol.md`` "COMPLETION Payload" and
"CONTROL_REPLY Payload" (if health expires *or the process exits*, the parent fabricates a failed
reply for every in-flight request), "Ordering" (independent health lane; its expiry fails the
endpoint); ``docs/remote-l3-worker-design/buffers-and-transports.md`` "A2 RoCE HCOMM Profile"
(disconnects become endpoint failure completions) and "HCOMM Adapter Contract" (a disconnect is
converted into a failed reply); ``docs/remote-l3-worker-design.md`` "Failure Semantics" and
"Session execution rules". On hardware (conformance case RSESS-011) the parent fails with "socket
closed while reading progress frame" as soon as the session process dies, not after a health timeout.

- ``SessionCrash(worker, at_us)``: at ``at_us`` nothing the session held runs on (its inner
  Worker's unfinished tasks neither start nor complete later), its sockets close, and the parent's
  endpoint fails one link latency later (ENDPOINT_FAILURE, "connection closed").
- ``SessionHang(worker, at_us)``: the process stops (alive, silent, idle); only health expiry or
  the command timeout fails the endpoint.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from reference import get_kernel
from sim import SimConfig, TaskArgs, Worker
from sim.errors import EndpointFailure, InvalidArgument, SimError
from sim.remote.endpoint import EndpointState
from sim.remote.faults import FaultPlan, LinkCut, SessionCrash, SessionHang, describe, injected_at
from sim.remote.spec import RemoteCallable, RemoteWorkerSpec
from sim.trace import EventKind

CHAIN = "sim.remote.examples:chain"
INTERVAL, TIMEOUT = 1000.0, 20000.0  # health lane of the test profile
CMD_TIMEOUT_S = 0.1
AT = 3000.0  # mid-way through the first of six ~8 ms chip tasks of the chain
INNER = "l4.w1.l3"


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


def build(profile: Path, *faults, seed: int = 5):
    w = Worker(level=4, remote_session_timeout_s=CMD_TIMEOUT_S,
               sim=SimConfig(seed=seed, profile=profile, faults=FaultPlan(faults) if faults else None))
    r1 = w.add_remote_worker(RemoteWorkerSpec("127.0.0.1:9000", "a2a3sim", device_ids=(0,)))
    r2 = w.add_remote_worker(RemoteWorkerSpec("127.0.0.1:9001", "a2a3sim", device_ids=(0,)))
    assert (r1, r2) == (0, 1)
    w.register(get_kernel("add"))
    h = w.register(RemoteCallable(CHAIN), workers=[r1, r2])
    return w, h


def scalars(n: int) -> TaskArgs:
    ta = TaskArgs()
    ta.add_scalar(n)
    return ta


def endpoint_fail_t(w) -> float:
    return next(e.t for e in w.simulation.trace.of_kind(EventKind.FAIL) if e.scope == "l4.w1" and
                e.subject == "endpoint")


def run_chain(w, h, *pairs) -> None:
    """Submit ``chain(n)`` to each worker of ``pairs`` ((worker, n), ...); the run fails."""
    with pytest.raises(SimError):
        w.run(lambda o, a, c: [o.submit_next_level(h, scalars(n), worker=wid) for wid, n in pairs])


# ---------------------------------------------------------------------- SessionCrash


def test_a_crash_fails_the_endpoint_one_link_latency_later_not_at_health_expiry(profile) -> None:
    w, h = build(profile, SessionCrash(1, AT))
    w.init()
    run_chain(w, h, (1, 6), (1, 1), (0, 1))  # in flight, queued behind it, another endpoint
    ep = w._remote.endpoints[1]
    latency = ep.link.link.transfer_us(0)
    assert endpoint_fail_t(w) == pytest.approx(AT + latency)
    assert ep.state is EndpointState.FAILED and "connection closed" in ep.failure
    assert "reply to l4:r1:t1#1" in ep.failure  # what the parent was reading when the socket closed
    rec = w.take_record()
    outer = {k: (t.outcome.value, t.error_class) for k, t in rec.tasks.items() if t.node == "l4"}
    assert outer == {"l4:r1:t1": ("FAILED", "ENDPOINT_FAILURE"), "l4:r1:t2": ("FAILED", "ENDPOINT_FAILURE"),
                     "l4:r1:t3": ("COMPLETED", None)}
    assert "connection closed" in rec.tasks["l4:r1:t1"].message
    assert rec.tasks["l4:r1:t1"].end == pytest.approx(AT + latency)
    closes = [e for e in w.simulation.trace.of_kind(EventKind.FRAME) if e.subject == "CLOSE"]
    assert [(e.t, e.scope) for e in closes] == [(AT, "l4.w1.link")]
    w.close()


def test_nothing_the_crashed_session_held_starts_or_completes_after_the_crash(profile) -> None:
    w, h = build(profile, SessionCrash(1, AT))
    w.init()
    run_chain(w, h, (1, 6))
    w.simulation.env.run(until=200_000.0)  # long past the chain's natural end (~48 ms)
    rec = w.take_record()
    inner = [t for t in rec.tasks.values() if t.node == INNER]
    assert len(inner) == 6
    for t in inner:
        assert t.outcome.value == "FAILED" and t.error_class == "UNCERTAIN_STATE", t
        assert "session process died" in t.message
        assert t.end is None and (t.start is None or t.start <= AT)
    assert sum(t.start is not None for t in inner) == 1  # the one on the chip when the process died
    late = [e for e in w.simulation.trace.ordered() if e.scope.startswith(INNER) and e.t > AT]
    assert late == []  # nothing happens inside the dead session: no start, end, complete, frame
    assert not any(e.scope == "l4.w1.link" and e.t > AT and e.kind is EventKind.FRAME
                   and e.detail.startswith("<-") for e in w.simulation.trace.ordered())
    w.close()


def test_a_crash_during_start_up_fails_init_at_once(profile) -> None:
    w, _ = build(profile, SessionCrash(1, 0.0))
    with pytest.raises(EndpointFailure, match="connection closed"):
        w.init()
    assert w.simulation.now < 1000.0  # not the start-up timeout (remote_session_timeout_s)
    w.close()


def test_a_crash_while_idle_fails_the_endpoint_and_later_submits(profile) -> None:
    w, h = build(profile, SessionCrash(1, 50_000.0))
    w.init()
    w.run(lambda o, a, c: o.submit_next_level(h, scalars(1), worker=1))  # done well before the crash
    w.simulation.env.run(until=60_000.0)
    ep = w._remote.endpoints[1]
    assert ep.state is EndpointState.FAILED and "connection closed" in ep.failure
    with pytest.raises(EndpointFailure):
        w.run(lambda o, a, c: o.submit_next_level(h, scalars(1), worker=1))
    w.close()


def test_a_closed_connection_is_not_seen_across_a_cut_link(profile) -> None:
    w, h = build(profile, LinkCut(1, 1000.0), SessionCrash(1, AT))
    w.init()
    run_chain(w, h, (1, 6))
    ep = w._remote.endpoints[1]
    assert "health expired" in ep.failure  # the FIN was lost with the link: only the health watch can tell
    assert any(e.subject == "CLOSE" and "lost: link cut" in e.detail
               for e in w.simulation.trace.of_kind(EventKind.FAULT))
    w.close()


def test_a_crashed_session_runs_no_shutdown(profile) -> None:
    w, h = build(profile, SessionCrash(1, AT))
    w.init()
    buf = w.remote_malloc(worker=1, nbytes=64)
    run_chain(w, h, (1, 6))
    w.close()
    assert not [e for e in w.simulation.trace.of_kind(EventKind.CONTROL)
                if e.scope == INNER and "at shutdown" in e.detail]  # its memory went with the process
    assert buf.state == "UNCERTAIN"  # nothing confirmed its free


# ---------------------------------------------------------------------- SessionHang


def test_a_hung_session_is_found_by_health_expiry_only(profile) -> None:
    w, h = build(profile, SessionHang(1, AT))
    w.init()
    run_chain(w, h, (1, 6), (0, 1))
    ep = w._remote.endpoints[1]
    assert ep.state is EndpointState.FAILED and "health expired" in ep.failure
    assert TIMEOUT - INTERVAL - 200 <= endpoint_fail_t(w) - AT <= TIMEOUT  # last HEALTH before the hang
    assert not [e for e in w.simulation.trace.of_kind(EventKind.FRAME) if e.subject == "CLOSE"]
    rec = w.take_record()
    assert (rec.tasks["l4:r1:t1"].outcome.value, rec.tasks["l4:r1:t1"].error_class) == ("FAILED",
                                                                                      "ENDPOINT_FAILURE")
    assert rec.tasks["l4:r1:t2"].outcome.value == "COMPLETED"
    inner = [t for t in rec.tasks.values() if t.node == INNER]
    assert inner and all(t.error_class == "UNCERTAIN_STATE" and "session process stopped" in t.message
                         and t.end is None for t in inner)
    assert not [e for e in w.simulation.trace.ordered() if e.scope.startswith(INNER) and e.t > AT]
    # Silent from the hang on: no HEALTH, no COMPLETION leaves the session.
    assert not any(e.scope == "l4.w1.link" and e.t > AT and e.kind is EventKind.FRAME
                   and e.detail.startswith("<-") for e in w.simulation.trace.ordered())
    w.close()


def test_a_hung_session_that_is_then_killed_closes_its_connection(profile) -> None:
    w, h = build(profile, SessionHang(1, AT), SessionCrash(1, AT + 1000.0))
    w.init()
    run_chain(w, h, (1, 6))
    assert endpoint_fail_t(w) < AT + 1000.0 + INTERVAL  # the kill's closed socket, not health expiry
    assert "connection closed" in w._remote.endpoints[1].failure
    w.close()


def test_session_hang_vocabulary() -> None:
    f = SessionHang(2, 10.0)
    assert describe(f) == "session hang" and injected_at(f) == 10.0
    assert FaultPlan((f,)).for_worker(2) == (f,)
    for bad in (lambda: SessionHang(True, 1.0), lambda: SessionHang(1, -1.0), lambda: SessionHang(-1, 1.0)):
        with pytest.raises(InvalidArgument):
            bad()


@pytest.mark.parametrize("fault", [SessionCrash(1, AT), SessionHang(1, AT)])
def test_crash_and_hang_are_deterministic(profile, fault) -> None:
    digests = []
    for _ in range(2):
        w, h = build(profile, fault, seed=11)
        w.init()
        run_chain(w, h, (1, 6), (1, 2), (0, 3))
        w.take_record()
        w.close()
        digests.append(w.simulation.trace.digest())
    assert digests[0] == digests[1]
