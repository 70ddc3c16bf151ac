"""The task log: every task since the last record, as live slots or as rows of columns.

A task slot (:class:`sim.task.Task`) is the engine's working state; once the slot is consumed
(``docs/orchestrator.md`` §8), nothing the user can observe about the task changes any more. Past a
log's first :data:`COMPACT_AFTER` tasks, the log takes each consumed slot (:meth:`TaskLog.retire`)
and writes the rows of a batch of them at once (:meth:`TaskLog.flush`) -- outcome, start and end,
the lanes it ran on, its producers as row numbers -- into typed arrays, and lets the slots go: a
large run's memory grows with the few bytes of a row per task, not with the slots, and taking the
record turns arrays into :class:`sim.record.TaskColumns` instead of visiting a slot per task. The
slots of a small run, and tasks still live when the record is taken (work a parent abandoned), are
written at the record.

Rows are numbered in submit order across the whole simulation (``Task.row``); a record holds the
rows ``base`` onwards, so a producer numbered before ``base`` was recorded earlier and is named by
its id. With a sink (:mod:`sim.record_stream`), rows are written from the first task on, full
batches of them go to a Parquet file while the run goes on, and the record reads them back.
"""

from __future__ import annotations

import math
from array import array
from itertools import chain
from operator import attrgetter
from typing import TYPE_CHECKING, Any

import numpy as np

from sim.errors import ErrorClass
from sim.record import OUTCOMES, Outcome, TaskColumns
from sim.task import COMPLETED, TaskKind

if TYPE_CHECKING:
    from sim.task import Task

_NAN = math.nan
_O_COMPLETED, _O_FAILED, _O_NOT_RUN = (OUTCOMES.index(o) for o in (Outcome.COMPLETED, Outcome.FAILED, Outcome.NOT_RUN))
#: A row's kind word by its code: kind * 2 + group.
KIND_WORDS = [("group" if g else "single") + ("/sub" if k is TaskKind.SUB else "/next_level")
              for k in TaskKind for g in (False, True)]
_ALLOC = TaskKind.ALLOC
_ROW, _RUN, _SEQ, _KIND, _GROUP = (attrgetter(a) for a in ("row", "run", "seq", "kind", "group"))
_CALLABLE, _WORKERS, _START, _END = (attrgetter(a) for a in ("callable", "workers", "start", "end"))
_PREFIX = attrgetter("prefix")
_PRODUCERS = attrgetter("producers")
_UNCERTAIN = ErrorClass.UNCERTAIN_STATE.value
#: Rows a streaming log keeps before it writes them out as one batch.
STREAM_BATCH = 1 << 17
#: How many consumed slots wait to be written as one batch of rows (``TaskLog.flush``).
RETIRE_BATCH = 1 << 12
#: How many tasks a log holds as slots before it starts writing rows as slots are consumed. Below
#: it, a run keeps its slots to the record (writing a row costs about what the slot's memory saves
#: a small run); above it, memory grows by rows, not slots.
COMPACT_AFTER = 1 << 18


class RowBatch:
    """Rows in the order they were written, each with its row number (``row``)."""

    __slots__ = ("callable", "code", "end", "errors", "p_len", "p_rows", "row", "run", "seq", "start", "workers")

    def __init__(self) -> None:
        self.row = array("q")
        self.run = array("i")
        self.seq = array("q")
        self.code = array("b")  # (kind * 2 + group) * 4 + outcome
        self.callable = array("i")
        self.workers = array("i")
        self.start = array("d")
        self.end = array("d")
        self.p_len = array("q")
        self.p_rows = array("q")  # a row number, or -1 - k for the k-th foreign producer id
        self.errors: dict[int, tuple[str | None, str]] = {}  # row -> (error class, message)

    def __len__(self) -> int:
        return len(self.row)


