"""Running a Worker's run to its end, and telling a livelock from a long wait.

A run that can never finish must end as a typed hang (``SimulationHang``, error class HANG),
never as a call that does not return. Two shapes of "never":

- **Hang**: the event queue empties while tasks are not terminal. SimPy reports it; the Worker
  turns it into ``SimulationHang`` (unchanged here).
- **Livelock**: the queue never empties because something periodic keeps re-arming itself —
  today the remote endpoint's health lane (a HEALTH tick every ``health_interval_us``, its frame
  on the link, the watchdog that re-arms while frames arrive; upstream
  ``docs/remote-l3-worker-design/protocol.md`` "Ordering" and ``docs/remote-l3-worker-design.md``
  "Failure Semantics": the health lane is independent of the command lane) — while no task can
  move any more. Upstream's runtime would sit in that state until a person kills it; the spec
  names it instead.

The detector (:func:`run_until`) is general: it does not know which events are periodic. It
steps the same events in the same order as ``env.run(until=done)`` (so traces stay byte-identical
and it schedules nothing and records nothing) and, every :data:`CHECK_EVERY` events, looks at
two things (and, when the trace streams to a file, spills it once it holds enough events:
:mod:`sim.trace_stream`):

1. **Progress**: the host threads' cursors of every node that has begun a run (the
   Orchestrator cursor moves on each submit, the Scheduler cursor on each dispatch and
   completion; see :mod:`sim.node`) and the number of tasks submitted. Any change restarts the quiet
   stretch.
2. **Turnover**: at the first check of a quiet stretch it notes the newest event then pending.
   A livelock is declared only once the stretch has lasted :func:`quiet_bound_us` of virtual
   time *and* every pending event was scheduled after that note — i.e. the whole queue has been
   replaced by events that the quiet stretch itself created. A long kernel, a command timeout
   or any other event scheduled before the stretch began is still pending work, so a long but
   finite wait is never mistaken for a livelock; it is reached, and the check goes on from there.

And it needs a task that is not terminal; it names up to eight of them and the virtual time.

The bound is ``max(10 x the largest health_timeout_us of the profile's transports, 300 s)`` of
virtual time: ten health expiries (the slowest a watched endpoint can notice a dead peer) and
at least five minutes, far beyond any backpressure timeout (10 s) or modeled kernel. Cost: the
stepping loop is SimPy's own (bound methods hoisted, so not slower), and a check reads a few
floats per node; nothing runs per task.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from simpy.core import EmptySchedule, StopSimulation

from sim.errors import InvalidArgument

if TYPE_CHECKING:
    from simpy.events import Event

    from sim.simulation import Simulation
    from sim.task import Task

CHECK_EVERY = 4096  # events stepped between two looks at progress
MIN_QUIET_US = 300e6  # the floor of the quiet stretch that counts as a livelock: 300 s virtual
HEALTH_EXPIRIES = 10  # ... or this many health timeouts of the slowest transport, if longer


def quiet_bound_us(sim: Simulation) -> float:
    """How long (virtual us) nothing may progress, with the queue turned over, before it is a livelock."""
    worst = 0.0
    for link in sim.profile.transports.values():
        try:
            worst = max(worst, float(link.get("health_timeout_us")))
        except InvalidArgument:  # a transport without a health lane
            continue
    return max(MIN_QUIET_US, HEALTH_EXPIRIES * worst)


class Livelock(Exception):
    """Raised by :func:`run_until`: only self-renewing events ran for ``quiet_us`` since ``since_us``."""

    def __init__(self, now_us: float, since_us: float, stuck: list[Task]) -> None:
        super().__init__(f"livelock at t={now_us:.3f}us")
        self.now_us = now_us
        self.since_us = since_us
        self.stuck = stuck


class _Watch:
    """The progress signature and the quiet stretch of one :func:`run_until` call."""

    __slots__ = ("bound", "env", "mark", "sig", "sim", "since")

    def __init__(self, sim: Simulation, bound: float) -> None:
        self.sim = sim
        self.env = sim.env
        self.bound = bound
        self.sig: tuple | None = None
        self.since = sim.env.now
        self.mark: int | None = None

    def _signature(self) -> tuple:
        sim = self.sim
        return (sim.log.next_row, *[(n.orch_cursor, n.sched_cursor, n.run_count) for n in sim.task_nodes])

    def check(self) -> None:
        """Raise :class:`Livelock` if the run is livelocked (see the module docstring)."""
        sig = self._signature()
        env = self.env
        if sig != self.sig:
            self.sig = sig
            self.since = env._now
            self.mark = None
            return
        queue = env._queue
        if self.mark is None:  # the first quiet look: what is pending now is "before"
            self.mark = max(e[2] for e in queue) if queue else -1
            return
        if env._now - self.since < self.bound:
            return
        if queue and min(e[2] for e in queue) <= self.mark:
            return  # an event from before the quiet stretch is still to come
        stuck = [t for t in self.sim.log.live() if not t.terminal]
        if stuck:
            raise Livelock(env._now, self.since, stuck)


def run_until(sim: Simulation, done: Event, *, bound_us: float | None = None) -> None:
    """Step ``sim.env`` until ``done`` has been processed, like ``env.run(until=done)``.

    Raises RuntimeError (as SimPy does) if the queue empties first, and :class:`Livelock` if
    the run is livelocked; ``bound_us`` overrides :func:`quiet_bound_us` (tests).
    """
    env = sim.env
    if done.callbacks is None:  # already processed
        return
    stop = StopSimulation.callback
    done.callbacks.append(stop)
    watch = _Watch(sim, quiet_bound_us(sim) if bound_us is None else bound_us)
    watch.sig = watch._signature()  # the run's start is the first progress seen
    step = env.step
    chunk = range(CHECK_EVERY)
    trace = sim.trace
    try:
        while True:
            for _ in chunk:
                step()
            watch.check()
            if trace.sink is not None and len(trace._raw) > trace.spill_at:  # a streaming trace (sim.trace_stream)
                trace.spill(env._now)
    except StopSimulation:
        return
    except EmptySchedule:
        raise RuntimeError(f"No scheduled events left but the run's done event was not triggered: {done}") from None
    finally:
        cbs = done.callbacks
        if cbs is not None and stop in cbs:  # left waiting (hang, livelock, error): leave no stop behind
            cbs.remove(stop)
