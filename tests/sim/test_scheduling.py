"""Directed NEXT_LEVEL placement, group launch and reservation, and free SUB scheduling.

Spec: upstream ``docs/directed-next-level-scheduling.md`` — "Placement contract" (one exact,
stable, non-negative integer worker id per single; one distinct id per group member, as many
as members; booleans/floats/strings rejected), "Queue and dispatch model" (a FIFO per worker,
one group FIFO whose head reserves its whole target set against new singles, singles on other
workers continue) and "Invariants"; ``docs/scheduler.md`` §3 "Directed NEXT_LEVEL dispatch"
("Single tasks": no idle-worker search, a busy worker A does not block worker B; "Group tasks":
all-or-nothing launch, head reservation), §4 "SUB dispatch" (any idle SUB worker; a group needs
that many distinct idle SUB workers, else the drain pass stops) and §6 "Completion and group
aggregation" (one aggregate completion per group); ``docs/orchestrator.md`` §3
"``submit_next_level_group`` — N workers, 1 DAG node".

Timing-only runs: chip tasks run the reference ``add`` kernel on ``TensorSpec`` operands; a
larger operand makes a longer task (the chip roofline is memory bound for ``add``).
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from reference import get_kernel
from sim import SimConfig, TaskArgs, TensorArgType, TensorSpec, Worker, modeled_duration
from sim.errors import InvalidArgument, UnknownWorker

SHORT_N = 1024
LONG_N = 1_500_000_000  # 6 GB operands: ~11 ms of memory time, longer than two short tasks


@modeled_duration(500.0)
def sub_slow(args) -> None:
    return None


@modeled_duration(5.0)
def sub_fast(args) -> None:
    return None


def chip_args(n: int = SHORT_N, out: TensorSpec | None = None, inp: TensorSpec | None = None) -> TaskArgs:
    ta = TaskArgs()
    ta.add_tensor(inp if inp is not None else TensorSpec((n,), "float32"))
    ta.add_tensor(TensorSpec((n,), "float32"))
    ta.add_tensor(out if out is not None else TensorSpec((n,), "float32"), TensorArgType.OUTPUT)
    return ta


class Node:
    def __init__(self, chips: int = 3, subs: int = 3) -> None:
        self.w = Worker(level=3, device_ids=list(range(chips)), num_sub_workers=subs,
                        sim=SimConfig(seed=5, data_mode="timing"))
        self.add = self.w.register(get_kernel("add"))
        self.slow = self.w.register(sub_slow) if subs else None
        self.fast = self.w.register(sub_fast) if subs else None
        self.w.init()

    def run(self, orch) -> list:
        self.w.run(orch)
        rec = self.w.take_record()
        assert all(t.outcome == "COMPLETED" for t in rec.tasks.values())
        assert rec.order_violations() == []
        return list(rec.tasks.values())

    def lane_events(self, kind: str, task_id: str) -> dict[str, float]:
        return {e.scope: e.t for e in self.w.simulation.trace.ordered()
                if e.kind.value == kind and e.subject == task_id}


@pytest.fixture
def node():
    n = Node()
    yield n
    n.w.close()


# ---------------------------------------------------------------------------------------------- singles


def test_singles_on_one_worker_run_in_submit_order_on_that_worker_only(node: Node) -> None:
    sizes = [LONG_N, SHORT_N, LONG_N // 2, SHORT_N]

    def orch(o, a, c):
        for n in sizes:
            o.submit_next_level(node.add, chip_args(n), worker=0)

    tasks = node.run(orch)
    assert [t.workers for t in tasks] == [("l3.chip0",)] * len(sizes)
    for prev, nxt in itertools.pairwise(tasks):
        assert nxt.start >= prev.end  # one at a time, in FIFO order, never overtaking


def test_a_busy_worker_does_not_block_another_worker(node: Node) -> None:
    def orch(o, a, c):
        o.submit_next_level(node.add, chip_args(LONG_N), worker=0)
        o.submit_next_level(node.add, chip_args(), worker=0)
        o.submit_next_level(node.add, chip_args(), worker=1)
        o.submit_next_level(node.add, chip_args(), worker=1)

    a0, b0, a1, b1 = node.run(orch)
    assert (a1.workers, b1.workers) == (("l3.chip1",), ("l3.chip1",))
    assert a1.start < a0.end  # worker 1 started while worker 0 was busy
    assert b1.end < a0.end  # and drained its whole queue meanwhile
    assert b0.start >= a0.end


def test_single_never_moves_to_an_idle_worker(node: Node) -> None:
    """No idle-worker search: work queued on a busy worker stays there while others idle."""
    def orch(o, a, c):
        for _ in range(3):
            o.submit_next_level(node.add, chip_args(), worker=2)

    tasks = node.run(orch)
    assert {t.workers for t in tasks} == {("l3.chip2",)}
    assert not [e for e in node.w.simulation.trace.ordered() if e.scope in ("l3.chip0", "l3.chip1")]


def test_dependency_released_single_goes_to_its_own_target(node: Node) -> None:
    out = TensorSpec((SHORT_N,), "float32")

    def orch(o, a, c):
        o.submit_next_level(node.add, chip_args(out=out), worker=0)
        o.submit_next_level(node.add, chip_args(inp=out), worker=2)

    p, k = node.run(orch)
    assert k.producers == (p.task_id,)
    assert k.workers == ("l3.chip2",)


def executions(node: Node) -> dict[str, list[tuple[float, float, str]]]:
    """Per worker lane, the (start, end, task) of every execution, from the trace."""
    started: dict[tuple[str, str], float] = {}
    out: dict[str, list[tuple[float, float, str]]] = {}
    for e in node.w.simulation.trace.ordered():
        if e.kind.value == "start":
            started[(e.scope, e.subject)] = e.t
        elif e.kind.value == "end":
            out.setdefault(e.scope, []).append((started.pop((e.scope, e.subject)), e.t, e.subject))
    return out


def overlapping(node: Node) -> list[tuple[str, str, str]]:
    bad = []
    for lane, spans in executions(node).items():
        spans.sort()
        bad += [(lane, a, b) for (_s, e, a), (s1, _e, b) in itertools.pairwise(spans) if e > s1]
    return bad


def test_executions_on_a_worker_do_not_overlap_with_independent_work(node: Node) -> None:
    def orch(o, a, c):
        for _ in range(3):
            o.submit_next_level(node.add, chip_args(), worker=0)
        o.submit_next_level_group(node.add, [chip_args(), chip_args()], workers=[0, 1])

    node.run(orch)
    assert len(executions(node)["l3.chip0"]) == 4
    assert overlapping(node) == []


@pytest.mark.parametrize("shape", ["two_consumers", "queued_then_consumer"])
def test_completion_releasing_work_for_the_same_worker_dispatches_one_task(node: Node, shape: str) -> None:
    """``docs/scheduler.md`` §3: dispatch only to an idle worker; FIFO order on that worker."""
    x = TensorSpec((SHORT_N,), "float32")

    def orch(o, a, c):
        o.submit_next_level(node.add, chip_args(out=x), worker=0)
        if shape == "two_consumers":
            o.submit_next_level(node.add, chip_args(inp=x), worker=0)
        else:
            o.submit_next_level(node.add, chip_args(), worker=0)  # independent, queued behind the producer
        o.submit_next_level(node.add, chip_args(inp=x), worker=0)

    p, second, third = node.run(orch)
    assert second.start >= p.end and third.start >= p.end
    assert third.start >= second.end  # one at a time on worker 0, in FIFO order
    assert overlapping(node) == []


# ---------------------------------------------------------------------------------------------- groups


def test_group_launches_all_members_together_once_every_target_is_idle(node: Node) -> None:
    def orch(o, a, c):
        o.submit_next_level(node.add, chip_args(LONG_N), worker=0)
        o.submit_next_level_group(node.add, [chip_args(), chip_args()], workers=[1, 0])

    busy, g = node.run(orch)
    starts = node.lane_events("start", g.task_id)
    assert set(starts) == {"l3.chip0", "l3.chip1"}
    assert g.workers == ("l3.chip1", "l3.chip0")  # member i on workers[i]
    # Member 0's target (worker 1) was idle all along, but nothing launched before worker 0 freed.
    assert min(starts.values()) >= busy.end
    assert max(starts.values()) - min(starts.values()) < 10.0  # launched as one set


def test_group_completes_as_one_dag_node(node: Node) -> None:
    out0 = TensorSpec((SHORT_N,), "float32")

    def orch(o, a, c):
        o.submit_next_level_group(node.add, [chip_args(out=out0), chip_args(LONG_N)], workers=[0, 1])
        o.submit_next_level(node.add, chip_args(inp=out0), worker=0)

    g, k = node.run(orch)
    assert g.kind == "group/next_level"
    ends = node.lane_events("end", g.task_id)
    assert ends["l3.chip0"] < ends["l3.chip1"]  # the short member finished first...
    assert g.end == max(ends.values())
    assert k.producers == (g.task_id,)
    assert k.start >= ends["l3.chip1"]  # ...but the consumer of its output waited for the whole group
    assert sum(1 for e in node.w.simulation.trace.ordered()
               if e.kind.value == "complete" and e.subject == g.task_id) == 1


def test_blocked_group_head_reserves_its_targets_against_later_singles(node: Node) -> None:
    def orch(o, a, c):
        o.submit_next_level(node.add, chip_args(LONG_N), worker=0)  # keeps worker 0 busy
        o.submit_next_level_group(node.add, [chip_args(), chip_args()], workers=[0, 1])
        o.submit_next_level(node.add, chip_args(), worker=1)  # later single on a reserved, idle target
        o.submit_next_level(node.add, chip_args(), worker=2)  # later single on an unreserved worker

    busy, g, on_reserved, elsewhere = node.run(orch)
    assert g.start >= busy.end
    assert on_reserved.start >= g.start  # did not slip in ahead of the group on idle worker 1
    assert on_reserved.start >= g.end  # and then queued behind the group's member on worker 1
    assert elsewhere.start < busy.end  # singles on other workers continue normally


def test_only_the_group_fifo_head_reserves(node: Node) -> None:
    def orch(o, a, c):
        o.submit_next_level(node.add, chip_args(LONG_N), worker=0)
        o.submit_next_level_group(node.add, [chip_args(), chip_args()], workers=[0, 1])
        o.submit_next_level_group(node.add, [chip_args(), chip_args()], workers=[2, 1])
        o.submit_next_level(node.add, chip_args(), worker=2)  # worker 2 is a target of the 2nd group only

    busy, g1, g2, single2 = node.run(orch)
    assert single2.start < busy.end  # the second group, not at the head, reserved nothing
    assert g1.start >= busy.end
    assert g2.start >= g1.end  # groups launch in FIFO order (g2 shares worker 1 with g1)


def test_single_queued_before_the_group_keeps_its_place(node: Node) -> None:
    def orch(o, a, c):
        o.submit_next_level(node.add, chip_args(LONG_N), worker=0)
        o.submit_next_level(node.add, chip_args(LONG_N), worker=1)  # already running when the group arrives
        o.submit_next_level_group(node.add, [chip_args(), chip_args()], workers=[0, 1])

    b0, b1, g = node.run(orch)
    assert b1.start < b0.end
    assert g.start >= max(b0.end, b1.end)


# ---------------------------------------------------------------------------------------------- SUB


def test_sub_tasks_take_any_idle_sub_worker(node: Node) -> None:
    def orch(o, a, c):
        for _ in range(4):
            o.submit_sub(node.slow, TaskArgs())

    tasks = node.run(orch)
    first3, fourth = tasks[:3], tasks[3]
    assert sorted(t.workers[0] for t in first3) == ["l3.sub0", "l3.sub1", "l3.sub2"]
    assert max(t.start for t in first3) < min(t.end for t in first3)  # all three ran at once
    assert fourth.start >= min(t.end for t in first3)  # the fourth waited for a free SUB worker
    assert fourth.workers[0].startswith("l3.sub")


def test_sub_group_needs_n_distinct_idle_sub_workers(node: Node) -> None:
    def orch(o, a, c):
        o.submit_sub(node.slow, TaskArgs())
        o.submit_sub_group(node.fast, [TaskArgs(), TaskArgs(), TaskArgs()])
        o.submit_sub(node.fast, TaskArgs())  # behind the group in the one SUB FIFO

    busy, g, later = node.run(orch)
    assert g.kind == "group/sub"
    assert len(set(g.workers)) == 3
    # The group goes back to the queue; the single behind it takes an idle SUB worker at once.
    assert later.start < busy.end
    assert g.start >= max(busy.end, later.end)  # the group needs all three SUB workers idle together


def test_sub_group_larger_than_the_sub_pool_is_rejected(node: Node) -> None:
    def orch(o, a, c):
        with pytest.raises(InvalidArgument):
            o.submit_sub_group(node.fast, [TaskArgs()] * 4)
        with pytest.raises(InvalidArgument):
            o.submit_sub_group(node.fast, [])

    assert node.run(orch) == []


def test_submit_sub_without_sub_workers_is_rejected() -> None:
    n = Node(chips=1, subs=0)

    def orch(o, a, c):
        with pytest.raises(InvalidArgument):
            o.submit_sub(n.add, TaskArgs())
        o.submit_next_level(n.add, chip_args(), worker=0)

    assert len(n.run(orch)) == 1
    n.w.close()


# ---------------------------------------------------------------------------------------------- placement validation


@pytest.mark.parametrize(("workers", "n_args", "error"), [
    ([0, 0], 2, InvalidArgument),  # duplicate target
    ([0, 1, 2], 2, InvalidArgument),  # more workers than members
    ([0], 2, InvalidArgument),  # fewer workers than members
    ([0, 3], 2, UnknownWorker),  # no such worker
    ([0, -1], 2, InvalidArgument),
    ([0, True], 2, InvalidArgument),
    ([0, 1.0], 2, InvalidArgument),
    ([0, "1"], 2, InvalidArgument),
    ("01", 2, InvalidArgument),
    (0, 1, InvalidArgument),
    ([], 0, InvalidArgument),
])
def test_bad_group_placement_is_rejected_and_leaves_no_task(node: Node, workers, n_args, error) -> None:
    def orch(o, a, c):
        with pytest.raises(error):
            o.submit_next_level_group(node.add, [chip_args() for _ in range(n_args)], workers=workers)
        o.submit_next_level_group(node.add, [chip_args(), chip_args()], workers=[0, 1])

    (g,) = node.run(orch)
    assert g.workers == ("l3.chip0", "l3.chip1")


@pytest.mark.parametrize(("worker", "error"), [
    (3, UnknownWorker), (-1, InvalidArgument), (True, InvalidArgument), (False, InvalidArgument),
    (0.0, InvalidArgument), ("0", InvalidArgument), (None, InvalidArgument),
])
def test_bad_single_placement_is_rejected_and_leaves_no_task(node: Node, worker, error) -> None:
    def orch(o, a, c):
        with pytest.raises(error):
            o.submit_next_level(node.add, chip_args(), worker=worker)
        o.submit_next_level(node.add, chip_args(), worker=0)

    (t,) = node.run(orch)
    assert t.workers == ("l3.chip0",)


def test_numpy_integer_worker_id_is_an_integer(node: Node) -> None:
    def orch(o, a, c):
        o.submit_next_level(node.add, chip_args(), worker=np.int64(1))

    (t,) = node.run(orch)
    assert t.workers == ("l3.chip1",)


def test_worker_id_is_required(node: Node) -> None:
    def orch(o, a, c):
        with pytest.raises(TypeError):
            o.submit_next_level(node.add, chip_args())  # type: ignore[call-arg]

    assert node.run(orch) == []
