"""The event calendar processes events in exactly SimPy's order (``sim/calendar.py``).

The simulator's traces are byte-identical per seed only if its event queue yields events in
SimPy's order: time, then priority, then scheduling order. These tests drive SimPy's own
``Environment`` and :class:`sim.calendar.Calendar` with the same program -- events scheduled up
front and from callbacks, ties on time, URGENT and NORMAL priorities, the absolute-time entry
point, a stop in the middle of an event's callbacks -- and compare the order of every callback.
"""

from __future__ import annotations

import pytest
import simpy
from hypothesis import given, settings
from hypothesis import strategies as st
from simpy.core import EmptySchedule, StopSimulation
from simpy.events import NORMAL, URGENT, Event, Timeout

from sim.calendar import Calendar

# One scheduled event: (delay index, urgent?, children spawned by its callback, use schedule_at?).
_DELAYS = (0.0, 0.5, 1.0, 1.0, 2.5)  # repeats make ties on time common
_EVENT = st.tuples(st.integers(0, len(_DELAYS) - 1), st.booleans(), st.integers(0, 2), st.booleans())


def _replay(env: simpy.Environment, program: list[tuple[int, bool, int, bool]], stop_at: int | None) -> list:
    """Run ``program`` on ``env``; return (time, label) per callback in the order they ran."""
    seen: list = []
    todo = iter(program * 3)  # children draw their own parameters from the rest of the program
    made = [0]

    def spawn(parent: str) -> None:
        try:
            di, urgent, kids, absolute = next(todo)
        except StopIteration:
            return
        made[0] += 1
        label = f"{parent}.{made[0]}"
        ev = Event(env)
        ev._ok, ev._value = True, label
        ev.callbacks.append(lambda e, n=kids: fire(e, n))
        ev.callbacks.append(lambda e: seen.append(("second", e._value)))
        delay = _DELAYS[di]
        if absolute and not urgent and isinstance(env, Calendar):
            env.schedule_at(env.now + delay, ev)
        else:
            env.schedule(ev, URGENT if urgent else NORMAL, delay)

    def fire(ev: Event, kids: int) -> None:
        seen.append((env.now, ev._value))
        if stop_at is not None and len(seen) == stop_at:
            raise StopSimulation("stopped")
        for _ in range(kids):
            spawn(ev._value)

    for _ in range(len(program)):
        spawn("root")
    while True:
        try:
            env.step()
        except EmptySchedule:
            return seen
        except StopSimulation:
            seen.append(("stopped", env.now))  # the rest of that event's callbacks run on resume


@settings(max_examples=300, deadline=None)
@given(st.lists(_EVENT, min_size=1, max_size=25), st.one_of(st.none(), st.integers(1, 30)))
def test_the_calendar_runs_callbacks_in_simpys_order(program, stop_at) -> None:
    assert _replay(Calendar(), program, stop_at) == _replay(simpy.Environment(), program, stop_at)


def test_timeouts_processes_and_peek_behave_as_in_simpy() -> None:
    """SimPy's own event types run on the calendar: timeouts, a process, conditions, a failure."""

    def model(env: simpy.Environment) -> list:
        log: list = []

        def proc(name: str, waits: list[float]):
            for w in waits:
                yield env.timeout(w)
                log.append((env.now, name))
            yield env.all_of([env.timeout(1.0), env.timeout(2.0)])
            log.append((env.now, name, "both"))

        env.process(proc("a", [1.0, 1.0, 0.5]))
        env.process(proc("b", [2.0, 0.5]))
        Timeout(env, 1.0, "t").callbacks.append(lambda e: log.append((env.now, e.value)))
        log.append(("peek", env.peek()))
        env.run(until=3.0)
        log.append(("peek", env.peek()))
        env.run()
        return log

    assert model(Calendar()) == model(simpy.Environment())
    env = Calendar()
    assert env.peek() == float("inf")
    with pytest.raises(EmptySchedule):
        env.step()
    failed = env.event()
    failed.fail(ValueError("boom"))
    with pytest.raises(ValueError, match="boom"):  # an undefused failure crashes the run, as in SimPy
        env.run()


def test_pending_lists_every_scheduled_event_with_its_eid() -> None:
    env = Calendar()
    evs = [Event(env) for _ in range(4)]
    env.schedule(evs[0], NORMAL, 1.0)
    env.schedule(evs[1], NORMAL, 1.0)  # a tie: the time's second event
    env.schedule(evs[2], URGENT, 1.0)
    env.schedule_at(3.0, evs[3])
    assert sorted((t, p, eid) for t, p, eid, _ in env.pending()) == [(1.0, URGENT, 2), (1.0, NORMAL, 0),
                                                                      (1.0, NORMAL, 1), (3.0, NORMAL, 3)]
    assert {id(e) for *_, e in env.pending()} == {id(e) for e in evs}
