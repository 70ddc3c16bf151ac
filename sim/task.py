"""A task slot and its state machine.

Models ``TaskSlotState`` and the state machine of ``docs/orchestrator.md`` §8 "Task State
Machine": FREE -> BUILDING -> PENDING -> READY -> RUNNING -> COMPLETED -> CONSUMED, with
FAILED reachable from BUILDING, PENDING, READY (poison, cancellation) and RUNNING (worker
failure). A slot is CONSUMED once every fanout reference — one per consumer, one per
enclosing scope, and its own — is released (§8 "Fanout-release threshold").
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import IntEnum
from typing import Any


class TaskState(IntEnum):
    FREE = 0
    BUILDING = 1
    PENDING = 2
    READY = 3
    RUNNING = 4
    COMPLETED = 5
    FAILED = 6
    CONSUMED = 7


class TaskKind(IntEnum):
    NEXT_LEVEL = 0
    SUB = 1
    ALLOC = 2


# Module-level aliases: the engine's hot path compares against these.
BUILDING, PENDING, READY, RUNNING = TaskState.BUILDING, TaskState.PENDING, TaskState.READY, TaskState.RUNNING
COMPLETED, FAILED, CONSUMED = TaskState.COMPLETED, TaskState.FAILED, TaskState.CONSUMED


class Task:
    """One DAG node: a single task, a group of members, or an ``alloc`` slot."""

    __slots__ = (
        "_name", "admitted", "callable", "config", "consumers", "durations", "end", "error", "error_class",
        "fanin_count", "fanin_released", "fanout_released", "fanout_total", "group", "heap_bytes", "kind", "members",
        "members_left", "node", "not_run", "out_keys", "poisoned_by", "producers", "ready_t", "ring", "row", "run",
        "seq", "start", "state", "submit_t", "targets", "workers",
    )

    def __init__(self, seq: int, node: Any, run: Any, kind: TaskKind, callable_: Any, members: Sequence[tuple],
                 targets: tuple[int, ...], group: bool, config: Any = None, durations: Sequence[float] = ()) -> None:
        self.seq = seq  # the run's submit sequence number
        self._name: str | None = None
        self.node = node
        self.run = run
        self.kind = kind
        self.callable = callable_
        self.members = members  # one (arrays/refs, scalars, values, tags) entry per member
        self.targets = targets
        self.group = group
        self.config = config
        self.state = BUILDING
        self.admitted = False
        self.fanin_count = 0
        self.fanin_released = 0
        self.fanout_total = 0
        self.fanout_released = 0
        # Producers and output keys are fixed at submit: tuples (a shared empty one for none).
        self.consumers: list[Task] = []
        self.producers: tuple[Task, ...] = ()
        self.out_keys: tuple = ()
        self.heap_bytes = 0
        self.ring = 0
        self.submit_t = 0.0
        self.ready_t = 0.0
        self.start: float | None = None
        self.end: float | None = None
        self.members_left = len(members)
        self.durations = durations
        self.workers: tuple[str, ...] = ()  # the lanes it was dispatched to, in order
        self.error: str | None = None
        self.error_class: str | None = None
        self.not_run = False
        self.poisoned_by: Task | None = None
        self.row = -1  # its row in the records, numbered when a record takes it (``sim.simulation.task_columns``)

    @property
    def name(self) -> str:
        """``{scope}:r{run}:t{seq}`` (``a{seq}`` for an alloc slot); formatted on first use, as a
        run without a trace may never need it. The engine's per-task trace sites read
        ``task._name or task.name``: the slot once set (the SUBMIT record sets it), without a
        property call per event."""
        name = self._name
        if name is None:
            name = self._name = f"{self.run.prefix}{'a' if self.kind is TaskKind.ALLOC else 't'}{self.seq}"
        return name

    @property
    def terminal(self) -> bool:
        return self.state >= TaskState.COMPLETED

    def __repr__(self) -> str:
        return f"Task({self.name}, {self.state.name})"
