"""No run may hang forever: a livelock (only self-renewing events while tasks are stuck) is a HANG.

Spec: tierbed's own rule for the executable spec (``sim/livelock.py``): a run that can never finish
ends as ``SimulationHang`` (error class HANG). The periodic events of today's model are the remote
endpoint's health lane (upstream ``docs/remote-l3-worker-design/protocol.md`` "Ordering": health is
an independent lane that keeps running while the command lane waits).

Every test that could hang runs under a wall-clock alarm, so a regression fails instead of
blocking CI.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from simpy.events import Event, Timeout

from sim import SimConfig, TaskArgs, TensorArgType, Worker
from sim.errors import ErrorClass, SimulationHang
from sim.livelock import MIN_QUIET_US, Livelock, quiet_bound_us, run_until
from sim.node import Node
from sim.remote.refs import RemoteTensorRef
from sim.remote.spec import RemoteCallable, RemoteWorkerSpec


def test_a_stuck_consumer_of_a_watched_remote_endpoint_ends_as_a_hang(monkeypatch, hard_timeout) -> None:
    """A lost wake-up (consumers never released) leaves a remote task PENDING; health ticks go on.

    Before the detector this run never returned: the endpoint watches its pending task, so its
    health lane re-arms forever and the event queue never empties.
    """
    monkeypatch.setattr(Node, "_release_consumers", lambda self, task, t: None)
    w = Worker(level=4, sim=SimConfig(seed=3))
    rid = w.add_remote_worker(RemoteWorkerSpec("127.0.0.1:9000", "a2a3sim", device_ids=(0,)))
    h = w.register(RemoteCallable("sim.remote.examples:noop"), workers=[rid])
    w.init()
    buf = w.remote_malloc(worker=rid, nbytes=64)

    def orch(o, _a, _c):
        for tag in (TensorArgType.OUTPUT_EXISTING, TensorArgType.INPUT):
            ta = TaskArgs()
            ta.add_tensor(RemoteTensorRef(buf, shape=(16,), dtype="float32"), tag)
            o.submit_next_level(h, ta, worker=rid)

    with hard_timeout(60), pytest.raises(SimulationHang) as ei:
        w.run(orch)
    err = ei.value
    assert err.error_class is ErrorClass.HANG
    msg = str(err)
    assert "livelocked at t=" in msg and "l4:r1:t2" in msg and "l4:r1:t1" not in msg
    bound = quiet_bound_us(w.simulation)
    assert bound == max(MIN_QUIET_US, 10 * 30e6)  # the a2a3 profile's host_tcp health timeout: 30 s
    assert bound <= w.simulation.now < 10 * bound  # caught within a few bounds of virtual time
    w.close()  # the endpoint stops watching; close returns


class FakeNode:
    """What the detector reads of a node: its two host-thread cursors and its run count."""

    def __init__(self) -> None:
        self.orch_cursor = 0.0
        self.sched_cursor = 0.0
        self.run_count = 1


def _fake_sim(tasks):
    """A real Simulation (for its env and profile) carrying stand-in tasks."""
    w = Worker(level=3, device_ids=[0], sim=SimConfig(data_mode="timing"))
    w.init()
    sim = w.simulation
    sim.log.tasks.extend(tasks)  # live tasks of the task log (sim.tasklog)
    sim.task_nodes.update(dict.fromkeys(t.node for t in tasks))
    return w, sim


def _periodic(env, every_us: float) -> None:
    def tick(_ev):
        Timeout(env, every_us).callbacks.append(tick)

    Timeout(env, every_us).callbacks.append(tick)


def test_only_periodic_events_with_a_stuck_task_is_a_livelock(hard_timeout) -> None:
    node = FakeNode()
    w, sim = _fake_sim([SimpleNamespace(node=node, terminal=False, name="stuck")])
    _periodic(sim.env, 1000.0)
    done = Event(sim.env)
    with hard_timeout(60), pytest.raises(Livelock) as ei:
        run_until(sim, done, bound_us=1e6)
    assert ei.value.stuck[0].name == "stuck"
    assert ei.value.now_us - ei.value.since_us >= 1e6
    assert done.callbacks == []  # no stop callback left behind on the waited-for event
    w.close()


def test_a_long_wait_for_an_earlier_event_is_not_a_livelock(hard_timeout) -> None:
    """Periodic events plus one event scheduled before the quiet stretch (a long kernel, a command
    timeout): the run waits for it, however long, and ends normally."""
    node = FakeNode()
    task = SimpleNamespace(node=node, terminal=False, name="long")
    w, sim = _fake_sim([task])
    _periodic(sim.env, 1000.0)
    done = Event(sim.env)

    def finish(_ev):
        task.terminal = True
        done.succeed()

    Timeout(sim.env, 50e6).callbacks.append(finish)  # 50x the bound below
    with hard_timeout(60):
        run_until(sim, done, bound_us=1e6)
    assert sim.now == 50e6
    w.close()


def test_progress_keeps_a_busy_run_alive(hard_timeout) -> None:
    """Work that keeps moving (the cursors advance) is never a livelock, however long it runs."""
    node = FakeNode()
    w, sim = _fake_sim([SimpleNamespace(node=node, terminal=False, name="busy")])
    env = sim.env
    done = Event(env)

    def work(_ev):
        node.sched_cursor = env.now
        if env.now >= 20e6:
            done.succeed()
        else:
            Timeout(env, 1000.0).callbacks.append(work)

    Timeout(env, 1000.0).callbacks.append(work)
    with hard_timeout(60):
        run_until(sim, done, bound_us=1e6)
    assert sim.now >= 20e6
    w.close()


def test_an_empty_queue_is_still_the_plain_hang() -> None:
    w = Worker(level=3, device_ids=[0], sim=SimConfig(data_mode="timing"))
    w.init()
    sim = w.simulation
    with pytest.raises(RuntimeError, match="No scheduled events left"):
        run_until(sim, Event(sim.env))
    w.close()
