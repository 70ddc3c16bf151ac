"""Named fault points inside the model (the BUGGIFY idea): explicit spots where a plan may perturb it.

A fault point is a place in the simulator's own code where something the spec allows to go slow or
wrong is made to, on purpose: a SUB callable that takes ten times its modeled duration, a heap ring
that is full when the Orchestrator asks it for a slab, a CONTROL reply that never leaves the
session. The points form a closed catalog (:data:`FAULT_POINTS`); a plan enables some of them with
a :class:`FaultPoint` record (how often, how strongly, where), given to the simulator inside the
one fault plan (``SimConfig(faults=FaultPlan((FaultPoint("slow_sub", probability=0.5), ...)))``).

Where each point sits, and what upstream behaviour it stresses:

- ``slow_sub`` / ``slow_chip`` -- a SUB or chip child runs a task for ``factor`` times its modeled
  duration (upstream ``docs/task-flow.md`` §5, the execution leaves: a SUB child calls ``fn(args)``,
  a ChipWorker runs the kernel; nothing there bounds how long either takes);
- ``dispatch_late`` -- the TASK frame on a chip or SUB child's mailbox is observed ``delay_us`` late
  (``docs/worker-manager.md``: the parent publishes on the mailbox, the child polls it);
- ``ring_full`` -- a task's or ``alloc``'s heap allocation finds its ring full and waits as under
  back-pressure for ``delay_us``; a wait longer than the back-pressure timeout fails the run with
  RESOURCE_EXHAUSTED (``docs/orchestrator.md`` §5 "Ring (slot + heap allocator)", "Back-pressure
  rationale": allocation blocks while the heap is full and throws once its timeout passes with no
  progress);
- ``control_reply_lost`` -- a remote session applies a CONTROL but its CONTROL_REPLY never leaves,
  so the parent's command timeout fails the endpoint (``docs/remote-l3-worker-design/protocol.md``,
  "CONTROL Payload" and "Ordering": every wait is bounded);
- ``health_late`` -- a session's HEALTH frame leaves ``delay_us`` late (``protocol.md`` "Ordering":
  the health lane is independent, and its expiry fails the endpoint);
- ``task_reply_late`` -- a session sends a TASK's COMPLETION ``delay_us`` after the task ended; the
  session's command lane stalls meanwhile, so later replies stay in order (``protocol.md``
  "Ordering": one ordered command lane, one request in flight);
- ``domain_member_crash`` / ``domain_link_cut`` -- a collective over a communication domain loses a
  member as it enters, or a link during the exchange (``docs/comm-domain.md`` §1: kernels publish,
  signal and wait on their peers through the window; :mod:`sim.comm.collective`).

Determinism. A point fires at a site (a point name and the scope of the component it sits in)
with its ``probability``, drawn from the site's own seeded stream
``Simulation.stream("faults.point.<name>.<scope>")``: the same seed gives the same firings, and
enabling one point never shifts another component's draws. A point with probability 1 draws
nothing. Every firing is a ``FAULT`` trace event (``point <name> x<factor>`` / ``+<delay>us``) and
one ``point:<name>`` count in :attr:`sim.simulation.Simulation.fault_hits`.

Cost. A Simulation whose plan has no FaultPoint holds ``points = None``; each site is bound at
elaboration (:meth:`FaultPoints.bind`), so a site no enabled point covers holds None as well and
pays one ``is None`` test on its hot path.

This module is part of the simulator's core: it does not import :mod:`sim.remote`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sim.errors import InvalidArgument
from sim.trace import EventKind

if TYPE_CHECKING:
    from sim.simulation import Simulation

#: The closed catalog: point name -> what it does when it fires. Order is fixed (documentation,
#: schema and campaign enumeration follow it).
FAULT_POINTS: dict[str, str] = {
    "slow_sub": "a SUB task takes `factor` times its modeled duration",
    "slow_chip": "a chip task takes `factor` times its modeled duration",
    "dispatch_late": "a chip or SUB child observes its mailbox TASK frame `delay_us` late",
    "ring_full": "a heap allocation finds its ring full and waits `delay_us` as under back-pressure "
                 "(RESOURCE_EXHAUSTED if that exceeds the back-pressure timeout)",
    "control_reply_lost": "a remote session applies a CONTROL but its reply never leaves "
                          "(the parent's command timeout fails the endpoint)",
    "health_late": "a remote session's HEALTH frame leaves `delay_us` late",
    "task_reply_late": "a remote session's TASK COMPLETION leaves `delay_us` late (its command lane stalls)",
    "domain_member_crash": "a chip dies as it enters a collective: its task fails and its domain peers wait "
                           "for it (sim.comm.collective)",
    "domain_link_cut": "a chip's link fails during a collective's exchange: every rank of that collective "
                       "fails with ENDPOINT_FAILURE",
}

#: Which parameter of a point its effect uses (the trace text shows it).
_USES_FACTOR = frozenset({"slow_sub", "slow_chip"})
_USES_DELAY = frozenset({"dispatch_late", "ring_full", "health_late", "task_reply_late"})


def _number(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, int | float)


def covers(target: str | None, scope: str) -> bool:
    """Whether a point aimed at ``target`` (a scope-name prefix, on dot boundaries) reaches ``scope``."""
    return target is None or scope == target or scope.startswith(target + ".")


@dataclass(frozen=True)
class FaultPoint:
    """Enable fault point ``name`` (one of :data:`FAULT_POINTS`).

    - ``probability`` in (0, 1]: the chance that one pass through the point fires;
    - ``factor`` >= 1: the slowdown of ``slow_sub`` / ``slow_chip``;
    - ``delay_us`` > 0: the lateness of ``dispatch_late``, ``health_late``, ``task_reply_late`` and the
      wait of ``ring_full``;
    - ``target``: a scope-name prefix (``l4.w1``, ``l3.sub0``) the point is limited to, or None for
      anywhere; checked against the tree's scope names at ``init()``.
    """

    name: str
    probability: float = 1.0
    factor: float = 10.0
    delay_us: float = 1000.0
    target: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or self.name not in FAULT_POINTS:
            raise InvalidArgument(f"FaultPoint.name must be one of {', '.join(FAULT_POINTS)}, got {self.name!r}")
        p = self.probability
        if not _number(p) or not 0.0 < p <= 1.0:
            raise InvalidArgument(f"FaultPoint.probability must be a number in (0, 1], got {p!r}")
        if not _number(self.factor) or not math.isfinite(self.factor) or self.factor < 1.0:
            raise InvalidArgument(f"FaultPoint.factor must be a finite number >= 1, got {self.factor!r}")
        if not _number(self.delay_us) or not math.isfinite(self.delay_us) or self.delay_us <= 0:
            raise InvalidArgument(f"FaultPoint.delay_us must be a finite number of microseconds > 0, "
                                  f"got {self.delay_us!r}")
        t = self.target
        if t is not None and (not isinstance(t, str) or not t or t.startswith(".") or t.endswith(".")
                              or ".." in t):
            raise InvalidArgument(f"FaultPoint.target must be a scope name prefix such as 'l4.w1', or None for "
                                  f"anywhere, got {t!r}")
        object.__setattr__(self, "probability", float(p))
        object.__setattr__(self, "factor", float(self.factor))
        object.__setattr__(self, "delay_us", float(self.delay_us))

    def effect(self) -> str:
        """The short effect text of a firing (``x10``, ``+1000us``, or empty)."""
        if self.name in _USES_FACTOR:
            return f"x{self.factor:g}"
        if self.name in _USES_DELAY:
            return f"+{self.delay_us:g}us"
        return ""


def describe_point(p: FaultPoint) -> str:
    """One line for the trace when the plan is set up."""
    where = f" at {p.target}" if p.target is not None else ""
    eff = p.effect()
    return f"point {p.name}{' ' + eff if eff else ''} p={p.probability:g}{where}"


class FaultPoints:
    """The enabled fault points of one Simulation (``sim.points``; None when the plan has none)."""

    __slots__ = ("_sites", "points", "scopes", "sim")

    def __init__(self, sim: Simulation, points: tuple[FaultPoint, ...]) -> None:
        self.sim = sim
        self.points = points
        self.scopes: set[str] = set()  # every scope a site was bound in (for checking targets)
        self._sites: dict[tuple[str, str], tuple[tuple[FaultPoint, ...], Any]] = {}

    @classmethod
    def from_plan(cls, sim: Simulation, plan: Any) -> FaultPoints | None:
        """The plan's FaultPoints for ``sim``, or None when it enables none."""
        if plan is None:
            return None
        points = tuple(f for f in plan.faults if isinstance(f, FaultPoint))
        return cls(sim, points) if points else None

    def bind(self, scope: str, *names: str) -> FaultPoints | None:
        """Elaborate a site in ``scope`` where points ``names`` sit: self if any may fire there, else None."""
        self.scopes.add(scope)
        for p in self.points:
            if p.name in names and covers(p.target, scope):
                return self
        return None

    def fires(self, name: str, scope: str, subject: str = "") -> FaultPoint | None:
        """One pass through point ``name`` in ``scope``: the FaultPoint that fires, or None.

        A firing is recorded as a FAULT trace event on ``scope`` (``subject``: what it hit) and counted.
        """
        key = (name, scope)
        site = self._sites.get(key)
        if site is None:
            site = self._sites[key] = (
                tuple(p for p in self.points if p.name == name and covers(p.target, scope)),
                self.sim.stream(f"faults.point.{name}.{scope}"))
        candidates, rng = site
        for p in candidates:
            if p.probability >= 1.0 or rng.random() < p.probability:
                sim = self.sim
                eff = p.effect()
                sim.trace.add(sim.env.now, EventKind.FAULT, scope, subject, f"point {name}{' ' + eff if eff else ''}")
                sim.hit(f"point:{name}")
                return p
        return None

    def check_targets(self) -> None:
        """``init()`` hook: reject a point whose target prefixes no scope of the tree; trace each point."""
        for p in self.points:
            if p.target is not None and not any(covers(p.target, s) for s in self.scopes):
                raise InvalidArgument(f"fault plan: {p!r} targets {p.target!r}, which is no scope of the tree; "
                                      f"scopes are {', '.join(sorted(self.scopes)) or 'none'}")
        for p in self.points:
            self.sim.trace.add(0.0, EventKind.FAULT, p.target or "*", "FaultPoint", describe_point(p))


__all__ = ["FAULT_POINTS", "FaultPoint", "FaultPoints", "covers", "describe_point"]
