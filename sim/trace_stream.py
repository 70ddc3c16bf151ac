"""Streaming the event trace to a Parquet file while the run goes on.

For the largest traced runs (``SimConfig(trace=True, trace_path=...)``): every so often (every
:data:`SPILL_EVERY` events recorded, checked between chunks of :func:`sim.livelock.run_until`) the
:class:`~sim.trace.Trace` hands the events it holds that are stamped at or before the current
virtual time to a :class:`TraceSink`, which appends them to the file as one row group and forgets
them. ``Worker.take_record`` is the fence: it hands over every event left of the record, closes the
file, and the next record streams to ``<stem>-2<suffix>``, ``<stem>-3<suffix>``, ...
(:func:`sim.record_stream.record_file`). So the process holds a bounded number of events, not the
trace. Events recorded after the last record (a Worker's close) are written only if another record
is taken, as with ``SimConfig.record_path``.

One row per event, in the order the events were streamed:

- ``idx`` (int64): the event's number in that order, from 0 in each file;
- ``t`` (float64): its virtual time, in microseconds;
- ``kind``, ``scope``, ``subject``, ``detail`` (strings): as :class:`sim.trace.TraceEvent` has them.

The trace is read in virtual-time order, ties in recording order (:meth:`Trace.ordered`). Sorting a
file's rows by ``(t, idx)`` gives exactly that order, for two reasons:

(a) nothing streamed is ever withdrawn. :meth:`Trace.retract` withdraws only events stamped after
    the current time (a dead remote session's future) and never one of an earlier record; a spill
    streams only events stamped at or before the current time, and the record's fence streams the
    rest into that record. So the file holds the record's events, no more and no fewer;
(b) events of equal ``t`` are streamed in their recording order. A spill streams in list order,
    which is recording order, and an event it keeps back has ``t`` > now, so every event recorded
    after it with the same ``t`` is kept back too (its ``t`` is also > now): none of them can be
    streamed before it. ``idx`` therefore orders equal times as the recording did, and the stable
    time sort of the whole record equals the sort by ``(t, idx)``.

:func:`trace_text_chunks` and :func:`trace_digest` give the same text and sha256 as
:meth:`Trace.text` and :meth:`Trace.digest` of the same events; :func:`read_trace` gives them back
as an in-memory :class:`~sim.trace.Trace` (ordered, text, digest, Perfetto export). Reading holds
the file's columns in memory (Arrow arrays, far smaller than the recorded tuples), not the run.
The file's content is a function of the events alone (no clock, no unordered iteration), so of the
seed.
"""

from __future__ import annotations

from collections.abc import Iterator
from operator import itemgetter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from sim.errors import InvalidArgument
from sim.trace import _CHUNK, _LINE, EventKind, Trace, text_sha256

if TYPE_CHECKING:
    import pyarrow as pa

#: Events recorded (beyond those the last spill had to keep back) before the trace spills to its file.
SPILL_EVERY = 1 << 17

_COLUMNS = ("idx", "t", "kind", "scope", "subject", "detail")


def _schema() -> pa.Schema:
    import pyarrow as pa

    return pa.schema([("idx", pa.int64()), ("t", pa.float64()), ("kind", pa.string()), ("scope", pa.string()),
                      ("subject", pa.string()), ("detail", pa.string())])


def _strings(values: list) -> pa.Array:
    import pyarrow as pa

    try:
        return pa.array(values, pa.string())
    except (pa.ArrowTypeError, pa.ArrowInvalid):  # a non-str field: its text, as the trace's %s prints it
        return pa.array([v if isinstance(v, str) else str(v) for v in values], pa.string())


