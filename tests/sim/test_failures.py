"""Task failure, poison, failed orchestration and bad input: typed errors, usable Workers.

Spec: upstream ``docs/scheduler.md`` §5 "Dependency release and PENDING updates" (a failed
producer poisons not-yet-running consumers; they are never dispatched) and §6 "Completion and
group aggregation"; ``docs/orchestrator.md`` §8 "Task State Machine" (FAILED from RUNNING on a
worker failure, from BUILDING/PENDING/READY by poison or cancellation; "The failure claim";
``cancel_unstarted_run`` when an orchestration function throws, "What a submit that throws
leaves behind"); ``docs/hierarchical-level-runtime.md`` §4 "Recursive Composition" (an L4 task
is the L3 child's whole run, so a failed inner run fails the L4 task);
``docs/directed-next-level-scheduling.md`` "Placement contract" (unknown worker ids);
``docs/user/reference/python-api.md`` "``CallConfig``" (a diagnostic needs ``output_prefix``)
and "``Worker``" lifecycle (run before init; a second close is a no-op, upstream
``python/simpler/worker.py`` ``Worker.close``). ``DESIGN.md`` "Conventions": bad
input gets a clear typed error and leaves no state behind.
"""

from __future__ import annotations

import numpy as np
import pytest

from reference import get_kernel
from sim import CallConfig, SimConfig, TaskArgs, TensorArgType, TensorSpec, Worker, modeled_duration
from sim.errors import (
    InvalidArgument,
    InvalidState,
    KernelArgumentError,
    TaskFailure,
    UnknownWorker,
)

IN, OUT, INOUT = TensorArgType.INPUT, TensorArgType.OUTPUT, TensorArgType.INOUT
NO_DEP_TAG = TensorArgType.NO_DEP


class Boom(Exception):
    pass


def boom(args) -> None:
    raise Boom("sub callable exploded")


@modeled_duration(50.0)
def ok(args) -> None:
    return None


def ta(*pairs) -> TaskArgs:
    out = TaskArgs()
    for tensor, tag in pairs:
        out.add_tensor(tensor, tag)
    return out


def vec(n: int = 8, fill: float = 0.0) -> np.ndarray:
    return np.full(n, fill, np.float32)


def add_args(a, b, out, out_tag=OUT) -> TaskArgs:
    return ta((a, IN), (b, IN), (out, out_tag))


def outcomes(rec) -> dict[str, str]:
    return {k: t.outcome.value for k, t in rec.tasks.items()}


class L3:
    def __init__(self, chips: int = 1, subs: int = 2) -> None:
        self.w = Worker(level=3, device_ids=list(range(chips)), num_sub_workers=subs, sim=SimConfig(seed=9))
        self.add = self.w.register(get_kernel("add"))
        self.boom = self.w.register(boom)
        self.ok = self.w.register(ok)
        self.w.init()

    def healthy_run(self) -> None:
        """A run after a failure still works: the Worker is usable."""
        a, b, out = vec(fill=1.0), vec(fill=2.0), vec()

        def orch(o, args, cfg):
            o.submit_next_level(self.add, add_args(a, b, out), worker=0)
            o.submit_sub(self.ok, ta((out, IN)))

        self.w.run(orch)
        rec = self.w.take_record()
        assert set(outcomes(rec).values()) == {"COMPLETED"} and len(rec.tasks) == 2
        np.testing.assert_array_equal(out, vec(fill=3.0))


@pytest.fixture
def l3():
    n = L3()
    yield n
    n.w.close()


# ---------------------------------------------------------------------------------------------- task failure + poison


