"""SCHED: the directed NEXT_LEVEL placement contract, seen in the order tasks start and end.

Spec: upstream ``docs/directed-next-level-scheduling.md`` ("Queue and dispatch model": one FIFO per
worker id for singles, one group FIFO whose head launches every member together or reserves all its
targets, and only the head reserves) and ``docs/scheduler.md`` ("1. Queue topology", "4. SUB
dispatch": a SUB group short of idle SUB workers goes back to the queue, and the Scheduler keeps
passing while a lane is busy).

The bed is an L4 over four L3s with one SUB worker each. Every NEXT_LEVEL task runs a nested
orchestration that holds its L3 with one SUB task, long (400 ms) or short (60 ms): the SUB sleeps
that long for real and is modeled as taking that long, so the stamps of the L4 tasks say the same
on every backend that observes time and concurrency (on the others these cases are NOT_SUPPORTED).

Which of a single and a group, both READY at once, the Scheduler takes first is not specified (it
checks the group FIFO head first in each iteration). So a case makes a group or a single READY only
once the situation it tests is in place: it consumes the output of a short "gate" task on worker 3,
and gates there run one after another, 60 ms apart.
"""

from __future__ import annotations

from typing import Any

from conformance.cases._kit import (
    hold_long,
    hold_longest,
    hold_short,
    starts_after,
    starts_not_before,
    starts_while,
    targs,
)
from conformance.catalog import case

DIRECTED = "docs/directed-next-level-scheduling.md"
QUEUES = (DIRECTED, "Queue and dispatch model")
SUB_DISPATCH = ("docs/scheduler.md", "4. SUB dispatch")
COMPLETION = ("docs/scheduler.md", "6. Completion and group aggregation")
GATE = 3  # the worker the gates run on
LONG, SHORT, LONGEST = 0, 1, 2  # which hold a task's nested run submits


def _bed(rt: Any) -> tuple[Any, Any]:
    """(the L4, its callable ``hold``): ``hold`` with scalars (worker id, LONG, SHORT or LONGEST) holds that L3."""
    rt.require("timing", "concurrency")
    l4 = rt.Worker(4, num_sub_workers=1)
    kids = [rt.Worker(3, num_sub_workers=1) for _ in range(4)]
    holds = [(k.register(hold_long), k.register(hold_short), k.register(hold_longest)) for k in kids]

    def hold(o: Any, args: Any, cfg: Any) -> None:
        o.submit_sub(holds[args.scalar(0)][args.scalar(1)])

    h = l4.register(hold)
    for k in kids:
        l4.add_worker(k)
    l4.init()
    return l4, h


def _on(rt: Any, worker: int, kind: int, *pairs: tuple[Any, Any]) -> Any:
    return targs(rt, *pairs, scalars=(worker, kind))


def _single(o: Any, rt: Any, h: Any, worker: int, kind: int, after: Any = None) -> None:
    """A single on ``worker``; READY once the gate that wrote ``after`` has ended."""
    pairs = ((after, rt.TensorArgType.INPUT),) if after is not None else ()
    o.submit_next_level(h, _on(rt, worker, kind, *pairs), worker=worker)


def _group(o: Any, rt: Any, h: Any, workers: list[int], kind: int | list[int], after: Any = None,
           writes: Any = None) -> None:
    """A group over ``workers`` (member i holds for ``kind[i]``, or all for ``kind``); member 0 reads
    ``after`` and writes ``writes`` when given."""
    kinds = kind if isinstance(kind, list) else [kind] * len(workers)
    pairs = ((after, rt.TensorArgType.INPUT),) if after is not None else ()
    pairs += ((writes, rt.TensorArgType.OUTPUT),) if writes is not None else ()
    o.submit_next_level_group(h, [_on(rt, w, k, *(pairs if i == 0 else ()))
                                  for i, (w, k) in enumerate(zip(workers, kinds, strict=True))], workers=workers)


def _gate(o: Any, rt: Any, h: Any, out: Any) -> None:
    """A short task on the gate worker that writes ``out``: what it gates is READY when it ends."""
    o.submit_next_level(h, _on(rt, GATE, SHORT, (out, rt.TensorArgType.OUTPUT)), worker=GATE)


def _stamps(rec: Any, n: int) -> list[Any]:
    return [rec.tasks.get(f"l4:r1:t{i}") for i in range(1, n + 1)]


@case("SCHED-001", "Singles to one worker run one at a time in submit order; other workers go on", spec=QUEUES)
def fifo_per_worker(rt, ctx):
    l4, h = _bed(rt)

    def orch(o, _a, _c):
        _single(o, rt, h, 0, LONG)
        _single(o, rt, h, 0, SHORT)
        _single(o, rt, h, 0, SHORT)
        _single(o, rt, h, 1, SHORT)

    rec = ctx.run_expecting(l4, orch, None)
    t1, t2, t3, t4 = _stamps(rec, 4)
    ctx.check("t2 starts after t1 ends, t3 after t2 (worker 0's FIFO)", [True, True],
              [starts_after(t2, t1), starts_after(t3, t2)])
    ctx.check("t4 on worker 1 starts while t1 holds worker 0", True, starts_while(t4, t1))
    l4.close()


