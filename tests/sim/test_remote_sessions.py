"""Remote L3 sessions in the simulator: API, placement, start-up, HELLO barrier, ordering.

Spec: upstream ``docs/remote-l3-worker-design.md`` ("Worker Identity and Callable Routing",
"Fork-Safe Remote Process Model", "Remote Worker Session"), ``docs/remote-l3-worker-design/
protocol.md`` ("Frames", "HELLO Payload", "Ordering"), ``docs/directed-next-level-scheduling.md``
("Placement contract") and the seed 001 review findings (bootstrap manifest re-validation,
partial-init cleanup, loopback bind by default).
"""

from __future__ import annotations

import pytest

from reference import get_kernel
from sim import SimConfig, TaskArgs, TensorArgType, Worker
from sim.callable_identity import describe_import_target
from sim.errors import (
    EndpointFailure,
    HashidMismatch,
    InvalidArgument,
    InvalidState,
    InvalidWorkerType,
    NotReady,
    NotSupported,
    TaskFailure,
    UnknownWorker,
)
from sim.remote.endpoint import EndpointState
from sim.remote.faults import FaultPlan, FrameFault, SessionCrash
from sim.remote.session import BootstrapManifest, validate_manifest
from sim.remote.spec import RemoteCallable, RemoteWorkerSpec
from sim.remote.wire import (
    CallableKind,
    CallConfigWire,
    CompletionPayload,
    ControlName,
    DigestCallableCommand,
    Frame,
    FrameHeader,
    FrameType,
    HelloPayload,
    ReadyState,
    RemoteRegistryTarget,
    RemoteTaskArgs,
    TaskPayload,
    encode_frame,
)
from sim.trace import EventKind

NOOP = "sim.remote.examples:noop"
CHAIN = "sim.remote.examples:chain"


def spec(port: int = 9000, **kw) -> RemoteWorkerSpec:
    kw.setdefault("device_ids", (0,))
    return RemoteWorkerSpec(f"127.0.0.1:{port}", "a2a3sim", **kw)


def l4(n_remote: int = 2, *, faults=None, local: bool = True, **spec_kw):
    w = Worker(level=4, num_sub_workers=1, sim=SimConfig(seed=3, faults=faults))
    ids = []
    if local:
        ids.append(w.add_worker(Worker(level=3, device_ids=[0])))
    rids = [w.add_remote_worker(spec(9000 + i, **spec_kw)) for i in range(n_remote)]
    return w, ids, rids


def test_remote_ids_continue_the_next_level_id_space_and_stay_stable() -> None:
    w = Worker(level=4)
    assert w.add_worker(Worker(level=3, device_ids=[0])) == 0
    assert w.add_remote_worker(spec(9000)) == 1
    assert w.add_worker(Worker(level=3, device_ids=[0])) == 2
    assert w.add_remote_worker(spec(9001)) == 3
    w.init()
    lanes = w._node.nl_lanes
    assert [type(lane).__name__ for lane in lanes] == ["WorkerLane", "RemoteLane", "WorkerLane", "RemoteLane"]
    assert [lane.index for lane in lanes] == [0, 1, 2, 3]
    w.close()


def test_add_remote_worker_needs_level_4_and_a_new_worker() -> None:
    with pytest.raises(InvalidWorkerType):
        Worker(level=3).add_remote_worker(spec())
    w, _, _ = l4(1)
    w.init()
    with pytest.raises(InvalidState):
        w.add_remote_worker(spec(9100))
    w.close()


@pytest.mark.parametrize("bad", ["node7:9000", "127.0.0.1", "127.0.0.1:0", "::1:9000"])
def test_spec_rejects_bad_endpoints(bad: str) -> None:
    with pytest.raises(InvalidArgument):
        RemoteWorkerSpec(bad, "a2a3sim")


def test_spec_rejects_pending_transports() -> None:
    roce = RemoteWorkerSpec("127.0.0.1:9000", "a2a3sim", transport="roce")
    with pytest.raises(NotSupported):  # conformance mode (the default) attaches only host_tcp sessions
        Worker(level=4).add_remote_worker(roce)
    with pytest.raises(InvalidArgument):
        RemoteWorkerSpec("127.0.0.1:9000", "a2a3sim", transport="carrier-pigeon")