class _WorkerCodes(dict):
    """Worker set -> its code; a set seen for the first time is numbered and listed in ``sets``."""

    __slots__ = ("sets",)

    def __init__(self, sets: list[tuple[str, ...]]) -> None:
        super().__init__()
        self.sets = sets

    def __missing__(self, ws: tuple[str, ...]) -> int:
        code = self[ws] = len(self.sets)
        self.sets.append(ws)
        return code


class TaskLog:
    """The tasks since the last record (see the module docstring)."""

    __slots__ = ("_keep", "base", "batch", "callable_code", "callables", "compact", "compact_row", "foreign",
                 "foreign_code", "foreign_rows", "next_row", "retired", "run_code", "runs", "sink", "tasks",
                 "worker_code", "worker_sets")

    def __init__(self, base: int = 0, sink: Any = None) -> None:
        self.base = base  # the row number of this log's first task
        self.next_row = base
        # Whether a consumed slot's row is written at once (``Node._consume``): from the task numbered
        # ``compact_row`` on (``Node.submit`` sets it), or from the first when streaming.
        self.compact = sink is not None
        self.compact_row = base + COMPACT_AFTER
        self.tasks: list[Task | None] = []  # by row - base; None once retired or written
        self.retired: list[Task] = []  # consumed slots whose rows the next flush() writes
        self.batch = RowBatch()
        self.sink = sink
        # What rows share, by code: runs (as (prefix, node scope, level)), callable names, worker sets,
        # and the ids of producers recorded earlier.
        self.runs: list[tuple[str, str, int]] = []
        # A run by its task-name prefix, unique in a simulation: keyed by id, the log would have to keep
        # every run (and what its completion callback holds) alive to the record -- ~100 bytes a task.
        self.run_code: dict[str, int] = {}
        self.callables: list[str] = []
        self.callable_code: dict[int, int] = {}
        self.worker_sets: list[tuple[str, ...]] = []
        self.worker_code = _WorkerCodes(self.worker_sets)
        self.foreign: list[str] = []
        self.foreign_rows: list[int] = []  # their row numbers (a stream names them by row)
        self.foreign_code: dict[str, int] = {}
        # The callables coded so far (a few), kept alive so that their ids stay theirs.
        self._keep: list[Any] = []

    def retire(self, task: Task) -> None:
        """A consumed slot: its row is final. A slot that simply completed waits in ``retired`` for
        :meth:`flush`, which writes a batch of rows at once; any other (failed, not run) is written
        now, so that a batch never needs a look for errors. The log's list no longer holds it."""
        if task.error is not None or task.error_class is not None or task.not_run:
            self.write(task)
            return
        self.tasks[task.row - self.base] = None
        retired = self.retired
        retired.append(task)
        if len(retired) >= RETIRE_BATCH:
            self.flush()

    def flush(self) -> None:
        """Write the rows of the retired slots, a column at a time, and let the slots go.

        Every retired slot simply completed (:meth:`retire`); a batch with a producer of an earlier
        record is written task by task (:meth:`write`), which names such producers.
        """
        ts = self.retired
        if not ts:
            return
        self.retired = []
        n = len(ts)
        prods = list(map(_PRODUCERS, ts))
        rows = array("q", map(_ROW, chain.from_iterable(prods)))
        if rows and min(rows) < self.base:
            for t in ts:
                self.write(t)
            return
        b = self.batch
        b.row.extend(map(_ROW, ts))
        prefixes = list(map(_PREFIX, map(_RUN, ts)))
        code = self.run_code
        for p, t in dict(zip(prefixes, ts, strict=True)).items():
            if p not in code:
                code[p] = len(self.runs)
                self.runs.append((p, t.node.scope, t.node.level))
        b.run.extend(map(code.__getitem__, prefixes))
        b.seq.extend(map(_SEQ, ts))
        kind = np.fromiter(map(_KIND, ts), np.int8, n)
        kind *= 2
        kind += np.fromiter(map(_GROUP, ts), np.int8, n)
        kind *= 4  # + _O_COMPLETED, which is 0
        b.code.frombytes(kind.tobytes())
        callables = list(map(_CALLABLE, ts))
        ids = list(map(id, callables))
        code = self.callable_code
        for i, c in dict(zip(ids, callables, strict=True)).items():
            if i not in code:
                code[i] = len(self.callables)
                self.callables.append(getattr(c, "name", ""))
                self._keep.append(c)
        b.callable.extend(map(code.__getitem__, ids))
        b.workers.extend(map(self.worker_code.__getitem__, map(_WORKERS, ts)))  # new sets: _WorkerCodes
        b.start.frombytes(np.array(list(map(_START, ts)), np.float64).tobytes())  # None -> NaN
        b.end.frombytes(np.array(list(map(_END, ts)), np.float64).tobytes())
        b.p_len.extend(map(len, prods))
        b.p_rows.extend(rows)
        del ts, prods
        if self.sink is not None and len(b.row) >= STREAM_BATCH:
            self.sink.write(self, b)
            self.batch = RowBatch()

    def write(self, task: Task) -> None:
        """Write a terminal task's row (or, at record time, a live one's) and forget its slot."""
        row = task.row
        b = self.batch
        b.row.append(row)
        prefix = task.run.prefix
        code = self.run_code.get(prefix)
        if code is None:
            code = self.run_code[prefix] = len(self.runs)
            self.runs.append((prefix, task.node.scope, task.node.level))
        b.run.append(code)
        b.seq.append(task.seq)
        c = task.callable
        code = self.callable_code.get(id(c))
        if code is None:
            code = self.callable_code[id(c)] = len(self.callables)
            self.callables.append(getattr(c, "name", ""))
            self._keep.append(c)
        b.callable.append(code)
        b.workers.append(self.worker_code[task.workers])
        error = task.error
        if error is None and task.error_class is None and not task.not_run and task.state >= COMPLETED:
            b.code.append((task.kind * 2 + task.group) * 4 + _O_COMPLETED)  # the common case first
            s = task.start
            b.start.append(_NAN if s is None else s)
            s = task.end
            b.end.append(_NAN if s is None else s)
        else:
            self._write_failed(task, b)
        prods = task.producers
        if prods:
            rows = [p.row for p in prods]
            if (rows[0] if len(rows) == 1 else min(rows)) < self.base:
                rows = self._outside(prods)  # an alloc slot (no task of any record), or a task recorded earlier
            b.p_len.append(len(rows))
            b.p_rows.extend(rows)
            task.producers = ()  # the slot no longer holds its producers alive
        else:
            b.p_len.append(0)
        self.tasks[row - self.base] = None
        if self.sink is not None and len(b.row) >= STREAM_BATCH:
            self.sink.write(self, b)
            self.batch = RowBatch()

    def _write_failed(self, task: Task, b: RowBatch) -> None:
        """The outcome, stamps and error of a row that did not simply complete."""
        error = task.error
        if task.state < COMPLETED:
            # Only work a parent abandoned can still be running when its run has ended: a remote
            # session's task behind a failed endpoint, or one a crashed or stopped session process
            # froze (it set its own reason). Its end is unknown to the user.
            if task.error_class != _UNCERTAIN or not error:
                task.error_class = _UNCERTAIN
                task.error = error = "still running on an abandoned endpoint when the record was taken"
            outcome = _O_FAILED
        elif task.not_run:
            outcome = _O_NOT_RUN
        elif error is not None:
            outcome = _O_FAILED
        else:
            outcome = _O_COMPLETED
        b.code.append((task.kind * 2 + task.group) * 4 + outcome)
        if error is not None or task.error_class is not None:
            b.errors[task.row] = (task.error_class, error or "")
        if task.not_run:
            b.start.append(_NAN)
            b.end.append(_NAN)
        else:
            s, e = task.start, task.end
            b.start.append(_NAN if s is None else s)
            b.end.append(_NAN if e is None else e)

    def _outside(self, prods: tuple) -> list[int]:
        rows = []
        base = self.base
        for p in prods:
            if p.row >= base:
                rows.append(p.row)
            elif p.kind is not _ALLOC:
                name = p.name
                code = self.foreign_code.get(name)
                if code is None:
                    code = self.foreign_code[name] = len(self.foreign)
                    self.foreign.append(name)
                    self.foreign_rows.append(p.row)
                rows.append(-1 - code)
        return rows

    def live(self) -> list[Task]:
        """The tasks whose rows are not written yet, in submit order (consumed ones too, below
        ``COMPACT_AFTER``: check ``terminal``)."""
        return [t for t in self.tasks if t is not None]

    def add(self, task: Task) -> None:
        """Log a submitted task (``Node.submit`` inlines this)."""
        task.row = row = self.next_row
        self.next_row = row + 1
        self.tasks.append(task)
        if row == self.compact_row:
            self.compact = True

    def failed_classes(self, cols: TaskColumns) -> list[str]:
        """The error class of every failed row that has one, in row order (``RunRecord.errors``)."""
        outcome = cols.outcome
        return [c for r, (c, _m) in cols.errors.items() if c and outcome[r] == _O_FAILED]

    def close(self) -> TaskColumns:
        """Write every row not written yet (live slots, and consumed ones kept below ``COMPACT_AFTER``);
        return the rows as columns in submit order (read back from the file when streaming)."""
        self.flush()
        for t in self.live():
            self.write(t)
        if self.sink is not None:
            if len(self.batch):
                self.sink.write(self, self.batch)
            self.batch = RowBatch()
            self.sink.close()
            return self.sink.read_back(self)
        return columns(self, [self.batch])


