"""``simpler.worker_level`` on the simulator (upstream ``python/simpler/worker_level.py``).

One word per level of the hierarchy, the prefix of a trace span's name. The words are the
simulator's own (:data:`sim.levels.LEVEL_WORDS`, which its workers already use to name their
level); ``core`` (level 0, in-core) is the one rung below a chip. There is no level 1.
"""

from __future__ import annotations

from enum import IntEnum

from sim.levels import LEVEL_WORDS

__all__ = ["WorkerLevel", "span_prefix"]

WorkerLevel = IntEnum("WorkerLevel", {"core": 0, **{word: level for level, word in sorted(LEVEL_WORDS.items())}},
                      module=__name__)
WorkerLevel.__doc__ = "A level of the worker hierarchy named by its role (an int wherever a level is compared)."


def span_prefix(level: int) -> str:
    """The trace-span prefix of ``level`` (3 -> ``"node"``); ``ValueError`` for a level with no word."""
    try:
        return WorkerLevel(level).name
    except ValueError:
        named = ", ".join(f"{m.value}={m.name}" for m in WorkerLevel)
        raise ValueError(f"no span prefix for worker level {level}; the levels are {named}") from None
