"""Level-aware composition of the simulator's ``Worker`` (which children each level accepts).

Spec: seed 000 "Level rules" (L3 holds CHIP + SUB; L4 and above hold DIST — the Worker one
level down — + SUB; wrong wiring is rejected at ``add_worker`` time, ``accepts_worker_type``
answers the capability query); upstream ``docs/hierarchical-level-runtime.md`` §1 "Level
Model" (L2 chip … L6 network3; L5 holds L4s, L6 holds L5s) and §4 "Recursive Composition"
(``add_worker`` takes an un-initialised child before ``init()``; the root's ``init()`` brings
the tree up; each level runs the orchestration function it was handed as its own run).
The lifecycle checks follow upstream ``python/simpler/worker.py`` ``Worker.add_worker``
(self → ValueError, wrong lifecycle/attachment → RuntimeError).
"""

from __future__ import annotations

import itertools
import re

import pytest

from reference import get_kernel
from sim import SimConfig, TaskArgs, TensorArgType, TensorSpec, Worker, WorkerType
from sim.errors import InvalidArgument, InvalidState, InvalidWorkerType, UnknownWorker

LEVELS = (2, 3, 4, 5, 6)
TIMING = SimConfig(seed=0, data_mode="timing")

# The level table, written out by hand from the seed's rules (never derived from sim.levels).
EXPECTED_ACCEPTS = {
    2: {WorkerType.CHIP: False, WorkerType.SUB: False, WorkerType.DIST: False},
    3: {WorkerType.CHIP: True, WorkerType.SUB: True, WorkerType.DIST: False},
    4: {WorkerType.CHIP: False, WorkerType.SUB: True, WorkerType.DIST: True},
    5: {WorkerType.CHIP: False, WorkerType.SUB: True, WorkerType.DIST: True},
    6: {WorkerType.CHIP: False, WorkerType.SUB: True, WorkerType.DIST: True},
}
# (parent, child) pairs add_worker accepts: a chip under L3, the level just below under L4+.
VALID_PAIRS = {(3, 2), (4, 3), (5, 4), (6, 5)}
WRONG_PAIRS = [(p, c) for p in LEVELS for c in LEVELS if (p, c) not in VALID_PAIRS]


def _names_level(message: str, level: int) -> bool:
    return re.search(rf"\b(L|level[- ]?){level}\b", message, re.IGNORECASE) is not None


# ---------------------------------------------------------------------------------------------- capability query


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("worker_type", [WorkerType.CHIP, WorkerType.SUB, WorkerType.DIST])
def test_accepts_worker_type_matches_the_seed_level_table(level: int, worker_type: WorkerType) -> None:
    w = Worker(level=level)
    assert w.accepts_worker_type(worker_type) is EXPECTED_ACCEPTS[level][worker_type]
    assert w.level == level


@pytest.mark.parametrize("bogus", ["CHIP", 0, None])
def test_accepts_worker_type_rejects_a_non_worker_type(bogus: object) -> None:
    with pytest.raises(InvalidArgument):
        Worker(level=3).accepts_worker_type(bogus)  # type: ignore[arg-type]


def test_level_words_follow_the_level_model() -> None:
    words = {lvl: Worker(level=lvl).level_word for lvl in LEVELS}
    assert words == {2: "chip", 3: "node", 4: "network1", 5: "network2", 6: "network3"}


# ---------------------------------------------------------------------------------------------- wrong wiring


@pytest.mark.parametrize(("parent_level", "child_level"), WRONG_PAIRS)
def test_add_worker_of_a_wrong_level_raises_naming_both_levels(parent_level: int, child_level: int) -> None:
    parent = Worker(level=parent_level)
    child = Worker(level=child_level)
    with pytest.raises(InvalidWorkerType) as info:
        parent.add_worker(child)
    msg = str(info.value)
    assert _names_level(msg, parent_level), msg
    assert _names_level(msg, child_level), msg
    assert info.value.error_class.value == "INVALID_WORKER_TYPE"


