"""What the simulator does to run large DAGs cheaply, checked for what it must not change.

- a submit with many producers deduplicates them on a set (``Node.submit``): same producers, same
  order, same edges as the tuple walk;
- TensorSpec shapes and dtypes are normalised once per distinct value (``sim.tensors``,
  ``sim.types``): same results, same errors;
- the record is columnar (``sim.record.TaskTable``), with the per-task view built on demand: it
  equals the view built from the task slots, whether the task log wrote rows as slots were consumed
  or at the record (``sim.tasklog``);
- ``SimConfig.record_path`` streams the rows to Parquet (``sim.record_stream``): the file and the
  record read back from it say what the in-memory record says.

Speed is the benchmark's business (``benchmarks/bench_scale.py``), not these tests'.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest

import sim.tasklog as tasklog
from sim import SimConfig, TaskArgs, TensorArgType, TensorSpec, Worker, modeled_duration
from sim.errors import InvalidArgument
from sim.record import Outcome, TaskRecord, TaskTable
from sim.task import TaskKind

IN, OUT, INOUT = TensorArgType.INPUT, TensorArgType.OUTPUT, TensorArgType.INOUT


@modeled_duration(5.0)
def work(args) -> None:
    return None


def boom(args) -> None:
    raise RuntimeError("boom")


def _slot_view(tasks) -> dict[str, TaskRecord]:
    """The record's per-task view built straight from task slots, as the record was built before it
    became columnar (the oracle of the columnar record)."""
    out = {}
    for t in tasks:
        if t is None or t.kind is TaskKind.ALLOC:
            continue
        if not t.terminal:
            outcome = Outcome.FAILED
        elif t.not_run:
            outcome = Outcome.NOT_RUN
        elif t.error is not None:
            outcome = Outcome.FAILED
        else:
            outcome = Outcome.COMPLETED
        out[t.name] = TaskRecord(
            task_id=t.name, node=t.node.scope, level=t.node.level,
            kind=("group" if t.group else "single") + ("/sub" if t.kind is TaskKind.SUB else "/next_level"),
            callable=getattr(t.callable, "name", ""), outcome=outcome, error_class=t.error_class,
            message=t.error or "", start=t.start if not t.not_run else None,
            end=t.end if not t.not_run else None, workers=tuple(t.workers),
            producers=tuple(p.name for p in t.producers if p.kind is not TaskKind.ALLOC))
    return out


def _mixed_run(config: SimConfig, *, slots: list | None = None):
    """A functional L3 run with chains, a fan-in, a group, a failure and its poisoned consumers;
    ``slots`` gets the log's live slots and their view (:func:`_slot_view`) before the record."""
    w = Worker(level=3, num_sub_workers=3, sim=config)
    ok, bad = w.register(work), w.register(boom)
    w.init()
    xs = [np.zeros(4, np.float32) for _ in range(40)]

    def orch(o, _a, _c):
        for i in range(1, 30):  # a chain with a skip edge
            ta = TaskArgs()
            ta.add_tensor(xs[i - 1], IN)
            if i >= 3:
                ta.add_tensor(xs[i - 3], IN)
            ta.add_tensor(xs[i], OUT)
            o.submit_sub(ok, ta)
        ta = TaskArgs()  # a fan-in over the chain, naming each producer twice
        for x in xs[1:30] + xs[1:30]:
            ta.add_tensor(x, IN)
        ta.add_tensor(xs[30], OUT)
        o.submit_sub(ok, ta)
        members = []
        for j in (31, 32):
            m = TaskArgs()
            m.add_tensor(xs[30], IN)
            m.add_tensor(xs[j], OUT)
            members.append(m)
        o.submit_sub_group(ok, members)
        ta = TaskArgs()  # fails; what reads its output is poisoned
        ta.add_tensor(xs[31], IN)
        ta.add_tensor(xs[33], OUT)
        o.submit_sub(bad, ta)
        for j in (34, 35):
            ta = TaskArgs()
            ta.add_tensor(xs[j - 1], IN)
            ta.add_tensor(xs[j], OUT)
            o.submit_sub(ok, ta)

    with pytest.raises(Exception, match="boom"):
        w.run(orch)
    if slots is not None:
        live = w.simulation.log.live()
        slots.extend((live, _slot_view(live)))
    rec = w.take_record()
    w.close()
    return rec