def columns(log: TaskLog, batches: list[RowBatch]) -> TaskColumns:
    """The rows of ``batches`` (every row of ``log``, once) as :class:`TaskColumns` in row order."""
    n = sum(len(b) for b in batches)

    def cat(name: str, dtype: Any) -> np.ndarray:
        parts = [np.frombuffer(getattr(b, name), dtype) for b in batches if len(b)]
        return np.concatenate(parts) if parts else np.zeros(0, dtype)

    row = cat("row", np.int64) - log.base
    place = np.empty(n, np.int64)  # written position of each row: rows are log.base .. log.base + n - 1
    place[row] = np.arange(n, dtype=np.int64)

    def col(name: str, dtype: Any) -> np.ndarray:
        return cat(name, dtype)[place]

    p_len = cat("p_len", np.int64)
    p_rows = cat("p_rows", np.int64)
    off = np.zeros(n + 1, np.int64)
    np.cumsum(p_len, out=off[1:])
    new_len = p_len[place]
    ptr = np.zeros(n + 1, np.int64)
    np.cumsum(new_len, out=ptr[1:])
    gather = np.repeat(off[:-1][place] - ptr[:-1], new_len) + np.arange(int(ptr[-1]), dtype=np.int64)
    prod = p_rows[gather]
    prod[prod >= 0] -= log.base
    errors: dict[int, tuple[str | None, str]] = {}
    for b in batches:
        errors.update(b.errors)
    errors = {r - log.base: errors[r] for r in sorted(errors)}
    runs = log.runs
    node_code: dict[tuple[str, int], int] = {}
    for _p, scope, level in runs:
        node_code.setdefault((scope, level), len(node_code))
    scopes = list(node_code)
    node_of_run = np.array([node_code[(scope, level)] for _p, scope, level in runs] or [0], np.int32)
    run = col("run", np.int32)
    code = col("code", np.int8)
    return TaskColumns(
        nodes=scopes, kinds=KIND_WORDS, callables=list(log.callables), worker_sets=list(log.worker_sets),
        runs=[p for p, _s, _l in runs], node=node_of_run[run] if n else np.zeros(0, np.int32),
        kind=code // 4, callable=col("callable", np.int32), worker_set=col("workers", np.int32), run=run,
        seq=col("seq", np.int64), outcome=code % 4, start=col("start", np.float64),
        end=col("end", np.float64), prod_ptr=ptr, prod_idx=prod, foreign=list(log.foreign), errors=errors)