@pytest.mark.parametrize(("parent_level", "child_level"), WRONG_PAIRS)
def test_rejected_add_worker_leaves_parent_and_child_unchanged(parent_level: int, child_level: int) -> None:
    parent = Worker(level=parent_level)
    child = Worker(level=child_level)
    with pytest.raises(InvalidWorkerType):
        parent.add_worker(child)
    if parent_level >= 3:
        # The parent took nothing: its first valid child still gets id 0, the next one id 1.
        assert parent.add_worker(Worker(level=parent_level - 1)) == 0
        assert parent.add_worker(Worker(level=parent_level - 1)) == 1
    else:
        # An L2 parent holds nothing before or after; it still comes up on its own.
        with pytest.raises(InvalidWorkerType):
            parent.add_worker(Worker(level=child_level))
        parent.init()
        parent.close()
    # The rejected child was not attached: it can still be a root, or join a parent that fits.
    if child_level < 6:
        assert Worker(level=child_level + 1).add_worker(child) == 0
    else:
        child.init()
        child.close()


def test_rejected_add_worker_after_valid_ones_keeps_the_next_id() -> None:
    parent = Worker(level=3, device_ids=[0, 1], num_sub_workers=1)
    with pytest.raises(InvalidWorkerType):
        parent.add_worker(Worker(level=3))
    # Chips from device_ids hold ids 0 and 1; the next chip child gets id 2.
    assert parent.add_worker(Worker(level=2)) == 2
    with pytest.raises(InvalidWorkerType):
        parent.add_worker(Worker(level=4))
    assert parent.add_worker(Worker(level=2)) == 3


def test_rejected_add_worker_adds_no_worker_id_to_the_running_topology() -> None:
    """After a rejected child, the frozen topology has exactly the valid children."""
    l4 = Worker(level=4, sim=TIMING)
    l3 = Worker(level=3, num_sub_workers=1)
    h_sub = l3.register(lambda args: None)

    def l3_orch(o, args, cfg):
        o.submit_sub(h_sub, TaskArgs())

    h = l4.register(l3_orch)
    with pytest.raises(InvalidWorkerType):
        l4.add_worker(Worker(level=2))
    assert l4.add_worker(l3) == 0
    l4.init()
    seen: list[type] = []

    def orch(o, args, cfg):
        o.submit_next_level(h, TaskArgs(), worker=0)
        try:
            o.submit_next_level(h, TaskArgs(), worker=1)
        except UnknownWorker:
            seen.append(UnknownWorker)

    l4.run(orch)
    assert seen == [UnknownWorker]
    rec = l4.take_record()
    assert [t.node for t in rec.tasks.values()] == ["l4", "l4.w0"]
    assert all(t.outcome == "COMPLETED" for t in rec.tasks.values())
    l4.close()


# ---------------------------------------------------------------------------------------------- bad levels


@pytest.mark.parametrize("level", [0, 1, 7, -3, True, False, "3", 3.0, None])
def test_bad_level_is_rejected(level: object) -> None:
    with pytest.raises(InvalidArgument) as info:
        Worker(level=level)  # type: ignore[arg-type]
    assert repr(level) in str(info.value) or str(level) in str(info.value)


# ---------------------------------------------------------------------------------------------- lifecycle misuse


def test_add_worker_after_init_is_invalid_state() -> None:
    l4 = Worker(level=4)
    l4.add_worker(Worker(level=3))
    l4.init()
    with pytest.raises(InvalidState):
        l4.add_worker(Worker(level=3))
    l4.close()
    with pytest.raises(InvalidState):
        l4.add_worker(Worker(level=3))


@pytest.mark.parametrize("level", LEVELS)
def test_add_worker_of_self_is_invalid_argument(level: int) -> None:
    w = Worker(level=level)
    with pytest.raises(InvalidArgument):
        w.add_worker(w)
    # Nothing was attached: the Worker still comes up as a root.
    w.init()
    w.close()


def test_add_worker_of_a_non_worker_is_invalid_argument() -> None:
    with pytest.raises(InvalidArgument):
        Worker(level=4).add_worker(object())  # type: ignore[arg-type]


