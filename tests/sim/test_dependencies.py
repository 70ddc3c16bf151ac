"""Dependency inference from TaskArgs tags: RAW, WAW, (no) WAR, INOUT, NO_DEP, alloc, scopes.

Spec: upstream ``docs/orchestrator.md`` §2 "Step 3 — tag walk" (INPUT/INOUT look up the last
writer, OUTPUT/INOUT/OUTPUT_EXISTING become the writer, NO_DEP does neither; producers are
deduplicated), §7 "TensorMap" → "Semantics" (RAW edge; WAW replaces the entry with no edge
between the writers; WAR is not tracked; keys are per run), §8b "Tag semantics for
write-after-write" and "Consumer interaction" (``alloc`` buffers wire their consumers),
§6 "Scope" → "User-facing API" (``with orch.scope()``) and ``docs/scheduler.md`` §5
"Dependency release and PENDING updates" (a consumer runs only after its producers complete).

Timing-only runs (``TensorSpec``) on SUB workers with modeled durations: ``slow`` runs far
longer than ``fast``, so an edge that should not exist shows up as a consumer that waited.
"""

from __future__ import annotations

import numpy as np
import pytest

from sim import SimConfig, TaskArgs, TensorArgType, TensorSpec, Worker, modeled_duration
from sim.errors import InvalidState

IN, OUT, INOUT = TensorArgType.INPUT, TensorArgType.OUTPUT, TensorArgType.INOUT
OUT_EX, NO_DEP = TensorArgType.OUTPUT_EXISTING, TensorArgType.NO_DEP
SLOW_US, FAST_US = 1000.0, 10.0


@modeled_duration(SLOW_US)
def slow(args) -> None:
    return None


@modeled_duration(FAST_US)
def fast(args) -> None:
    return None


class Bed:
    """An L3 with many SUB workers, so only dependencies (never capacity) can delay a task."""

    def __init__(self, subs: int = 6, data_mode: str = "timing") -> None:
        self.w = Worker(level=3, num_sub_workers=subs, sim=SimConfig(seed=3, data_mode=data_mode))
        self.slow = self.w.register(slow)
        self.fast = self.w.register(fast)
        self.w.init()

    def run(self, orch):
        self.w.run(orch)
        rec = self.w.take_record()
        assert all(t.outcome == "COMPLETED" for t in rec.tasks.values())
        return list(rec.tasks.values())

    def close(self) -> None:
        self.w.close()


@pytest.fixture
def bed():
    b = Bed()
    yield b
    b.close()


def args(*pairs) -> TaskArgs:
    ta = TaskArgs()
    for tensor, tag in pairs:
        ta.add_tensor(tensor, tag)
    return ta


def spec(n: int = 64) -> TensorSpec:
    return TensorSpec((n,), "float32")


def after(consumer, producer) -> bool:
    return consumer.start >= producer.end


def overlaps(a, b) -> bool:
    return a.start < b.end and b.start < a.end


# ---------------------------------------------------------------------------------------------- RAW


def test_raw_consumer_waits_for_its_producer(bed: Bed) -> None:
    x = spec()

    def orch(o, a, c):
        o.submit_sub(bed.slow, args((x, OUT)))
        o.submit_sub(bed.fast, args((x, IN)))

    p, k = bed.run(orch)
    assert k.producers == (p.task_id,)
    assert p.producers == ()
    assert after(k, p)


def test_raw_edges_from_several_producers(bed: Bed) -> None:
    x, y, z = spec(), spec(), spec()

    def orch(o, a, c):
        o.submit_sub(bed.fast, args((x, OUT)))
        o.submit_sub(bed.slow, args((y, OUT)))
        o.submit_sub(bed.fast, args((z, OUT)))
        o.submit_sub(bed.fast, args((y, IN), (x, IN)))

    px, py, pz, k = bed.run(orch)
    assert k.producers == (py.task_id, px.task_id)  # in tag-walk order, z not involved
    assert after(k, py)
    assert after(k, px)
    assert overlaps(pz, py)  # independent writers ran side by side


def test_input_of_a_never_written_tensor_has_no_producer(bed: Bed) -> None:
    x = spec()

    def orch(o, a, c):
        o.submit_sub(bed.slow, args((spec(), OUT)))
        o.submit_sub(bed.fast, args((x, IN)))

    w, r = bed.run(orch)
    assert r.producers == ()
    assert overlaps(w, r)


def test_raw_on_a_numpy_tensor_carries_data() -> None:
    """Functional run: a chain of SUB writers and readers sees each write in order."""
    b = Bed(subs=3, data_mode="functional")
    x = np.zeros(4, np.float32)
    seen: list[float] = []

    def bump(view) -> None:
        view.tensor(0)[:] += 1

    def look(view) -> None:
        seen.append(float(view.tensor(0)[0]))

    h_bump, h_look = b.w.register(bump), b.w.register(look)

    def orch(o, a, c):
        o.submit_sub(h_bump, args((x, INOUT)))
        o.submit_sub(h_look, args((x, IN)))
        o.submit_sub(h_bump, args((x, INOUT)))
        o.submit_sub(h_look, args((x, IN)))

    tasks = b.run(orch)
    assert seen == [1.0, 2.0]
    assert tasks[2].producers == (tasks[0].task_id,)  # WAW via INOUT; the reader adds no edge
    assert tasks[3].producers == (tasks[2].task_id,)
    b.close()


