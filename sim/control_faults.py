"""Control faults of the local whole-scope install: :class:`LocalControlFault` and its matcher.

Spec: upstream ``docs/callable-identity-registration.md``, "Local Control Contract"
(REGISTER_CALLABLE increments, UNREGISTER_CALLABLE decrements the target-local refcount) and
"Registration Failure Contract" (a target that refuses, or whose cleanup cannot be confirmed,
leaves that target/hashid pair cleanup-uncertain). A :class:`LocalControlFault` makes one local
child (chip, SUB, next-level Worker) refuse a control (``outcome="error"``) or apply it without
confirming (``"timeout"``); :mod:`sim.install` applies it. It travels in the run's fault plan
(``SimConfig(faults=FaultPlan(...))``, :mod:`sim.remote.faults`, which re-exports these names).

:class:`ControlMatcher` counts the controls one target receives and picks the fault that fails
one: the ``ordinal``-th of its kind (1-based), or each with ``probability`` drawn from the seeded
stream ``faults.<target scope>.control``. The remote sessions' ``ControlFaults`` use it too.

This module is part of the simulator's core: it does not import :mod:`sim.remote`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sim.errors import InvalidArgument

# Control fault outcomes: "error" -- an error reply, state unchanged; "timeout" -- the target applies
# the control but never answers, so the parent cannot confirm it (a remote endpoint's command
# timeout fails the endpoint).
CONTROL_OUTCOMES = ("error", "timeout")


def check_choice(kind: str, ordinal: Any, probability: Any, hint: str = "") -> None:
    """A fault that picks its hits needs exactly one of ``ordinal`` (1-based) or ``probability`` in (0, 1]."""
    if (ordinal is None) == (probability is None):
        raise InvalidArgument(f"{kind} needs exactly one of ordinal={hint} or probability=")
    if ordinal is not None and (isinstance(ordinal, bool) or not isinstance(ordinal, int) or ordinal < 1):
        raise InvalidArgument(f"{kind}.ordinal counts from 1, got {ordinal!r}")
    if probability is not None and (isinstance(probability, bool) or not isinstance(probability, int | float)
                                    or not 0.0 < probability <= 1.0):
        raise InvalidArgument(f"{kind}.probability must be in (0, 1], got {probability!r}")


def choice_text(f: Any) -> str:
    """How a fault picks its hits, for the trace: ``#3`` (the third) or ``p=0.5``."""
    return f"#{f.ordinal}" if f.ordinal is not None else f"p={f.probability:g}"


class ControlMatcher:
    """Control faults of one target, matched against the controls it receives (deterministic per seed)."""

    def __init__(self, faults: tuple[Any, ...], rng: Any) -> None:
        self.faults = faults
        self.rng = rng
        self.counts: dict[str, int] = {}

    def hit(self, control: str) -> Any:
        """Count one ``control`` received; return the fault that fails it, if any."""
        n = self.counts.get(control, 0) + 1
        self.counts[control] = n
        for f in self.faults:
            if f.control != control:
                continue
            if (f.ordinal == n) if f.ordinal is not None else (self.rng.random() < f.probability):
                return f
        return None


@dataclass(frozen=True)
class LocalControlFault:
    """Fail a local child's REGISTER_CALLABLE / UNREGISTER_CALLABLE (``control``: register | unregister).

    ``target`` is the child's scope name (``l4.sub0``, ``l4.w0``, ``l4.w0.chip0``); ``ordinal`` counts
    that child's controls of that kind from 1, or ``probability`` draws from ``faults.<target>.control``.
    ``outcome="error"``: the child refuses, state unchanged; ``"timeout"``: the child applies it but
    the parent gets no confirmation. Checked against the tree's local children at ``init()``.
    """

    target: str
    control: str
    ordinal: int | None = None
    probability: float | None = None
    outcome: str = "error"

    def __post_init__(self) -> None:
        if not isinstance(self.target, str) or not self.target:
            raise InvalidArgument(f"LocalControlFault.target must name a local child scope, got {self.target!r}")
        if self.control not in ("register", "unregister"):
            raise InvalidArgument(f"LocalControlFault.control must be 'register' or 'unregister', got "
                                  f"{self.control!r}")
        if self.outcome not in CONTROL_OUTCOMES:
            raise InvalidArgument(f"LocalControlFault.outcome must be one of {CONTROL_OUTCOMES}, got "
                                  f"{self.outcome!r}")
        check_choice("LocalControlFault", self.ordinal, self.probability)


def describe_local(f: LocalControlFault) -> str:
    """A one-line description of a local control fault for the trace."""
    return f"local control {f.outcome} {f.control}{choice_text(f)}"
