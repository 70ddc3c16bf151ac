"""Heap ring back-pressure: waiting allocations, oversized requests, rings that never drain.

Spec: upstream ``docs/orchestrator.md`` §5 "Ring (slot and per-scope heap allocator)"
(``MAX_RING_DEPTH`` rings of ``heap_ring_size`` bytes each, ring = scope depth, 1024-byte
alignment, FIFO reclamation per ring, an allocation that does not fit blocks the Orchestrator
and throws after the timeout), §6 "Scope" (inner-scope tasks use a deeper ring and are released
at ``scope_end``; the outer scope is released only when the run's submission closes), §8b
"``alloc(shape, dtype, identity)``" (an alloc slot is COMPLETED at once; "Tag semantics for
write-after-write": INOUT pins the alloc slot; "``heap_ring_size`` and back-pressure": the
exhaustion bubbles out of ``Worker.run`` so users can grow the ring) and §8 "Task State
Machine" (``cancel_unstarted_run``: a failed submission cancels every unstarted slot), with the
SUB FIFO of ``docs/scheduler.md`` §4 "SUB dispatch".
"""

from __future__ import annotations

import pytest

from sim import SimConfig, TaskArgs, TensorArgType, Worker, modeled_duration
from sim.errors import ResourceExhausted

RING = 4096  # four 1024-byte slabs
TIMEOUT_US = 5000.0
SLAB = (256,)  # 256 float32 = exactly one 1024-byte slab


@modeled_duration(100.0)
def work(args) -> None:
    return None


def make(ring: int = RING, subs: int = 2) -> tuple[Worker, object]:
    w = Worker(level=3, num_sub_workers=subs, heap_ring_size=ring,
               sim=SimConfig(seed=1, data_mode="timing", backpressure_timeout_us=TIMEOUT_US))
    h = w.register(work)
    w.init()
    return w, h


def one(tensor, tag) -> TaskArgs:
    ta = TaskArgs()
    ta.add_tensor(tensor, tag)
    return ta


def events(w: Worker, kind: str) -> list:
    return [e for e in w.simulation.trace.ordered() if e.kind.value == kind]


def first_time(w: Worker, kind: str, subject: str) -> float:
    return next(e.t for e in events(w, kind) if e.subject == subject)


def scoped_pipeline(h, iterations: int, writer_tag: TensorArgType):
    """Each iteration: an inner scope with one alloc slab, a writer and a reader of it."""
    def orch(o, a, c):
        for _ in range(iterations):
            with o.scope():
                buf = o.alloc(SLAB, "float32")
                t = buf.tensor(SLAB, "float32")
                o.submit_sub(h, one(t, writer_tag))
                o.submit_sub(h, one(t, TensorArgType.INPUT))
    return orch


# ---------------------------------------------------------------------------------------------- waiting


def seq(subject: str) -> int:
    """Submission order of a slot from its id (``<node>:r<run>:<a|t><seq>``)."""
    return int(subject.rsplit(":", 1)[1][1:])


def test_allocations_that_do_not_fit_wait_and_the_run_completes() -> None:
    w, h = make()
    w.run(scoped_pipeline(h, 8, TensorArgType.OUTPUT))
    rec = w.take_record()
    tasks = list(rec.tasks.values())
    assert len(tasks) == 16
    assert all(t.outcome == "COMPLETED" for t in tasks)
    assert rec.order_violations() == []
    allocs = events(w, "alloc")
    assert len(allocs) == 8
    assert all("ring1" in e.detail for e in allocs)  # inner-scope slabs live in ring 1
    blocked = events(w, "blocked")
    assert blocked, "a full ring must block the Orchestrator"
    waiting = blocked[0].subject
    assert waiting in {e.subject for e in allocs}
    # The waiting slab was admitted only after earlier work completed and its slots were reclaimed...
    admitted = first_time(w, "alloc", waiting)
    assert admitted >= events(w, "complete")[0].t
    # ...and every later orchestration step was stamped after it (the Orchestrator thread waited).
    later = [e for e in events(w, "submit") + allocs if seq(e.subject) > seq(waiting)]
    assert later
    assert all(e.t >= admitted for e in later)
    w.close()


