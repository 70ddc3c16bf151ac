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
ValueError              ``duplicate NEXT_LEVEL worker ids``                  INVALID_ARGUMENT
ValueError              ``overlapping bytes of the same buffer``             INVALID_ARGUMENT
KeyError, ValueError    ``worker id|unknown worker|no next.level worker|``   UNKNOWN_WORKER
                        ``not a registered worker``
KeyError                ``is not a member of domain`` (the adapter's words   UNKNOWN_WORKER
                        for the runtime's bare ``KeyError(chip)``)
RuntimeError            ``CommDomainHandle(...) already released``           INVALID_STATE
RuntimeError            ``allocate_domain (is only valid|requires)``         INVALID_STATE
RuntimeError            ``CALLABLE_HANDLE_MUTATED``                          HANDLE_MUTATED
RuntimeError            ``add_worker\(\) requires level``                    INVALID_WORKER_TYPE
TypeError               ``require a level >= 4 parent``                      INVALID_WORKER_TYPE
RuntimeError            ``session startup failed ... ImportError`` (or       INVALID_ARGUMENT
                        ``ModuleNotFoundError``, ``AttributeError``)
RuntimeError            ``remote L3 endpoint attach failed|session open``    ENDPOINT_FAILURE
                        ``failed|RemoteL3SocketTransport|health lane``
                        ``failed|RemoteL3Endpoint progress``
RuntimeError            ``REGISTER_PARTIAL_FAILURE``                         REGISTER_PARTIAL_FAILURE
RuntimeError            ``has no eligible dispatch target``                  INVALID_STATE
ValueError              ``requires (write|read|readwrite) access``           ACCESS_DENIED
RuntimeError            ``RemoteBufferHandle has already been released``     STALE_GENERATION
RuntimeError            ``remote buffer cleanup\(s\) failed``                CONTROL_FAILURE
ValueError              ``transport must be 'host_tcp'``                     NOT_SUPPORTED
RuntimeError            ``child failed|sub_worker|task failed|chip.*fail``   TASK_FAILURE
RuntimeError            ``scope|before init|after init|already init|``       INVALID_STATE
                        ``initialized|is closed|in progress|attached``
RuntimeError            ``exhaust|out of memory|capacity|exceeds per-ring``  RESOURCE_EXHAUSTED
                        ``heap size``
TypeError               ``worker id``                                        INVALID_ARGUMENT
TypeError, ValueError   (any)                                                INVALID_ARGUMENT
NotImplementedError     (any)                                                NOT_SUPPORTED
MemoryError             (any)                                                RESOURCE_EXHAUSTED
======================  ==================================================  ========================

An exception that carries its own ``error_class`` (such as :class:`HwProtocolError`, raised by the
hw codec adapter for bytes the real frame codec refuses) keeps that class; the table is not asked.
"""

from __future__ import annotations

import re

from sim.errors import ErrorClass

RULES: tuple[tuple[tuple[type[BaseException], ...], str | None, str], ...] = (
    ((KeyError,), r"does not belong to this worker", "FOREIGN_HANDLE"),
    ((KeyError,), r"not registered|unregistered|unknown callable|not live", "UNKNOWN_CALLABLE"),
    ((ValueError,), r"duplicate NEXT_LEVEL worker ids", "INVALID_ARGUMENT"),
    # The submit-time overlap check ("buffer-abi.md", "No overlapping writes within one task"), pinned
    # ahead of the worker-id rule so that no later wording about workers can claim it.
    ((ValueError,), r"overlapping bytes of the same buffer", "INVALID_ARGUMENT"),
    ((KeyError, ValueError), r"worker id|unknown worker|no next.level worker|not a registered worker",
     "UNKNOWN_WORKER"),
    # Communication domains (``comm-domain.md`` §1-§2): a chip outside the domain, a handle used after
    # release(), an allocation outside a run's graph build or below L3.
    ((KeyError,), r"is not a member of domain", "UNKNOWN_WORKER"),
    ((RuntimeError,), r"CommDomainHandle\(.*\) already released", "INVALID_STATE"),
    ((RuntimeError,), r"allocate_domain (is only valid|requires)", "INVALID_STATE"),
    ((RuntimeError,), r"CALLABLE_HANDLE_MUTATED", "HANDLE_MUTATED"),
    # An L2/L3 parent takes no Worker children: the seed-000 level rule, in the runtime's words.
    ((RuntimeError,), r"add_worker\(\) requires level", "INVALID_WORKER_TYPE"),
    ((TypeError,), r"require a level >= 4 parent", "INVALID_WORKER_TYPE"),
    # A session that cannot import a manifest target fails start-up: the target was a bad argument.
    ((RuntimeError,), r"session startup failed[\s\S]*(ModuleNotFoundError|ImportError|AttributeError)",
     "INVALID_ARGUMENT"),
    ((RuntimeError,), r"remote L3 endpoint attach failed|remote L3 session open failed|RemoteL3SocketTransport|"
                      r"health lane failed|RemoteL3Endpoint progress", "ENDPOINT_FAILURE"),
    ((RuntimeError,), r"REGISTER_PARTIAL_FAILURE", "REGISTER_PARTIAL_FAILURE"),
    ((RuntimeError,), r"has no eligible dispatch target", "INVALID_STATE"),
    # A remote handle's access rights and lifetime ("buffers-and-transports.md" handle semantics).
    ((ValueError,), r"requires (write|read|readwrite) access", "ACCESS_DENIED"),
    ((RuntimeError,), r"RemoteBufferHandle has already been released", "STALE_GENERATION"),
    # A FREE_REMOTE_BUFFER control the remote side answered with an error; the free stays owed.
    ((RuntimeError,), r"remote buffer cleanup\(s\) failed", "CONTROL_FAILURE"),
    # The TCP daemon's control plane carries host_tcp only: another transport is unsupported, not malformed.
    ((ValueError,), r"transport must be 'host_tcp'", "NOT_SUPPORTED"),
    ((RuntimeError,), r"child failed|sub_worker|task failed|chip.*fail", "TASK_FAILURE"),
    ((RuntimeError,), r"scope|before init|after init|already init|initialized|is closed|in progress|attached",
     "INVALID_STATE"),
    ((RuntimeError,), r"exhaust|out of memory|capacity|exceeds per-ring heap size", "RESOURCE_EXHAUSTED"),
    ((TypeError, ValueError), None, "INVALID_ARGUMENT"),
    ((NotImplementedError,), None, "NOT_SUPPORTED"),
    ((MemoryError,), None, "RESOURCE_EXHAUSTED"),
)


class HwProtocolError(ValueError):
    """Wire bytes the real frame codec refused; the message is the real codec's own text."""

    error_class = ErrorClass.PROTOCOL_ERROR

    def __init__(self, message: str, *, stage: str) -> None:
        super().__init__(message)
        #: what was being decoded when the real code refused (``header``, ``TASK payload``, ...)
        self.stage = stage


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