def test_add_worker_of_a_child_attached_elsewhere_is_invalid_state() -> None:
    child = Worker(level=3)
    first, second = Worker(level=4), Worker(level=4)
    assert first.add_worker(child) == 0
    with pytest.raises(InvalidState):
        second.add_worker(child)
    with pytest.raises(InvalidState):
        first.add_worker(child)  # twice under the same parent is no better
    # The second parent took nothing.
    assert second.add_worker(Worker(level=3)) == 0


def test_add_worker_on_an_attached_parent_is_invalid_state() -> None:
    """Composition is bottom-up: once a Worker is somebody's child its own children are frozen."""
    l4 = Worker(level=4)
    l5 = Worker(level=5)
    l5.add_worker(l4)
    with pytest.raises(InvalidState):
        l4.add_worker(Worker(level=3))


def test_add_worker_of_an_initialised_child_is_invalid_state() -> None:
    child = Worker(level=3, num_sub_workers=1)
    child.init()
    parent = Worker(level=4)
    with pytest.raises(InvalidState):
        parent.add_worker(child)
    assert parent.add_worker(Worker(level=3)) == 0
    child.close()
    with pytest.raises(InvalidState):
        Worker(level=4).add_worker(child)  # a closed child is no better


def test_attached_child_cannot_be_initialised_run_or_closed_on_its_own() -> None:
    l4 = Worker(level=4)
    l3 = Worker(level=3, num_sub_workers=1)
    l4.add_worker(l3)
    with pytest.raises(InvalidState):
        l3.init()
    l4.init()
    with pytest.raises(InvalidState):
        l3.run(lambda o, a, c: None)
    with pytest.raises(InvalidState):
        l3.close()
    l4.close()


# ---------------------------------------------------------------------------------------------- L5 / L6 compose like L4


def _chain(top: int):
    """Worker(level=top) -> ... -> L3 -> one chip; each orch submits one task to worker 0."""
    add = get_kernel("add")
    spec = [TensorSpec((64,), "float32") for _ in range(3)]
    l3 = Worker(level=3, device_ids=[0])
    h_add = l3.register(add)

    def l3_orch(o, args, cfg):
        ta = TaskArgs()
        ta.add_tensor(spec[0])
        ta.add_tensor(spec[1])
        ta.add_tensor(spec[2], TensorArgType.OUTPUT)
        o.submit_next_level(h_add, ta, worker=0)

    below, below_fn = l3, l3_orch
    for level in range(4, top + 1):
        w = Worker(level=level, sim=TIMING) if level == top else Worker(level=level)
        h = w.register(below_fn)
        assert w.add_worker(below) == 0

        def fn(o, args, cfg, _h=h):
            o.submit_next_level(_h, TaskArgs(), worker=0)

        below, below_fn = w, fn
    return below, below_fn


@pytest.mark.parametrize("top", [4, 5, 6])
def test_levels_compose_recursively_down_to_a_chip(top: int) -> None:
    root, orch = _chain(top)
    root.init()
    root.run(orch)
    rec = root.take_record()
    tasks = list(rec.tasks.values())
    # One task per level from the top down to L3, each one level deeper in the scope tree.
    assert [t.level for t in tasks] == list(range(top, 2, -1))
    assert all(t.outcome == "COMPLETED" for t in tasks)
    assert all(t.start is not None and t.end is not None for t in tasks)
    # The leaf task ran on a chip of the L3, and each level's task ran on its one child.
    assert tasks[-1].workers == (tasks[-1].node + ".chip0",)
    for outer, inner in itertools.pairwise(tasks):
        assert outer.workers == (inner.node,)
        # A parent's task spans its child's whole run.
        assert outer.start <= inner.start
        assert inner.end <= outer.end
    root.close()


def test_l6_chain_runs_twice_and_closes_once() -> None:
    root, orch = _chain(6)
    root.init()
    root.run(orch)
    first = root.take_record()
    root.run(orch)
    second = root.take_record()
    assert len(first.tasks) == len(second.tasks) == 4
    assert set(first.tasks).isdisjoint(second.tasks)  # task ids name their run
    assert all(t.outcome == "COMPLETED" for t in second.tasks.values())
    root.close()
    with pytest.raises(InvalidState):
        root.run(orch)