def test_failing_sub_task_poisons_its_consumers_only(l3: L3) -> None:
    x, y, z, free = vec(), vec(), vec(), vec()

    def orch(o, args, cfg):
        o.submit_sub(l3.boom, ta((x, OUT)))  # t1 fails
        o.submit_sub(l3.ok, ta((x, IN), (y, OUT)))  # t2 consumer -> NOT_RUN
        o.submit_sub(l3.ok, ta((y, IN), (z, OUT)))  # t3 consumer of a consumer -> NOT_RUN
        o.submit_sub(l3.ok, ta((free, OUT)))  # t4 independent -> COMPLETED
        o.submit_sub(l3.ok, ta((free, IN)))  # t5 consumer of a healthy task -> COMPLETED
        o.submit_sub(l3.ok, ta((x, NO_DEP_TAG)))  # t6 touches x without a dependency -> COMPLETED

    with pytest.raises(TaskFailure) as info:
        l3.w.run(orch)
    rec = l3.w.take_record()
    t1, t2, t3, t4, t5, t6 = rec.tasks.values()
    assert t1.task_id in str(info.value)
    assert "Boom" in str(info.value)
    assert (t1.outcome, t1.error_class) == ("FAILED", "TASK_FAILURE")
    assert "sub callable exploded" in t1.message
    assert t1.start is not None and t1.end is not None
    assert [t.outcome for t in (t2, t3)] == ["NOT_RUN", "NOT_RUN"]
    assert t2.start is None and t2.end is None and t2.workers == ()
    assert [t.outcome for t in (t4, t5, t6)] == ["COMPLETED"] * 3
    assert rec.errors == ["TASK_FAILURE"]
    started = {e.subject for e in l3.w.simulation.trace.ordered() if e.kind.value == "start"}
    assert t2.task_id not in started and t3.task_id not in started
    l3.healthy_run()



def test_consumer_submitted_after_its_producer_failed_is_not_run(l3: L3) -> None:
    """A consumer wired onto an already-FAILED producer is poisoned, never dispatched."""
    x = vec()

    def orch(o, args, cfg):
        o.submit_sub(l3.boom, ta((x, OUT)))
        o.submit_sub(l3.ok, ta((x, INOUT)))

    with pytest.raises(TaskFailure):
        l3.w.run(orch)
    assert list(outcomes(l3.w.take_record()).values()) == ["FAILED", "NOT_RUN"]


def test_failed_group_member_fails_the_group_and_poisons_its_consumer(l3: L3) -> None:
    x = vec()
    seen: list[int] = []

    def maybe(view) -> None:
        seen.append(int(view.scalar(0)))
        if view.scalar(0) == 1:
            raise Boom("member 1")

    h = l3.w.register(maybe)

    def orch(o, args, cfg):
        a0, a1 = TaskArgs(), TaskArgs()
        a0.add_tensor(x, OUT)
        a0.add_scalar(0)
        a1.add_scalar(1)
        o.submit_sub_group(h, [a0, a1])
        o.submit_sub(l3.ok, ta((x, IN)))

    with pytest.raises(TaskFailure):
        l3.w.run(orch)
    g, k = l3.w.take_record().tasks.values()
    assert sorted(seen) == [0, 1]
    assert (g.outcome, g.error_class) == ("FAILED", "TASK_FAILURE")
    assert "member 1" in g.message
    assert k.outcome == "NOT_RUN"


# ---------------------------------------------------------------------------------------------- poison across levels


def _l4_with_two_l3():
    l4 = Worker(level=4, num_sub_workers=1, sim=SimConfig(seed=4))
    kids = [Worker(level=3, device_ids=[0], num_sub_workers=1) for _ in range(2)]
    adds = [k.register(get_kernel("add")) for k in kids]
    bad = kids[0].register(boom)
    good = kids[1].register(ok)
    x = vec(fill=1.0)
    inner_out = [vec(), vec()]

    def l3_failing(o, args, cfg):
        o.submit_next_level(adds[0], add_args(args.tensor(0), args.tensor(0), inner_out[0]), worker=0)
        o.submit_sub(bad, ta((inner_out[0], IN)))

    def l3_consumer(o, args, cfg):
        o.submit_next_level(adds[1], add_args(args.tensor(0), args.tensor(0), inner_out[1]), worker=0)
        o.submit_sub(good, ta((inner_out[1], IN)))

    h_fail = l4.register(l3_failing)
    h_cons = l4.register(l3_consumer)
    assert l4.add_worker(kids[0]) == 0
    assert l4.add_worker(kids[1]) == 1
    l4.init()
    return l4, h_fail, h_cons, x, inner_out


