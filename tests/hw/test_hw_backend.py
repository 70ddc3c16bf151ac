"""The hw backend on the real runtime: SUB-level runs, the RunRecord, error mapping, the runner."""

from __future__ import annotations

import os

import numpy as np
import pytest

pytest.importorskip("simpler", reason="the real runtime (simpler) is not installed in this environment")

from click.testing import CliRunner

from conformance.backends import NotSupportedByBackend, get_backend
from conformance.cli import main
from hw_backend.errors import RULES
from sim.errors import ErrorClass


class Boom(Exception):
    pass


def fill(args):
    args.tensor(0)[...] = args.scalar(0)


def boom(args):
    raise Boom("on purpose")


def noop(args):
    return None


@pytest.fixture
def rt():
    api = get_backend("hw", 0)
    yield api
    api.close_all()


def _l3(rt, *fns, subs=2):
    w = rt.Worker(3, num_sub_workers=subs)
    hs = [w.register(f) for f in fns]
    w.init()
    return w, hs


def test_sub_only_run_records_completed_tasks_with_wall_stamps(rt) -> None:
    w, (h_fill, h_noop) = _l3(rt, fill, noop)
    out = rt.tensor(4)
    T = rt.TensorArgType

    def orch(o, _a, _c):
        ta = rt.TaskArgs()
        ta.add_tensor(out, T.OUTPUT)
        ta.add_scalar(5)
        o.submit_sub(h_fill, ta)
        o.submit_sub(h_noop)

    w.run(orch)
    rec = w.take_record()
    assert rec.backend == "hw"
    assert list(rec.tasks) == ["l3:r1:t1", "l3:r1:t2"]
    for t in rec.tasks.values():
        assert t.outcome.value == "COMPLETED"
        assert t.start is not None and t.end is not None and t.start <= t.end
    assert np.array_equal(out, np.full(4, 5.0, dtype=np.float32))  # written in the SUB process, read back
    w.run(lambda o, _a, _c: o.submit_sub(h_noop))
    assert list(w.take_record().tasks) == ["l3:r2:t1"]
    w.close()


def copy_in(args):
    args.tensor(1)[...] = args.tensor(0)


def test_orchestrator_alloc_is_the_runtimes_own_slab_and_takes_a_slot(rt) -> None:
    """``o.alloc`` goes to the real runtime: its buffer carries data between tasks, and its synthetic
    producer slot is numbered as the sim numbers it (``a1``, then ``t2``, ``t3``)."""
    w = rt.Worker(3, num_sub_workers=2, heap_ring_size=4096)
    h_fill, h_copy = w.register(fill), w.register(copy_in)
    w.init()
    out = rt.tensor(4)
    T = rt.TensorArgType

    def orch(o, _a, _c):
        t = o.alloc((4,), "float32").tensor((4,), "float32")
        ta = rt.TaskArgs()
        ta.add_tensor(t, T.OUTPUT)
        ta.add_scalar(7)
        o.submit_sub(h_fill, ta)
        tb = rt.TaskArgs()
        tb.add_tensor(t, T.INPUT)
        tb.add_tensor(out, T.OUTPUT)
        o.submit_sub(h_copy, tb)

    w.run(orch)
    assert list(w.take_record().tasks) == ["l3:r1:t2", "l3:r1:t3"]
    assert np.array_equal(out, np.full(4, 7.0, dtype=np.float32))
    with pytest.raises(Exception) as info:
        w.run(lambda o, _a, _c: o.alloc((2048,), "float32"))  # twice the ring
    assert rt.error_class(info.value) == "RESOURCE_EXHAUSTED"
    w.close()


def test_raising_sub_is_failed_task_failure_and_the_run_error(rt) -> None:
    w, (h_boom, h_noop) = _l3(rt, boom, noop)
    with pytest.raises(Exception) as info:
        w.run(lambda o, _a, _c: o.submit_sub(h_boom))
    assert rt.error_class(info.value) == "TASK_FAILURE"
    rec = w.take_record()
    t = rec.tasks["l3:r1:t1"]
    assert (t.outcome.value, t.error_class) == ("FAILED", "TASK_FAILURE")
    assert "Boom" in t.message and rec.errors
    w.run(lambda o, _a, _c: o.submit_sub(h_noop))  # the Worker stays usable
    assert w.take_record().tasks["l3:r2:t1"].outcome.value == "COMPLETED"
    w.close()


