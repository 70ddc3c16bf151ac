"""No overlapping writes within one task: rejected at submit, on every submit kind and target.

Spec: upstream ``docs/buffer-abi.md``, "What a submit checks" → "No overlapping writes within one
task" (two arguments of one task naming intersecting bytes of one backing, at least one of them
written, are rejected; disjoint slices stay legal; group members are not compared), and the
self-loop skip of the tag walk in ``src/common/hierarchical/orchestrator.cpp``. Before the fix a
write followed by a read of the same bytes made the task its own producer: a SimulationHang
locally, a run that never ended on a remote L3.
"""

from __future__ import annotations

import numpy as np
import pytest

from reference import get_kernel
from sim import SimConfig, TaskArgs, TensorArgType, TensorSpec, Worker, modeled_duration
from sim.errors import ErrorClass, InvalidArgument, TaskFailure
from sim.remote.refs import RemoteTensorRef
from sim.remote.spec import RemoteCallable, RemoteWorkerSpec

IN, OUT, INOUT = TensorArgType.INPUT, TensorArgType.OUTPUT, TensorArgType.INOUT
OE, NO_DEP = TensorArgType.OUTPUT_EXISTING, TensorArgType.NO_DEP

REJECTED = [(OUT, IN), (INOUT, IN), (INOUT, INOUT), (OUT, OUT), (OE, OE), (OUT, OE), (OE, IN),
            (IN, OUT), (IN, INOUT), (NO_DEP, OUT), (OUT, NO_DEP)]


@modeled_duration(5.0)
def noop(args) -> None:
    return None


def ta(*pairs) -> TaskArgs:
    t = TaskArgs()
    for tensor, tag in pairs:
        t.add_tensor(tensor, tag)
    return t


def l3(data_mode: str = "functional", subs: int = 2):
    w = Worker(level=3, device_ids=[0, 1], num_sub_workers=subs, sim=SimConfig(data_mode=data_mode))
    h = {"noop": w.register(noop), "add": w.register(get_kernel("add"))}
    w.init()
    return w, h


@pytest.mark.parametrize(("first", "second"), REJECTED, ids=lambda t: t.name)
def test_overlapping_pairs_are_rejected_and_leave_nothing(first, second) -> None:
    w, h = l3()
    x, y = np.zeros(16, np.float32), np.zeros(16, np.float32)
    seen = {}

    def orch(o, _a, _c):
        node = w._node
        before = (node.run.seq, len(w.simulation._tasks), dict(node.tensormap), [r.top for r in node.rings])
        with pytest.raises(InvalidArgument) as ei:
            o.submit_sub(h["noop"], ta((x, first), (y, IN), (x, second)))
        seen["msg"] = str(ei.value)
        seen["cls"] = ei.value.error_class
        seen["same"] = before == (node.run.seq, len(w.simulation._tasks), dict(node.tensormap),
                                  [r.top for r in node.rings])
        o.submit_sub(h["noop"], ta((x, OUT)))

    w.run(orch)
    rec = w.take_record()
    assert seen["cls"] is ErrorClass.INVALID_ARGUMENT
    assert f"tensor arguments 0 ({first.name}) and 2 ({second.name})" in seen["msg"]
    assert seen["same"], "a rejected submit changed the node's state"
    assert list(rec.tasks) == ["l3:r1:t1"]  # the rejected submit took no slot
    w.close()


def test_a_write_then_read_no_longer_hangs_the_run() -> None:
    w, h = l3()
    x = np.zeros(16, np.float32)
    with pytest.raises(InvalidArgument):
        w.run(lambda o, _a, _c: o.submit_sub(h["noop"], ta((x, OUT), (x, IN))))
    w.close()


def test_fast_path_spec_named_twice_with_a_write_is_rejected() -> None:
    w, h = l3("timing")
    a, b, out = (TensorSpec((64,), "float32") for _ in range(3))

    def orch(o, _a, _c):
        o.submit_next_level(h["add"], ta((a, IN), (b, IN), (out, OUT)), worker=0)  # memoises the signature
        with pytest.raises(InvalidArgument, match=r"tensor arguments 0 \(OUTPUT\) and 2 \(INPUT\)"):
            o.submit_next_level(h["add"], ta((out, OUT), (a, IN), (out, IN)), worker=1)
        o.submit_next_level(h["add"], ta((a, IN), (a, IN), (out, OUT)), worker=1)  # a read twice: legal

    w.run(orch)
    rec = w.take_record()
    assert sorted(rec.tasks) == ["l3:r1:t1", "l3:r1:t2"]
    assert rec.tasks["l3:r1:t2"].producers == ()  # only reads of a: no edge, and never one to itself
    w.close()


