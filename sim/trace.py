"""The simulator's event trace: one typed, fixed-column record per event.

The trace is the executable spec's story of a run — submit, ready, dispatch, start, end,
complete, fail, poison, register, … — in virtual time (microseconds). It is built only from
ordered containers, so one seed gives one trace byte for byte, and it exports to the
Chrome/Perfetto JSON trace format with one track per worker (``docs/dfx/host-trace.md``
describes upstream's own host trace; tierbed's is its simulated counterpart).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from enum import StrEnum
from functools import partial
from operator import itemgetter
from pathlib import Path
from typing import NamedTuple

from sim.collector import collector_paused


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


class Trace:
    """An append-only record of :class:`TraceEvent` s; disabled traces record nothing.

    Recording is on the simulator's hot path, so :meth:`add` keeps each event as a plain
    tuple (building a NamedTuple costs several times more); the ``TraceEvent`` views are made,
    in C, when the trace is read.
    """

    __slots__ = ("_raw", "enabled", "record")

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self._raw: list[tuple[float, EventKind, str, str, str]] = []
        # The hot path's form of :meth:`add`, for callers that checked ``enabled``: it takes one
        # ``(t, kind, scope, subject, detail)`` tuple, the fields of a TraceEvent.
        self.record = self._raw.append

    def add(self, t: float, kind: EventKind, scope: str, subject: str = "", detail: str = "") -> None:
        if self.enabled:
            self._raw.append((t, kind, scope, subject, detail))

    def retract(self, mark: int, drop: Callable[[tuple], bool]) -> int:
        """Withdraw the events recorded after the first ``mark`` for which ``drop(event)`` is true.

        Only for events the engine stamped ahead of the instant it processed them (see
        :meth:`ordered`) that turned out never to happen -- a remote session process that dies or
        stops takes its future with it. Events before ``mark`` (already handed out in a record) are
        kept. Returns how many were withdrawn; the list object is kept, as :attr:`record` is bound to it.
        """
        raw = self._raw
        tail = raw[mark:]
        keep = [e for e in tail if not drop(e)]
        if len(keep) != len(tail):
            raw[mark:] = keep
        return len(tail) - len(keep)

    def since(self, mark: int) -> list[TraceEvent]:
        """The events recorded after the first ``mark`` (a previous ``len(trace)``), in virtual-time order."""
        return _in_time_order(self._raw[mark:])

    def __len__(self) -> int:
        return len(self._raw)

    def __iter__(self) -> Iterator[TraceEvent]:
        return iter(self.ordered())

    def ordered(self) -> list[TraceEvent]:
        """Events in virtual-time order; ties keep the order they were recorded in.

        The engine stamps some events ahead of the instant it processes them (a submit is
        stamped when the Orchestrator thread would publish it), so the raw list is sorted
        stably here — deterministic, since the raw order is.
        """
        return _in_time_order(self._raw)

    def lines(self) -> Iterator[str]:
        for ev in self.ordered():
            yield ev.line()

    def text(self) -> str:
        """The whole trace as text, one fixed-column line per event."""
        return "\n".join(self.lines()) + ("\n" if self._raw else "")

    def digest(self) -> str:
        """sha256 of the text form: equal digests mean byte-identical traces."""
        h = hashlib.sha256()
        for line in self.lines():
            h.update(line.encode())
            h.update(b"\n")
        return h.hexdigest()

    def of_kind(self, kind: EventKind) -> list[TraceEvent]:
        return [e for e in self.ordered() if e.kind is kind]

    def to_perfetto(self) -> dict:
        """Chrome/Perfetto trace JSON: one process per level node, one thread track per worker.

        Task executions (start..end on a worker) become complete ("X") slices; every other
        event becomes an instant on its component's track.
        """
        tracks: dict[str, tuple[int, int]] = {}
        procs: dict[str, int] = {}
        out: list[dict] = []

        def track(scope: str) -> tuple[int, int]:
            if scope not in tracks:
                proc = scope.rsplit(".", 1)[0] if "." in scope else scope
                if proc not in procs:
                    procs[proc] = len(procs) + 1
                    out.append({"ph": "M", "name": "process_name", "pid": procs[proc], "tid": 0,
                                "args": {"name": proc}})
                tracks[scope] = (procs[proc], len(tracks) + 1)
                out.append({"ph": "M", "name": "thread_name", "pid": tracks[scope][0], "tid": tracks[scope][1],
                            "args": {"name": scope}})
            return tracks[scope]

        open_slices: dict[tuple[str, str], float] = {}
        for ev in self.ordered():
            pid, tid = track(ev.scope)
            if ev.kind is EventKind.START:
                open_slices[(ev.scope, ev.subject)] = ev.t
            elif ev.kind is EventKind.END and (ev.scope, ev.subject) in open_slices:
                t0 = open_slices.pop((ev.scope, ev.subject))
                out.append({"ph": "X", "name": ev.subject, "cat": "task", "pid": pid, "tid": tid, "ts": t0,
                            "dur": ev.t - t0, "args": {"detail": ev.detail}})
            else:
                out.append({"ph": "i", "s": "t", "name": f"{ev.kind.value} {ev.subject}".strip(),
                            "cat": ev.kind.value, "pid": pid, "tid": tid, "ts": ev.t,
                            "args": {"detail": ev.detail}})
        return {"traceEvents": out, "displayTimeUnit": "ns", "otherData": {"producer": "tierbed sim",
                                                                            "time_unit": "us"}}

    def write_perfetto(self, path: str | Path) -> Path:
        """Write :meth:`to_perfetto` to ``path`` (open it in ui.perfetto.dev or chrome://tracing)."""
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(json.dumps(self.to_perfetto(), separators=(",", ":")), encoding="utf-8")
        return p


_as_event = partial(tuple.__new__, TraceEvent)  # a recorded tuple as its TraceEvent, built in C


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