def test_foreign_and_unregistered_handles_map_to_error_classes(rt) -> None:
    w1, (h1,) = _l3(rt, noop)
    w2, (h2,) = _l3(rt, noop)
    with pytest.raises(Exception) as info:
        w1.run(lambda o, _a, _c: o.submit_sub(h2))
    assert rt.error_class(info.value) == "FOREIGN_HANDLE"
    assert w1.take_record().tasks == {}  # the rejected submit left no task
    with pytest.raises(Exception) as info:
        w1.run(lambda o, _a, _c: o.submit_sub(object()))
    assert rt.error_class(info.value) == "INVALID_ARGUMENT"
    w1.unregister(h1)
    with pytest.raises(Exception) as info:
        w1.run(lambda o, _a, _c: o.submit_sub(h1))
    assert rt.error_class(info.value) == "UNKNOWN_CALLABLE"
    w1.close()
    w2.close()


def test_missing_features_are_not_supported_never_passed(rt) -> None:
    from hw_backend.api import HwAPI

    with pytest.raises(NotSupportedByBackend):
        rt.WorkerType  # noqa: B018
    w = rt.Worker(3, num_sub_workers=1)
    with pytest.raises(NotSupportedByBackend):
        w.accepts_worker_type(0)
    with pytest.raises(NotSupportedByBackend, match="remote target 'no_such_target'"):
        rt.remote_target("no_such_target")
    with pytest.raises(NotSupportedByBackend, match="'link_flap'"):
        rt.fault("link_flap", worker=0)
    w.close()
    bare = HwAPI(kernels={"mul": object()})  # a user map without 'add'
    with pytest.raises(NotSupportedByBackend, match="no kernel 'add'"):
        bare.kernel("add")


def test_error_table_names_only_closed_classes() -> None:
    names = {e.value for e in ErrorClass}
    assert {cls for _types, _pattern, cls in RULES} <= names


def test_conform_orch_cases_run_without_crash(tmp_path) -> None:
    res = CliRunner().invoke(main, ["conform", "--backend", "hw", "--cases", "ORCH-*", "--out", str(tmp_path)])
    assert "Traceback" not in res.output, res.output
    assert "CRASH" not in res.output.split("cases in")[-1].split("\n")[0], res.output
    assert (tmp_path / "conformance-hw.junit.xml").exists()


def test_add_tensor_checks_the_tag_when_added_as_the_runtime_does(rt) -> None:
    T = rt.TensorArgType
    ta = rt.TaskArgs()
    arr = rt.tensor(4)
    ta.add_tensor(arr)
    ta.add_tensor(arr, T.OUTPUT)
    ta.add_tensor(arr, int(T.INOUT.value))  # the runtime's binding takes an enum value too
    assert [tag for _t, tag in ta.tensors] == [T.INPUT, T.OUTPUT, T.INOUT]
    for bad in (99, None, "INPUT", 1.0):
        with pytest.raises(TypeError) as info:
            ta.add_tensor(arr, bad)
        assert rt.error_class(info.value) == "INVALID_ARGUMENT"
    assert ta.tensor_count() == 3  # a rejected tag adds nothing


def test_register_and_unregister_calls_are_logged_with_mapped_classes(rt) -> None:
    w, (h,) = _l3(rt, noop, subs=1)
    w.unregister(h)
    with pytest.raises(Exception) as info:
        w.unregister(h)
    rec = w.take_record()
    assert [(c.call, c.subject, c.ok, c.error_class) for c in rec.calls] == [
        ("register", "noop", True, None), ("unregister", "noop", True, None),
        ("unregister", "noop", False, rt.error_class(info.value))]
    assert rec.calls[-1].error_class == "UNKNOWN_CALLABLE" and rec.calls[-1].message
    assert w.take_record().calls == []  # drained once handed out
    w.run(lambda o, _a, _c: None)
    assert w.take_record().calls == []
    w.close()


