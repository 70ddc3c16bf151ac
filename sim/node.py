"""The engine of one L3+ Worker: its Orchestrator state, Scheduler queues and endpoint lanes.

Models the three cooperating components of ``docs/hierarchical-level-runtime.md`` §2
"Three Components — Roles":

- **Orchestrator** (``docs/orchestrator.md`` §2 "the 7-step flow"): each submit claims a
  slot, walks the TaskArgs tags through the TensorMap (INPUT/INOUT look up the last writer;
  OUTPUT/INOUT/OUTPUT_EXISTING become the new writer; NO_DEP does neither — §7
  "Semantics", so WAW replaces the entry and WAR is not tracked), registers a scope
  reference, wires fanout on live producers, and publishes the slot PENDING or READY.
  Heap rings give back-pressure (§5); scopes anchor lifetimes (§6).
- **Scheduler** (``docs/scheduler.md``, ``docs/directed-next-level-scheduling.md``): one
  directed FIFO per NEXT_LEVEL worker id, one group FIFO whose head reserves its whole
  target set, one shared SUB FIFO served by idle SUB workers, completion handling that
  releases or poisons consumers and retires slots.
- **Worker lanes** (``docs/worker-manager.md``): see :mod:`sim.lanes`.

Timing. The host threads are modeled as serial cursors: the Orchestrator thread pays
``orch_submit_us`` per submit, the Scheduler thread ``sched_dispatch_us`` per dispatch and
``sched_completion_us`` per completion. The user's orchestration function runs to its end
at the run's start instant; each submit is stamped with the time the Orchestrator thread
would have published it, and a task never dispatches before that stamp. A submit that the
heap ring cannot hold waits in FIFO order, with every later orchestration step behind it,
exactly as a blocked ``Ring.alloc`` holds the Orchestrator thread. Events are callbacks on
SimPy events (one per task completion, see :mod:`sim.lanes`), not processes, so the hot path
stays lean; it reads the clock as ``env._now``, the field SimPy's ``env.now`` property returns,
to save a property call per read, and inlines a few small helpers where they run once per task
(each such spot names the helper it stands for).
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from simpy.events import Event, Timeout

from sim.errors import ErrorClass, ResourceExhausted, SimError
from sim.ring import DEFAULT_HEAP_RING_SIZE, MAX_RING_DEPTH, HeapRing, aligned, ring_for_depth
from sim.task import BUILDING, COMPLETED, CONSUMED, FAILED, PENDING, READY, RUNNING, Task, TaskKind
from sim.trace import EventKind
from sim.types import INSERT_TAGS, LOOKUP_TAGS, TensorArgType

if TYPE_CHECKING:
    from sim.lanes import Lane
    from sim.simulation import Simulation

MAX_SCOPE_DEPTH = 64
# Per-tag flags indexed by the tag's value: a tuple index is cheaper than hashing an IntEnum.
_LOOKUP = tuple(t in LOOKUP_TAGS for t in TensorArgType)
_INSERT = tuple(t in INSERT_TAGS for t in TensorArgType)
_INPUT, _OUTPUT = TensorArgType.INPUT, TensorArgType.OUTPUT
# Heap ring per 0-based scope depth; scopes nest at most MAX_SCOPE_DEPTH below the run's own.
# How many producers a submit dedups on a tuple before it switches to a set.
_DEDUP_SET = 16
_RING_FOR_DEPTH = tuple(ring_for_depth(d) for d in range(MAX_SCOPE_DEPTH + 1))
_NL = TaskKind.NEXT_LEVEL
_SUB = TaskKind.SUB
_ALLOC = TaskKind.ALLOC
# The per-task trace kinds, bound once: an enum class attribute lookup costs ~60 ns.
_SUBMIT, _READY, _DISPATCH = EventKind.SUBMIT, EventKind.READY, EventKind.DISPATCH
_COMPLETE, _CONSUMED = EventKind.COMPLETE, EventKind.CONSUMED


class RunState:
    """One run of an orchestration function on a node (``docs/orchestrator.md`` §1, run fence)."""

    __slots__ = ("active", "closed", "done", "end_t", "error", "failed", "fences", "id", "on_done", "prefix", "seq",
                 "start_t", "tasks")

    def __init__(self, scope: str, run_id: int, start_t: float, on_done: Callable[[RunState], None]) -> None:
        self.id = run_id
        self.prefix = f"{scope}:r{run_id}:"  # the prefix of its task names (``Task.name``)
        self.active = 0
        self.closed = False
        self.done = False
        self.error: BaseException | None = None
        self.failed: list[Task] = []
        self.on_done = on_done
        # What must happen once the run has drained and before its waiter hears of it: the deferred
        # frees of communication domains released or forgotten in it (``docs/comm-domain.md`` §2).
        self.fences: list[Callable[[RunState], None]] = []
        self.seq = 0
        self.start_t = start_t
        self.end_t: float | None = None
        self.tasks: list[Task | None] = []  # by seq - 1; None once consumed

    def finish(self) -> None:
        """The run's completion fence: its fences, in the order they were added, then its waiter."""
        for fence in self.fences:
            fence(self)
        self.on_done(self)