def test_a_large_ring_never_blocks_the_same_pipeline() -> None:
    """Control case: the waits above come from the ring size, not from the pipeline."""
    small, hs = make()
    large, hl = make(ring=64 * RING)
    small.run(scoped_pipeline(hs, 8, TensorArgType.OUTPUT))
    large.run(scoped_pipeline(hl, 8, TensorArgType.OUTPUT))
    assert events(large, "blocked") == []
    waiting = events(small, "blocked")[0].subject
    assert first_time(large, "alloc", waiting) < events(large, "complete")[0].t
    assert first_time(large, "alloc", waiting) < first_time(small, "alloc", waiting)
    small.close()
    large.close()


def test_inout_writers_of_waiting_allocations_complete() -> None:
    """INOUT is the tag that pins an alloc slot (§8b); it must not deadlock under back-pressure."""
    w, h = make()
    w.run(scoped_pipeline(h, 8, TensorArgType.INOUT))
    rec = w.take_record()
    assert len(rec.tasks) == 16
    assert all(t.outcome == "COMPLETED" for t in rec.tasks.values())
    assert events(w, "blocked")
    w.close()


def test_no_slot_is_consumed_before_it_was_allocated() -> None:
    w, h = make()
    w.run(scoped_pipeline(h, 8, TensorArgType.OUTPUT))
    born = {e.subject: e.t for e in events(w, "alloc") + events(w, "submit")}
    early = [(e.subject, born[e.subject], e.t) for e in events(w, "consumed") if e.t < born[e.subject]]
    assert early == []
    w.close()


# ---------------------------------------------------------------------------------------------- never fits