def test_a_fan_in_with_many_producers_keeps_each_producer_once_in_order() -> None:
    k = 300  # well past the tuple-to-set switch of the dedup
    w = Worker(level=3, num_sub_workers=2, sim=SimConfig(data_mode="timing", trace=False))
    fn = w.register(work)
    w.init()
    outs = [TensorSpec((8,), "float32") for _ in range(k)]
    shared = TensorSpec((8,), "float32")

    def orch(o, _a, _c):
        for i, t in enumerate(outs):
            ta = TaskArgs()
            ta.add_tensor(t, OUT)
            if i == 0:
                ta.add_tensor(shared, OUT)  # t1 writes ``shared`` too
            o.submit_sub(fn, ta)
        ta = TaskArgs()
        for t in outs + outs[::-1]:  # every producer named twice, the second time in reverse
            ta.add_tensor(t, IN)
        ta.add_tensor(shared, INOUT)  # its writer t1 is a producer already; the task still becomes the writer
        o.submit_sub(fn, ta)
        ta = TaskArgs()
        ta.add_tensor(outs[0], IN)
        ta.add_tensor(shared, IN)
        o.submit_sub(fn, ta)

    w.run(orch)
    rec = w.take_record()
    w.close()
    fan = rec.tasks[f"l3:r1:t{k + 1}"]
    assert fan.producers == tuple(f"l3:r1:t{i}" for i in range(1, k + 1))
    assert rec.tasks[f"l3:r1:t{k + 2}"].producers == ("l3:r1:t1", f"l3:r1:t{k + 1}")
    assert rec.order_violations() == []
    assert fan.start >= max(rec.tasks[p].end for p in fan.producers)


def test_tensor_spec_normalisation_is_cached_but_says_the_same() -> None:
    a = TensorSpec((2, 3), "float32")
    b = TensorSpec([2, 3], np.dtype("float32"))
    c = TensorSpec(iter([np.int64(2), 3]), "float32")  # an iterator is read once
    assert a.shape == b.shape == c.shape == (2, 3) and a.dtype == b.dtype == c.dtype
    assert a.sig == b.sig == c.sig
    assert TensorSpec((2.0, 3), "float32").shape == (2, 3)
    with pytest.raises(InvalidArgument, match="negative"):
        TensorSpec((2, -1), "float32")
    with pytest.raises(InvalidArgument, match="sequence of ints"):
        TensorSpec(5, "float32")
    with pytest.raises(InvalidArgument, match="not a data type"):
        TensorSpec((2,), "no_such_type")
    with pytest.raises(InvalidArgument, match="not a data type"):  # a failure is not cached
        TensorSpec((2,), "no_such_type")


def test_the_columnar_record_equals_the_view_built_from_task_slots() -> None:
    slots: list = []
    rec = _mixed_run(SimConfig(seed=3), slots=slots)
    assert isinstance(rec.tasks, TaskTable)
    oracle = slots[1]
    assert list(rec.tasks) == list(oracle)
    assert list(rec.tasks.values()) == list(oracle.values())
    counts = rec.outcome_counts()
    assert counts["FAILED"] == 1 and counts["NOT_RUN"] == 2 and counts["COMPLETED"] == 31
    assert rec.errors == [t.error_class for t in oracle.values() if t.outcome is Outcome.FAILED and t.error_class]
    assert rec.edges() == [(p, t.task_id) for t in oracle.values() for p in t.producers]
    assert rec.order_violations() == []


def _chain_run(config: SimConfig):
    """A timing-only fan of chains on a few SUB workers, every task completing."""
    w = Worker(level=3, num_sub_workers=3, sim=config)
    fn = w.register(work)
    w.init()
    xs = [TensorSpec((4,), "float32") for _ in range(200)]

    def orch(o, _a, _c):
        for i in range(3, 200):
            ta = TaskArgs()
            ta.add_tensor(xs[i - 3], IN)
            ta.add_tensor(xs[i - 1], IN)
            ta.add_tensor(xs[i], OUT)
            o.submit_sub(fn, ta)

    w.run(orch)
    rec = w.take_record()
    w.close()
    return rec


@pytest.mark.parametrize("run", [_mixed_run, _chain_run])
def test_rows_written_as_slots_are_consumed_equal_rows_written_at_the_record(monkeypatch, run) -> None:
    mode = "functional" if run is _mixed_run else "timing"
    kept = run(SimConfig(seed=5, data_mode=mode))
    monkeypatch.setattr(tasklog, "COMPACT_AFTER", 0)  # write every row as its slot is consumed ...
    monkeypatch.setattr(tasklog, "RETIRE_BATCH", 4)  # ... a few at a time, during the run
    compact = run(SimConfig(seed=5, data_mode=mode))
    assert list(compact.tasks.items()) == list(kept.tasks.items())
    assert compact.errors == kept.errors and compact.edges() == kept.edges()


