"""Endpoint lanes: what runs a dispatched task, and how long it takes.

Models ``docs/worker-manager.md`` (a WorkerThread per child owning one shared-memory
mailbox lane: the parent publishes a TASK frame, the child runs it and publishes
TASK_DONE) and the execution leaves of ``docs/task-flow.md`` §5:

- a **chip lane** runs one chip callable through ``ChipWorker.run`` — here a reference
  kernel on real numpy arrays, taking ``run_launch_us`` plus the kernel's roofline time;
- a **SUB lane** calls the registered Python callable as ``fn(args)`` with numpy views,
  taking the callable's modeled duration;
- a **child-Worker lane** hands the task to a lower-level Worker, which runs the registered
  orchestration function as its own run (§9 "Recursive composition (L4+)").

Each lane is busy from dispatch until its completion is observed by the parent; one SimPy
event per member carries the completion back, so no process is created per message. As a
lane carries one execution at a time, a leaf lane keeps a single completion event and re-arms
it for every launch (:class:`LaneCompletion`), so no event is allocated per task either.
"""

from __future__ import annotations

import traceback
from heapq import heappush
from typing import TYPE_CHECKING, Any

from simpy.events import NORMAL, Event, Timeout

from sim.errors import ErrorClass
from sim.task_args import TaskArgsView
from sim.trace import EventKind

if TYPE_CHECKING:
    from collections.abc import Callable

    from simpy import Environment

    from sim.node import Node, RunState
    from sim.task import Task


_START, _END = EventKind.START, EventKind.END  # bound once: an enum class attribute lookup costs ~60 ns