def test_poison_crosses_levels_l4_to_l3() -> None:
    l4, h_fail, h_cons, x, inner_out = _l4_with_two_l3()
    y = vec()

    def orch(o, args, cfg):
        o.submit_next_level(h_fail, ta((x, IN), (y, OUT)), worker=0)
        o.submit_next_level(h_cons, ta((y, IN)), worker=1)  # RAW on the failing L3 task

    with pytest.raises(TaskFailure) as info:
        l4.run(orch)
    rec = l4.take_record()
    top = [t for t in rec.tasks.values() if t.node == "l4"]
    assert len(top) == 2
    failed, poisoned = top
    assert failed.task_id in str(info.value)
    assert (failed.outcome, failed.error_class) == ("FAILED", "TASK_FAILURE")
    assert poisoned.outcome == "NOT_RUN"
    assert poisoned.producers == (failed.task_id,)
    inner0 = [t for t in rec.tasks.values() if t.node == "l4.w0"]
    assert [(t.kind, t.outcome) for t in inner0] == [("single/next_level", "COMPLETED"), ("single/sub", "FAILED")]
    assert inner0[1].error_class == "TASK_FAILURE"
    # The poisoned L4 task never reached its L3 child: no inner task of w1 exists, no run began there.
    assert not [t for t in rec.tasks.values() if t.node == "l4.w1"]
    assert not [e for e in l4.simulation.trace.ordered() if e.scope.startswith("l4.w1")]
    np.testing.assert_array_equal(inner_out[1], vec())
    l4.close()


def test_l4_keeps_running_independent_l3_tasks_after_a_failure() -> None:
    l4, h_fail, h_cons, x, inner_out = _l4_with_two_l3()

    def orch(o, args, cfg):
        o.submit_next_level(h_fail, ta((x, IN)), worker=0)
        o.submit_next_level(h_cons, ta((x, IN)), worker=1)  # no edge on the failing task

    with pytest.raises(TaskFailure):
        l4.run(orch)
    rec = l4.take_record()
    top = [t for t in rec.tasks.values() if t.node == "l4"]
    assert [t.outcome for t in top] == ["FAILED", "COMPLETED"]
    assert [t.outcome for t in rec.tasks.values() if t.node == "l4.w1"] == ["COMPLETED", "COMPLETED"]
    np.testing.assert_array_equal(inner_out[1], vec(fill=2.0))
    # And the whole tree is usable for a next run.
    l4.run(lambda o, a, c: o.submit_next_level(h_cons, ta((x, IN)), worker=1))
    assert set(outcomes(l4.take_record()).values()) == {"COMPLETED"}
    l4.close()


def test_inner_orchestration_error_fails_the_l4_task_with_its_class() -> None:
    l4 = Worker(level=4, sim=SimConfig(seed=4, data_mode="timing"))
    l3 = Worker(level=3, num_sub_workers=1)
    h_ok = l3.register(ok)

    def raises(o, args, cfg):
        o.submit_sub(h_ok, TaskArgs())
        raise Boom("inner orchestration broke")

    def bad_target(o, args, cfg):
        o.submit_sub(h_ok, TaskArgs())
        o.submit_next_level(h_ok, TaskArgs(), worker=3)  # this L3 has no NEXT_LEVEL worker 3

    h_raises, h_bad = l4.register(raises), l4.register(bad_target)
    l4.add_worker(l3)
    l4.init()
    for handle, cls, text in ((h_raises, "TASK_FAILURE", "inner orchestration broke"),
                              (h_bad, "UNKNOWN_WORKER", "worker=3")):
        with pytest.raises(TaskFailure) as info:
            l4.run(lambda o, a, c, h=handle: o.submit_next_level(h, TaskArgs(), worker=0))
        rec = l4.take_record()
        (top,) = [t for t in rec.tasks.values() if t.node == "l4"]
        assert top.task_id in str(info.value)
        assert (top.outcome, top.error_class) == ("FAILED", cls)
        assert text in top.message
        # The inner task submitted before the error had already started, so it finished.
        assert [t.outcome for t in rec.tasks.values() if t.node == "l4.w0"] == ["COMPLETED"]
    l4.close()


