r"""Exceptions of the real runtime -> tierbed's closed set of error classes.

The real package raises built-in exception types with messages; the observable error class is
decided by the exception type plus a message pattern, first match wins. The whole mapping is the
one table below (``RULES``); anything it does not cover is ``UNMAPPED:<type>`` so that a gap shows
up in a verdict instead of being guessed.

======================  ==================================================  ========================
exception type          message pattern (case-insensitive regex)             error class
======================  ==================================================  ========================
KeyError                ``does not belong to this worker``                   FOREIGN_HANDLE
KeyError                ``not registered|unregistered|unknown callable|``    UNKNOWN_CALLABLE
                        ``not live``
KeyError, ValueError    ``worker id|unknown worker|no next.level worker|``   UNKNOWN_WORKER
                        ``not a registered worker``
RuntimeError            ``CALLABLE_HANDLE_MUTATED``                          HANDLE_MUTATED
RuntimeError            ``add_worker\(\) requires level``                    INVALID_WORKER_TYPE
RuntimeError            ``child failed|sub_worker|task failed|chip.*fail``   TASK_FAILURE
RuntimeError            ``scope|before init|after init|already init|``       INVALID_STATE
                        ``initialized|is closed|in progress|attached``
RuntimeError            ``exhaust|out of memory|capacity``                   RESOURCE_EXHAUSTED
TypeError               ``worker id``                                        INVALID_ARGUMENT
TypeError, ValueError   (any)                                                INVALID_ARGUMENT
NotImplementedError     (any)                                                NOT_SUPPORTED
MemoryError             (any)                                                RESOURCE_EXHAUSTED
======================  ==================================================  ========================
"""

from __future__ import annotations

import re

RULES: tuple[tuple[tuple[type[BaseException], ...], str | None, str], ...] = (
    ((KeyError,), r"does not belong to this worker", "FOREIGN_HANDLE"),
    ((KeyError,), r"not registered|unregistered|unknown callable|not live", "UNKNOWN_CALLABLE"),
    ((KeyError, ValueError), r"worker id|unknown worker|no next.level worker|not a registered worker",
     "UNKNOWN_WORKER"),
    ((RuntimeError,), r"CALLABLE_HANDLE_MUTATED", "HANDLE_MUTATED"),
    # An L2/L3 parent takes no Worker children: the seed-000 level rule, in the runtime's words.
    ((RuntimeError,), r"add_worker\(\) requires level", "INVALID_WORKER_TYPE"),
    ((RuntimeError,), r"child failed|sub_worker|task failed|chip.*fail", "TASK_FAILURE"),
    ((RuntimeError,), r"scope|before init|after init|already init|initialized|is closed|in progress|attached",
     "INVALID_STATE"),
    ((RuntimeError,), r"exhaust|out of memory|capacity", "RESOURCE_EXHAUSTED"),
    ((TypeError, ValueError), None, "INVALID_ARGUMENT"),
    ((NotImplementedError,), None, "NOT_SUPPORTED"),
    ((MemoryError,), None, "RESOURCE_EXHAUSTED"),
)


def _message(exc: BaseException) -> str:
    if isinstance(exc, KeyError) and exc.args:
        return str(exc.args[0])
    return str(exc)


def error_class(exc: BaseException) -> str:
    """The closed error-class name of ``exc`` (``UNMAPPED:<type>`` when no rule matches)."""
    cls = getattr(getattr(exc, "error_class", None), "value", None)
    if isinstance(cls, str):  # an adapter or tierbed error that already carries its class
        return cls
    msg = _message(exc)
    for types, pattern, name in RULES:
        if isinstance(exc, types) and (pattern is None or re.search(pattern, msg, re.IGNORECASE)):
            return name
    return f"UNMAPPED:{type(exc).__name__}"
