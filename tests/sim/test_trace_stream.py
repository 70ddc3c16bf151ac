"""Streaming the event trace to Parquet while the run goes on (``SimConfig.trace_path``).

The oracle is the in-memory trace of the same scenario and seed: the streamed file's text and
sha256 (``sim.trace_stream``) must equal :meth:`Trace.text` / :meth:`Trace.digest` byte for byte,
also when the trace spills many times during the run, and when a crashed remote session withdraws
events it had stamped ahead of its death (:meth:`Trace.retract`).
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import sim.livelock as livelock
import sim.trace_stream as trace_stream
from reference import get_kernel
from sim import SimConfig, TaskArgs, TensorArgType, TensorSpec, Worker, modeled_duration
from sim.determinism import check_determinism
from sim.errors import InvalidArgument, InvalidState, SimError
from sim.remote.faults import FaultPlan, SessionCrash
from sim.remote.spec import RemoteCallable, RemoteWorkerSpec
from sim.trace import EventKind, Trace
from sim.trace_stream import read_trace, trace_digest, trace_text_chunks
from tests.sim.test_session_crash_and_hang import CHAIN, CMD_TIMEOUT_S, profile, scalars  # noqa: F401

IN, OUT = TensorArgType.INPUT, TensorArgType.OUTPUT


@modeled_duration(5.0)
def work(args) -> None:
    return None


def _dag(config: SimConfig, n: int = 120, runs: int = 1):
    """A timing-only DAG of ``n - 3`` tasks (chains with skip edges) on three SUB workers, run
    ``runs`` times; returns the Worker (not closed) and its record."""
    w = Worker(level=3, num_sub_workers=3, sim=config)
    fn = w.register(work)
    w.init()
    xs = [TensorSpec((4,), "float32") for _ in range(n)]

    def orch(o, _a, _c):
        for i in range(3, n):
            ta = TaskArgs()
            ta.add_tensor(xs[i - 3], IN)
            ta.add_tensor(xs[i - 1], IN)
            ta.add_tensor(xs[i], OUT)
            o.submit_sub(fn, ta)

    for _ in range(runs):
        w.run(orch)
    return w, w.take_record()


def _text_of(rec) -> str:
    return "".join(e.line() + "\n" for e in rec.events)


def _file_text(path: str | Path) -> str:
    return "".join(trace_text_chunks(path))


def test_a_streamed_trace_has_the_in_memory_text_and_digest(tmp_path) -> None:
    w, memory = _dag(SimConfig(seed=3, jitter=0.2, data_mode="timing"))
    text, digest = w.simulation.trace.text(), w.simulation.trace.digest()
    w.close()
    path = tmp_path / "out" / "trace.parquet"
    ws, streamed = _dag(SimConfig(seed=3, jitter=0.2, data_mode="timing", trace_path=path))
    assert streamed.metadata["trace_path"] == str(path) and streamed.events == []
    assert len(memory.events) > 500 and text == _text_of(memory)
    assert _file_text(path) == text
    assert trace_digest(path) == digest == hashlib.sha256(text.encode()).hexdigest()
    back = read_trace(path)
    assert back.text() == text and back.digest() == digest and len(back) == len(memory.events)
    assert [tuple(e) for e in back.ordered()] == [tuple(e) for e in memory.events]
    assert all(type(e.kind) is EventKind for e in back.ordered())  # kinds come back typed
    assert any(ev["ph"] == "X" for ev in back.to_perfetto()["traceEvents"])  # task slices from the file
    assert list(streamed.tasks.items()) == list(memory.tasks.items())
    trace = ws.simulation.trace
    assert len(trace) == len(memory.events) and trace.streamed == len(memory.events)
    for read in (trace.text, trace.digest, trace.ordered, lambda: trace.since(0)):
        with pytest.raises(InvalidState, match="trace_path"):
            read()
    ws.close()
    again = tmp_path / "again.parquet"
    _dag(SimConfig(seed=3, jitter=0.2, data_mode="timing", trace_path=again))[0].close()
    assert again.read_bytes() == path.read_bytes()  # the file is a function of the seed, byte for byte


def test_a_long_run_spills_often_holds_few_events_and_gives_the_same_digest(tmp_path, monkeypatch) -> None:
    n = 3000
    w, memory = _dag(SimConfig(seed=9, jitter=0.1, data_mode="timing"), n=n)
    w.close()
    monkeypatch.setattr(trace_stream, "SPILL_EVERY", 1000)
    monkeypatch.setattr(livelock, "CHECK_EVERY", 256)
    held: list[int] = []  # events held at each spill: the most since the one before
    kept: list[int] = []  # ... and after it: those stamped ahead of the spill's time
    spill = Trace.spill

    def watched(self: Trace, now: float) -> int:
        held.append(len(self._raw))
        out = spill(self, now)
        kept.append(len(self._raw))
        return out

    monkeypatch.setattr(Trace, "spill", watched)
    path = tmp_path / "trace.parquet"
    ws, _ = _dag(SimConfig(seed=9, jitter=0.1, data_mode="timing", trace_path=path), n=n)
    ws.close()
    total = len(memory.events)
    assert total > 15_000
    assert len(held) > 8  # spilled many times during the run (the last is the record's fence)
    # Held: what the last spill kept back, the threshold and what one chunk of steps records (the
    # first chunk holds the orchestration's burst: all n submits, stamped in one step) -- never the
    # run's ~7 events a task.
    assert held[0] < n + 1600 and all(h - k < 1600 for h, k in zip(held[1:], kept, strict=False)), (held, kept)
    assert max(held) < total / 4 and kept[-1] == 0
    assert trace_digest(path) == hashlib.sha256(_text_of(memory).encode()).hexdigest()
    import pyarrow.parquet as pq

    assert pq.ParquetFile(path).num_row_groups == len(held)


def test_each_record_streams_to_its_own_file_equal_to_the_in_memory_record(tmp_path) -> None:
    def two_records(config: SimConfig):
        w, first = _dag(config, n=40)
        w.run(lambda o, _a, _c: None)
        second = w.take_record()
        empty = w.take_record()
        w.close()
        return first, second, empty

    memory = two_records(SimConfig(seed=4, jitter=0.3, data_mode="timing"))
    path = tmp_path / "t.parquet"
    streamed = two_records(SimConfig(seed=4, jitter=0.3, data_mode="timing", trace_path=path))
    files = [str(path), str(tmp_path / "t-2.parquet"), str(tmp_path / "t-3.parquet")]
    assert [r.metadata["trace_path"] for r in streamed] == files
    assert all(memory[0].events) and memory[2].events == []
    for m, f in zip(memory, files, strict=True):
        assert _file_text(f) == _text_of(m)
        assert [tuple(e) for e in read_trace(f).ordered()] == [tuple(e) for e in m.events]


def _crash_run(config: SimConfig):
    w = Worker(level=4, remote_session_timeout_s=CMD_TIMEOUT_S, sim=config)
    r1 = w.add_remote_worker(RemoteWorkerSpec("127.0.0.1:9000", "a2a3sim", device_ids=(0,)))
    r2 = w.add_remote_worker(RemoteWorkerSpec("127.0.0.1:9001", "a2a3sim", device_ids=(0,)))
    w.register(get_kernel("add"))  # what the remote chain submits
    h = w.register(RemoteCallable(CHAIN), workers=[r1, r2])
    w.init()
    start_up = w.take_record()  # the crash is in the second record: retract's mark is past the first
    with pytest.raises(SimError):
        w.run(lambda o, a, c: [o.submit_next_level(h, scalars(n), worker=wid) for wid, n in ((1, 6), (1, 2), (0, 3))])
    rec = w.take_record()
    w.close()
    return start_up, rec


def test_a_crashed_session_withdraws_the_same_events_streamed_or_not(profile, tmp_path, monkeypatch) -> None:  # noqa: F811
    # The crash comes while the inner Orchestrator publishes the chain's submits (stamped ahead of
    # the instant the engine processed them) and the first chip task is dispatched but not started.
    def config(**kw) -> SimConfig:
        return SimConfig(seed=11, jitter=0.1, profile=profile, faults=FaultPlan([SessionCrash(1, 142.0)]), **kw)

    withdrawn: list[tuple[int, int]] = []  # (events streamed before, events withdrawn)
    retract = Trace.retract

    def watched(self: Trace, mark: int, drop) -> int:
        n = retract(self, mark, drop)
        withdrawn.append((self.streamed, n))
        return n

    monkeypatch.setattr(Trace, "retract", watched)
    memory = _crash_run(config())
    assert len(withdrawn) == 1 and withdrawn[0][1] > 0  # the crash withdraws what the session had stamped ahead
    withdrawn.clear()
    monkeypatch.setattr(trace_stream, "SPILL_EVERY", 1)  # spill after every event the run steps
    monkeypatch.setattr(livelock, "CHECK_EVERY", 1)
    path = tmp_path / "crash.parquet"
    streamed = _crash_run(config(trace_path=path))
    assert len(withdrawn) == 1 and withdrawn[0][0] > len(memory[0].events)  # the run had streamed ...
    assert withdrawn[0][1] > 0  # ... and what it held still had the events to withdraw
    assert memory[0].events and _file_text(path) == _text_of(memory[0])
    assert _file_text(tmp_path / "crash-2.parquet") == _text_of(memory[1])
    assert list(streamed[1].tasks.items()) == list(memory[1].tasks.items())


def test_bad_trace_paths_are_invalid_arguments() -> None:
    for bad in (3, b"t.parquet", ""):
        with pytest.raises(InvalidArgument, match="trace_path"):
            SimConfig(trace_path=bad)
    with pytest.raises(InvalidArgument, match="trace_path needs trace=True"):
        SimConfig(trace=False, trace_path="t.parquet")


def test_the_determinism_check_refuses_a_streaming_config(tmp_path) -> None:
    with pytest.raises(InvalidArgument, match="trace_path"):
        check_determinism(lambda c: Trace(), SimConfig(trace_path=tmp_path / "t.parquet"))


def test_reading_a_missing_or_foreign_file_is_a_clear_error(tmp_path) -> None:
    with pytest.raises(InvalidArgument, match="no trace file"):
        read_trace(tmp_path / "missing.parquet")
    garbage = tmp_path / "garbage.parquet"
    garbage.write_bytes(b"not parquet at all")
    with pytest.raises(InvalidArgument, match="not a streamed trace file"):
        trace_digest(garbage)
    import pyarrow as pa
    import pyarrow.parquet as pq

    other = tmp_path / "other.parquet"
    pq.write_table(pa.table({"row": [1, 2]}), other)
    with pytest.raises(InvalidArgument, match="not a streamed trace file"):
        read_trace(other)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 2), st.integers(-2, 8),
                          st.sampled_from(["event", "event", "event", "spill", "retract"])), min_size=10, max_size=80))
def test_spills_and_retractions_in_any_order_give_the_in_memory_text(steps) -> None:
    """The ordering argument of ``sim.trace_stream`` on synthetic traces: time only moves on, events
    are stamped at, before or after it (ties are common), spills and future-only retractions come
    anywhere; the file's text equals the in-memory trace's."""
    import tempfile

    memory, streamed = Trace(), Trace()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "t.parquet"
        sink = trace_stream.TraceSink(path)
        streamed.attach(sink)
        now = 0.0
        for i, (advance, offset, what) in enumerate(steps):
            now += advance
            if what == "spill":
                streamed.spill(now)
            elif what == "retract":
                future = lambda e, now=now: e[0] > now and int(e[3][1:]) % 2 == 0  # noqa: E731
                assert memory.retract(0, future) == streamed.retract(0, future)
            else:
                ev = (max(now + offset, 0.0), EventKind.FRAME, f"s{offset % 3}", f"e{i}", f"d{i % 4}")
                memory.record(ev)
                streamed.record(ev)
            assert len(streamed) == len(memory)
        streamed.spill(math.inf)
        sink.close()
        assert _file_text(path) == memory.text()
        assert trace_digest(path) == memory.digest()
