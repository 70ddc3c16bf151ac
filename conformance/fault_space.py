"""The fault space of a campaign: which faults a seed may draw, how many, when, and how hard.

A campaign (``tierbed campaign``) turns each seed into one explicit fault plan drawn from this
space (:mod:`conformance.campaign.generate`); the same seed always draws the same plan. The space
is data, written as a scenario's ``fault_space:`` block or built in Python, and validated strictly
(an unknown key or kind is an error naming it).

Fault kinds model the failure modes of upstream ``docs/remote-l3-worker-design/protocol.md``
("Ordering": health expiry, in-flight failure, command timeout) and
``docs/remote-l3-worker-design.md`` ("Failure Semantics"), plus the local REGISTER / UNREGISTER
failures of ``docs/callable-identity-registration.md`` ("Registration Failure Contract"). Fault
points are the simulator's named BUGGIFY-style sites (:mod:`sim.faultpoints`): each is switched on
for a seed with its own probability, and then fires at its site with a probability drawn from the
seed.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

#: Campaign fault kinds, in a fixed order (coverage tables list them in this order).
FAULT_KINDS: dict[str, str] = {
    "link_cut": "every frame on a remote link is lost from a time on (both lanes)",
    "health_cut": "only the health lane of a remote link is lost from a time on",
    "link_delay": "frames sent on a remote link in a window take longer",
    "link_clog": "frames sent on a remote link in a window queue until the window ends",
    "swizzle_clog": "a random subset of remote links clogged one at a time, unclogged in random order",
    "session_crash": "a remote session process dies (its connection closes)",
    "session_hang": "a remote session process stops answering (alive, silent)",
    "frame_drop": "one chosen frame of one frame type is dropped",
    "frame_delay": "one chosen frame of one frame type is delayed",
    "control_error": "a remote session answers one chosen CONTROL with an error",
    "control_timeout": "a remote session applies one chosen CONTROL but never answers it",
    "local_control_error": "a local child refuses one REGISTER / UNREGISTER",
    "local_control_timeout": "a local child applies one REGISTER / UNREGISTER but never confirms it",
}

#: The built-in invariants' names (their checks: :mod:`conformance.campaign.invariants`), in report order.
BUILTIN_INVARIANTS = ("no_hang", "typed_errors", "all_terminal", "poison", "edge_order", "clean_close", "determinism",
                      "liveness")

#: Kinds that need a remote worker in the topology, and kinds that need a local child.
REMOTE_KINDS = frozenset(k for k in FAULT_KINDS if not k.startswith("local_"))
LOCAL_KINDS = frozenset(k for k in FAULT_KINDS if k.startswith("local_"))


class FaultSpaceError(ValueError):
    """A fault space that cannot be used (unknown kind or point, bad range); the message names it."""


def parse_kinds(text: str) -> list[str]:
    """``all`` or ``KIND,KIND`` (a command-line ``--faults`` value) as a list of kinds."""
    if text.strip() == "all":
        return list(FAULT_KINDS)
    if text.strip() == "none":
        return []
    kinds = [k.strip() for k in text.split(",") if k.strip()]
    if not kinds:
        raise FaultSpaceError("--faults needs 'all', 'none' or a comma-separated list of fault kinds")
    unknown = [k for k in kinds if k not in FAULT_KINDS]
    if unknown:
        raise FaultSpaceError(f"unknown fault kind {unknown[0]!r}; known kinds: {', '.join(FAULT_KINDS)}")
    return kinds


class FaultSpace(BaseModel):
    """What a seed may draw. Times are virtual microseconds from the start of the run."""

    model_config = ConfigDict(extra="forbid", strict=True)

    kinds: Literal["all", "none"] | list[str] = Field(
        default="all", description="fault kinds to draw from: all, none, or a list (see FAULT_KINDS)")
    max_faults: int = Field(default=3, ge=0, le=64, description="a seed draws 0..max_faults faults")
    window_us: list[float] = Field(
        default=[0.0, 20000.0], min_length=2, max_length=2, description="[start, end): when drawn faults begin")
    max_delay_us: float = Field(default=5000.0, gt=0, description="upper bound of drawn delays and clog lengths")
    points: Literal["all", "none"] | list[str] | dict[str, float] = Field(
        default="all", description="fault points to switch on: all, none, a list of names (each at "
                                   "point_probability), or name -> per-seed probability")
    point_probability: float = Field(default=0.1, ge=0, le=1,
                                     description="per-seed switch-on probability of each point under 'all' or "
                                                 "in a list")
    heal_at_us: float | None = Field(
        default=None, ge=0, description="liveness mode: faults stop here (default: the window's end)")

    @model_validator(mode="after")
    def _check(self) -> FaultSpace:
        lo, hi = self.window_us
        if not (0 <= lo < hi) or hi == float("inf"):
            raise ValueError(f"window_us must be [start, end) with 0 <= start < end < inf, got {[lo, hi]}")
        if isinstance(self.kinds, list):
            for k in self.kinds:
                if k not in FAULT_KINDS:
                    raise ValueError(f"unknown fault kind {k!r}; known kinds: {', '.join(FAULT_KINDS)}")
        if isinstance(self.points, list | dict):
            from sim.faultpoints import FAULT_POINTS

            for name in self.points:
                if name not in FAULT_POINTS:
                    raise ValueError(f"unknown fault point {name!r}; known points: {', '.join(FAULT_POINTS)}")
        if isinstance(self.points, dict):
            for name, p in self.points.items():
                if name not in FAULT_POINTS:
                    raise ValueError(f"unknown fault point {name!r}; known points: {', '.join(FAULT_POINTS)}")
                if isinstance(p, bool) or not isinstance(p, int | float) or not 0 <= p <= 1:
                    raise ValueError(f"points.{name} must be a probability in [0, 1], got {p!r}")
        return self

    def kind_list(self) -> list[str]:
        if self.kinds == "all":
            return list(FAULT_KINDS)
        if self.kinds == "none":
            return []
        return [k for k in FAULT_KINDS if k in self.kinds]  # catalog order, duplicates dropped

    def point_probabilities(self) -> dict[str, float]:
        from sim.faultpoints import FAULT_POINTS

        if self.points == "all":
            return {name: self.point_probability for name in FAULT_POINTS}
        if self.points == "none":
            return {}
        if isinstance(self.points, list):
            return {name: self.point_probability for name in FAULT_POINTS if name in self.points}
        return {name: float(self.points[name]) for name in FAULT_POINTS if name in self.points}

    @property
    def heal_us(self) -> float:
        return self.heal_at_us if self.heal_at_us is not None else self.window_us[1]

    def with_kinds(self, kinds: list[str]) -> FaultSpace:
        return self.model_copy(update={"kinds": kinds})

    @classmethod
    def from_data(cls, data: Any, what: str = "fault_space") -> FaultSpace:
        """Validate a mapping; raise :class:`FaultSpaceError` naming the field."""
        from pydantic import ValidationError

        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            e = exc.errors()[0]
            loc = ".".join(str(p) for p in e["loc"])
            msg = e["msg"].removeprefix("Value error, ")
            raise FaultSpaceError(f"{what}{'.' + loc if loc else ''}: {msg}") from None


__all__ = ["BUILTIN_INVARIANTS", "FAULT_KINDS", "LOCAL_KINDS", "REMOTE_KINDS", "FaultSpace", "FaultSpaceError",
           "parse_kinds"]
