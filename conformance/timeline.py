"""Per-case timelines: a compact list of task placements from the observed RunRecords.

The runner keeps, for every observed record of a case, ``(task_id, worker scope, start, end)`` per
task that ran (a task placed on several workers gives one entry per worker). Times are in the
backend's own unit: virtual microseconds on the simulator, wall seconds on hardware, and step
indices on the reference (which has no time). The HTML report draws them as swimlanes and puts the
span of the sim (predicted) next to the span of hw (measured); timing is never a verdict.

JSON shape (the optional ``timeline`` key of a case in the ``tierbed.conformance/1`` report)::

    [{"record": label, "unit": "us" | "s" | "step", "tasks": [[task_id, worker, start, end], ...],
      "truncated": n}]   # "truncated" only when tasks were left out
"""

from __future__ import annotations

from typing import Any

#: The unit of task start/end stamps per backend.
UNITS = {"sim": "us", "reference": "step", "hw": "s"}
#: Factor from a unit to microseconds (None: not a time).
TO_US: dict[str, float | None] = {"us": 1.0, "s": 1e6, "step": None}
#: Tasks kept per record (the report stays small; the rest is counted in ``truncated``).
MAX_TASKS = 400


def record_timeline(label: str, record: Any, backend: str) -> dict[str, Any] | None:
    """The compact timeline of one RunRecord, or None when no task has both stamps."""
    rows: list[list[Any]] = []
    for t in record.tasks.values():
        if t.start is None or t.end is None:
            continue
        for w in t.workers or ("(unplaced)",):
            rows.append([t.task_id, str(w), float(t.start), float(t.end)])
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
