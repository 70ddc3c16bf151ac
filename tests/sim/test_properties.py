"""Properties of the simulator on generated DAGs and topologies, checked against a test-side oracle.

Random DAGs (tags among INPUT / OUTPUT / INOUT / OUTPUT_EXISTING / NO_DEP over a small tensor
pool; chip singles and groups, SUB singles and groups) run on random topologies (an L3 with 1–4
chips and 0–3 SUB workers, sometimes under an L4). The expected dependency edges come from a
model TensorMap written here from the spec, never from the simulator.

Spec: upstream ``docs/orchestrator.md`` §2 "Step 3 — tag walk" and §7 "TensorMap" →
"Semantics" (which tags look up and which insert; producers deduplicated), §8 "Task State
Machine" (every task ends terminal); ``docs/scheduler.md`` §5 "Dependency release and PENDING
updates" (a consumer runs only after its producers complete; a failed producer poisons its
not-yet-running consumers) and §6 "Completion and group aggregation";
``docs/directed-next-level-scheduling.md`` "Placement contract" (member i on ``workers[i]``)
and "Invariants"; ``docs/hierarchical-level-runtime.md`` §4 "Recursive Composition" (an L4
task spans its L3 child's whole run).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from reference import get_kernel
from sim import SimConfig, TaskArgs, TensorArgType, TensorSpec, Worker, modeled_duration
from sim.errors import TaskFailure

IN, OUT, INOUT = TensorArgType.INPUT, TensorArgType.OUTPUT, TensorArgType.INOUT
OUT_EX, NO_DEP = TensorArgType.OUTPUT_EXISTING, TensorArgType.NO_DEP
TAGS = [IN, OUT, INOUT, OUT_EX, NO_DEP]
LOOKUP = {IN, INOUT}
INSERT = {OUT, INOUT, OUT_EX}
POOL = 5
N = 16


@modeled_duration(5.0)
def sub_short(args) -> None:
    return None


@modeled_duration(60.0)
def sub_mid(args) -> None:
    return None


@modeled_duration(400.0)
def sub_long(args) -> None:
    return None


@modeled_duration(30.0)
def sub_boom(args) -> None:
    raise RuntimeError("generated failure")


SUBS = (sub_short, sub_mid, sub_long)


# ---------------------------------------------------------------------------------------------- scenarios


@dataclass
class Spec:
    kind: str  # "chip" or "sub"
    members: list[list[tuple[int, TensorArgType]]]  # per member: (pool index, tag)
    targets: tuple[int, ...] = ()  # chip: one worker id per member
    callable_index: int = 0  # sub: which SUB callable


@dataclass
class Scenario:
    chips: int
    subs: int
    nested: bool
    children: int
    tasks: list[Spec] = field(default_factory=list)
    fail: int | None = None  # index of the failing SUB task


@st.composite
def member_tensors(draw, count: int, inserted: set[int]) -> list[tuple[int, TensorArgType]]:
    """``count`` (tensor, tag) pairs; a tensor this task already writes is not looked up again.

    Looking up a key the same task inserted earlier would make the task its own producer — a
    degenerate input upstream shares, kept out of the generated DAGs. Within one member, a tensor
    named with a write is named once: an overlapping write is rejected at submit
    (``docs/buffer-abi.md``, "No overlapping writes within one task"), so a clash picks the lowest
    tensor this member has not named yet.
    """
    out: list[tuple[int, TensorArgType]] = []
    for _ in range(count):
        tensor = draw(st.integers(0, POOL - 1))
        tag = draw(st.sampled_from(TAGS))
        named = {t: g for t, g in out}
        if tensor in named and (tag in INSERT or named[tensor] in INSERT or tensor in inserted):
            tensor = min(set(range(POOL)) - set(named))
        if tensor in inserted and tag in LOOKUP:
            tag = OUT
        if tag in INSERT:
            inserted.add(tensor)
        out.append((tensor, tag))
    return out


@st.composite
def scenarios(draw, with_failure: bool = False) -> Scenario:
    chips = draw(st.integers(1, 4))
    subs = draw(st.integers(1 if with_failure else 0, 3))
    nested = draw(st.booleans())
    sc = Scenario(chips, subs, nested, draw(st.integers(1, 2)) if nested else 1)
    for _ in range(draw(st.integers(1, 10))):
        kind = draw(st.sampled_from(["chip", "sub"])) if subs else "chip"
        inserted: set[int] = set()
        if kind == "chip":
            n = draw(st.integers(2, chips)) if chips >= 2 and draw(st.integers(0, 3)) == 0 else 1
            targets = tuple(draw(st.permutations(range(chips)))[:n])
            members = [draw(member_tensors(3, inserted)) for _ in range(n)]  # add: a, b, out
            sc.tasks.append(Spec("chip", members, targets))
        else:
            n = draw(st.integers(2, subs)) if subs >= 2 and draw(st.integers(0, 3)) == 0 else 1
            members = [draw(member_tensors(draw(st.integers(0, 3)), inserted)) for _ in range(n)]
            sc.tasks.append(Spec("sub", members, callable_index=draw(st.integers(0, len(SUBS) - 1))))
    if with_failure:
        sub_tasks = [i for i, t in enumerate(sc.tasks) if t.kind == "sub"]
        if not sub_tasks:
            sc.tasks.append(Spec("sub", [[]]))
            sub_tasks = [len(sc.tasks) - 1]
        sc.fail = draw(st.sampled_from(sub_tasks))
    return sc


# ---------------------------------------------------------------------------------------------- oracle


def expected_producers(sc: Scenario) -> list[list[int]]:
    """Model TensorMap: per task, the deduplicated last writers of its looked-up tensors."""
    last: dict[int, int] = {}
    out: list[list[int]] = []
    for i, spec in enumerate(sc.tasks):
        prods: list[int] = []
        for member in spec.members:
            for tensor, tag in member:
                if tag in LOOKUP and tensor in last and last[tensor] not in prods:
                    prods.append(last[tensor])
                if tag in INSERT:
                    last[tensor] = i
        out.append(prods)
    return out


def downstream(sc: Scenario, source: int) -> set[int]:
    prods = expected_producers(sc)
    bad = {source}
    for i in range(source + 1, len(sc.tasks)):
        if any(p in bad for p in prods[i]):
            bad.add(i)
    return bad - {source}


# ---------------------------------------------------------------------------------------------- building


def build(sc: Scenario, functional: bool):
    cfg = SimConfig(seed=11, data_mode="functional" if functional else "timing")
    kids = []
    orch_fns = []
    for child in range(sc.children):
        l3 = Worker(level=3, device_ids=list(range(sc.chips)), num_sub_workers=sc.subs,
                    **({} if sc.nested else {"sim": cfg}))
        add = l3.register(get_kernel("add"))
        subs = [l3.register(fn) for fn in SUBS] if sc.subs else []
        boom = l3.register(sub_boom) if sc.subs else None
        fails_here = sc.fail is not None and child == 0
        if functional:
            pool = [np.full(N, float(i), np.float32) for i in range(POOL)]
        else:
            pool = [TensorSpec((N,), "float32") for _ in range(POOL)]

        def l3_orch(o, args, cfg_, pool=pool, add=add, subs=subs, boom=boom, fails_here=fails_here):
            for i, spec in enumerate(sc.tasks):
                arg_list = []
                for member in spec.members:
                    ta = TaskArgs()
                    for tensor, tag in member:
                        ta.add_tensor(pool[tensor], tag)
                    arg_list.append(ta)
                if spec.kind == "chip":
                    if len(arg_list) == 1:
                        o.submit_next_level(add, arg_list[0], worker=spec.targets[0])
                    else:
                        o.submit_next_level_group(add, arg_list, workers=list(spec.targets))
                else:
                    h = boom if (fails_here and i == sc.fail) else subs[spec.callable_index]
                    if len(arg_list) == 1:
                        o.submit_sub(h, arg_list[0])
                    else:
                        o.submit_sub_group(h, arg_list)

        kids.append(l3)
        orch_fns.append(l3_orch)
    if not sc.nested:
        kids[0].init()
        return kids[0], orch_fns[0], ["l3"]
    l4 = Worker(level=4, sim=cfg)
    handles = [l4.register(fn) for fn in orch_fns]
    ids = [l4.add_worker(k) for k in kids]

    def l4_orch(o, args, cfg_):
        for h, wid in zip(handles, ids, strict=True):
            o.submit_next_level(h, TaskArgs(), worker=wid)

    l4.init()
    return l4, l4_orch, [f"l4.w{wid}" for wid in ids]


def tasks_of(rec, scope: str) -> list:
    return [t for t in rec.tasks.values() if t.node == scope]


def lane_intervals(root: Worker) -> dict[str, list[tuple[float, float, str]]]:
    """Per lane, the (start, end, task) of every execution, from the trace."""
    open_: dict[tuple[str, str], float] = {}
    out: dict[str, list[tuple[float, float, str]]] = {}
    for e in root.simulation.trace.ordered():
        if e.kind.value == "start":
            open_[(e.scope, e.subject)] = e.t
        elif e.kind.value == "end":
            out.setdefault(e.scope, []).append((open_.pop((e.scope, e.subject)), e.t, e.subject))
    assert not open_, f"executions that never ended: {sorted(open_)}"
    return out


def lane_overlaps(root: Worker) -> list[tuple[str, str, str]]:
    """(lane, earlier, later) for every pair of executions that overlap on one lane."""
    bad = []
    for lane, spans in lane_intervals(root).items():
        spans.sort()
        for (_s0, e0, a), (s1, _e1, b) in itertools.pairwise(spans):
            if e0 > s1:
                bad.append((lane, a, b))
    return bad


def check_common(sc: Scenario, root: Worker, rec, scopes: list[str]) -> None:
    prods = expected_producers(sc)
    for scope in scopes:
        got = tasks_of(rec, scope)
        if not got:  # a child whose L4 task never ran (not generated: L4 tasks are independent)
            continue
        assert len(got) == len(sc.tasks)
        ids = [t.task_id for t in got]
        for i, (spec, t) in enumerate(zip(sc.tasks, got, strict=True)):
            assert t.producers == tuple(ids[p] for p in prods[i]), (i, t)
            if t.outcome == "NOT_RUN":
                assert t.start is None and t.workers == ()
                continue
            assert t.start is not None and t.end is not None and t.start <= t.end
            for p in prods[i]:
                assert got[p].end <= t.start, (p, i)
            if spec.kind == "chip":
                assert t.workers == tuple(f"{scope}.chip{w}" for w in spec.targets)
            else:
                assert len(t.workers) == len(spec.members)
                assert len(set(t.workers)) == len(t.workers)
                assert all(w.startswith(f"{scope}.sub") for w in t.workers)
    assert rec.order_violations() == []
    # An L4 task spans its child's whole run.
    if sc.nested:
        for top in tasks_of(rec, "l4"):
            for inner in tasks_of(rec, top.workers[0]) if top.workers else []:
                if inner.start is not None:
                    assert top.start <= inner.start and inner.end <= top.end


# ---------------------------------------------------------------------------------------------- properties

PROFILE = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROFILE
@given(scenarios())
def test_generated_dags_complete_in_dependency_order(sc: Scenario) -> None:
    root, orch, scopes = build(sc, functional=False)
    root.run(orch)
    rec = root.take_record()
    assert all(t.outcome == "COMPLETED" for t in rec.tasks.values())
    assert len(rec.tasks) == len(sc.tasks) * sc.children + (sc.children if sc.nested else 0)
    check_common(sc, root, rec, scopes)
    root.close()


@PROFILE
@given(scenarios(with_failure=True))
def test_generated_dags_with_a_failing_sub_task_poison_exactly_its_consumers(sc: Scenario) -> None:
    root, orch, scopes = build(sc, functional=True)
    with pytest.raises(TaskFailure):
        root.run(orch)
    rec = root.take_record()
    check_common(sc, root, rec, scopes)
    assert sc.fail is not None
    poisoned = downstream(sc, sc.fail)
    got = tasks_of(rec, scopes[0])
    expected = ["FAILED" if i == sc.fail else "NOT_RUN" if i in poisoned else "COMPLETED"
                for i in range(len(sc.tasks))]
    assert [t.outcome.value for t in got] == expected
    assert got[sc.fail].error_class == "TASK_FAILURE"
    # No consumer of a task that did not complete ever completed, at any level.
    for p, c in rec.edges():
        if rec.tasks[p].outcome != "COMPLETED":
            assert rec.tasks[c].outcome == "NOT_RUN", (p, c)
    if sc.nested:
        top = tasks_of(rec, "l4")
        assert [t.outcome.value for t in top] == ["FAILED"] + ["COMPLETED"] * (sc.children - 1)
        for scope in scopes[1:]:
            assert all(t.outcome == "COMPLETED" for t in tasks_of(rec, scope))
    root.close()


def _chip(*pairs, worker: int = 0) -> Spec:
    return Spec("chip", [list(pairs)], (worker,))


# Two consumers of one producer, all directed at worker 0: the producer's completion releases both.
_TWO_CONSUMERS_ON_ONE_WORKER = Scenario(1, 0, False, 1, [
    _chip((1, IN), (2, IN), (0, OUT)), _chip((0, IN), (2, IN), (3, OUT)), _chip((0, IN), (2, IN), (4, OUT))])


@PROFILE
@example(_TWO_CONSUMERS_ON_ONE_WORKER)
@given(scenarios())
def test_generated_dags_run_one_execution_at_a_time_per_worker(sc: Scenario) -> None:
    """``docs/scheduler.md`` §3: a task is dispatched only to an idle worker (busy until it ends)."""
    root, orch, _ = build(sc, functional=False)
    root.run(orch)
    assert lane_overlaps(root) == []
    root.close()


@pytest.mark.parametrize("nested", [False, True])
def test_hand_written_dag_matches_the_documented_tag_table(nested: bool) -> None:
    """Anchors the oracle: INPUT/INOUT look up, OUTPUT/INOUT/OUTPUT_EXISTING insert, NO_DEP neither."""
    sc = Scenario(2, 2, nested, 1, [
        Spec("sub", [[(0, OUT)]]),  # 0 writes t0
        Spec("sub", [[(0, NO_DEP)]]),  # 1 no edge
        Spec("chip", [[(0, IN), (0, IN), (2, OUT)]], (1,)),  # 2 <- 0 (listed once)
        Spec("sub", [[(0, OUT_EX)]]),  # 3 writes t0, no edge
        Spec("sub", [[(0, INOUT)]]),  # 4 <- 3, writes t0
        Spec("sub", [[(1, IN)], [(0, IN)]]),  # 5 <- 4 (a SUB group)
        Spec("chip", [[(2, IN), (3, IN), (4, OUT)], [(0, IN), (1, IN), (3, OUT)]], (1, 0)),  # 6 <- 2, 4
    ])
    hand = [[], [], [0], [], [3], [4], [2, 4]]
    assert expected_producers(sc) == hand
    assert downstream(sc, 3) == {4, 5, 6}
    root, orch, scopes = build(sc, functional=False)
    root.run(orch)
    rec = root.take_record()
    got = tasks_of(rec, scopes[0])
    ids = [t.task_id for t in got]
    assert [t.producers for t in got] == [tuple(ids[p] for p in ps) for ps in hand]
    check_common(sc, root, rec, scopes)
    root.close()
