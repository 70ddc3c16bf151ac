"""The modeled transport between a parent and one remote session: two lanes, two directions.

Spec: upstream ``docs/remote-l3-worker-design/protocol.md``, "Ordering" (one ordered command
lane per endpoint; an independent health lane not queued behind TASK execution) and
``docs/remote-l3-worker-design/buffers-and-transports.md``, "Simulation Backend" (a socket
transport carrying the framed protocol). A frame costs the profile's
``transport.<name>.transfer_us(len(frame))``; each lane and direction is FIFO like a TCP stream,
so a frame never arrives before one sent earlier on the same lane. Faults from
:mod:`sim.remote.faults` are applied here: cut, delay, clog, and per-frame drop or delay. Every
frame put on the link is recorded as a ``FRAME`` trace event; every frame a fault touches also as
a ``FAULT`` event.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from simpy.events import Timeout

from sim.remote.faults import FaultPlan, FrameFault, LinkClog, LinkCut, LinkDelay, describe, injected_at
from sim.remote.wire_base import FrameType
from sim.simulation import fire_at
from sim.trace import EventKind

if TYPE_CHECKING:
    from sim.cost import Link
    from sim.simulation import Simulation

CMD = "cmd"
HEALTH = "health"
DOWN = "->"  # parent to session
UP = "<-"  # session to parent


class LinkModel:
    """One endpoint's link: timing from the profile, faults from the plan."""

    def __init__(self, sim: Simulation, scope: str, link: Link, worker: int, plan: FaultPlan | None) -> None:
        self.sim = sim
        self.env = sim.env
        self.trace = sim.trace
        self.scope = scope
        self.link = link
        faults = plan.for_worker(worker) if plan is not None else ()
        self.cuts = [f for f in faults if isinstance(f, LinkCut)]
        self.delays = [f for f in faults if isinstance(f, LinkDelay)]
        self.clogs = [f for f in faults if isinstance(f, LinkClog)]
        self.frame_faults = [f for f in faults if isinstance(f, FrameFault)]
        self.rng = sim.stream(f"faults.{scope}")
        self.counts: dict[FrameType, int] = {}
        self.last_arrival: dict[tuple[str, str], float] = {}
        for f in faults:
            self.trace.add(injected_at(f), EventKind.FAULT, scope, type(f).__name__, describe(f))

    def _cut_at(self, lane: str) -> float | None:
        times = [c.at_us for c in self.cuts if c.lanes == "both" or lane == HEALTH]
        return min(times) if times else None

    def send(self, lane: str, direction: str, ftype: FrameType, label: str, data: bytes,
             deliver: Callable[[bytes], None]) -> None:
        """Put ``data`` on the link now; call ``deliver(data)`` when (and if) it arrives."""
        now = self.env.now
        n = self.counts.get(ftype, 0) + 1
        self.counts[ftype] = n
        tr = self.trace
        tr.add(now, EventKind.FRAME, self.scope, label, f"{direction} {lane} {len(data)}B")
        depart = now
        sim = self.sim
        for c in self.clogs:
            if c.start_us <= now < c.end_us and c.end_us > depart:
                depart = c.end_us
                tr.add(now, EventKind.FAULT, self.scope, label, f"clogged until {c.end_us:g}")
                sim.hit("LinkClog")
        extra = 0.0
        for d in self.delays:
            if d.start_us <= now < d.end_us:
                extra += d.extra_us
                sim.hit("LinkDelay")
        for f in self.frame_faults:
            if f.type is not ftype:
                continue
            hit = f.ordinal == n if f.ordinal is not None else self.rng.random() < f.probability
            if not hit:
                continue
            sim.hit("FrameFault")
            if f.action == "drop":
                tr.add(now, EventKind.FAULT, self.scope, label, f"dropped ({describe(f)})")
                return
            extra += f.delay_us
            tr.add(now, EventKind.FAULT, self.scope, label, f"delayed +{f.delay_us:g}us ({describe(f)})")
        key = (lane, direction)
        arrive = max(depart + extra + self.link.transfer_us(len(data)), self.last_arrival.get(key, 0.0))
        cut = self._cut_at(lane)
        if cut is not None and cut <= arrive:
            tr.add(now, EventKind.FAULT, self.scope, label, f"lost: link cut at {cut:g}")
            sim.hit("LinkCut")
            return
        self.last_arrival[key] = arrive
        ev = Timeout(self.env, arrive - now, data)
        ev.callbacks.append(lambda e: deliver(e._value))

    def bootstrap_us(self, nbytes: int) -> float:
        """One-way time of the daemon-channel manifest handoff (not an SLR3 frame)."""
        return self.link.transfer_us(nbytes)

    def reachable_at(self, t: float) -> bool:
        """Whether the command lane is still up at virtual time ``t`` (bootstrap channel check)."""
        cut = self._cut_at(CMD)
        return cut is None or t < cut

    def send_close(self, lane: str, direction: str, deliver: Callable[[], None]) -> None:
        """The sender's socket closes now: ``deliver()`` runs when the peer reads end-of-stream.

        A closed connection is seen like a frame of no bytes on that lane and direction: after
        the link's one-way time, never before a frame sent earlier on it (TCP delivers the FIN
        after the data), held by a clog, delayed by a delay, and never seen across a cut (the
        peer then has only its timeouts).
        """
        now = self.env.now
        tr = self.trace
        tr.add(now, EventKind.FRAME, self.scope, "CLOSE", f"{direction} {lane} connection closed")
        depart = now
        for c in self.clogs:
            if c.start_us <= now < c.end_us and c.end_us > depart:
                depart = c.end_us
                tr.add(now, EventKind.FAULT, self.scope, "CLOSE", f"clogged until {c.end_us:g}")
                self.sim.hit("LinkClog")
        extra = 0.0
        for d in self.delays:
            if d.start_us <= now < d.end_us:
                extra += d.extra_us
                self.sim.hit("LinkDelay")
        key = (lane, direction)
        arrive = max(depart + extra + self.link.transfer_us(0), self.last_arrival.get(key, 0.0))
        cut = self._cut_at(lane)
        if cut is not None and cut <= arrive:
            tr.add(now, EventKind.FAULT, self.scope, "CLOSE", f"lost: link cut at {cut:g}")
            self.sim.hit("LinkCut")
            return
        self.last_arrival[key] = arrive
        fire_at(self.env, arrive - now, deliver)


def foreign_origin(header: Any, session_id: int, worker_id: int) -> str | None:
    """Why a frame does not belong to this session and worker (protocol.md "Ordering"), or None."""
    if header.session_id != session_id:
        return f"stale session {header.session_id:#x} (current {session_id:#x})"
    if header.worker_id != worker_id:
        return f"frame for worker {header.worker_id}, expected worker {worker_id}"
    return None