def test_a_compacting_log_lets_consumed_slots_go_during_the_run(monkeypatch) -> None:
    monkeypatch.setattr(tasklog, "COMPACT_AFTER", 0)
    slots: list = []
    _mixed_run(SimConfig(seed=5), slots=slots)
    assert slots[0] == []  # no slot left in the log when the run ended


def test_a_compacting_log_does_not_keep_finished_nested_runs_alive(monkeypatch) -> None:
    """Rows name their run by code; the log must not hold every nested run (and the parent task its
    completion callback holds) to the record: at scale that was ~100 bytes a task."""
    import gc

    from reference import get_kernel
    from sim.node import RunState

    def runs_alive() -> int:
        gc.collect()
        return sum(isinstance(x, RunState) for x in gc.get_objects())

    monkeypatch.setattr(tasklog, "COMPACT_AFTER", 0)
    monkeypatch.setattr(tasklog, "RETIRE_BATCH", 4)
    before = runs_alive()  # what earlier tests left for the collector is not this test's business
    l4 = Worker(level=4, sim=SimConfig(data_mode="timing", trace=False))
    l3 = Worker(level=3, device_ids=[0, 1])
    add = l3.register(get_kernel("add"))
    l4.add_worker(l3)

    def node_orch(o, args, _cfg):
        for c in range(2):
            ta = TaskArgs()
            ta.add_tensor(args.tensor(0), IN)
            ta.add_tensor(args.tensor(0), IN)
            ta.add_tensor(TensorSpec((4,), "float32"), OUT)
            o.submit_next_level(add, ta, worker=c)

    step = l4.register(node_orch)
    l4.init()

    def orch(o, _a, _c):
        for _ in range(200):
            ta = TaskArgs()
            ta.add_tensor(TensorSpec((4,), "float32"), IN)
            o.submit_next_level(step, ta, worker=0)

    l4.run(orch)
    alive = runs_alive() - before
    rec = l4.take_record()
    assert len(rec.tasks) == 200 * 3
    assert len({t.task_id.rsplit(":", 1)[0] for t in rec.tasks.values() if t.level == 3}) == 200  # 200 runs named
    assert alive < 10, f"{alive} RunStates alive after 200 nested runs finished"
    l4.close()


def test_the_lazy_task_table_reads_like_a_dict_and_turns_into_one_when_changed() -> None:
    rec = _mixed_run(SimConfig())
    tasks = rec.tasks
    assert len(tasks) == 34
    assert "l3:r1:t3" in tasks and tasks["l3:r1:t3"].producers == ("l3:r1:t2",)
    for missing in ("l3:r1:t03", "l3:r1:t99", "l3:r2:t1", "l3:r1:a1", "nonsense", 3):
        assert missing not in tasks
        assert tasks.get(missing) is None
    with pytest.raises(KeyError):
        tasks["l3:r1:t0"]
    assert next(reversed(tasks.values())).task_id == "l3:r1:t34"
    assert pickle.loads(pickle.dumps(tasks)) == dict(tasks.items())
    before = list(tasks.items())
    first = before[0][0]
    tasks[first] = tasks[first]  # a change: from now on a plain dict serves, same order
    assert tasks.cols is None and list(tasks.items()) == before
    del tasks[first]
    assert first not in tasks and len(tasks) == 33


