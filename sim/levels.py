"""Which worker types each level of the hierarchy accepts.

Models the level table of ``docs/hierarchical-level-runtime.md`` §1 "Level Model" and the
level-aware composition rules of seed 000 ("Level rules"): an L2 Worker is one chip and
holds no children; L3 (node) holds chips (CHIP) and SUB workers; L4 and above hold
Workers of the level just below (DIST) and SUB workers.
"""

from __future__ import annotations

from sim.errors import InvalidArgument, InvalidWorkerType
from sim.types import WorkerType

MIN_LEVEL = 2
MAX_LEVEL = 6

#: The level words of upstream ``python/simpler/worker_level.py`` (topology positions).
LEVEL_WORDS = {2: "chip", 3: "node", 4: "network1", 5: "network2", 6: "network3"}


def check_level(level: object) -> int:
    """Return ``level`` as an int, or raise InvalidArgument naming what was wrong."""
    if isinstance(level, bool) or not isinstance(level, int):
        raise InvalidArgument(f"Worker level must be an int from {MIN_LEVEL} to {MAX_LEVEL}, got {level!r}")
    if not MIN_LEVEL <= level <= MAX_LEVEL:
        raise InvalidArgument(f"Worker level must be from {MIN_LEVEL} to {MAX_LEVEL}, got {level}")
    return level


def accepted_types(level: int) -> tuple[WorkerType, ...]:
    """The worker types a Worker of ``level`` may hold, in a fixed order."""
    if level == 2:
        return ()
    if level == 3:
        return (WorkerType.CHIP, WorkerType.SUB)
    return (WorkerType.DIST, WorkerType.SUB)


def accepts(level: int, worker_type: object) -> bool:
    """Whether a Worker of ``level`` accepts children of ``worker_type``."""
    if not isinstance(worker_type, WorkerType):
        raise InvalidArgument(f"accepts_worker_type expects a WorkerType, got {worker_type!r}")
    return worker_type in accepted_types(level)


def child_type(child_level: int) -> WorkerType:
    """The worker type a Worker of ``child_level`` plays as somebody's child."""
    return WorkerType.CHIP if child_level == 2 else WorkerType.DIST


def _describe(level: int) -> str:
    names = {WorkerType.CHIP: "CHIP (level-2 Worker)", WorkerType.SUB: "SUB",
             WorkerType.DIST: f"DIST (level-{level - 1} Worker)"}
    kinds = accepted_types(level)
    return " and ".join(names[k] for k in kinds) if kinds else "no children"


def check_child(parent_level: int, child_level: int) -> WorkerType:
    """Validate adding a ``child_level`` Worker under ``parent_level``; return its type.

    Raises InvalidWorkerType naming both levels and what the parent accepts.
    """
    kind = child_type(child_level)
    ok = kind in accepted_types(parent_level) and (kind is not WorkerType.DIST or child_level == parent_level - 1)
    if not ok:
        raise InvalidWorkerType(
            f"an L{parent_level} Worker cannot hold a level-{child_level} Worker ({kind.value}); "
            f"L{parent_level} accepts {_describe(parent_level)}")
    return kind