# ---------------------------------------------------------------------------------------------- WAW / WAR


def test_waw_writers_carry_no_edge_and_a_reader_sees_only_the_latest(bed: Bed) -> None:
    x = spec()

    def orch(o, a, c):
        o.submit_sub(bed.slow, args((x, OUT)))
        o.submit_sub(bed.fast, args((x, OUT)))
        o.submit_sub(bed.fast, args((x, IN)))

    w1, w2, r = bed.run(orch)
    assert w2.producers == ()
    assert r.producers == (w2.task_id,)
    assert overlaps(w1, w2)  # the second writer did not wait for the first
    assert after(r, w2)
    assert r.end < w1.end  # nor did the reader: it finished while w1 still ran


def test_war_is_not_tracked(bed: Bed) -> None:
    """A writer after a reader has no edge on the reader (orchestrator.md §7, WAR)."""
    x = spec()

    def orch(o, a, c):
        o.submit_sub(bed.fast, args((x, OUT)))
        o.submit_sub(bed.slow, args((x, IN)))
        o.submit_sub(bed.fast, args((x, OUT)))
        o.submit_sub(bed.fast, args((x, IN)))

    p1, reader, p2, r2 = bed.run(orch)
    assert reader.producers == (p1.task_id,)
    assert p2.producers == ()
    assert p2.start < reader.end  # the overwrite did not wait for the reader to finish
    assert r2.producers == (p2.task_id,)


def test_output_existing_behaves_like_output(bed: Bed) -> None:
    x = spec()

    def orch(o, a, c):
        o.submit_sub(bed.slow, args((x, OUT)))
        o.submit_sub(bed.fast, args((x, OUT_EX)))
        o.submit_sub(bed.fast, args((x, IN)))
        o.submit_sub(bed.fast, args((spec(), OUT_EX)))

    w1, w2, r, _ = bed.run(orch)
    assert w2.producers == ()  # a pure insert: no lookup of w1
    assert overlaps(w1, w2)
    assert r.producers == (w2.task_id,)  # and w2 became the writer
    assert after(r, w2)


# ---------------------------------------------------------------------------------------------- INOUT / NO_DEP


def test_inout_reads_the_previous_writer_and_becomes_the_writer(bed: Bed) -> None:
    x = spec()

    def orch(o, a, c):
        o.submit_sub(bed.slow, args((x, OUT)))
        o.submit_sub(bed.slow, args((x, INOUT)))
        o.submit_sub(bed.fast, args((x, IN)))

    w, u, r = bed.run(orch)
    assert u.producers == (w.task_id,)
    assert after(u, w)
    assert r.producers == (u.task_id,)
    assert after(r, u)


def test_inout_on_a_fresh_tensor_has_no_producer_but_is_the_writer(bed: Bed) -> None:
    x = spec()

    def orch(o, a, c):
        o.submit_sub(bed.slow, args((x, INOUT)))
        o.submit_sub(bed.fast, args((x, IN)))

    u, r = bed.run(orch)
    assert u.producers == ()
    assert r.producers == (u.task_id,)


def test_no_dep_creates_no_edge_and_no_writer(bed: Bed) -> None:
    x = spec()

    def orch(o, a, c):
        o.submit_sub(bed.slow, args((x, OUT)))
        o.submit_sub(bed.fast, args((x, NO_DEP)))
        o.submit_sub(bed.fast, args((x, IN)))

    w, n, r = bed.run(orch)
    assert n.producers == ()
    assert overlaps(w, n)
    assert r.producers == (w.task_id,)  # NO_DEP did not take the writer's place


# ---------------------------------------------------------------------------------------------- dedup


def test_a_producer_seen_on_two_tensors_is_listed_once(bed: Bed) -> None:
    x, y = spec(), spec()

    def orch(o, a, c):
        o.submit_sub(bed.slow, args((x, OUT), (y, OUT)))
        o.submit_sub(bed.fast, args((x, IN), (y, IN), (x, IN)))  # x read twice: legal, one edge

    p, k = bed.run(orch)
    assert k.producers == (p.task_id,)
    assert after(k, p)


def test_group_members_share_one_deduplicated_producer_list(bed: Bed) -> None:
    x, y = spec(), spec()

    def orch(o, a, c):
        o.submit_sub(bed.slow, args((x, OUT), (y, OUT)))
        o.submit_sub_group(bed.fast, [args((x, IN)), args((y, IN)), args((x, IN))])

    p, g = bed.run(orch)
    assert g.producers == (p.task_id,)
    assert after(g, p)
    assert len(g.workers) == 3