def test_remote_callable_handle_identity_and_namespace() -> None:
    w, _, rids = l4(2)
    h = w.register(RemoteCallable(NOOP), workers=[rids[0]])
    assert h.kind == "PYTHON_IMPORT"
    assert h.target_namespace == "REMOTE_TASK_DISPATCHER"
    assert h.hashid == describe_import_target(NOOP).hashid


@pytest.mark.parametrize("target", [".rel:fn", "pkg.mod:outer.<locals>.inner", "no_colon", "a:b:c"])
def test_remote_callable_rejects_bad_import_targets(target: str) -> None:
    with pytest.raises(InvalidArgument):
        RemoteCallable(target)


def test_register_remote_callable_needs_explicit_remote_workers() -> None:
    w, ids, rids = l4(2)
    with pytest.raises(InvalidArgument):
        w.register(RemoteCallable(NOOP))
    with pytest.raises(InvalidArgument):
        w.register(RemoteCallable(NOOP), workers=[])
    with pytest.raises(UnknownWorker):
        w.register(RemoteCallable(NOOP), workers=[ids[0]])  # a local child
    with pytest.raises(InvalidArgument):
        w.register(RemoteCallable(NOOP), workers=[rids[0], rids[0]])
    assert not w._registry.live  # nothing left behind


def test_register_with_workers_on_a_worker_without_remotes_is_rejected() -> None:
    w = Worker(level=4)
    with pytest.raises(InvalidArgument):
        w.register(RemoteCallable(NOOP), workers=[0])


def _run_expect(w, orch, exc_type):
    with pytest.raises(exc_type):
        w.run(orch)


def test_placement_contract_for_remote_handles() -> None:
    w, ids, rids = l4(2)
    local_fn = w.register(lambda o, a, c: None)
    h = w.register(RemoteCallable(NOOP), workers=[rids[0]])
    w.init()
    _run_expect(w, lambda o, a, c: o.submit_next_level(h, TaskArgs(), worker=rids[1]), InvalidArgument)  # ineligible
    _run_expect(w, lambda o, a, c: o.submit_next_level(h, TaskArgs(), worker=ids[0]), InvalidArgument)  # local id
    _run_expect(w, lambda o, a, c: o.submit_next_level(local_fn, TaskArgs(), worker=rids[0]), InvalidArgument)
    _run_expect(w, lambda o, a, c: o.submit_next_level_group(h, [TaskArgs(), TaskArgs()], workers=[rids[0], ids[0]]),
                InvalidArgument)
    import numpy as np

    ta = TaskArgs()
    ta.add_tensor(np.zeros(4, np.float32), TensorArgType.INPUT)
    _run_expect(w, lambda o, a, c: o.submit_next_level(h, ta, worker=rids[0]), InvalidArgument)  # bare host data
    neg = TaskArgs()
    neg.add_scalar(-1)
    _run_expect(w, lambda o, a, c: o.submit_next_level(h, neg, worker=rids[0]), InvalidArgument)
    w.close()


def test_remote_task_runs_the_imported_function_on_an_inner_l3_over_encoded_frames() -> None:
    w, _, rids = l4(2)
    w.register(get_kernel("add"))
    h = w.register(RemoteCallable(CHAIN), workers=rids)

    def orch(o, a, c):
        two = TaskArgs()
        two.add_scalar(2)
        o.submit_next_level(h, two, worker=rids[0])
        o.submit_next_level(h, TaskArgs(), worker=rids[1])

    w.init()
    w.run(orch)
    rec = w.take_record()
    outer = [t for t in rec.tasks.values() if t.node == "l4"]
    assert [t.outcome.value for t in outer] == ["COMPLETED", "COMPLETED"]
    inner = [t for t in rec.tasks.values() if t.node == "l4.w1.l3"]
    assert len(inner) == 2 and all(t.outcome.value == "COMPLETED" for t in inner)  # two chip adds inside
    frames = [e for e in w.simulation.trace.of_kind(EventKind.FRAME) if e.scope == "l4.w1.link"]
    labels = [e.subject for e in frames]
    assert labels[:2] == ["HELLO NOT_READY", "HELLO READY"]
    assert "l4:r1:t1#1" in labels and "COMPLETION#1" in labels
    task_frame = next(e for e in frames if e.subject == "l4:r1:t1#1")
    payload = TaskPayload(describe_import_target(CHAIN).digest, CallConfigWire(), RemoteTaskArgs(scalars=(2,)))
    size = len(encode_frame(Frame(FrameHeader(FrameType.TASK, 1, rids[0], 1), payload)))
    assert task_frame.detail.endswith(f"{size}B")  # the frame on the link is the codec's encoding
    w.close()


