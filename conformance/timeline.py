"""Per-case timelines: a compact list of task placements from the observed RunRecords.

The runner keeps, for every observed record of a case, ``(task_id, worker scope, start, end,
callable, outcome)`` per task that ran (a task placed on several workers gives one entry per
worker). Times are in the backend's own unit: virtual microseconds on the simulator, wall seconds
on hardware (a monotonic clock: only differences mean something), and step indices on the reference
(which has no time). The HTML report draws them as swimlanes and puts the span of the sim
(predicted) next to the span of hw (measured); timing is never a verdict.

Workers are full scopes (``l4.w0``, ``l3.sub1``): a backend that names a worker by its index under
the task's node (hw records ``w0`` for a next-level group member) gets the node's scope in front.
A task whose worker was not observed (a SUB task on hw) is placed on ``<node>?``; the report packs
such tasks onto as many lanes as they need.

JSON shape (the optional ``timeline`` key of a case in the ``tierbed.conformance/1`` report)::

    [{"record": label, "unit": "us" | "s" | "step",
      "tasks": [[task_id, worker, start, end, callable, outcome], ...],
      "truncated": n}]   # "truncated" only when tasks were left out

Reports written before the callable and outcome columns have four-column tasks (and hw workers
named ``(unplaced)``); the report reads both.
"""

from __future__ import annotations

from typing import Any

#: The unit of task start/end stamps per backend.
UNITS = {"sim": "us", "reference": "step", "hw": "s"}
#: Factor from a unit to microseconds (None: not a time).
TO_US: dict[str, float | None] = {"us": 1.0, "s": 1e6, "step": None}
#: The suffix of the lane of tasks whose worker was not observed (``l3?``).
UNPLACED = "?"
#: The worker name older reports gave tasks without workers.
LEGACY_UNPLACED = "(unplaced)"
#: Tasks kept per record (the report stays small; the rest is counted in ``truncated``).
MAX_TASKS = 400


def worker_scope(worker: str, node: str) -> str:
    """``worker`` as a full scope: a bare index name (``w0``, no dot) gets its node's scope in front."""
    if "." in worker or not node or worker.endswith(UNPLACED) or worker == node:
        return worker
    return f"{node}.{worker}"


def record_timeline(label: str, record: Any, backend: str) -> dict[str, Any] | None:
    """The compact timeline of one RunRecord, or None when no task has both stamps."""
    rows: list[list[Any]] = []
    for t in record.tasks.values():
        if t.start is None or t.end is None:
            continue
        outcome = getattr(t.outcome, "value", t.outcome)
        for w in t.workers or (f"{t.node}{UNPLACED}",):
            rows.append([t.task_id, worker_scope(str(w), t.node), float(t.start), float(t.end), t.callable,
                         str(outcome)])
    if not rows:
        return None
    rows.sort(key=lambda r: (r[2], r[3], r[1], r[0]))
    out: dict[str, Any] = {"record": label, "unit": UNITS.get(backend, "us"), "tasks": rows[:MAX_TASKS]}
    if len(rows) > MAX_TASKS:
        out["truncated"] = len(rows) - MAX_TASKS
    return out


def case_timeline(records: list[tuple[str, Any]], backend: str) -> list[dict[str, Any]]:
    """Timelines of every observed record of a case that has timed tasks."""
    out = []
    for label, rec in records:
        tl = record_timeline(label, rec, backend)
        if tl is not None:
            out.append(tl)
    return out


def span_us(timeline: list[dict[str, Any]]) -> float | None:
    """Total time of a case's records (sum of each record's first start .. last end), in microseconds."""
    total, seen = 0.0, False
    for tl in timeline:
        factor = TO_US.get(tl.get("unit", "us"))
        tasks = tl.get("tasks") or []
        if factor is None or not tasks:
            continue
        total += (max(t[3] for t in tasks) - min(t[2] for t in tasks)) * factor
        seen = True
    return total if seen else None