class TraceSink:
    """Appends batches of recorded events to one Parquet file (see the module docstring)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.every = SPILL_EVERY  # read here, so a test can lower it before the Worker is made
        self._writer: Any = None
        self.rows = 0

    def write(self, events: list[tuple]) -> None:
        """Append ``events`` (recorded tuples, in the order to stream them) as one row group."""
        import pyarrow as pa

        if not events:
            return
        n = len(events)
        # One column at a time (``zip(*events)`` costs several times more on a big batch).
        t, kind, scope, subject, detail = (list(map(itemgetter(i), events)) for i in range(5))
        table = pa.Table.from_arrays([
            pa.array(np.arange(self.rows, self.rows + n, dtype=np.int64)), pa.array(t, pa.float64()),
            _strings(kind), _strings(scope), _strings(subject), _strings(detail)], schema=_schema())
        if self._writer is None:
            self._writer = self._open()
        self._writer.write_table(table)
        self.rows += n

    def _open(self) -> Any:
        import pyarrow.parquet as pq

        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Dictionary pages for the few-valued columns only: a subject (a task id) rarely repeats.
        return pq.ParquetWriter(self.path, _schema(), use_dictionary=["kind", "scope", "detail"])

    def close(self) -> None:
        """Finish the file (an empty one, with the columns, if no event was written)."""
        if self._writer is None:
            self._writer = self._open()
        self._writer.close()


class _Sorted:
    """A trace file's events sorted by ``(t, idx)``, read back as tuples a slice at a time."""

    def __init__(self, path: str | Path) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        p = Path(path)
        if not p.is_file():
            raise InvalidArgument(f"no trace file at {str(p)!r}")
        try:
            # The few-valued columns stay dictionary-encoded in memory, as they are in the file.
            table = pq.read_table(p, columns=list(_COLUMNS), read_dictionary=["kind", "scope", "detail"])
        except (pa.ArrowException, OSError, KeyError) as exc:
            raise InvalidArgument(f"{str(p)!r} is not a streamed trace file: {exc}") from None
        got = [(f.name, f.type.value_type if pa.types.is_dictionary(f.type) else f.type) for f in table.schema]
        if got != [(f.name, f.type) for f in _schema()]:
            raise InvalidArgument(f"{str(p)!r} is not a streamed trace file: its columns are {table.schema}")
        order = np.lexsort((table.column("idx").to_numpy(), table.column("t").to_numpy()))  # by t, then idx
        table = table.unify_dictionaries().take(pa.array(order)).combine_chunks()  # one dictionary a column
        self.n = table.num_rows
        self.t = table.column("t").to_numpy()
        # A dictionary column as (its values, its indices): ``to_pylist`` would make a scalar per value.
        self.cols: list[tuple[list, np.ndarray] | pa.Array] = []
        for c in _COLUMNS[2:]:
            arr = table.column(c).combine_chunks()
            if pa.types.is_dictionary(arr.type):
                self.cols.append((arr.dictionary.to_pylist(), arr.indices.to_numpy(zero_copy_only=False)))
            else:
                self.cols.append(arr)

    def rows(self, start: int, stop: int) -> Iterator[tuple]:
        """Events ``start:stop`` as ``(t, kind, scope, subject, detail)`` tuples."""
        cols: list[list] = [self.t[start:stop].tolist()]
        for c in self.cols:
            if isinstance(c, tuple):
                cols.append(list(map(c[0].__getitem__, c[1][start:stop].tolist())))
            else:
                cols.append(c.slice(start, stop - start).to_pylist())
        return zip(*cols, strict=True)

    def chunks(self) -> Iterator[Iterator[tuple]]:
        for i in range(0, self.n, _CHUNK):
            yield self.rows(i, min(i + _CHUNK, self.n))


def trace_text_chunks(path: str | Path) -> Iterator[str]:
    """The text form (:meth:`Trace.text`) of a streamed trace file, a chunk of lines at a time."""
    fmt = _LINE.__mod__
    for rows in _Sorted(path).chunks():
        yield "".join(map(fmt, rows))


def trace_digest(path: str | Path) -> str:
    """sha256 of a streamed trace file's text: equal to :meth:`Trace.digest` of the same events."""
    return text_sha256(trace_text_chunks(path))


def read_trace(path: str | Path) -> Trace:
    """A streamed trace file as an in-memory :class:`~sim.trace.Trace` of its events (no sink).

    Its events are held in ``(t, idx)`` order, so its stable time sort keeps that order and its
    :meth:`~Trace.text` and :meth:`~Trace.digest` are those of the streamed record. Node
    declarations are not in the file: its Perfetto export names tracks by scope.
    """
    kinds = {k.value: k for k in EventKind}
    trace = Trace()
    raw = trace._raw  # the same list object: ``record`` is bound to it
    for rows in _Sorted(path).chunks():
        raw.extend((t, kinds.get(k, k), s, u, d) for t, k, s, u, d in rows)
    return trace