def test_remote_orchestration_failure_is_a_task_failure() -> None:
    w, _, rids = l4(1, local=False)
    h = w.register(RemoteCallable("sim.remote.examples:fail"), workers=rids)
    w.init()
    with pytest.raises(TaskFailure):
        w.run(lambda o, a, c: o.submit_next_level(h, TaskArgs(), worker=rids[0]))
    t = next(iter(w.take_record().tasks.values()))
    assert t.outcome.value == "FAILED" and t.error_class == "TASK_FAILURE"
    assert "failed on purpose" in t.message and "seq 1" in t.message
    w.close()


# ---------------------------------------------------------------------- bootstrap manifest


def manifest(**kw) -> BootstrapManifest:
    kw.setdefault("remote_task_dispatcher", ((describe_import_target(NOOP).hashid, NOOP),))
    return BootstrapManifest(session_id=7, worker_id=1, parent_worker_level=4, platform="a2a3sim", **kw)


def test_valid_manifest_passes_and_accepts_bare_hashids() -> None:
    assert len(validate_manifest(manifest())) == 1
    bare = describe_import_target(NOOP).hashid.removeprefix("sha256:")
    assert len(validate_manifest(manifest(remote_task_dispatcher=((bare, NOOP),)))) == 1


@pytest.mark.parametrize(("entries", "exc"), [
    ((("sha256:XYZ", NOOP),), InvalidArgument),  # hashid format
    (((describe_import_target(NOOP).hashid, ".rel:fn"),), InvalidArgument),  # relative module
    (((describe_import_target(NOOP).hashid, "m:f.<locals>.g"),), InvalidArgument),  # <locals>
    (((describe_import_target(NOOP).hashid, "sim.remote.examples:fail"),), HashidMismatch),  # recomputed digest
    (((describe_import_target(NOOP).hashid, NOOP), (describe_import_target(NOOP).hashid, CHAIN)), HashidMismatch),
    (((describe_import_target(NOOP).hashid, NOOP), (describe_import_target(NOOP).hashid, NOOP)), InvalidArgument),
])
def test_bad_manifest_entries_fail_before_ready(entries, exc) -> None:
    with pytest.raises(exc):
        validate_manifest(manifest(remote_task_dispatcher=entries))


def test_manifest_field_rules() -> None:
    with pytest.raises(InvalidArgument):
        validate_manifest(manifest(remote_worker_level=2))
    with pytest.raises(InvalidArgument):
        validate_manifest(BootstrapManifest(session_id=0, worker_id=1, parent_worker_level=4, platform="a2a3sim"))
    with pytest.raises(NotSupported):
        validate_manifest(manifest(transport="roce"))


def test_sessions_bind_loopback_unless_non_loopback_is_allowed() -> None:
    validate_manifest(manifest(listen_host="127.0.0.5"))
    with pytest.raises(InvalidArgument):
        validate_manifest(manifest(listen_host="0.0.0.0"))
    with pytest.raises(InvalidArgument):
        validate_manifest(manifest(listen_host="10.0.0.17"))
    validate_manifest(manifest(listen_host="10.0.0.17", allow_non_loopback_bind=True))
    assert spec().listen_host == "127.0.0.1"