# ---------------------------------------------------------------------------------------------- failing orchestration


def test_orchestration_that_raises_midway(l3: L3) -> None:
    a, b, out = vec(fill=1.0), vec(fill=2.0), vec()
    err = Boom("orchestration gave up")

    def orch(o, args, cfg):
        o.submit_next_level(l3.add, add_args(a, b, out), worker=0)  # dispatched at once
        o.submit_next_level(l3.add, add_args(a, b, out), worker=0)  # queued behind it: unstarted
        o.submit_sub(l3.ok, ta((out, IN)))  # PENDING on the first two: unstarted
        raise err

    with pytest.raises(Boom) as info:
        l3.w.run(orch)
    assert info.value is err
    rec = l3.w.take_record()
    assert list(outcomes(rec).values()) == ["COMPLETED", "NOT_RUN", "NOT_RUN"]
    np.testing.assert_array_equal(out, vec(fill=3.0))  # the running task finished its work
    l3.healthy_run()


def test_orchestration_that_raises_before_submitting(l3: L3) -> None:
    def orch(o, args, cfg):
        raise KeyError("nothing submitted")

    with pytest.raises(KeyError):
        l3.w.run(orch)
    assert l3.w.take_record().tasks == {}
    l3.healthy_run()


def test_orchestration_leaving_a_scope_open_fails_the_run(l3: L3) -> None:
    def orch(o, args, cfg):
        o.scope_begin()
        o.submit_sub(l3.ok, TaskArgs())

    with pytest.raises(InvalidState):
        l3.w.run(orch)
    l3.w.take_record()
    l3.healthy_run()


# ---------------------------------------------------------------------------------------------- bad input


def test_unknown_worker_id_names_the_id(l3: L3) -> None:
    def orch(o, args, cfg):
        o.submit_next_level(l3.add, add_args(vec(), vec(), vec()), worker=7)

    with pytest.raises(UnknownWorker) as info:
        l3.w.run(orch)
    assert "7" in str(info.value)
    assert l3.w.take_record().tasks == {}
    l3.healthy_run()


@pytest.mark.parametrize("bogus", [[1.0, 2.0], "tensor", 3, None])
def test_non_tensor_in_add_tensor_names_its_type(bogus: object) -> None:
    args = TaskArgs()
    args.add_tensor(vec())
    with pytest.raises(InvalidArgument) as info:
        args.add_tensor(bogus)
    assert type(bogus).__name__ in str(info.value)
    assert "1" in str(info.value)  # the argument index
    assert args.tensor_count() == 1  # the rejected tensor was not appended


def test_bad_tag_is_invalid_argument() -> None:
    args = TaskArgs()
    with pytest.raises(InvalidArgument):
        args.add_tensor(vec(), 9)  # type: ignore[arg-type]
    assert args.tensor_count() == 0


@pytest.mark.parametrize(("a", "b", "out", "param"), [
    (vec(8), vec(8), vec(4), "out"),  # wrong shape
    (vec(8), np.zeros(8, np.int32), vec(8), "b"),  # wrong dtype
])
def test_kernel_given_wrong_shape_or_dtype_names_the_param(l3: L3, a, b, out, param: str) -> None:
    def orch(o, args, cfg):
        o.submit_next_level(l3.add, add_args(a, b, out), worker=0)

    with pytest.raises(KernelArgumentError) as info:
        l3.w.run(orch)
    assert repr(param) in str(info.value) or f" {param} " in str(info.value)
    assert l3.w.take_record().tasks == {}
    l3.healthy_run()


