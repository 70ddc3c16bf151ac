"""The simulator's event trace: one typed, fixed-column record per event.

The trace is the executable spec's story of a run — submit, ready, dispatch, start, end,
complete, fail, poison, register, … — in virtual time (microseconds). It is built only from
ordered containers, so one seed gives one trace byte for byte, and it exports to the
Chrome/Perfetto JSON trace format with one track per worker (``docs/dfx/host-trace.md``
describes upstream's own host trace; tierbed's is its simulated counterpart).

:meth:`Trace.text` (and its :meth:`~Trace.digest`) is the bare event lines, the form determinism
checks and campaign digests hash. A ``trace.txt`` *file* starts with one ``#`` header line naming
the columns and units (:data:`TEXT_HEADER`, written by :func:`write_trace_text`);
:func:`read_trace_text` gives the bare text back.

A trace can also stream to a Parquet file as the run goes (``SimConfig.trace_path``,
:mod:`sim.trace_stream`): then it holds only the events not yet streamed, and is read back from the
file.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Iterator
from enum import StrEnum
from functools import partial
from operator import itemgetter
from pathlib import Path
from typing import NamedTuple, Protocol

import numpy as np

from sim.collector import collector_paused
from sim.errors import InvalidState


class EventKind(StrEnum):
    """Every kind of event the simulator records."""

    INIT = "init"
    CLOSE = "close"
    REGISTER = "register"
    UNREGISTER = "unregister"
    RUN_BEGIN = "run_begin"
    RUN_END = "run_end"
    SUBMIT = "submit"
    BLOCKED = "blocked"
    READY = "ready"
    DISPATCH = "dispatch"
    START = "start"
    END = "end"
    COMPLETE = "complete"
    FAIL = "fail"
    POISON = "poison"
    CANCEL = "cancel"
    CONSUMED = "consumed"
    ALLOC = "alloc"
    SCOPE_BEGIN = "scope_begin"
    SCOPE_END = "scope_end"
    FAULT = "fault"
    CONTROL = "control"
    FRAME = "frame"


class TraceEvent(NamedTuple):
    """One trace record: time, kind, the component's scope name, the subject and a detail."""

    t: float
    kind: EventKind
    scope: str
    subject: str
    detail: str

    def line(self) -> str:
        """The fixed-column text form, one line per event."""
        return f"{self.t:14.3f} {self.kind.value:<12} {self.scope:<24} {self.subject:<28} {self.detail}"


#: The first line of a ``trace.txt`` file (not part of :meth:`Trace.text` nor of its digest).
TEXT_HEADER = ("# t_us kind scope subject detail -- t_us: virtual time in microseconds (3 decimals); "
               "fixed-width columns of 14, 12, 24 and 28 characters, then the detail")