def test_worker_init_fails_on_a_non_loopback_bind_and_close_stays_safe() -> None:
    w, _, rids = l4(2)
    object.__setattr__(w._remote.specs[rids[1]], "session_listen_host", "0.0.0.0")
    with pytest.raises(InvalidArgument, match="non-loopback"):
        w.init()
    assert all(ep.state is EndpointState.CLOSED for ep in w._remote.endpoints.values())
    w.close()
    w.close()


def test_unimportable_dispatcher_target_fails_start_up() -> None:
    w, _, rids = l4(1)
    w.register(RemoteCallable("sim.remote.examples:no_such_fn"), workers=rids)
    with pytest.raises(InvalidArgument, match="no attribute"):
        w.init()
    w.close()


# ---------------------------------------------------------------------- start-up and HELLO


def test_partial_init_failure_closes_every_opened_session() -> None:
    w, _, rids = l4(2, faults=FaultPlan((SessionCrash(worker=2, at_us=0.0),)))  # the second remote
    assert rids == [1, 2]
    with pytest.raises(EndpointFailure):
        w.init()
    eps = w._remote.endpoints
    assert eps[1].state is EndpointState.CLOSED and eps[1].session.closed  # it had reached READY
    assert eps[2].state is EndpointState.CLOSED
    w.close()
    w.close()
    with pytest.raises(InvalidState):
        w.run(lambda o, a, c: None)


def test_hello_not_ready_is_not_schedulable() -> None:
    w, _, rids = l4(1, local=False, faults=FaultPlan((FrameFault(0, "HELLO", ordinal=2),)))
    with pytest.raises(NotReady):
        w.init()
    ep = w._remote.endpoints[rids[0]]
    assert ep.saw_not_ready and ep.state is EndpointState.CLOSED
    assert not [e for e in w.simulation.trace.of_kind(EventKind.FRAME) if e.subject.endswith("#1")]  # no TASK sent


def test_no_task_is_sent_before_ready() -> None:
    w, _, rids = l4(1, local=False)
    w.init()
    ep = w._remote.endpoints[rids[0]]
    ep.state = EndpointState.CONNECTING  # as before HELLO READY
    with pytest.raises(NotReady):
        ep.send_task(TaskPayload(b"\0" * 32, CallConfigWire(), RemoteTaskArgs()), lambda *_: None)
    assert ep.inflight is None and not ep.queue


# ---------------------------------------------------------------------- ordering


def test_one_task_in_flight_per_endpoint() -> None:
    w, _, rids = l4(1, local=False)
    h = w.register(RemoteCallable(NOOP), workers=rids)
    w.init()
    w.run(lambda o, a, c: [o.submit_next_level(h, TaskArgs(), worker=rids[0]) for _ in range(3)])
    frames = [e for e in w.simulation.trace.of_kind(EventKind.FRAME) if e.scope == f"l4.w{rids[0]}.link"]
    sent = {e.subject: e.t for e in frames}
    for seq in (1, 2):
        assert sent[f"l4:r1:t{seq + 1}#{seq + 1}"] >= sent[f"COMPLETION#{seq}"]  # next TASK after previous reply
    w.close()


def test_control_serializes_with_task_and_replies_carry_its_sequence() -> None:
    w, _, rids = l4(1, local=False)
    h = w.register(RemoteCallable(NOOP), workers=rids)
    w.init()
    ep = w._remote.endpoints[rids[0]]
    got = []
    payload = TaskPayload(bytes.fromhex(h.hashid[7:]), CallConfigWire(), RemoteTaskArgs())
    ep.send_task(payload, lambda err, cls, p: got.append(("task", err, p.sequence)))
    cmd = DigestCallableCommand(RemoteRegistryTarget.REMOTE_TASK_DISPATCHER, CallableKind.PYTHON_IMPORT,
                                bytes.fromhex(h.hashid[7:]))
    ep.send_control(ControlName.ABORT_REGISTER_CALLABLE, cmd,
                    lambda err, cls, p: got.append(("ctl", err, p.sequence)))
    assert ep.inflight.ftype is FrameType.TASK and len(ep.queue) == 1  # the CONTROL waits
    env = w.simulation.env
    env.run(until=env.now + 10_000)
    assert got == [("task", None, 1), ("ctl", None, 2)]
    frames = {e.subject: e.t for e in w.simulation.trace.of_kind(EventKind.FRAME)
              if e.scope == f"l4.w{rids[0]}.link"}
    assert frames["ABORT_REGISTER_CALLABLE#2"] >= frames["COMPLETION#1"]
    w.close()