class Node:
    """Orchestrator + Scheduler + lanes of one L3+ Worker instance."""

    # Slots: the engine reads these on every task; an instance dict this large misses CPython's
    # fast attribute path (measured: ~4% of a 100k-task run).
    __slots__ = ("admission", "backpressure_timeout", "blocked_since", "c_complete", "c_dispatch", "c_release",
                 "c_run_begin", "c_run_end", "c_submit", "c_submit_tensor", "env", "group_fifo", "has_remote",
                 "idle_subs", "level", "nl_lanes", "nl_targets", "orch_cursor", "points", "reserved", "ring_capacity",
                 "ring_hold", "ring_waited", "rings", "run", "run_count", "sched_cursor", "scope", "scopes", "sim",
                 "single_fifos", "sub_fifo", "sub_lanes", "tensormap", "trace")

    def __init__(self, sim: Simulation, scope: str, level: int, heap_ring_size: int | None) -> None:
        self.sim = sim
        self.env = sim.env
        self.trace = sim.trace
        self.scope = scope
        self.level = level
        p = sim.profile
        self.c_submit = p.host["orch_submit_us"]
        self.c_submit_tensor = p.host["orch_submit_per_tensor_us"]
        self.c_dispatch = p.host["sched_dispatch_us"]
        self.c_complete = p.host["sched_completion_us"]
        self.c_release = p.host["sched_release_per_consumer_us"]
        self.c_run_begin = p.host["run_begin_us"]
        self.c_run_end = p.host["run_end_us"]
        self.backpressure_timeout = sim.config.backpressure_timeout_us
        self.nl_lanes: list[Lane] = []
        self.nl_targets: tuple[tuple[int], ...] = ()  # (w,) per NEXT_LEVEL worker id: a single's placement
        self.sub_lanes: list[Lane] = []
        self.has_remote = False
        self.single_fifos: list[deque[Task]] = []
        self.group_fifo: deque[Task] = deque()
        self.sub_fifo: deque[Task] = deque()
        self.idle_subs: list[int] = []
        self.reserved: frozenset[int] = frozenset()
        self.ring_capacity = heap_ring_size or DEFAULT_HEAP_RING_SIZE
        self.rings = [HeapRing(self.ring_capacity) for _ in range(MAX_RING_DEPTH)]
        self.orch_cursor = 0.0
        self.sched_cursor = 0.0
        self.tensormap: dict[Any, Task] = {}
        self.scopes: list[list[Task]] = []
        self.admission: deque[Any] = deque()
        self.blocked_since: float | None = None
        self.run: RunState | None = None
        self.run_count = 0
        # The ``ring_full`` fault point (sim.faultpoints), None unless it may fire here; the task a
        # firing holds at the head of the admission queue until its wait is over.
        self.points = sim.points.bind(scope, "ring_full") if sim.points is not None else None
        self.ring_hold: Task | None = None
        self.ring_waited: Task | None = None  # the last one held: it does not pass the point again

    # ------------------------------------------------------------------ elaboration

    def attach(self, nl_lanes: list[Lane], sub_lanes: list[Lane]) -> None:
        """Fix the lane sets at init (the NEXT_LEVEL worker-id map is frozen after init)."""
        self.nl_lanes = nl_lanes
        self.nl_targets = tuple((w,) for w in range(len(nl_lanes)))
        self.sub_lanes = sub_lanes
        if self.trace.enabled:  # the Perfetto export's tracks, idle lanes included (not an event)
            self.trace.declare_node(self.scope, self.level, [lane.scope for lane in (*nl_lanes, *sub_lanes)])
        self.has_remote = any(lane.remote for lane in nl_lanes)  # a remote lane kind (sim.plugins)
        self.single_fifos = [deque() for _ in nl_lanes]
        self.idle_subs = list(range(len(sub_lanes)))
        heapq.heapify(self.idle_subs)

    # ------------------------------------------------------------------ runs

    def begin_run(self, orch_fn: Callable[..., Any], orch: Any, args: Any, config: Any,
                  on_done: Callable[[RunState], None]) -> RunState:
        """Open a run, call the orchestration function, close submission.

        ``orch`` is the :class:`sim.orchestrator.Orchestrator` facade bound to this run. An
        exception from ``orch_fn`` fails the run's submission: unstarted tasks are cancelled
        (NOT_RUN), running ones finish, and the run ends with that error.
        """
        now = self.env.now
        self.run_count += 1
        self.sim.task_nodes[self] = None
        run = RunState(self.scope, self.run_count, now, on_done)
        self.run = run
        self.tensormap = {}
        self.scopes = [[]]
        self.orch_cursor = max(now, self.orch_cursor) + self.c_run_begin
        if self.trace.enabled:  # its fields are formatted only for a trace that keeps them
            self.trace.record((now, EventKind.RUN_BEGIN, self.scope, f"r{run.id}",
                               getattr(orch_fn, "__qualname__", "")))
        orch._bind(self, run)
        try:
            orch_fn(orch, args, config)
        except BaseException as exc:  # the run owns the error; re-raised by whoever waits on it
            run.error = exc
            self.trace.add(self.env.now, EventKind.FAIL, self.scope, f"r{run.id}",
                           f"orchestration raised {type(exc).__name__}: {exc}")
            self._cancel_unstarted(run, "orchestration function raised")
        finally:
            orch._unbind()
            if len(self.scopes) > 1 and run.error is None:
                run.error = _misuse(f"orchestration function returned with {len(self.scopes) - 1} scope(s) open")
            while self.scopes:
                self._scope_end_op()
            run.closed = True
            self._check_run_done(run)
        return run

    def _check_run_done(self, run: RunState) -> None:
        if run.closed and not run.done and run.active == 0:
            run.done = True
            # Every task of the run is terminal: nothing cancels them any more. Dropping the list
            # breaks the run <-> task cycles, so a finished run's slots are freed by reference
            # counting, without waiting for (and lengthening) a pass of the cyclic collector.
            run.tasks = []
            run.end_t = max(self.env.now, self.orch_cursor) + self.c_run_end
            if self.trace.enabled:
                self.trace.record((run.end_t, EventKind.RUN_END, self.scope, f"r{run.id}",
                                   "failed" if (run.failed or run.error) else "ok"))
            if self.run is run:
                self.run = None
            delay = run.end_t - self.env.now
            if delay > 0:
                ev = Timeout(self.env, delay, run)
                ev.callbacks.append(self._fire_run_done)
            else:
                run.finish()

    @staticmethod
    def _fire_run_done(ev: Event) -> None:
        run: RunState = ev._value
        run.finish()

    # ------------------------------------------------------------------ orchestrator

    def submit(self, kind: TaskKind, callable_: Any, members: Sequence[tuple], targets: tuple[int, ...], group: bool,
               config: Any, durations: Sequence[float], cost_tensors: int) -> Task:
        """Steps 1–6 of ``docs/orchestrator.md`` §2 for an already-validated submit.

        ``members`` holds one (refs, scalars, values, tags) tuple per member, ``durations`` one
        modeled duration per member, and ``cost_tensors`` is the number of tensors of all members.
        """
        run = self.run
        assert run is not None
        run.seq += 1
        task = Task(run.seq, self, run, kind, callable_, members, targets, group, config, durations)
        # Step 3, the tag walk (§7): a lookup finds the last writer, an insert makes this task
        # the writer. A consumed producer has nothing left to wait for, so it is no producer;
        # each new producer is wired at once (step 5), and only an unfinished one holds the task back.
        # A lookup that finds this very task (a group member reading what an earlier member of the
        # same group writes) is no edge: upstream's tag walk skips that self-loop
        # (``src/common/hierarchical/orchestrator.cpp``, the producer dedup of the tag walk).
        # Producers are deduplicated on a short tuple; past _DEDUP_SET of them, on a set beside a
        # list (``many``), so that a task with k producers costs O(k), not O(k^2), to submit.
        tm = self.tensormap
        producers: tuple[Task, ...] = ()
        many: list[Task] | None = None
        seen: set[Task] | None = None
        out_keys: tuple = ()
        live = 0
        for m in members:
            for ref, tag in zip(m[0], m[3]):  # noqa: B905 - equal by construction
                # INPUT and OUTPUT, the common tags, are told apart by identity; the others by table.
                if tag is _INPUT or (tag is not _OUTPUT and _LOOKUP[tag]):
                    p = tm.get(ref.key)
                    if p is not None and p.state is not CONSUMED and p is not task and (
                            p not in producers if seen is None else p not in seen):
                        if seen is None:
                            producers += (p,)
                            if len(producers) > _DEDUP_SET:
                                many = list(producers)
                                seen = set(producers)
                        else:
                            many.append(p)  # type: ignore[union-attr]
                            seen.add(p)
                        p.consumers.append(task)
                        p.fanout_total += 1
                        st = p.state
                        if st is FAILED:
                            if task.poisoned_by is None:
                                task.poisoned_by = p
                        elif st is not COMPLETED:
                            live += 1
                if tag is _OUTPUT or (tag is not _INPUT and _INSERT[tag]):
                    key = ref.key
                    tm[key] = task
                    out_keys += (key,)
        task.producers = producers if many is None else tuple(many)
        task.out_keys = out_keys
        task.fanin_count = live
        scopes = self.scopes  # ``_scope_register``, inlined: once per submit
        scopes[-1].append(task)
        task.fanout_total += 1
        task.ring = _RING_FOR_DEPTH[len(scopes) - 1]
        run.active += 1
        run.tasks.append(task)
        log = self.sim.log  # ``TaskLog.add``, inlined: once per submit
        task.row = row = log.next_row
        log.next_row = row + 1
        log.tasks.append(task)
        if row == log.compact_row:
            log.compact = True
        cost = self.c_submit + self.c_submit_tensor * cost_tensors
        ring = self.rings[task.ring]
        if self.admission or ring.top - ring.tail + task.heap_bytes > ring.capacity:  # not ``ring.fits``
            self._orch_step(task, cost)  # waits behind the blocked step
        elif self.points is None or not self._ring_full(task, cost):
            self._admit(task, cost)
        return task

    def alloc(self, key: Any, nbytes: int) -> Task:
        """``Orchestrator.alloc`` (§8b): a synthetic COMPLETED slot owning a heap slab."""
        run = self.run
        assert run is not None
        run.seq += 1
        task = Task(run.seq, self, run, _ALLOC, None, (), (), False)
        task.heap_bytes = aligned(nbytes)
        self.tensormap[key] = task
        task.out_keys = (key,)
        self._scope_register(task)
        task.fanout_released = 1  # stands in for the self-release a dispatched task makes
        run.active += 1
        run.tasks.append(task)
        self._orch_step(task, self.c_submit)
        return task

    def check_heap_request(self, nbytes: int, what: str) -> None:
        """Reject at once a request that no ring could ever hold."""
        if aligned(nbytes) > self.ring_capacity:
            raise ResourceExhausted(
                f"{what} needs {aligned(nbytes)} heap bytes but heap_ring_size is {self.ring_capacity}; "
                f"increase heap_ring_size on the Worker")

    def _scope_register(self, task: Task) -> None:
        frame = self.scopes[-1]
        frame.append(task)
        task.fanout_total += 1
        task.ring = _RING_FOR_DEPTH[len(self.scopes) - 1]

    def scope_begin(self) -> None:
        if len(self.scopes) > MAX_SCOPE_DEPTH:
            raise _misuse(f"scope nesting deeper than {MAX_SCOPE_DEPTH}")
        self.scopes.append([])
        self.trace.add(self.env.now, EventKind.SCOPE_BEGIN, self.scope, f"depth{len(self.scopes)}")

    def scope_end(self) -> None:
        if len(self.scopes) <= 1:
            raise _misuse("scope_end() without a matching scope_begin()")
        self._scope_end_op()

    def _scope_end_op(self) -> None:
        frame = self.scopes.pop()
        if self.admission:  # the Orchestrator thread is still blocked on an earlier step
            self.admission.append(frame)
        else:
            self._release_scope(frame)

    def _release_scope(self, frame: list[Task]) -> None:
        if self.trace.enabled:
            self.trace.record((max(self.env.now, self.orch_cursor), EventKind.SCOPE_END, self.scope,
                               f"{len(frame)} slots", ""))
        for t in frame:  # ``_release_ref``, inlined: once per task
            t.fanout_released += 1
            if t.fanout_released > t.fanout_total and (t.state is COMPLETED or t.state is FAILED):
                self._consume(t)

    def _orch_step(self, task: Task, cost: float) -> None:
        if self.admission or not self.rings[task.ring].fits(task.heap_bytes):
            self.admission.append((task, cost))
            if self.blocked_since is None:
                self._start_backpressure(task)
            return
        if self.points is None or not self._ring_full(task, cost):
            self._admit(task, cost)

    def _ring_full(self, task: Task, cost: float, queued: bool = False) -> bool:
        """Fault point ``ring_full``: the allocation finds its ring full and blocks for ``delay_us``.

        Every allocation passes the point once, when the Orchestrator thread gets to it (a step that
        waited behind another passes it when it reaches the head with room in its ring). A firing
        blocks the thread exactly as real back-pressure does (``docs/orchestrator.md`` §5,
        "Back-pressure rationale"): later steps queue behind it, and a wait longer than the
        back-pressure timeout fails the run with RESOURCE_EXHAUSTED. True if the point fired.
        """
        assert self.points is not None
        if task is self.ring_waited:
            return False
        p = self.points.fires("ring_full", self.scope, task.name)
        if p is None:
            return False
        if not queued:
            self.admission.append((task, cost))
        self.ring_hold = task
        # Scheduled before the back-pressure timer: a wait equal to the timeout still ends in time.
        ev = Timeout(self.env, p.delay_us, task)
        ev.callbacks.append(self._ring_hold_over)
        self._start_backpressure(task)
        return True

    def _ring_hold_over(self, ev: Event) -> None:
        task: Task = ev._value
        if self.ring_hold is task:
            self.ring_hold = None
            self.ring_waited = task
            if self._blocked_head() is task:
                self._drain_admission()

    def _admit(self, task: Task, cost: float) -> None:
        now = self.env._now
        cur = self.orch_cursor
        t = (cur if cur > now else now) + cost
        self.orch_cursor = t
        task.submit_t = t
        task.admitted = True
        ring = self.rings[task.ring]  # ``HeapRing.push``, inlined: once per submit
        ring.top += task.heap_bytes
        ring.fifo.append(task)
        trace = self.trace
        if task.state is FAILED:  # poisoned or cancelled before the Orchestrator could publish it
            trace.add(t, EventKind.CANCEL, self.scope, task.name, task.error or "")
            self._retire_unstarted(task)
            return
        if task.kind is _ALLOC:
            task.state = COMPLETED
            task.start = task.end = t
            trace.add(t, EventKind.ALLOC, self.scope, task.name, f"{task.heap_bytes}B ring{task.ring}")
            # Consumers wired while this slab waited for its ring counted it as a live producer.
            self._release_consumers(task, t)
            self._maybe_consume(task)
            return
        if trace.enabled:
            trace.record((t, _SUBMIT, self.scope, task.name, task.callable.name))
        if task.poisoned_by is not None:
            self._poison_from(task.poisoned_by, [task])
            return
        if task.fanin_released >= task.fanin_count:
            task.state = READY
            task.ready_t = t
            if trace.enabled:
                trace.record((t, _READY, self.scope, task._name or task.name, ""))
            self._route(task)
        else:
            task.state = PENDING

    def _drain_admission(self) -> None:
        adm = self.admission
        while adm:
            head = adm[0]
            if isinstance(head, list):  # a deferred scope_end
                adm.popleft()
                self._release_scope(head)
                continue
            task, cost = head
            if task is self.ring_hold or not self.rings[task.ring].fits(task.heap_bytes):
                return
            if self.points is not None and self._ring_full(task, cost, True):
                return
            adm.popleft()
            self.blocked_since = None
            self._admit(task, cost)
        self.blocked_since = None

    def _start_backpressure(self, task: Task) -> None:
        self.blocked_since = self.env.now
        self.trace.add(self.env.now, EventKind.BLOCKED, self.scope, task.name,
                       f"ring{task.ring} full ({self.rings[task.ring].used}/{self.ring_capacity}B)")
        ev = Timeout(self.env, self.backpressure_timeout, (task, self.run))
        ev.callbacks.append(self._backpressure_expired)

    def _blocked_head(self) -> Task | None:
        head = self.admission[0] if self.admission else None
        return head[0] if isinstance(head, tuple) else None

    def _backpressure_expired(self, ev: Event) -> None:
        task, run = ev._value
        if self._blocked_head() is not task:
            # That allocation got its space; if a later one is blocked now, time it afresh.
            head = self._blocked_head()
            if head is not None and self.blocked_since is None:
                self._start_backpressure(head)
            return
        err = ResourceExhausted(
            f"HeapRing exhausted: {task.name} waited {self.backpressure_timeout:.0f}us for "
            f"{task.heap_bytes} bytes in ring{task.ring}; increase heap_ring_size on the Worker")
        if run.error is None:
            run.error = err
        self.trace.add(self.env.now, EventKind.FAIL, self.scope, task.name, str(err))
        pending = list(self.admission)
        self.admission.clear()
        self.blocked_since = None
        why = "cancelled: the run's submission failed"
        for item in pending:
            if isinstance(item, list):
                self._release_scope(item)
                continue
            t = item[0]
            self.rings[t.ring].push(t)
            t.admitted = True
            if t.state is not FAILED:
                self._fail_unstarted(t, why, ErrorClass.RESOURCE_EXHAUSTED)
                self.trace.add(self.env.now, EventKind.CANCEL, self.scope, t.name, why)
            self._retire_unstarted(t)
        self._cancel_unstarted(run, why)

    # ------------------------------------------------------------------ scheduler: routing

    def _route(self, task: Task) -> None:
        """``enqueue_ready``: the one READY router (``docs/scheduler.md`` §1)."""
        if task.kind is _NL:
            if task.group:
                self.group_fifo.append(task)
                if self.group_fifo[0] is task:
                    self._dispatch_groups()
            else:
                w = task.targets[0]
                fifo = self.single_fifos[w]
                lane = self.nl_lanes[w]
                if lane.busy or w in self.reserved:
                    fifo.append(task)
                elif fifo:
                    fifo.append(task)
                    self._dispatch_single(w)
                else:  # an idle worker with nothing queued takes the task straight away
                    self._launch(task, lane, 0)
        else:
            self.sub_fifo.append(task)
            self._dispatch_subs()

    def _dispatch_single(self, w: int) -> None:
        fifo = self.single_fifos[w]
        while fifo:
            task = fifo.popleft()
            if task.state is READY:  # a cancelled slot loses its claim
                self._launch(task, self.nl_lanes[w], 0)
                return

    def _dispatch_groups(self) -> None:
        lanes = self.nl_lanes
        old = self.reserved
        fifo = self.group_fifo
        while fifo:
            g = fifo[0]
            if g.state is not READY:
                fifo.popleft()
                continue
            if any(lanes[w].busy for w in g.targets):
                self.reserved = frozenset(g.targets)
                break
            fifo.popleft()
            for i, w in enumerate(g.targets):
                self._launch(g, lanes[w], i)
        else:
            self.reserved = frozenset()
        for w in sorted(old - self.reserved):
            if not lanes[w].busy and self.single_fifos[w]:
                self._dispatch_single(w)

    def _dispatch_subs(self) -> None:
        """Place READY SUB work on idle SUB workers (``docs/scheduler.md`` §4 "SUB dispatch").

        A task that cannot get enough idle SUB workers (a group) goes back to the queue and ends that
        drain pass, but the Scheduler passes again at once while any lane is busy (§1), and one is
        whenever a group waits: so the work behind a waiting group is placed now, in FIFO order, and
        the group waits until enough SUB workers are idle together.
        """
        fifo = self.sub_fifo
        idle = self.idle_subs
        for _ in range(len(fifo)):
            if not idle:
                return
            task = fifo.popleft()
            if task.state is not READY:  # a cancelled slot loses its claim
                continue
            n = len(task.members)
            if len(idle) < n:
                fifo.append(task)
                continue
            for i in range(n):
                self._launch(task, self.sub_lanes[heapq.heappop(idle)], i)

    def _launch(self, task: Task, lane: Lane, member: int) -> None:
        now = self.env._now
        cur = self.sched_cursor
        c = self.c_dispatch
        s = (cur if cur > now else now) + c
        self.sched_cursor = s
        # A task stamped READY in the future (the Orchestrator thread publishes it later) is
        # dispatched one dispatch cost after that stamp.
        ready = task.ready_t + c
        t = s if s > ready else ready
        if task.state is READY:
            task.state = RUNNING
        if self.trace.enabled:
            self.trace.record((t, _DISPATCH, self.scope, task._name or task.name, lane.scope))
        lane.busy = True
        task.workers += lane.workers_entry  # no new tuple for a task's first worker
        lane.launch(task, member, t)

    # ------------------------------------------------------------------ scheduler: completion

    def member_done(self, task: Task, lane: Lane, error: str | None, error_class: str | None) -> None:
        """A lane finished one member; the group aggregates (``docs/scheduler.md`` §6)."""
        if error is not None and task.error is None:
            task.error = error
            task.error_class = error_class
        task.members_left -= 1
        if task.members_left == 0:
            self._complete(task)
        # The lane publishes its completion before it reads as idle (``docs/scheduler.md`` §1),
        # so work the completion released for this lane queues first and is dispatched here.
        lane.busy = False
        if lane.is_sub:
            heapq.heappush(self.idle_subs, lane.index)
            if self.sub_fifo:
                self._dispatch_subs()
        else:
            w = lane.index
            if self.group_fifo and w in self.reserved:
                self._dispatch_groups()
                return
            if self.single_fifos[w] and w not in self.reserved:
                self._dispatch_single(w)

    def _complete(self, task: Task) -> None:
        now = self.env._now
        cur = self.sched_cursor
        cons = task.consumers
        c = (cur if cur > now else now) + self.c_complete + self.c_release * len(cons)
        self.sched_cursor = c
        trace = self.trace
        if task.error is None:
            task.state = COMPLETED
            if trace.enabled:
                trace.record((now, _COMPLETE, self.scope, task._name or task.name, ""))
            self._release_consumers(task, c)
        else:
            task.state = FAILED
            task.run.failed.append(task)
            trace.add(now, EventKind.FAIL, self.scope, task.name, task.error)
            self._poison_from(task, list(cons))
        # Each producer's reference from this consumer, then the task's own (§8): ``_release_ref``,
        # inlined as this runs once per edge.
        for p in task.producers:
            p.fanout_released += 1
            if p.fanout_released > p.fanout_total and (p.state is COMPLETED or p.state is FAILED):
                self._consume(p)
        task.fanout_released += 1
        if task.fanout_released > task.fanout_total:
            self._consume(task)

    def _release_consumers(self, task: Task, t: float) -> None:
        """A producer completed: each consumer counts one more released fanin (§5)."""
        trace = self.trace
        for k in task.consumers:
            k.fanin_released += 1
            if k.state is PENDING and k.fanin_released >= k.fanin_count:
                k.state = READY
                k.ready_t = t
                if trace.enabled:
                    trace.record((t, _READY, self.scope, k._name or k.name, ""))
                self._route(k)

    def _retire_unstarted(self, task: Task) -> None:
        """Make the releases a task that never ran owes: one per producer, and its own."""
        if task.kind is TaskKind.ALLOC:  # its own release was stood in at alloc time
            self._maybe_consume(task)
            return
        for p in task.producers:
            self._release_ref(p)
        self._release_ref(task)

    def _poison_from(self, source: Task, targets: list[Task]) -> None:
        """Fail every not-yet-running consumer downstream of ``source`` (``poison_task``)."""
        stack = [(source, k) for k in reversed(targets)]
        while stack:
            cause, k = stack.pop()
            if k.state not in (BUILDING, PENDING, READY):
                continue
            admitted = k.admitted
            self._fail_unstarted(k, f"poisoned by failed producer {cause.name}", None)
            k.poisoned_by = cause
            self.trace.add(self.env.now, EventKind.POISON, self.scope, k.name, f"producer {cause.name}")
            stack.extend((k, c) for c in reversed(k.consumers))
            if admitted:  # one still waiting for its ring retires when it is admitted
                self._retire_unstarted(k)

    def _fail_unstarted(self, task: Task, message: str, error_class: ErrorClass | None) -> None:
        task.state = FAILED
        task.not_run = True
        task.error = message
        task.error_class = error_class.value if error_class else None

    def _cancel_unstarted(self, run: RunState, why: str) -> None:
        """``cancel_unstarted_run``: unstarted slots of a failed submission never run."""
        for t in run.tasks:
            if t is not None and t.state in (BUILDING, PENDING, READY):
                self._fail_unstarted(t, why, None)
                if t.admitted:  # one still waiting for its ring retires when it is admitted
                    self.trace.add(self.env.now, EventKind.CANCEL, self.scope, t.name, why)
                    self._retire_unstarted(t)

    # ------------------------------------------------------------------ retirement

    def _release_ref(self, task: Task) -> None:
        """One fanout reference released; at the threshold the slot is consumed (§8)."""
        task.fanout_released += 1
        self._maybe_consume(task)

    def _maybe_consume(self, task: Task) -> None:
        # ``fanout_total + 1``: the references of consumers and scopes, plus the slot's own.
        if task.fanout_released > task.fanout_total and (task.state is COMPLETED or task.state is FAILED):
            self._consume(task)

    def _consume(self, task: Task) -> None:
        if not task.admitted:  # still waiting for its ring; it retires once admitted
            return
        # The task's record row is final: past its first ``COMPACT_AFTER`` tasks, the log writes it
        # now and lets the slot go (sim.tasklog). A task an earlier record took (still live then) is
        # not written again; nor is an alloc slot.
        log = self.sim.log
        if log.compact and task.row >= log.base:
            log.retire(task)
            task.run.tasks[task.seq - 1] = None  # the run's list no longer holds the slot
        task.state = CONSUMED
        out_keys = task.out_keys
        # The slot returns to the pool: its arguments are no longer reachable from it.
        task.members = task.consumers = task.out_keys = ()  # type: ignore[assignment]
        tm = self.tensormap
        if task.run is self.run:
            for key in out_keys:
                if tm.get(key) is task:  # owner-checked erase keeps a later writer's entry
                    del tm[key]
        if self.trace.enabled:
            now = self.env._now
            t = now if now > task.submit_t else task.submit_t
            self.trace.record((t, _CONSUMED, self.scope, task._name or task.name, ""))
        ring = self.rings[task.ring]
        # Only a slot at the ring's head can let the tail advance: every earlier consume reclaimed.
        if ring.fifo[0] is task and ring.reclaim() and self.admission:
            self._drain_admission()
        run = task.run
        run.active -= 1
        if run.active == 0:
            self._check_run_done(run)


def _misuse(message: str) -> SimError:
    from sim.errors import InvalidState

    return InvalidState(message)
