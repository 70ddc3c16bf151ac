"""The RunRecord: everything a user of the runtime can observe about a run.

Defined by ``DESIGN.md`` "The observables": outputs, per-task outcomes
(COMPLETED / FAILED(error class) / NOT_RUN), per-call outcomes (OK / ERROR(error class)),
start/end stamps to check that every dependency edge was respected, and the events.
Every backend returns this same record, so it lives with the shared vocabulary.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Outcome(StrEnum):
    """How a submitted task ended."""

    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    NOT_RUN = "NOT_RUN"


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

    def outcome_counts(self) -> dict[str, int]:
        """Tasks per outcome, in a fixed order."""
        counts = {o.value: 0 for o in Outcome}
        for t in self.tasks.values():
            counts[t.outcome.value] += 1
        return counts

    def edges(self) -> list[tuple[str, str]]:
        """Every (producer, consumer) dependency edge, in submit order."""
        return [(p, t.task_id) for t in self.tasks.values() for p in t.producers]

    def order_violations(self) -> list[tuple[str, str]]:
        """Edges whose consumer started before its producer ended (both must have run)."""
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
