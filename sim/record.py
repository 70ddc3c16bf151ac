"""The RunRecord: everything a user of the runtime can observe about a run.

Defined by ``DESIGN.md`` "The observables": outputs, per-task outcomes
(COMPLETED / FAILED(error class) / NOT_RUN), per-call outcomes (OK / ERROR(error class)),
start/end stamps to check that every dependency edge was respected, and the events.
Every backend returns this same record, so it lives with the shared vocabulary.
"""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np


class Outcome(StrEnum):
    """How a submitted task ended."""

    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    NOT_RUN = "NOT_RUN"


#: The outcomes by their code in a :class:`TaskColumns` table.
OUTCOMES = tuple(Outcome)


@dataclass(frozen=True)
class TaskRecord:
    """One task's observable story. Times are virtual microseconds (sim) or wall seconds (hw)."""

    task_id: str
    node: str
    level: int
    kind: str
    callable: str
    outcome: Outcome
    error_class: str | None
    message: str
    start: float | None
    end: float | None
    workers: tuple[str, ...]
    producers: tuple[str, ...]


@dataclass(frozen=True)
class CallRecord:
    """A control or registration call and how it ended (OK, or ERROR with a class)."""

    call: str
    subject: str
    ok: bool
    error_class: str | None = None
    message: str = ""


@dataclass(eq=False)
class TaskColumns:
    """The tasks of a record as columns: one row per task, in submit order.

    Small tables name what rows share (nodes, kinds, callables, worker sets, runs); the per-row
    columns are numpy arrays of codes and times. A task's id is its run's prefix, ``t`` and its
    sequence number in the run (as ``sim.task.Task.name`` forms it). ``start`` and ``end`` hold NaN
    for "no stamp". A row's producers are ``prod_idx[prod_ptr[i]:prod_ptr[i + 1]]``: a row of this
    table when ``>= 0``, else ``foreign[-1 - code]``, the id of a producer outside this record.
    Errors are sparse: row -> (error class or None, message).
    """

    nodes: list[tuple[str, int]]  # node code -> (scope, level)
    kinds: list[str]  # kind code -> kind word
    callables: list[str]  # callable code -> name
    worker_sets: list[tuple[str, ...]]  # worker-set code -> the lanes a task ran on
    runs: list[str]  # run code -> task-id prefix
    node: np.ndarray  # int32 per row
    kind: np.ndarray  # int8
    callable: np.ndarray  # int32
    worker_set: np.ndarray  # int32
    run: np.ndarray  # int32
    seq: np.ndarray  # int64
    outcome: np.ndarray  # int8, index into OUTCOMES
    start: np.ndarray  # float64, NaN for None
    end: np.ndarray  # float64, NaN for None
    prod_ptr: np.ndarray  # int64, len rows + 1
    prod_idx: np.ndarray  # int64
    foreign: list[str] = field(default_factory=list)
    errors: dict[int, tuple[str | None, str]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.seq)

    def task_id(self, i: int) -> str:
        return f"{self.runs[self.run[i]]}t{self.seq[i]}"

    def task_ids(self) -> list[str]:
        """Every row's task id, in row order."""
        runs = self.runs
        return [f"{runs[r]}t{q}" for r, q in zip(self.run.tolist(), self.seq.tolist(), strict=True)]

    def producer_ids(self, i: int) -> tuple[str, ...]:
        lo, hi = int(self.prod_ptr[i]), int(self.prod_ptr[i + 1])
        if lo == hi:
            return ()
        return tuple(self.task_id(p) if p >= 0 else self.foreign[-1 - p] for p in self.prod_idx[lo:hi].tolist())

    def row(self, i: int) -> TaskRecord:
        """Row ``i`` as a :class:`TaskRecord` (built on demand)."""
        scope, level = self.nodes[self.node[i]]
        cls, msg = self.errors.get(i, (None, ""))
        start, end = float(self.start[i]), float(self.end[i])
        return TaskRecord(self.task_id(i), scope, level, self.kinds[self.kind[i]], self.callables[self.callable[i]],
                          OUTCOMES[self.outcome[i]], cls, msg, None if start != start else start,
                          None if end != end else end, self.worker_sets[self.worker_set[i]], self.producer_ids(i))

    def edge_rows(self) -> tuple[np.ndarray, np.ndarray]:
        """(producer row, consumer row) of every edge whose producer is in this table, in edge order."""
        consumer = np.repeat(np.arange(len(self), dtype=np.int64), np.diff(self.prod_ptr))
        inside = self.prod_idx >= 0
        return self.prod_idx[inside], consumer[inside]