# ---------------------------------------------------------------------------------------------- alloc


def test_alloc_buffer_written_then_read_wires_the_consumer(bed: Bed) -> None:
    def orch(o, a, c):
        buf = o.alloc((64,), "float32")
        t = buf.tensor((64,), "float32")
        o.submit_sub(bed.slow, args((t, OUT)))
        o.submit_sub(bed.fast, args((t, IN)))

    p, k = bed.run(orch)
    # The alloc slot itself is no task of the record; the writer is the consumer's producer.
    assert p.producers == ()
    assert k.producers == (p.task_id,)
    assert after(k, p)


def test_alloc_buffer_carries_data_between_tasks() -> None:
    b = Bed(subs=2, data_mode="functional")
    got: list[list[float]] = []

    def fill(view) -> None:
        view.tensor(0)[:] = np.arange(4, dtype=np.float32)

    def read(view) -> None:
        got.append(view.tensor(0).tolist())

    hf, hr = b.w.register(fill), b.w.register(read)

    def orch(o, a, c):
        buf = o.alloc((4,), np.float32)
        t = buf.tensor((4,), np.float32)
        o.submit_sub(hr, args((t, NO_DEP)))  # no edge: may read before the fill, so not checked
        o.submit_sub(hf, args((t, OUT)))
        o.submit_sub(hr, args((t, IN)))

    tasks = b.run(orch)
    assert tasks[2].producers == (tasks[1].task_id,)
    assert got[-1] == [0.0, 1.0, 2.0, 3.0]
    b.close()


def test_alloc_offsets_are_distinct_dependency_keys(bed: Bed) -> None:
    def orch(o, a, c):
        buf = o.alloc((128,), "float32")
        lo = buf.tensor((64,), "float32")
        hi = buf.tensor((64,), "float32", byte_offset=256)
        o.submit_sub(bed.slow, args((lo, OUT)))
        o.submit_sub(bed.fast, args((hi, OUT)))
        o.submit_sub(bed.fast, args((hi, IN)))

    w_lo, w_hi, r_hi = bed.run(orch)
    assert r_hi.producers == (w_hi.task_id,)
    assert r_hi.end < w_lo.end


# ---------------------------------------------------------------------------------------------- runs and scopes


def test_tensormap_is_per_run(bed: Bed) -> None:
    x = spec()
    bed.run(lambda o, a, c: o.submit_sub(bed.slow, args((x, OUT))))
    (r,) = bed.run(lambda o, a, c: o.submit_sub(bed.fast, args((x, IN))))
    assert r.producers == ()


def test_dependencies_cross_scope_boundaries(bed: Bed) -> None:
    x, y = spec(), spec()

    def orch(o, a, c):
        o.submit_sub(bed.slow, args((x, OUT)))
        with o.scope():
            o.submit_sub(bed.slow, args((x, IN), (y, OUT)))
            with o.scope():
                o.submit_sub(bed.fast, args((y, INOUT)))
        o.submit_sub(bed.fast, args((y, IN)))

    t1, t2, t3, t4 = bed.run(orch)
    assert (t2.producers, t3.producers, t4.producers) == ((t1.task_id,), (t2.task_id,), (t3.task_id,))
    assert after(t2, t1) and after(t3, t2) and after(t4, t3)
    events = [(e.kind.value, e.subject) for e in bed.w.simulation.trace.ordered()]
    assert sum(1 for k, _ in events if k == "scope_begin") == 2


def test_raw_scope_begin_and_end_pair_up(bed: Bed) -> None:
    x = spec()

    def orch(o, a, c):
        o.scope_begin()
        o.submit_sub(bed.slow, args((x, OUT)))
        o.scope_end()
        o.submit_sub(bed.fast, args((x, IN)))

    p, k = bed.run(orch)
    assert k.producers == (p.task_id,)


def test_scope_end_without_begin_is_invalid_state(bed: Bed) -> None:
    def orch(o, a, c):
        o.submit_sub(bed.fast, args((spec(), OUT)))
        o.scope_end()

    with pytest.raises(InvalidState):
        bed.w.run(orch)
    bed.w.take_record()
    # The Worker stays usable.
    assert len(bed.run(lambda o, a, c: o.submit_sub(bed.fast, TaskArgs()))) == 1


def test_scope_end_after_the_matching_end_is_invalid_state(bed: Bed) -> None:
    def orch(o, a, c):
        with o.scope():
            pass
        o.scope_end()

    with pytest.raises(InvalidState):
        bed.w.run(orch)


def test_orchestrator_is_dead_after_its_run(bed: Bed) -> None:
    kept = []
    bed.run(lambda o, a, c: kept.append(o))
    with pytest.raises(InvalidState):
        kept[0].submit_sub(bed.fast, TaskArgs())
    with pytest.raises(InvalidState):
        kept[0].scope_begin()