@case("SCHED-002", "A group launches once every one of its workers is idle", spec=QUEUES)
def group_waits_for_all(rt, ctx):
    l4, h = _bed(rt)
    g = rt.tensor(4)

    def orch(o, _a, _c):
        _single(o, rt, h, 0, LONG)  # t1
        _gate(o, rt, h, g)  # t2
        _group(o, rt, h, [0, 1], SHORT, after=g)  # t3: READY while t1 holds worker 0; worker 1 is idle

    rec = ctx.run_expecting(l4, orch, None)
    t1, _t2, t3 = _stamps(rec, 3)
    # A task's start is its first member's: the member on idle worker 1 waits for worker 0 too.
    ctx.check("the group on workers 0 and 1 starts after t1 leaves worker 0", True, starts_after(t3, t1))
    l4.close()


@case("SCHED-003", "The waiting group head reserves its workers: a later single there does not overtake it",
      spec=QUEUES)
def head_reserves(rt, ctx):
    l4, h = _bed(rt)
    g1, g2 = rt.tensor(4), rt.tensor(4)

    def orch(o, _a, _c):
        _single(o, rt, h, 0, LONG)  # t1
        _gate(o, rt, h, g1)  # t2
        _group(o, rt, h, [0, 1], SHORT, after=g1)  # t3: waits for worker 0, reserves 0 and 1
        _gate(o, rt, h, g2)  # t4
        _single(o, rt, h, 1, SHORT, after=g2)  # t5: READY while the group waits; worker 1 is idle

    rec = ctx.run_expecting(l4, orch, None)
    t1, _t2, t3, t4, t5 = _stamps(rec, 5)
    ctx.check("t5 on reserved worker 1 starts no earlier than the group", True, starts_not_before(t5, t3))
    ctx.check("the gates on worker 3, outside the group, ran while t1 held worker 0", True, starts_while(t4, t1))
    l4.close()


@case("SCHED-004", "Only the group FIFO head reserves: a later group's idle worker keeps running singles",
      spec=QUEUES)
def only_head_reserves(rt, ctx):
    l4, h = _bed(rt)
    g1, g2 = rt.tensor(4), rt.tensor(4)

    # t1 holds worker 0 for LONGEST, well past two gates and their dispatch on the real runtime. t5 and
    # t7 become READY together: whichever the Scheduler takes first, t5 is not the head and reserves
    # nothing, so t7 starts on idle worker 2 while t1 still holds worker 0.
    def orch(o, _a, _c):
        _single(o, rt, h, 0, LONGEST)  # t1
        _gate(o, rt, h, g1)  # t2
        _group(o, rt, h, [0, 1], SHORT, after=g1)  # t3: the head; waits for worker 0, reserves 0 and 1
        _gate(o, rt, h, g2)  # t4
        _group(o, rt, h, [1, 2], SHORT, after=g2)  # t5: behind the head; reserves nothing
        _single(o, rt, h, 2, SHORT, after=g2)  # t6: worker 2 is idle and not reserved

    rec = ctx.run_expecting(l4, orch, None)
    t1, _t2, t3, _t4, t5, t6 = _stamps(rec, 6)
    ctx.check("t6 on worker 2 starts while t1 holds worker 0", True, starts_while(t6, t1))
    ctx.check("the second group starts no earlier than the head", True, starts_not_before(t5, t3))
    l4.close()


@case("SCHED-005", "A SUB group short of idle SUB workers waits for enough; SUB work behind it goes ahead",
      spec=SUB_DISPATCH)
def sub_group_waits(rt, ctx):
    rt.require("timing", "concurrency")
    w = rt.Worker(3, num_sub_workers=3)
    h_long, h_short = w.register(hold_long), w.register(hold_short)
    w.init()

    def orch(o, _a, _c):
        o.submit_sub(h_long)  # t1: one of the three SUB workers
        o.submit_sub_group(h_short, [rt.TaskArgs() for _ in range(3)])  # t2: needs all three at once
        o.submit_sub(h_short)  # t3

    rec = ctx.run_expecting(w, orch, None)
    t1, t2, t3 = (rec.tasks.get(f"l3:r1:t{i}") for i in (1, 2, 3))
    ctx.check("t3, behind the group, starts while t1 runs", True, starts_while(t3, t1))
    ctx.check("the group starts after t1 and t3 have ended", [True, True], [starts_after(t2, t1),
                                                                            starts_after(t2, t3)])
    w.close()


@case("SCHED-006", "A consumer of a group starts only after the group's last member ends", spec=COMPLETION)
def group_completes_as_one(rt, ctx):
    l4, h = _bed(rt)
    g = rt.tensor(4)

    def orch(o, _a, _c):
        _group(o, rt, h, [0, 1], [SHORT, LONG], writes=g)  # t1: member 0 writes g, member 1 runs longer
        _single(o, rt, h, 2, SHORT, after=g)  # t2

    rec = ctx.run_expecting(l4, orch, None)
    _t1, t2 = _stamps(rec, 2)
    # The long member's own work is the SUB task of worker 1's first run; it wrote nothing t2 reads.
    ctx.check("the consumer starts after the long member's work ends", True,
              starts_after(t2, rec.tasks.get("l4.w1:r1:t1")))
    l4.close()