def _completion(ep, seq: int, session_id: int | None = None) -> bytes:
    sid = ep.session_id if session_id is None else session_id
    return encode_frame(Frame(FrameHeader(FrameType.COMPLETION, sid, ep.worker_id, seq), CompletionPayload(seq)))


def test_reply_with_another_sequence_or_stale_session_is_rejected() -> None:
    w, _, rids = l4(1, local=False)
    h = w.register(RemoteCallable(NOOP), workers=rids)
    w.init()
    ep = w._remote.endpoints[rids[0]]
    got = []
    ep.send_task(TaskPayload(bytes.fromhex(h.hashid[7:]), CallConfigWire(), RemoteTaskArgs()),
                 lambda *a: got.append(a))
    ep.receive(_completion(ep, 5))  # not the in-flight sequence
    ep.receive(_completion(ep, 1, session_id=ep.session_id + 1))  # a previous session's reply
    assert not got and ep.inflight is not None and len(ep.rejected) == 2
    assert "stale session" in ep.rejected[1]
    env = w.simulation.env
    env.run(until=env.now + 10_000)
    assert len(got) == 1 and got[0][0] is None  # the real reply still completes it
    w.close()


def test_session_rejects_stale_session_and_out_of_order_frames() -> None:
    w, _, rids = l4(1, local=False)
    h = w.register(RemoteCallable(NOOP), workers=rids)
    w.init()
    ep = w._remote.endpoints[rids[0]]
    session = ep.session
    task = TaskPayload(bytes.fromhex(h.hashid[7:]), CallConfigWire(), RemoteTaskArgs())
    session.receive(encode_frame(Frame(FrameHeader(FrameType.TASK, ep.session_id + 1, ep.worker_id, 1), task)))
    session.receive(encode_frame(Frame(FrameHeader(FrameType.TASK, ep.session_id, ep.worker_id, 9), task)))
    assert session.expected_seq == 1 and not session.busy
    rejected = [e.detail for e in w.simulation.trace.of_kind(EventKind.FRAME) if e.subject == "rejected"]
    assert any("stale session" in d for d in rejected) and any("expected 1" in d for d in rejected)
    w.close()


def test_post_init_registration_uses_prepare_and_commit_controls() -> None:
    w, _, rids = l4(2, local=False)
    w.init()
    h = w.register(RemoteCallable(NOOP), workers=rids)
    names = [e.subject.split("#")[0] for e in w.simulation.trace.of_kind(EventKind.CONTROL) if "#" in e.subject]
    assert names.count("PREPARE_REGISTER_CALLABLE") == 2 and names.count("COMMIT_REGISTER_CALLABLE") == 2
    w.run(lambda o, a, c: o.submit_next_level(h, TaskArgs(), worker=rids[1]))
    w.unregister(h)
    assert any(e.subject.startswith("UNREGISTER_CALLABLE") for e in w.simulation.trace.of_kind(EventKind.CONTROL))
    assert all(not ep.digests for ep in w._remote.endpoints.values())
    w.close()


def test_hello_after_failure_does_not_readmit() -> None:
    w, _, rids = l4(1, local=False)
    h = w.register(RemoteCallable(NOOP), workers=rids)
    w.init()
    ep = w._remote.endpoints[rids[0]]
    ep.fail("test: forced")
    ep.receive(encode_frame(Frame(FrameHeader(FrameType.HELLO, ep.session_id, ep.worker_id, 0),
                                  HelloPayload(ep.session_id, ep.worker_id, "sim", 0, ReadyState.READY))))
    assert ep.state is EndpointState.FAILED
    with pytest.raises(EndpointFailure):
        w.run(lambda o, a, c: o.submit_next_level(h, TaskArgs(), worker=rids[0]))
    w.close()