def test_group_submits_check_each_member_but_do_not_compare_members(hard_timeout) -> None:
    w, h = l3()
    x, y = np.zeros(16, np.float32), np.zeros(16, np.float32)

    def orch(o, _a, _c):
        with pytest.raises(InvalidArgument, match=r"member 1 tensor arguments 0 \(INOUT\) and 1 \(INPUT\)"):
            o.submit_sub_group(h["noop"], [ta((y, IN)), ta((x, INOUT), (x, IN))])
        with pytest.raises(InvalidArgument, match="member 0 tensor arguments"):
            o.submit_next_level_group(h["add"], [ta((x, IN), (y, IN), (x, OUT)), ta((y, IN), (y, IN), (x, OUT))],
                                      workers=[0, 1])
        o.submit_sub_group(h["noop"], [ta((x, OUT)), ta((x, OUT))])  # one completion token: legal
        o.submit_sub_group(h["noop"], [ta((x, OUT)), ta((x, IN))])  # no self-loop across members
        o.submit_sub(h["noop"], ta((x, IN)))

    with hard_timeout(30):
        w.run(orch)
    rec = w.take_record()
    assert {k: v.outcome.value for k, v in rec.tasks.items()} == {
        "l3:r1:t1": "COMPLETED", "l3:r1:t2": "COMPLETED", "l3:r1:t3": "COMPLETED"}
    assert rec.tasks["l3:r1:t2"].producers == ()  # member 1 finds its own group as the writer: skipped
    assert rec.tasks["l3:r1:t3"].producers == ("l3:r1:t2",)
    w.close()


def test_byte_ranges_two_stage_comparison() -> None:
    w, h = l3()
    whole = np.zeros(64, np.float32)
    m = whole.reshape(4, 16)
    buf = w.create_buffer(256)
    legal = [
        ((whole[:32], OUT), (whole[32:], OE)),  # disjoint halves
        ((m[:, :4], OUT), (m[:, 8:], INOUT)),  # interleaving bounding ranges, disjoint columns (stage 2)
        ((m[:2], OUT), (m[2:], OUT)),  # row blocks
        ((buf.tensor((32,), "float32"), OUT), (buf.tensor((32,), "float32", byte_offset=128), OUT)),
        ((whole[:0], OUT), (whole[:0], IN)),  # names no byte
    ]
    rejected = [
        ((whole[:32], OUT), (whole[16:48], IN)),
        ((m[:, :8], OUT), (m[:, 4:], OE)),  # one shared column block
        ((m[:, ::2], OUT), (m[:, 1::2], IN)),  # stepped slices: not modeled by stage 2, so overlapping
        ((buf.tensor((32,), "float32"), OE), (buf.tensor((32,), "float32", byte_offset=64), IN)),
    ]

    def orch(o, _a, _c):
        for pairs in legal:
            o.submit_sub(h["noop"], ta(*pairs))
        for pairs in rejected:
            with pytest.raises(InvalidArgument):
                o.submit_sub(h["noop"], ta(*pairs))

    w.run(orch)
    assert len(w.take_record().tasks) == len(legal)
    w.close()


def test_timing_only_buffers_compare_byte_offsets() -> None:
    w, h = l3("timing")
    buf = w.create_buffer(256)

    def orch(o, _a, _c):
        o.submit_sub(h["noop"], ta((buf.tensor((32,), "float32"), OUT),
                                   (buf.tensor((32,), "float32", byte_offset=128), IN)))
        with pytest.raises(InvalidArgument):
            o.submit_sub(h["noop"], ta((buf.tensor((32,), "float32"), OUT),
                                       (buf.tensor((16,), "float32", byte_offset=64), IN)))

    w.run(orch)
    w.close()


# ---------------------------------------------------------------------------------------------- remote L3


def l4_remote():
    w = Worker(level=4, sim=SimConfig(seed=3))
    rid = w.add_remote_worker(RemoteWorkerSpec("127.0.0.1:9000", "a2a3sim", device_ids=(0,)))
    w.register(get_kernel("add"))
    return w, rid


def test_remote_submit_with_overlapping_remote_refs_is_rejected_at_the_parent() -> None:
    w, rid = l4_remote()
    h = w.register(RemoteCallable("sim.remote.examples:noop"), workers=[rid])
    w.init()
    a = w.remote_malloc(worker=rid, nbytes=256)

    def orch(o, _a, _c):
        with pytest.raises(InvalidArgument, match=r"tensor arguments 0 \(OUTPUT_EXISTING\) and 1 \(INPUT\)"):
            o.submit_next_level(h, ta((RemoteTensorRef(a, 0, (32,), "float32"), OE),
                                      (RemoteTensorRef(a, 64, (16,), "float32"), IN)), worker=rid)
        o.submit_next_level(h, ta((RemoteTensorRef(a, 0, (16,), "float32"), OE),
                                  (RemoteTensorRef(a, 64, (16,), "float32"), IN)), worker=rid)  # disjoint

    w.run(orch)
    assert list(w.take_record().tasks) == ["l4:r1:t1"]
    w.close()


def test_a_remote_orchestration_that_writes_and_reads_one_buffer_fails_its_task_promptly(hard_timeout) -> None:
    w, rid = l4_remote()
    h = w.register(RemoteCallable("tests.sim.test_overlapping_writes:remote_write_then_read"), workers=[rid])
    w.init()
    with hard_timeout(30), pytest.raises(TaskFailure, match=r"tensor arguments 0 \(OUTPUT\) and 2 \(INPUT\)"):
        w.run(lambda o, _a, _c: o.submit_next_level(h, TaskArgs(), worker=rid))
    assert w.simulation.now < 1e6  # well before any health or command timeout
    w.close()


def remote_write_then_read(orch, args, config) -> None:
    """A remote L3 orchestration (``RemoteCallable`` target): one task writes then reads one slab."""
    from sim.remote.session import find_inner_handle

    add = find_inner_handle("add")
    x = orch.alloc((64,), "float32").tensor((64,), "float32")
    y = orch.alloc((64,), "float32").tensor((64,), "float32")
    orch.submit_next_level(add, ta((x, OUT), (y, IN), (x, IN)), worker=0)