def test_alloc_larger_than_the_ring_is_resource_exhausted_at_once() -> None:
    w, h = make()
    seen: list[str] = []

    def orch(o, a, c):
        with pytest.raises(ResourceExhausted) as info:
            o.alloc((RING // 4 + 1,), "float32")  # 4100 bytes, 5120 aligned
        seen.append(str(info.value))
        buf = o.alloc((RING // 4,), "float32")  # exactly the ring: fits
        o.submit_sub(h, one(buf.tensor((RING // 4,), "float32"), TensorArgType.OUTPUT))

    w.run(orch)
    assert "heap_ring_size" in seen[0]
    assert events(w, "blocked") == []
    assert [t.outcome for t in w.take_record().tasks.values()] == ["COMPLETED"]
    w.close()


def test_uncaught_oversize_alloc_fails_the_run_without_waiting() -> None:
    w, h = make()

    def orch(o, a, c):
        o.alloc((RING,), "float32")

    with pytest.raises(ResourceExhausted):
        w.run(orch)
    assert w.simulation.now < TIMEOUT_US
    w.run(lambda o, a, c: o.submit_sub(h, TaskArgs()))
    assert [t.outcome for t in w.take_record().tasks.values()] == ["COMPLETED"]
    w.close()


def test_allocations_are_1024_byte_aligned() -> None:
    """Four one-byte allocs fill a 4096-byte ring; a fifth waits (and, never freed, times out)."""
    w, _ = make()
    w.run(lambda o, a, c: [o.alloc((1,), "uint8") for _ in range(4)])
    assert events(w, "blocked") == []
    with pytest.raises(ResourceExhausted):
        w.run(lambda o, a, c: [o.alloc((1,), "uint8") for _ in range(5)])
    w.close()


def test_ring_that_never_drains_fails_after_the_timeout() -> None:
    w, _h = make()
    t0 = w.simulation.now

    def orch(o, a, c):
        for _ in range(5):  # all in the outer scope: released only when submission closes
            o.alloc(SLAB, "float32")

    with pytest.raises(ResourceExhausted) as info:
        w.run(orch)
    assert "heap_ring_size" in str(info.value)
    blocked = events(w, "blocked")
    assert len(blocked) == 1
    waited = w.simulation.now - blocked[0].t
    assert TIMEOUT_US <= waited < TIMEOUT_US + 1000.0
    assert t0 == 0.0
    # The exhaustion bubbled out of run(): the Worker recovers for a run that fits.
    w.take_record()
    w.run(lambda o, a, c: [o.alloc(SLAB, "float32") for _ in range(4)])
    w.close()


def test_ring_that_never_drains_with_tasks_queued_behind_fails_after_the_timeout() -> None:
    w, h = make()

    def orch(o, a, c):
        for _ in range(5):
            buf = o.alloc(SLAB, "float32")
            o.submit_sub(h, one(buf.tensor(SLAB, "float32"), TensorArgType.OUTPUT))

    with pytest.raises(ResourceExhausted):
        w.run(orch)
    rec = w.take_record()
    tasks = list(rec.tasks.values())
    assert [t.outcome for t in tasks[:4]] == ["COMPLETED"] * 4  # their slabs fit and they ran
    assert tasks[4].outcome == "NOT_RUN"  # queued behind the exhausted alloc: cancelled
    w.close()


class Late(Exception):
    pass


def test_orchestration_raising_after_waiting_submissions_still_fails_the_run() -> None:
    w, h = make()

    def orch(o, a, c):
        scoped_pipeline(h, 8, TensorArgType.OUTPUT)(o, a, c)
        raise Late("after the ring filled up")

    with pytest.raises(Late):
        w.run(orch)
    assert events(w, "blocked")
    rec = w.take_record()
    assert len(rec.tasks) == 16
    assert {t.outcome for t in rec.tasks.values()} <= {"COMPLETED", "NOT_RUN"}
    assert any(t.outcome == "NOT_RUN" for t in rec.tasks.values())
    # The Worker recovers.
    w.run(scoped_pipeline(h, 8, TensorArgType.OUTPUT))
    assert all(t.outcome == "COMPLETED" for t in w.take_record().tasks.values())
    w.close()


def test_cancellation_after_a_failed_orchestration_respects_fifo_order() -> None:
    """``cancel_unstarted_run`` (orchestrator.md §8) claims every unstarted slot at one instant.

    The writers of the pipeline have no producers, so each is READY when published and they enter
    the one SUB FIFO in submit order (scheduler.md §4). Whatever the instant of the cancellation,
    the writers that ran are therefore a prefix of them in submit order: a later writer cannot
    run when an earlier one was cancelled unstarted.
    """
    w, h = make()

    def orch(o, a, c):
        scoped_pipeline(h, 8, TensorArgType.OUTPUT)(o, a, c)
        raise Late("after the ring filled up")

    with pytest.raises(Late):
        w.run(orch)
    writers = [t for t in w.take_record().tasks.values() if t.producers == ()]
    assert len(writers) == 8
    ran = [t.outcome == "COMPLETED" for t in writers]
    assert ran == sorted(ran, reverse=True), [(t.task_id, t.outcome.value) for t in writers]
    w.close()


def test_inner_scope_rings_are_independent_of_a_full_outer_ring() -> None:
    """A full outer ring (ring 0) does not stop inner-scope slabs once its own scope churns (§5, §6)."""
    w, h = make()

    def orch(o, a, c):
        for _ in range(4):
            o.alloc(SLAB, "float32")  # ring 0 is now full for the whole run
        for _ in range(6):
            with o.scope():
                buf = o.alloc(SLAB, "float32")
                t = buf.tensor(SLAB, "float32")
                o.submit_sub(h, one(t, TensorArgType.OUTPUT))
                o.submit_sub(h, one(t, TensorArgType.INPUT))

    w.run(orch)
    rec = w.take_record()
    assert len(rec.tasks) == 12
    assert all(t.outcome == "COMPLETED" for t in rec.tasks.values())
    w.close()