class TaskTable(MutableMapping):
    """``RunRecord.tasks`` of a columnar record: task id -> :class:`TaskRecord`, in submit order.

    Reads come from :class:`TaskColumns`; a TaskRecord is built only for the task asked for, and a
    task id is found without building the others. The first change (set or delete) turns the
    table into a plain dict of TaskRecords, which serves from then on.
    """

    __slots__ = ("_by_run", "_dict", "cols")

    def __init__(self, cols: TaskColumns) -> None:
        self.cols: TaskColumns | None = cols
        self._dict: dict[str, TaskRecord] | None = None
        self._by_run: dict[str, tuple[np.ndarray, np.ndarray]] | None = None

    def _find(self, key: object) -> int:
        """The row of task id ``key``, or -1."""
        if key.__class__ is not str:
            return -1
        cut = key.rfind(":")  # type: ignore[attr-defined]
        digits = key[cut + 2:]  # type: ignore[index]
        if (cut < 0 or key[cut + 1:cut + 2] != "t" or not (digits.isascii() and digits.isdigit())  # type: ignore[index]
                or digits[0] == "0"):
            return -1
        if self._by_run is None:
            cols = self.cols
            assert cols is not None
            order = np.argsort(cols.run, kind="stable")
            bounds = np.searchsorted(cols.run[order], np.arange(len(cols.runs) + 1))
            self._by_run = {}
            for r, prefix in enumerate(cols.runs):
                rows = order[bounds[r]:bounds[r + 1]]
                self._by_run[prefix] = (cols.seq[rows], rows)  # seqs rise with the rows within a run
        hit = self._by_run.get(key[:cut + 1])  # type: ignore[index]
        if hit is None:
            return -1
        seqs, rows = hit
        seq = int(digits)
        j = int(np.searchsorted(seqs, seq))
        return int(rows[j]) if j < len(seqs) and seqs[j] == seq else -1

    def _materialize(self) -> dict[str, TaskRecord]:
        if self._dict is None:
            cols = self.cols
            assert cols is not None
            self._dict = {r.task_id: r for r in map(cols.row, range(len(cols)))}
            self.cols = None
            self._by_run = None
        return self._dict

    def __getitem__(self, key: str) -> TaskRecord:
        if self._dict is not None:
            return self._dict[key]
        i = self._find(key)
        if i < 0:
            raise KeyError(key)
        return self.cols.row(i)  # type: ignore[union-attr]

    def __contains__(self, key: object) -> bool:
        if self._dict is not None:
            return key in self._dict
        return self._find(key) >= 0

    def __iter__(self) -> Iterator[str]:
        if self._dict is not None:
            return iter(self._dict)
        return iter(self.cols.task_ids())  # type: ignore[union-attr]

    def __len__(self) -> int:
        return len(self._dict) if self._dict is not None else len(self.cols)  # type: ignore[arg-type]

    def values(self) -> Any:
        if self._dict is not None:
            return self._dict.values()
        cols = self.cols
        assert cols is not None
        return _Rows(cols)

    def __setitem__(self, key: str, value: TaskRecord) -> None:
        self._materialize()[key] = value

    def __delitem__(self, key: str) -> None:
        del self._materialize()[key]

    def __repr__(self) -> str:
        return f"TaskTable({len(self)} tasks)"

    def __reduce__(self) -> tuple:  # pickles as the dict it reads as
        return dict, (dict(self.items()) if self._dict is None else self._dict,)


class _Rows:
    """The TaskRecords of a :class:`TaskColumns`, built as they are iterated."""

    __slots__ = ("cols",)

    def __init__(self, cols: TaskColumns) -> None:
        self.cols = cols

    def __len__(self) -> int:
        return len(self.cols)

    def __iter__(self) -> Iterator[TaskRecord]:
        return map(self.cols.row, range(len(self.cols)))

    def __reversed__(self) -> Iterator[TaskRecord]:
        return map(self.cols.row, reversed(range(len(self.cols))))


@dataclass
class RunRecord:
    """What one backend observed for one scenario run."""

    backend: str
    metadata: dict[str, Any] = field(default_factory=dict)
    tasks: dict[str, TaskRecord] = field(default_factory=dict)
    calls: list[CallRecord] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    events: list[Any] = field(default_factory=list)

    @property
    def columns(self) -> TaskColumns | None:
        """The tasks as columns (:class:`TaskColumns`), when the record is columnar and unchanged."""
        tasks = self.tasks
        return tasks.cols if isinstance(tasks, TaskTable) else None

    def outcome_counts(self) -> dict[str, int]:
        """Tasks per outcome, in a fixed order."""
        counts = {o.value: 0 for o in Outcome}
        cols = self.columns
        if cols is not None:
            for o, n in zip(OUTCOMES, np.bincount(cols.outcome, minlength=len(OUTCOMES)).tolist(), strict=False):
                counts[o.value] = n
            return counts
        for t in self.tasks.values():
            counts[t.outcome.value] += 1
        return counts

    def edges(self) -> list[tuple[str, str]]:
        """Every (producer, consumer) dependency edge, in submit order."""
        cols = self.columns
        if cols is not None:
            ids = cols.task_ids()
            ptr = cols.prod_ptr.tolist()
            idx = cols.prod_idx.tolist()
            foreign = cols.foreign
            return [(ids[p] if p >= 0 else foreign[-1 - p], ids[i])
                    for i in range(len(ids)) for p in idx[ptr[i]:ptr[i + 1]]]
        return [(p, t.task_id) for t in self.tasks.values() for p in t.producers]

    def order_violations(self) -> list[tuple[str, str]]:
        """Edges whose consumer started before its producer ended (both must have run)."""
        cols = self.columns
        if cols is not None:
            prod, cons = cols.edge_rows()
            bad_at = np.flatnonzero(cols.end[prod] > cols.start[cons])  # NaN (no stamp) compares False
            return [(cols.task_id(int(prod[j])), cols.task_id(int(cons[j]))) for j in bad_at]
        bad = []
        for p, c in self.edges():
            pt, ct = self.tasks.get(p), self.tasks.get(c)
            if pt is None or ct is None or pt.end is None or ct.start is None:
                continue
            if pt.end > ct.start:
                bad.append((p, c))
        return bad

    def add_output(self, name: str, value: Any) -> None:
        """Name an output tensor of the run (what conformance compares with the golden)."""
        if name in self.outputs:
            raise ValueError(f"output {name!r} is already recorded")
        self.outputs[name] = value
