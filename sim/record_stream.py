"""Streaming a run's task record to a Parquet file while the run goes on.

For the largest runs (``SimConfig(record_path=...)``): the task log (:mod:`sim.tasklog`) writes each
task's row as its slot is consumed, and hands every full batch of rows to a :class:`ParquetSink`,
which appends it to the file as one row group and forgets it. So the process holds a batch of rows,
not the record; ``Worker.take_record`` closes the file and reads the columns back.

One row per task. The columns a reader wants:

- ``row``: the task's number in the simulation (submit order; a record's rows are consecutive);
- ``task_id``, ``node``, ``level``, ``kind``, ``callable``, ``outcome``, ``error_class``, ``message``,
  ``start``, ``end``, ``workers``: as :class:`sim.record.TaskRecord` has them (null for None);
- ``producers``: the ``row`` of each producer, in order (a row below the file's first is a task of
  an earlier record);

and the codes the record is read back from: ``run_code``, ``seq``, ``code``, ``callable_code``,
``worker_code``. Rows are in the order the tasks were consumed, not submitted: sort by ``row``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from sim.record import OUTCOMES
from sim.tasklog import KIND_WORDS, RowBatch, columns

if TYPE_CHECKING:
    from sim.record import TaskColumns
    from sim.tasklog import TaskLog

_OUTCOME_WORDS = [o.value for o in OUTCOMES]


def record_file(path: str | Path, index: int) -> Path:
    """The file of the ``index``-th record (1-based) of a simulation streaming to ``path``:
    ``path`` itself, then ``<stem>-2<suffix>``, ``<stem>-3<suffix>``, ..."""
    p = Path(path)
    return p if index == 1 else p.with_name(f"{p.stem}-{index}{p.suffix}")


class ParquetSink:
    """Appends batches of task rows to one Parquet file (see the module docstring)."""

    def __init__(self, path: str | Path) -> None:
        import pyarrow as pa

        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.schema = pa.schema([
            ("row", pa.int64()), ("task_id", pa.string()), ("node", pa.string()), ("level", pa.int16()),
            ("kind", pa.string()), ("callable", pa.string()), ("outcome", pa.string()),
            ("error_class", pa.string()), ("message", pa.string()), ("start", pa.float64()),
            ("end", pa.float64()), ("workers", pa.list_(pa.string())), ("producers", pa.list_(pa.int64())),
            ("run_code", pa.int32()), ("seq", pa.int64()), ("code", pa.int8()), ("callable_code", pa.int32()),
            ("worker_code", pa.int32()),
        ])
        self._writer = None
        self.rows = 0

    def write(self, log: TaskLog, b: RowBatch) -> None:
        """Append one batch of rows as a row group."""
        import pyarrow as pa
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        n = len(b)
        row = np.frombuffer(b.row, np.int64)
        run = np.frombuffer(b.run, np.int32)
        seq = np.frombuffer(b.seq, np.int64)
        code = np.frombuffer(b.code, np.int8)
        callable_ = np.frombuffer(b.callable, np.int32)
        workers = np.frombuffer(b.workers, np.int32)
        start = np.frombuffer(b.start, np.float64)
        end = np.frombuffer(b.end, np.float64)
        p_len = np.frombuffer(b.p_len, np.int64)
        p_rows = np.array(np.frombuffer(b.p_rows, np.int64))
        outside = np.flatnonzero(p_rows < 0)
        for j in outside.tolist():  # a producer of an earlier record: its row number there
            p_rows[j] = log.foreign_rows[-1 - int(p_rows[j])]
        offsets = np.zeros(n + 1, np.int64)
        np.cumsum(p_len, out=offsets[1:])
        prefixes = pa.array([p for p, _s, _l in log.runs], pa.string())
        scopes = pa.array([s for _p, s, _l in log.runs], pa.string())
        levels = np.array([lv for _p, _s, lv in log.runs], np.int16)
        run_idx = pa.array(run)
        task_id = pc.binary_join_element_wise(prefixes.take(run_idx), pc.cast(pa.array(seq), pa.string()), "t")
        kind_words = pa.array(KIND_WORDS, pa.string())
        errors_cls: list[str | None] = [None] * n
        errors_msg: list[str | None] = [None] * n
        if b.errors:
            at = {r: i for i, r in enumerate(row.tolist()) if r in b.errors}
            for r, i in at.items():
                errors_cls[i], errors_msg[i] = b.errors[r]
        table = pa.Table.from_arrays([
            pa.array(row), task_id, scopes.take(run_idx), pa.array(levels[run] if n else levels[:0]),
            kind_words.take(pa.array(code // 4)), pa.array(log.callables, pa.string()).take(pa.array(callable_)),
            pa.array(_OUTCOME_WORDS, pa.string()).take(pa.array(code % 4)),
            pa.array(errors_cls, pa.string()), pa.array(errors_msg, pa.string()),
            pa.array(start, mask=np.isnan(start)), pa.array(end, mask=np.isnan(end)),
            pa.array(log.worker_sets, pa.list_(pa.string())).take(pa.array(workers)),
            pa.ListArray.from_arrays(pa.array(offsets), pa.array(p_rows)),
            pa.array(run), pa.array(seq), pa.array(code), pa.array(callable_), pa.array(workers),
        ], schema=self.schema)
        if self._writer is None:
            self._writer = pq.ParquetWriter(self.path, self.schema)
        self._writer.write_table(table)
        self.rows += n

    def close(self) -> None:
        """Finish the file (an empty one, with the columns, if no row was written)."""
        import pyarrow.parquet as pq

        if self._writer is None:
            self._writer = pq.ParquetWriter(self.path, self.schema)
        self._writer.close()

    def read_back(self, log: TaskLog) -> TaskColumns:
        """The file's rows as the record's columns (the log's tables name their codes)."""
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        t = pq.read_table(self.path, columns=["row", "run_code", "seq", "code", "callable_code", "worker_code",
                                                "start", "end", "producers", "error_class", "message"])
        b = RowBatch()
        b.row = _np(t, "row", np.int64)
        b.run = _np(t, "run_code", np.int32)
        b.seq = _np(t, "seq", np.int64)
        b.code = _np(t, "code", np.int8)
        b.callable = _np(t, "callable_code", np.int32)
        b.workers = _np(t, "worker_code", np.int32)
        b.start = np.ascontiguousarray(t.column("start").to_numpy(zero_copy_only=False), np.float64)
        b.end = np.ascontiguousarray(t.column("end").to_numpy(zero_copy_only=False), np.float64)
        prods = t.column("producers").combine_chunks()
        b.p_len = np.ascontiguousarray(np.diff(prods.offsets.to_numpy()), np.int64)
        p_rows = np.array(prods.values.to_numpy(), np.int64)
        outside = np.flatnonzero(p_rows < log.base)
        if len(outside):
            code_of = {r: -1 - k for k, r in enumerate(log.foreign_rows)}
            for j in outside.tolist():
                p_rows[j] = code_of[int(p_rows[j])]
        b.p_rows = p_rows
        has = pc.is_valid(t.column("message")).to_numpy(zero_copy_only=False)
        if has.any():
            rows = b.row[has].tolist()
            cls = t.column("error_class").filter(has).to_pylist()
            msg = t.column("message").filter(has).to_pylist()
            b.errors = {r: (c, m) for r, c, m in zip(rows, cls, msg, strict=True)}
        return columns(log, [b])


def _np(table: object, name: str, dtype: type) -> np.ndarray:
    return np.ascontiguousarray(table.column(name).to_numpy(), dtype)  # type: ignore[attr-defined]
