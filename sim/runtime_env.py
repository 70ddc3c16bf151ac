"""Per-run ring sizing (``CallConfig.runtime_env``): the values a ring override may take.

Models ``docs/user/reference/python-api.md`` ("``CallConfig``": ``runtime_env`` with
``ring_task_window``, ``ring_heap``, ``ring_dep_pool``; ``validate()`` "throws ... if a ring
override breaks the ring's constraints") and the field rules upstream's
``examples/workers/l2/per_task_runtime_env`` states: each field is either one value broadcast
to every scope-depth ring or a list of one value per ring (four rings), where ``0`` means "not
set" (falls through to the environment or the default); a set ``ring_task_window`` is a power
of two in ``[4, INT32_MAX]``, a set ``ring_heap`` is at least 1024 bytes, a set
``ring_dep_pool`` lies in ``[4, INT32_MAX]``.

:func:`check_runtime_env` is a checker callers opt into; :class:`sim.types.CallConfig` keeps
validating keys only.
"""

from __future__ import annotations

from typing import Any

from sim.errors import InvalidArgument

RING_DEPTHS = 4
INT32_MAX = (1 << 31) - 1
RING_FIELDS = ("ring_task_window", "ring_heap", "ring_dep_pool")


def _check_value(field: str, value: Any, where: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgument(f"runtime_env.{field}{where} must be an int, got {value!r}")
    if value == 0:
        return  # unset: falls through to the environment / default
    if field == "ring_task_window":
        if not 4 <= value <= INT32_MAX or value & (value - 1):
            raise InvalidArgument(f"runtime_env.ring_task_window{where} must be a power of 2 in [4, {INT32_MAX}], "
                                  f"got {value}")
    elif field == "ring_heap":
        if value < 1024:
            raise InvalidArgument(f"runtime_env.ring_heap{where} must be >= 1024 bytes, got {value}")
    elif not 4 <= value <= INT32_MAX:
        raise InvalidArgument(f"runtime_env.ring_dep_pool{where} must be in [4, {INT32_MAX}], got {value}")


def check_runtime_env(env: dict[str, Any]) -> None:
    """Raise :class:`InvalidArgument` naming the field (and ring) whose override breaks its ring's rule."""
    if not isinstance(env, dict):
        raise InvalidArgument(f"runtime_env must be a dict, got {type(env).__name__}")
    for field, value in env.items():
        if field not in RING_FIELDS:
            raise InvalidArgument(f"runtime_env has unknown key {field!r}; known: {', '.join(RING_FIELDS)}")
        if isinstance(value, list | tuple):
            if len(value) != RING_DEPTHS:
                raise InvalidArgument(f"runtime_env.{field} as a list needs {RING_DEPTHS} entries (one per "
                                      f"scope-depth ring), got {len(value)}")
            for ring, v in enumerate(value):
                _check_value(field, v, f"[{ring}]")
        else:
            _check_value(field, value, "")