def test_a_streamed_record_equals_the_in_memory_one_and_the_file_says_the_same(tmp_path, monkeypatch) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    memory = [_mixed_run(SimConfig(seed=7))]
    monkeypatch.setattr(tasklog, "STREAM_BATCH", 5)  # several row groups
    monkeypatch.setattr(tasklog, "RETIRE_BATCH", 3)  # completed slots reach the file as the run goes
    path = tmp_path / "out" / "record.parquet"
    streamed = _mixed_run(SimConfig(seed=7, record_path=path))
    assert streamed.metadata["record_path"] == str(path)
    assert list(streamed.tasks.items()) == list(memory[0].tasks.items())
    assert streamed.errors == memory[0].errors and streamed.edges() == memory[0].edges()
    table = pq.read_table(path).sort_by("row")
    assert table.num_rows == 34 and pq.ParquetFile(path).num_row_groups > 1
    rows = table.to_pylist()
    ids = {r["row"]: r["task_id"] for r in rows}
    for r, t in zip(rows, memory[0].tasks.values(), strict=True):
        assert (r["task_id"], r["node"], r["level"], r["kind"], r["callable"], r["outcome"]) == (
            t.task_id, t.node, t.level, t.kind, t.callable, t.outcome.value)
        assert (r["error_class"], r["message"] or "") == (t.error_class, t.message)
        assert (r["start"], r["end"], tuple(r["workers"])) == (t.start, t.end, t.workers)
        assert tuple(ids[p] for p in r["producers"]) == t.producers


def test_each_record_of_a_streaming_worker_gets_its_own_file(tmp_path) -> None:
    path = tmp_path / "rec.parquet"
    w = Worker(level=3, num_sub_workers=1, sim=SimConfig(data_mode="timing", record_path=path))
    fn = w.register(work)
    w.init()
    x = TensorSpec((4,), "float32")

    def orch(o, _a, _c):
        ta = TaskArgs()
        ta.add_tensor(x, OUT)
        o.submit_sub(fn, ta)

    for _ in range(2):
        w.run(orch)
    first = w.take_record()
    w.run(orch)
    second = w.take_record()
    empty = w.take_record()
    w.close()
    assert list(first.tasks) == ["l3:r1:t1", "l3:r2:t1"] and list(second.tasks) == ["l3:r3:t1"]
    assert len(empty.tasks) == 0
    assert [first.metadata["record_path"], second.metadata["record_path"], empty.metadata["record_path"]] == [
        str(path), str(tmp_path / "rec-2.parquet"), str(tmp_path / "rec-3.parquet")]


def test_a_record_path_must_be_a_path() -> None:
    with pytest.raises(InvalidArgument, match="record_path"):
        SimConfig(record_path=3)
    with pytest.raises(InvalidArgument, match="record_path"):
        SimConfig(record_path="")


def test_the_trace_digest_is_the_sha256_of_the_event_lines_and_follows_new_events() -> None:
    import hashlib

    w = Worker(level=3, num_sub_workers=2, sim=SimConfig(data_mode="timing", jitter=0.1, seed=11))
    fn = w.register(work)
    w.init()
    xs = [TensorSpec((4,), "float32") for _ in range(30)]

    def orch(o, _a, _c):
        for i in range(1, 30):
            ta = TaskArgs()
            ta.add_tensor(xs[i - 1], IN)
            ta.add_tensor(xs[i], OUT)
            o.submit_sub(fn, ta)

    trace = w.simulation.trace

    def by_lines() -> tuple[str, str]:
        text = "".join(e.line() + "\n" for e in trace.ordered())
        return text, hashlib.sha256(text.encode()).hexdigest()

    w.run(orch)
    text, digest = by_lines()
    assert trace.text() == text and trace.digest() == digest
    assert trace.digest() == digest  # again, from the cache
    w.run(orch)  # more events: a new digest
    text2, digest2 = by_lines()
    assert digest2 != digest and trace.digest() == digest2 and trace.text() == text2
    n = len(trace)
    assert trace.retract(n - 3, lambda e: True) == 3  # withdrawn events leave the digest too
    assert trace.digest() == by_lines()[1] != digest2
    w.close()


def test_jitter_draws_taken_in_blocks_are_the_per_launch_draws() -> None:
    """Each launch still scales its duration by the next number of its lane's stream."""
    w = Worker(level=3, num_sub_workers=1, sim=SimConfig(data_mode="timing", jitter=0.5, seed=2))
    fn = w.register(work)
    w.init()
    n = 600  # more than one block of draws
    xs = [TensorSpec((4,), "float32") for _ in range(n)]

    def orch(o, _a, _c):
        for x in xs:
            ta = TaskArgs()
            ta.add_tensor(x, OUT)
            o.submit_sub(fn, ta)

    w.run(orch)
    sim = w.simulation
    rec = w.take_record()
    w.close()
    rng = sim.stream("l3.sub0")
    call = sim.profile.sub["call_overhead_us"]
    for t in rec.tasks.values():
        want = (call + 5.0) * (1.0 + 0.5 * (2.0 * rng.random() - 1.0))
        assert t.end - t.start == pytest.approx(want, rel=1e-9)