_HASHID_SCRIPT = """
import sys
from conformance.backends import get_backend
sys.path.insert(0, sys.argv[1])
from hwprobe_target import fn
rt = get_backend("hw", 0)
w = rt.Worker(3, num_sub_workers=1)
print(w.register(fn).hashid)
w.close()
rt.close_all()
"""


def test_probe_wrapper_hashid_is_the_same_in_every_process(tmp_path) -> None:
    import subprocess
    import sys

    from hw_backend.probe import SubProbe

    assert vars(SubProbe(noop)) == {"fn": noop}  # nothing per-process in the pickled wrapper
    (tmp_path / "hwprobe_target.py").write_text("def fn(args):\n    return None\n")
    ids = [subprocess.run([sys.executable, "-c", _HASHID_SCRIPT, str(tmp_path)], capture_output=True, text=True,
                          check=True, timeout=300).stdout.strip().splitlines()[-1] for _ in range(2)]
    assert ids[0] == ids[1] and ids[0].startswith("sha256:")


def test_composed_levels_name_and_observe_every_nested_task(rt) -> None:
    l5, l4, l3 = rt.Worker(5), rt.Worker(4), rt.Worker(3, num_sub_workers=1)
    out = rt.tensor(4)
    h_fill = l3.register(fill)
    T = rt.TensorArgType

    def l3_fn(o, args, cfg):
        ta = rt.TaskArgs()
        ta.add_tensor(args.tensor(0), T.OUTPUT)  # the runtime's own tensor, handed down from L5
        ta.add_scalar(args.scalar(0))
        o.submit_sub(h_fill, ta)

    h3 = l4.register(l3_fn)

    def l4_fn(o, args, cfg):
        ta = rt.TaskArgs()
        ta.add_tensor(args.tensor(0), T.OUTPUT)
        ta.add_scalar(args.scalar(0) + 1)
        o.submit_next_level(h3, ta, worker=0)

    h4 = l5.register(l4_fn)
    assert l4.add_worker(l3) == 0 and l5.add_worker(l4) == 0
    l5.init()
    top = rt.TaskArgs()
    top.add_tensor(out, T.OUTPUT)
    top.add_scalar(6)
    l5.run(lambda o, _a, _c: o.submit_next_level(h4, top, worker=0))
    rec = l5.take_record()
    assert list(rec.tasks) == ["l5:r1:t1", "l5.w0:r1:t1", "l5.w0.w0:r1:t1"]
    assert [(t.level, t.outcome.value) for t in rec.tasks.values()] == [(5, "COMPLETED"), (4, "COMPLETED"),
                                                                         (3, "COMPLETED")]
    assert rec.tasks["l5:r1:t1"].start <= rec.tasks["l5.w0:r1:t1"].start <= rec.tasks["l5.w0.w0:r1:t1"].start
    assert np.array_equal(out, np.full(4, 7.0, dtype=np.float32))  # the scalars travelled down two levels
    l5.close()


def _two_runs_on_one_child(api):
    """Two nested tasks on one L3 child in one L4 run, then one more run: task names and spans."""
    l4, l3 = api.Worker(4), api.Worker(3, num_sub_workers=1)
    h_noop = l3.register(noop)

    def l3_fn(o, args, cfg):
        o.submit_sub(h_noop)
        o.submit_sub(h_noop)

    h = l4.register(l3_fn)
    l4.add_worker(l3)
    l4.init()
    l4.run(lambda o, _a, _c: [o.submit_next_level(h, api.TaskArgs(), worker=0) for _ in range(2)])
    first = l4.take_record()
    l4.run(lambda o, _a, _c: o.submit_next_level(h, api.TaskArgs(), worker=0))
    second = l4.take_record()
    l4.close()
    return first, second


def test_a_childs_runs_are_numbered_as_the_sim_numbers_them(rt) -> None:
    """A child's nested runs count in the order they begin, across the parent's runs, as the sim's do;
    a nested task ends no earlier than the tasks its orchestration submitted."""
    hw_recs = _two_runs_on_one_child(rt)
    sim_recs = _two_runs_on_one_child(get_backend("sim", 0))
    assert [sorted(r.tasks) for r in hw_recs] == [sorted(r.tasks) for r in sim_recs] == [
        ["l4.w0:r1:t1", "l4.w0:r1:t2", "l4.w0:r2:t1", "l4.w0:r2:t2", "l4:r1:t1", "l4:r1:t2"],
        ["l4.w0:r3:t1", "l4.w0:r3:t2", "l4:r2:t1"]]
    first = hw_recs[0].tasks
    assert first["l4:r1:t1"].end >= max(first["l4.w0:r1:t1"].end, first["l4.w0:r1:t2"].end)