def test_kernel_given_too_few_tensors_is_kernel_argument_error(l3: L3) -> None:
    def orch(o, args, cfg):
        o.submit_next_level(l3.add, ta((vec(), IN)), worker=0)

    with pytest.raises(KernelArgumentError) as info:
        l3.w.run(orch)
    assert "add" in str(info.value)
    l3.healthy_run()


def test_run_before_init_is_invalid_state() -> None:
    w = Worker(level=3, num_sub_workers=1)
    with pytest.raises(InvalidState):
        w.run(lambda o, a, c: None)
    w.init()
    w.run(lambda o, a, c: None)  # still fine once initialised
    w.close()


def test_second_close_is_a_no_op_and_the_worker_stays_closed() -> None:
    # Upstream python/simpler/worker.py Worker.close: "publicly terminal and retryable"; a call
    # after a finished close replays its result. Catalog LVL-021.
    w = Worker(level=3, num_sub_workers=1, sim=SimConfig(seed=1))
    w.init()
    w.close()
    events = len(w._sim.trace)
    w.close()
    w.close()
    assert len(w._sim.trace) == events  # nothing torn down or traced twice
    with pytest.raises(InvalidState):
        w.run(lambda o, a, c: None)
    with pytest.raises(InvalidState):
        w.register(lambda a: None)


def test_double_init_is_invalid_state(l3: L3) -> None:
    with pytest.raises(InvalidState):
        l3.w.init()
    l3.healthy_run()


def test_tensor_spec_in_functional_mode_is_invalid_argument(l3: L3) -> None:
    spec = TensorSpec((8,), "float32", name="weights")

    def orch(o, args, cfg):
        o.submit_sub(l3.ok, ta((spec, IN)))

    with pytest.raises(InvalidArgument) as info:
        l3.w.run(orch)
    assert "weights" in str(info.value)
    assert "timing" in str(info.value)  # says what to do
    assert l3.w.take_record().tasks == {}
    l3.healthy_run()


@pytest.mark.parametrize("field", ["enable_pmu", "enable_dump_args", "enable_dep_gen", "enable_scope_stats"])
def test_diagnostic_without_output_prefix_is_rejected_at_run(l3: L3, field: str) -> None:
    bad = CallConfig(**{field: 1})
    with pytest.raises(InvalidArgument) as info:
        l3.w.run(lambda o, a, c: None, None, bad)
    assert field in str(info.value)
    assert "output_prefix" in str(info.value)
    l3.w.run(lambda o, a, c: None, None, CallConfig(**{field: 1}, output_prefix="diag"))
    l3.healthy_run()


def test_bad_call_config_at_submit_leaves_no_task(l3: L3) -> None:
    a, b, out = vec(), vec(), vec()

    def orch(o, args, cfg):
        o.submit_next_level(l3.add, add_args(a, b, out), CallConfig(enable_pmu=1), worker=0)

    with pytest.raises(InvalidArgument) as info:
        l3.w.run(orch)
    assert "enable_pmu" in str(info.value)
    assert l3.w.take_record().tasks == {}
    l3.healthy_run()


@pytest.mark.parametrize("cfg", [CallConfig(runtime_env={"bogus": 1}), CallConfig(enable_chip_swimlane=5),
                                 CallConfig(aicpu_thread_num=-1), "not a config"])
def test_other_bad_call_configs_are_rejected(l3: L3, cfg) -> None:
    with pytest.raises(InvalidArgument):
        l3.w.run(lambda o, a, c: None, None, cfg)
    l3.healthy_run()