def _describe_exc(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


class BlockDraws:
    """A lane's jitter stream: its generator's numbers, in the same order as one draw per launch, but
    taken :data:`JITTER_BLOCK` at a time (a list pop costs far less than a generator call)."""

    __slots__ = ("buf", "rng")

    def __init__(self, rng: Any) -> None:
        self.rng = rng
        self.buf: list[float] = []  # the block's numbers, last one first

    def random(self) -> float:
        buf = self.buf
        if not buf:
            buf = self.buf = self.rng.random(JITTER_BLOCK).tolist()[::-1]
        return buf.pop()


JITTER_BLOCK = 256


class LaneCompletion(Event):
    """The completion event of one leaf lane, re-armed for each execution the lane carries.

    Scheduled with ``env.schedule`` exactly as a ``Timeout`` schedules itself (same priority,
    same delay arithmetic, one event id per launch), so event order is unchanged. Re-arming is
    safe because the lane launches again only from within, or after, the previous completion's
    callback, when SimPy has already taken the event off its queue.
    """

    def __init__(self, env: Environment, callback: Callable[[Event], None]) -> None:
        super().__init__(env)
        self._ok = True  # triggered, successfully, whenever it is scheduled
        self._value = None
        self.armed = [callback]  # the callbacks list each launch hands to SimPy


class Lane:
    """A parent-side endpoint lane for one child (chip, SUB or lower Worker)."""

    __slots__ = ("busy", "c_call", "c_complete", "c_dispatch", "c_tensor", "coll_result", "completion", "end", "env",
                 "functional", "index", "is_sub", "jitter", "member", "node", "points", "rng", "scope", "task", "trace",
                 "workers_entry")
    remote = False  # the lane kind: True for a remote worker id's lane (the remote layer's, sim.plugins)

    def __init__(self, node: Node, scope: str, index: int, is_sub: bool) -> None:
        self.node = node
        self.env = node.env
        self.trace = node.trace
        self.scope = scope
        self.index = index
        self.is_sub = is_sub
        self.busy = False
        mb = node.sim.profile.mailbox
        self.c_dispatch = mb["dispatch_us"]
        self.c_complete = mb["completion_us"]
        self.c_tensor = mb["per_tensor_us"]
        self.rng = BlockDraws(node.sim.stream(scope))
        self.functional = node.sim.functional
        self.jitter = node.sim.jitter
        self.c_call = 0.0  # fixed cost of the leaf's own call, on top of the task's duration
        self.workers_entry = (scope,)  # appended to a dispatched task's ``workers``
        self.completion = LaneCompletion(self.env, self._done)
        # The fault points that may fire in this lane (sim.faultpoints); bound by the leaf lanes.
        self.points = None
        if node.sim.points is not None:
            node.sim.points.scopes.add(scope)
        # The execution in flight: what the completion event reports.
        self.task: Task | None = None
        self.member = 0
        self.end = 0.0
        # A collective's outcome (error, class), set by sim.comm when its rendezvous completes.
        self.coll_result: tuple[str | None, str | None] = (None, None)

    def launch(self, task: Task, member: int, t: float) -> None:
        """Start member ``member`` of ``task``, published on the mailbox at virtual time ``t``.

        The child observes the frame ``dispatch_us`` (plus ``per_tensor_us`` per tensor)
        later, runs for the member's modeled duration, and its TASK_DONE reaches the parent
        ``completion_us`` after it ends: one event carries that completion back. A collective
        kernel's member, ready at that end, joins its domain's rendezvous instead
        (:mod:`sim.comm.collective`), which schedules the completion.
        """
        start = t + self.c_dispatch + self.c_tensor * len(task.members[member][0])
        dur = self.c_call + task.durations[member]
        if self.jitter:
            dur *= 1.0 + self.jitter * (2.0 * self.rng.random() - 1.0)
        if self.points is not None:
            start, dur = self._fault_points(task, start, dur)
        end = start + dur
        if task.start is None or start < task.start:
            task.start = start
        tr = self.trace
        if tr.enabled:
            tr.record((start, _START, self.scope, task._name or task.name, ""))
        self.task = task
        self.member = member
        if task.callable.collective:  # its end depends on its peers: the domain's engine schedules it
            self.node.sim.comm.arrive(self, task, member, start, end)
            return
        self.end = end
        ev = self.completion  # re-armed, see LaneCompletion
        ev.callbacks = ev.armed
        env = self.env  # ``env.schedule(ev, NORMAL, delay)``, inlined with its arithmetic: once per task
        now = env._now
        heappush(env._queue, (now + (end + self.c_complete - now), NORMAL, next(env._eid), ev))

    def _fault_points(self, task: Task, start: float, dur: float) -> tuple[float, float]:
        """``dispatch_late`` and ``slow_sub`` / ``slow_chip`` (:mod:`sim.faultpoints`) on one launch."""
        points = self.points
        assert points is not None
        name = task._name or task.name
        p = points.fires("dispatch_late", self.scope, name)
        if p is not None:
            start += p.delay_us
        p = points.fires("slow_sub" if self.is_sub else "slow_chip", self.scope, name)
        if p is not None:
            dur *= p.factor
        return start, dur

    def _done(self, ev: Event) -> None:
        task = self.task
        member = self.member
        end = self.end
        if task.callable.collective:
            error, cls = self.coll_result
        elif self.functional:
            error, cls = self.execute(task, member)
        else:
            error = cls = None
        if task.end is None or end > task.end:
            task.end = end
        tr = self.trace
        if tr.enabled:
            tr.record((end, _END, self.scope, task._name or task.name, "ok" if error is None else "error"))
        self.node.member_done(task, self, error, cls)

    def execute(self, task: Task, member: int) -> tuple[str | None, str | None]:
        """Run the member's functional effect; return (error message, error class) or (None, None)."""
        return None, None


class ChipLane(Lane):
    """An L2 chip child: runs reference kernels (``docs/task-flow.md`` §5 "ChipWorker")."""

    __slots__ = ()

    def __init__(self, node: Node, scope: str, index: int) -> None:
        super().__init__(node, scope, index, False)
        if node.sim.points is not None:
            self.points = node.sim.points.bind(scope, "slow_chip", "dispatch_late", "domain_member_crash",
                                               "domain_link_cut")

    def execute(self, task: Task, member: int) -> tuple[str | None, str | None]:
        try:
            task.callable.target.run(task.members[member][2])
        except Exception as exc:  # a kernel fault fails this task, not the simulator
            return f"kernel {task.callable.name} raised {_describe_exc(exc)}", ErrorClass.TASK_FAILURE.value
        return None, None


class SubLane(Lane):
    """A SUB child: calls the Python callable as ``fn(args)`` (``docs/task-flow.md`` §5)."""

    __slots__ = ()

    def __init__(self, node: Node, scope: str, index: int) -> None:
        super().__init__(node, scope, index, True)
        self.c_call = node.sim.profile.sub["call_overhead_us"]
        if node.sim.points is not None:
            self.points = node.sim.points.bind(scope, "slow_sub", "dispatch_late")

    def execute(self, task: Task, member: int) -> tuple[str | None, str | None]:
        m = task.members[member]
        view = TaskArgsView([r.array for r in m[0]], m[1])
        try:
            task.callable.target(view)
        except Exception as exc:  # the SUB child reports failure; the run goes on
            tb = traceback.extract_tb(exc.__traceback__)
            where = f" at {tb[-1].name}:{tb[-1].lineno}" if tb else ""
            return (f"sub callable {task.callable.name} raised {_describe_exc(exc)}{where}",
                    ErrorClass.TASK_FAILURE.value)
        return None, None


class WorkerLane(Lane):
    """A lower-level Worker child: runs the orchestration function as a nested run."""

    __slots__ = ("child", "make_orch")

    def __init__(self, node: Node, scope: str, index: int, child: Node, make_orch: Any) -> None:
        super().__init__(node, scope, index, False)
        self.child = child
        self.make_orch = make_orch

    def launch(self, task: Task, member: int, t: float) -> None:
        m = task.members[member]
        start = t + self.c_dispatch + self.c_tensor * len(m[0])
        if task.start is None or start < task.start:
            task.start = start
        if self.trace.enabled:
            self.trace.add(start, EventKind.START, self.scope, task.name)
        ev = Timeout(self.env, start - self.env.now, (task, member))
        ev.callbacks.append(self._begin)

    def _begin(self, ev: Event) -> None:
        task, member = ev._value
        m = task.members[member]
        # The nested orchestration gets the tensors as they were submitted (arrays, Tensors or
        # specs), so what it submits onwards keeps the same dependency keys.
        view = TaskArgsView([r.source for r in m[0]], m[1])
        self.child.begin_run(task.callable.target, self.make_orch(), view, task.config,
                             lambda run: self._finished(task, member, run))

    def _finished(self, task: Task, member: int, run: RunState) -> None:
        end = self.env.now
        if run.error is not None:
            err: str | None = f"L{self.child.level} run r{run.id} failed: {_describe_exc(run.error)}"
            cls = getattr(run.error, "error_class", ErrorClass.TASK_FAILURE)
            cls_name: str | None = cls.value if isinstance(cls, ErrorClass) else ErrorClass.TASK_FAILURE.value
        elif run.failed:
            first = run.failed[0]
            err = f"L{self.child.level} run r{run.id} failed: task {first.name}: {first.error}"
            cls_name = ErrorClass.TASK_FAILURE.value
        else:
            err, cls_name = None, None
        if task.end is None or end > task.end:
            task.end = end
        if self.trace.enabled:
            self.trace.add(end, EventKind.END, self.scope, task.name, "ok" if err is None else "error")
        ev = Timeout(self.env, self.c_complete, (task, err, cls_name))
        ev.callbacks.append(self._deliver)

    def _deliver(self, ev: Event) -> None:
        task, err, cls_name = ev._value
        self.node.member_done(task, self, err, cls_name)