def test_a_raising_nested_orchestration_fails_its_task_with_the_mapped_class(rt) -> None:
    l4, l3 = rt.Worker(4), rt.Worker(3, num_sub_workers=1)
    l3.register(noop)

    def bad(o, args, cfg):
        o.submit_next_level(l3_handle_missing, rt.TaskArgs(), worker=7)  # noqa: F821 - NameError on purpose

    hb = l4.register(bad)
    l4.add_worker(l3)
    l4.init()
    with pytest.raises(Exception) as info:
        l4.run(lambda o, _a, _c: o.submit_next_level(hb, rt.TaskArgs(), worker=0))
    assert rt.error_class(info.value) == "TASK_FAILURE"
    t = l4.take_record().tasks["l4:r1:t1"]
    assert (t.outcome.value, t.error_class) == ("FAILED", "UNMAPPED:NameError")
    assert "l3_handle_missing" in t.message
    l4.close()


def test_a_nested_orchestration_with_host_arrays_of_its_own_is_not_supported(rt) -> None:
    l4, l3 = rt.Worker(4), rt.Worker(3, num_sub_workers=1)
    h_sub = l3.register(noop)
    own = rt.tensor(4)

    def uses_own(o, args, cfg):
        ta = rt.TaskArgs()
        ta.add_tensor(own, rt.TensorArgType.INPUT)
        o.submit_sub(h_sub, ta)

    h = l4.register(uses_own)
    l4.add_worker(l3)
    l4.init()
    with pytest.raises(NotSupportedByBackend, match="nested orchestration"):
        l4.run(lambda o, _a, _c: o.submit_next_level(h, rt.TaskArgs(), worker=0))
    l4.close()


def test_add_worker_under_l3_maps_to_invalid_worker_type(rt) -> None:
    with pytest.raises(Exception) as info:
        rt.Worker(3, num_sub_workers=1).add_worker(rt.Worker(3, num_sub_workers=1))
    assert rt.error_class(info.value) == "INVALID_WORKER_TYPE"


# ------------------------------------------------------------------ remote L3 sessions through real daemons


def _remote_l4(rt, faults=(), n=1):
    w = rt.Worker(4, num_sub_workers=1, faults=list(faults))
    rids = [w.add_remote_worker(rt.RemoteWorkerSpec(f"127.0.0.1:{9000 + i}", "a2a3sim")) for i in range(n)]
    return w, rids


def test_a_remote_task_runs_on_a_real_session_through_the_relay(rt) -> None:
    w, rids = _remote_l4(rt)
    h = w.register(rt.RemoteCallable(rt.remote_target("noop")), workers=rids)
    w.init()
    w.run(lambda o, _a, _c: o.submit_next_level(h, rt.TaskArgs(), worker=rids[0]))
    t = w.take_record().tasks["l4:r1:t1"]
    assert t.outcome.value == "COMPLETED" and t.start is not None  # the target's probe saw it run remotely
    seen = rt.sessions.frame_counts()
    assert seen[(0, "command", "TO_SESSION", "TASK")] == 1 and seen[(0, "command", "TO_PARENT", "COMPLETION")] == 1
    assert sum(n for (i, lane, _d, ft), n in seen.items() if (i, lane, ft) == (0, "health", "HEALTH")) >= 1
    w.close()


def test_a_remote_failure_is_a_failed_task(rt) -> None:
    w, rids = _remote_l4(rt)
    h = w.register(rt.RemoteCallable(rt.remote_target("fail")), workers=rids)
    w.init()
    with pytest.raises(Exception) as info:
        w.run(lambda o, _a, _c: o.submit_next_level(h, rt.TaskArgs(), worker=rids[0]))
    assert "failed on purpose" in str(info.value)  # the remote error reaches the parent
    t = w.take_record().tasks["l4:r1:t1"]
    assert (t.outcome.value, t.error_class) == ("FAILED", "TASK_FAILURE")
    w.close()