def write_trace_text(path: str | Path, text: str) -> Path:
    """Write a trace's text (:meth:`Trace.text`) to ``path`` under the :data:`TEXT_HEADER` line."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(TEXT_HEADER + "\n" + text, encoding="utf-8")
    return p


def read_trace_text(path: str | Path) -> str:
    """The bare trace text of a ``trace.txt`` file (leading ``#`` header lines skipped), as
    :meth:`Trace.text` gave it; a file without a header is returned as it is."""
    text = Path(path).read_text(encoding="utf-8")
    while text.startswith("#"):
        nl = text.find("\n")
        text = "" if nl < 0 else text[nl + 1:]
    return text


class EventSink(Protocol):
    """Where a streaming trace spills its events (:class:`sim.trace_stream.TraceSink`)."""

    path: Path
    every: int  # events recorded, beyond those a spill keeps back, before the next spill

    def write(self, events: list[tuple]) -> None: ...

    def close(self) -> None: ...


class Trace:
    """An append-only record of :class:`TraceEvent` s; disabled traces record nothing.

    Recording is on the simulator's hot path, so :meth:`add` keeps each event as a plain
    tuple (building a NamedTuple costs several times more); the ``TraceEvent`` views are made,
    in C, when the trace is read.

    A streaming trace (one with a :attr:`sink`, :meth:`attach`) hands the events stamped at or
    before the current time to its sink now and then (:meth:`spill`) and keeps only the rest; its
    events are read back from the sink's file (:mod:`sim.trace_stream`, whose docstring shows that
    the file's text is exactly the in-memory one), so :meth:`ordered`, :meth:`text`,
    :meth:`digest` and :meth:`since` raise InvalidState on it. ``len()`` still counts every event
    recorded and not withdrawn (streamed or held), so marks taken from it keep their meaning.
    """

    __slots__ = ("_digest", "_raw", "_version", "enabled", "nodes", "record", "sink", "spill_at", "streamed")

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self._raw: list[tuple[float, EventKind, str, str, str]] = []
        # Every Worker node's scope -> (level, its lanes' scopes), as elaborated (idle lanes too): the
        # Perfetto export's processes and tracks. Not an event: the text and digest do not see it.
        self.nodes: dict[str, tuple[int, tuple[str, ...]]] = {}
        # The hot path's form of :meth:`add`, for callers that checked ``enabled``: it takes one
        # ``(t, kind, scope, subject, detail)`` tuple, the fields of a TraceEvent.
        self.record = self._raw.append
        self._version = 0  # bumped when recorded events are withdrawn (appends only lengthen the list)
        self._digest: tuple[int, int, str] | None = None  # (length, version, digest) of the last digest()
        self.sink: EventSink | None = None  # where the events stream to (SimConfig.trace_path), or None
        self.streamed = 0  # events handed to a sink so far
        self.spill_at = 0  # spill once this many events are held (a streaming trace)

    def add(self, t: float, kind: EventKind, scope: str, subject: str = "", detail: str = "") -> None:
        if self.enabled:
            self._raw.append((t, kind, scope, subject, detail))

    def declare_node(self, scope: str, level: int, lanes: Iterable[str]) -> None:
        """Name a Worker node and its lanes (called once per node at elaboration)."""
        self.nodes[scope] = (level, tuple(lanes))

    def write_text(self, path: str | Path) -> Path:
        """Write :meth:`text` to ``path`` as a ``trace.txt`` file (under the :data:`TEXT_HEADER` line)."""
        return write_trace_text(path, self.text())

    def attach(self, sink: EventSink) -> None:
        """Stream from now on to ``sink`` (the previous one, if any, is the caller's to close)."""
        self.sink = sink
        self.spill_at = len(self._raw) + sink.every

    def spill(self, now: float) -> int:
        """Hand the held events stamped at or before ``now`` to the sink, in recording order; keep the rest.

        Events stamped ahead of ``now`` stay: :meth:`retract` may still withdraw them. Called between
        chunks of the run (:func:`sim.livelock.run_until`) once :attr:`spill_at` events are held, and
        with ``now = inf`` by the record's fence (``Simulation.take_record``). Returns how many went.
        """
        sink = self.sink
        if sink is None:
            raise InvalidState("Trace.spill needs a sink (SimConfig.trace_path)")
        raw = self._raw
        # The few events stamped ahead are found in C; what goes is the slices between them.
        late = np.flatnonzero(np.fromiter(map(itemgetter(0), raw), np.float64, len(raw)) > now).tolist()
        out: list[tuple] = []
        prev = 0
        for i in late:
            out += raw[prev:i]
            prev = i + 1
        out += raw[prev:]
        if out:
            sink.write(out)
            self.streamed += len(out)
            raw[:] = [raw[i] for i in late]  # the same list object: ``record`` is bound to it
            self._version += 1
        self.spill_at = len(raw) + sink.every  # what had to stay does not count towards the next spill
        return len(out)

    def retract(self, mark: int, drop: Callable[[tuple], bool]) -> int:
        """Withdraw the events recorded after the first ``mark`` for which ``drop(event)`` is true.

        Only for events the engine stamped ahead of the instant it processed them (see
        :meth:`ordered`) that turned out never to happen -- a remote session process that dies or
        stops takes its future with it. Events before ``mark`` (already handed out in a record) are
        kept. Returns how many were withdrawn; the list object is kept, as :attr:`record` is bound to it.

        A streaming trace withdraws among the events it still holds: a spill streams none stamped
        after its time (the future kept back), and the record's fence moves ``mark`` past every
        event it streams, so the held events are exactly those after ``mark`` that are not streamed.
        """
        raw = self._raw
        start = max(mark - self.streamed, 0)  # no sink: ``mark``; a sink: 0 (its fence streamed all before ``mark``)
        tail = raw[start:]
        keep = [e for e in tail if not drop(e)]
        if len(keep) != len(tail):
            raw[start:] = keep
            self._version += 1
        return len(tail) - len(keep)

    def since(self, mark: int) -> list[TraceEvent]:
        """The events recorded after the first ``mark`` (a previous ``len(trace)``), in virtual-time order."""
        self._held_is_all()
        return _in_time_order(self._raw[mark:])

    def __len__(self) -> int:
        return self.streamed + len(self._raw)

    def _held_is_all(self) -> None:
        """Raise InvalidState if the events are (or go) to a file: what is held is not the trace."""
        if self.sink is not None or self.streamed:
            raise InvalidState("this trace streams to Parquet files (SimConfig.trace_path; each record's file is "
                               "its metadata['trace_path']): read one with sim.trace_stream.read_trace(path), "
                               "trace_digest(path) or trace_text_chunks(path)")

    def __iter__(self) -> Iterator[TraceEvent]:
        return iter(self.ordered())

    def ordered(self) -> list[TraceEvent]:
        """Events in virtual-time order; ties keep the order they were recorded in.

        The engine stamps some events ahead of the instant it processes them (a submit is
        stamped when the Orchestrator thread would publish it), so the raw list is sorted
        stably here — deterministic, since the raw order is.
        """
        self._held_is_all()
        return _in_time_order(self._raw)

    def lines(self) -> Iterator[str]:
        for ev in self.ordered():
            yield ev.line()

    def text(self) -> str:
        """The whole trace as text, one fixed-column line per event."""
        self._held_is_all()
        return "".join(_text_chunks(self._raw))

    def digest(self) -> str:
        """sha256 of the text form: equal digests mean byte-identical traces.

        Hashed a chunk of lines at a time, each line formatted straight from its recorded tuple (no
        event object, no string per line); kept until more events are recorded or some withdrawn.
        """
        self._held_is_all()
        raw = self._raw
        key = (len(raw), self._version)
        cached = self._digest
        if cached is not None and cached[:2] == key:
            return cached[2]
        digest = text_sha256(_text_chunks(raw))
        self._digest = (*key, digest)
        return digest

    def of_kind(self, kind: EventKind) -> list[TraceEvent]:
        return [e for e in self.ordered() if e.kind is kind]

    def to_perfetto(self, edges: Iterable[tuple[str, str]] = ()) -> dict:
        """Chrome/Perfetto trace JSON: one process per Worker node, one thread track per lane.

        Every declared node (:meth:`declare_node`) is a process named ``L<level> Worker <scope>``
        holding one track for the node's own events (``<scope> orch/sched``) and one per lane
        (named by the lane's scope), idle lanes included; a scope no node declared gets its tracks
        on first use. Task executions (start..end on a lane) become complete ("X") slices named by
        the task's callable (the task id is in ``args.task``); every other event is an instant on
        its component's track. Each ``(producer, consumer)`` edge of ``edges`` (e.g. the
        RunRecord's :meth:`~sim.record.RunRecord.edges`) whose tasks both ran becomes a flow arrow
        from the producer's end to the consumer's start. Times are microseconds rounded to the
        nanosecond.
        """
        out: list[dict] = []
        procs: dict[str, int] = {}
        tracks: dict[tuple[str, str], tuple[int, int]] = {}  # (process scope, thread name) -> (pid, tid)
        names: set[str] = set()

        def unique(name: str) -> str:
            base, n = name, 1
            while name in names:
                n += 1
                name = f"{base} #{n}"
            names.add(name)
            return name

        def proc(scope: str, level: int | None = None) -> int:
            if scope not in procs:
                procs[scope] = pid = len(procs) + 1
                label = f"L{level} Worker {scope}" if level is not None else f"Worker {scope}"
                out.append({"ph": "M", "name": "process_name", "pid": pid, "tid": 0, "args": {"name": unique(label)}})
                out.append({"ph": "M", "name": "process_sort_index", "pid": pid, "tid": 0,
                            "args": {"sort_index": pid}})
            return procs[scope]

        def thread(pscope: str, name: str) -> tuple[int, int]:
            key = (pscope, name)
            if key not in tracks:
                pid = proc(pscope)
                tracks[key] = ids = (pid, len(tracks) + 1)
                out.append({"ph": "M", "name": "thread_name", "pid": pid, "tid": ids[1],
                            "args": {"name": unique(name)}})
                out.append({"ph": "M", "name": "thread_sort_index", "pid": pid, "tid": ids[1],
                            "args": {"sort_index": ids[1]}})
            return tracks[key]

        lane_of: dict[str, str] = {}  # lane scope -> its node's scope
        for scope, (level, lanes) in sorted(self.nodes.items(), key=lambda kv: (-kv[1][0], kv[0])):
            proc(scope, level)
            thread(scope, f"{scope} orch/sched")
            for lane in lanes:
                lane_of[lane] = scope
                thread(scope, lane)

        def lane_track(scope: str) -> tuple[int, int]:
            return thread(lane_of.get(scope) or (scope.rsplit(".", 1)[0] if "." in scope else scope), scope)

        def node_track(scope: str) -> tuple[int, int]:
            return thread(scope, f"{scope} orch/sched")

        events = self.ordered()
        callables = {ev.subject: ev.detail for ev in events if ev.kind is EventKind.SUBMIT and ev.detail}
        open_slices: dict[tuple[str, str], int] = {}
        ran: dict[str, list[tuple[int, int, int, int]]] = {}  # task id -> [(start ns, end ns, pid, tid)]
        for ev in events:
            ns = round(ev.t * 1000)
            if ev.kind is EventKind.START:
                lane_track(ev.scope)
                open_slices[(ev.scope, ev.subject)] = ns
                continue
            if ev.kind is EventKind.END and (ev.scope, ev.subject) in open_slices:
                pid, tid = lane_track(ev.scope)
                t0 = open_slices.pop((ev.scope, ev.subject))
                ran.setdefault(ev.subject, []).append((t0, ns, pid, tid))
                out.append({"ph": "X", "name": callables.get(ev.subject, ev.subject), "cat": "task", "pid": pid,
                            "tid": tid, "ts": t0 / 1000, "dur": (ns - t0) / 1000,
                            "args": {"task": ev.subject, "lane": ev.scope, "detail": ev.detail}})
                continue
            pid, tid = lane_track(ev.scope) if ev.kind is EventKind.END else node_track(ev.scope)
            out.append({"ph": "i", "s": "t", "name": f"{ev.kind.value} {ev.subject}".strip(),
                        "cat": ev.kind.value, "pid": pid, "tid": tid, "ts": ns / 1000,
                        "args": {"detail": ev.detail}})
        flow = 0
        for producer, consumer in edges:
            if producer not in ran or consumer not in ran:
                continue
            p0, p1, ppid, ptid = max(ran[producer], key=itemgetter(1))
            c0, _c1, cpid, ctid = min(ran[consumer], key=itemgetter(0))
            flow += 1
            at = max(p0, p1 - 1)  # inside the producer's slice, at its end
            out.append({"ph": "s", "id": flow, "name": "dependency", "cat": "dependency", "pid": ppid, "tid": ptid,
                        "ts": at / 1000, "args": {"producer": producer, "consumer": consumer}})
            out.append({"ph": "f", "bp": "e", "id": flow, "name": "dependency", "cat": "dependency", "pid": cpid,
                        "tid": ctid, "ts": c0 / 1000})
        return {"traceEvents": out, "displayTimeUnit": "ns", "otherData": {"producer": "tierbed sim",
                                                                            "time_unit": "us"}}

    def write_perfetto(self, path: str | Path, edges: Iterable[tuple[str, str]] = ()) -> Path:
        """Write :meth:`to_perfetto` to ``path`` (open it in ui.perfetto.dev or chrome://tracing)."""
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(json.dumps(self.to_perfetto(edges), separators=(",", ":")), encoding="utf-8")
        return p


_as_event = partial(tuple.__new__, TraceEvent)  # a recorded tuple as its TraceEvent, built in C
# :meth:`TraceEvent.line` and its newline as one %-format of the recorded tuple (``%s`` of an
# EventKind is its value): the same bytes, without an event object or an f-string per line.
_LINE = "%14.3f %-12s %-24s %-28s %s\n"
_CHUNK = 1 << 14


def text_sha256(chunks: Iterable[str]) -> str:
    """sha256 of a trace's text given a chunk of lines at a time (in memory or from a streamed file)."""
    h = hashlib.sha256()
    for chunk in chunks:
        h.update(chunk.encode())
    return h.hexdigest()


def _text_chunks(raw: list[tuple]) -> Iterator[str]:
    """The text form (:meth:`Trace.text`) of recorded events, in virtual-time order, a chunk of lines at a time."""
    events = sorted(raw, key=itemgetter(0))  # stable: ties keep the recorded order
    fmt = _LINE.__mod__
    for i in range(0, len(events), _CHUNK):
        yield "".join(map(fmt, events[i:i + _CHUNK]))


def _in_time_order(raw: list[tuple]) -> list[TraceEvent]:
    with collector_paused():  # one new object per event, all kept
        return list(map(_as_event, sorted(raw, key=itemgetter(0))))  # sorted() is stable


def first_difference(a: Trace, b: Trace) -> tuple[int, str, str] | None:
    """The first differing line of two traces as (index, line_a, line_b), or None if identical."""
    la, lb = list(a.lines()), list(b.lines())
    for i, (x, y) in enumerate(zip(la, lb, strict=False)):
        if x != y:
            return i, x, y
    if len(la) != len(lb):
        i = min(len(la), len(lb))
        return i, la[i] if i < len(la) else "<end of trace>", lb[i] if i < len(lb) else "<end of trace>"
    return None