def test_dropped_task_frame_is_an_endpoint_failure(rt) -> None:
    w, rids = _remote_l4(rt, [rt.fault("frame_drop", worker=0, frame_type="TASK", ordinal=1)])
    h = w.register(rt.RemoteCallable(rt.remote_target("noop")), workers=rids)
    w.init()
    with pytest.raises(Exception) as info:
        w.run(lambda o, _a, _c: o.submit_next_level(h, rt.TaskArgs(), worker=rids[0]))
    assert rt.error_class(info.value) == "ENDPOINT_FAILURE"
    assert any(e["kind"] == "drop" and e["frame_type"] == "TASK" for e in rt.sessions.events())
    w.close()


def test_failed_prepare_control_is_a_partial_registration_failure(rt) -> None:
    w, rids = _remote_l4(rt, [rt.fault("control_error", worker=0, control="PREPARE_REGISTER_CALLABLE")])
    w.init()
    with pytest.raises(Exception) as info:
        w.register(rt.RemoteCallable(rt.remote_target("noop")), workers=rids)
    assert rt.error_class(info.value) == "REGISTER_PARTIAL_FAILURE"
    w.close()


def test_session_crash_at_start_up_fails_init_and_leaves_no_process(rt) -> None:
    w, _ = _remote_l4(rt, [rt.fault("session_crash", worker=0, at_us=0.0)])
    with pytest.raises(Exception) as info:
        w.init()
    assert rt.error_class(info.value) == "ENDPOINT_FAILURE"
    pid = rt.sessions.session_pid(0)
    assert pid is not None
    w.close()
    rt.sessions.close()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def _shm_segments() -> set[str]:
    from pathlib import Path

    shm = Path("/dev/shm")
    return {p.name for p in shm.iterdir()} if shm.is_dir() else set()


@pytest.mark.skipif(not os.path.isdir("/dev/shm"), reason="shared-memory segments are listed in /dev/shm on Linux only")
def test_closing_a_remote_bed_leaves_no_shared_memory_behind(rt) -> None:
    """The sessions get to finish their own teardown; killed early, their segments would outlive them."""
    before = _shm_segments()
    w = rt.Worker(4, num_sub_workers=1)
    # Sessions with a chip child take a while to tear down.
    rids = [w.add_remote_worker(rt.RemoteWorkerSpec(f"127.0.0.1:{9000 + i}", "a2a3sim", device_ids=(0,)))
            for i in range(2)]
    w.register(rt.kernel("add"))
    h = w.register(rt.RemoteCallable(rt.remote_target("noop")), workers=rids)
    w.init()
    buf = w.remote_malloc(worker=rids[0], nbytes=4096)  # a remote allocation the close must reclaim
    w.run(lambda o, _a, _c: o.submit_next_level(h, rt.TaskArgs(), worker=rids[0]))
    assert _shm_segments() - before, "a live remote session holds shared memory"
    del buf
    w.close()
    rt.sessions.close()
    assert _shm_segments() - before == set()


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="which process maps a segment is read from /proc")
@pytest.mark.parametrize("at_us", [0.0, 1.0], ids=["at-start-up", "with-a-task-in-flight"])
def test_a_crashed_session_leaves_no_shared_memory_behind(rt, at_us) -> None:
    """The crash is the fault; the segments the killed session can no longer unlink are reclaimed."""
    before = _shm_segments()
    w = rt.Worker(4, num_sub_workers=1, faults=[rt.fault("session_crash", worker=0, at_us=at_us)])
    rids = [w.add_remote_worker(rt.RemoteWorkerSpec("127.0.0.1:9000", "a2a3sim", device_ids=(0,)))]
    w.register(rt.kernel("add"))
    h = w.register(rt.RemoteCallable(rt.remote_target("noop")), workers=rids)
    with pytest.raises(Exception) as info:
        w.init()
        w.run(lambda o, _a, _c: o.submit_next_level(h, rt.TaskArgs(), worker=rids[0]))
    assert rt.error_class(info.value) == "ENDPOINT_FAILURE"
    w.close()
    rt.sessions.close()
    assert _shm_segments() - before == set()
