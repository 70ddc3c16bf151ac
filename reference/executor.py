"""The reference backend's functional executor: a scenario's DAG run in program order, no time.

This is the numerical oracle that conformance judges the simulator and the real runtime
against. A case drives it through the same runtime-shaped API it uses on every backend
(``Worker``, ``Orchestrator``, ``TaskArgs``, ...); what differs is the engine behind the
submit calls. Where the simulator queues a task and lets virtual time dispatch it, the
executor runs it at once, inside the submit:

- **Submit facade** (``docs/orchestrator.md`` §1 "Python Facade and C++ Internal API", §3,
  §4, §8b): the simulator's own :class:`sim.orchestrator.Orchestrator` checks every call,
  so the executor rejects exactly the input the simulator rejects, with the same typed
  errors, and leaves nothing behind when it does.
- **Dependencies** (``docs/orchestrator.md`` §7 "TensorMap", "Semantics"): tags walk a
  per-run TensorMap keyed as the simulator keys it. INPUT/INOUT look up the last writer,
  OUTPUT/INOUT/OUTPUT_EXISTING become the new writer, NO_DEP does neither. Program order
  is a topological order (a task can only depend on earlier submits), so running each task
  when it is submitted respects every edge; the TensorMap only decides poisoning and the
  producers a record shows.
- **Failure and poison** (``docs/scheduler.md`` §5 "Dependency release and PENDING
  updates", §6 "Completion and group aggregation"): a chip kernel or SUB callable that
  raises fails its task (TASK_FAILURE); the first failing member of a group decides the
  group's error. A task with a FAILED or NOT_RUN producer never runs (NOT_RUN). The run
  raises :class:`~sim.errors.TaskFailure` naming the first failed task once the
  orchestration function has returned; what the orchestration function raises is re-raised
  as it is.
- **Recursive composition** (``docs/hierarchical-level-runtime.md`` §4 "Recursive
  Composition"): at L4 and above a NEXT_LEVEL task runs its registered orchestration
  function on the child Worker as a nested run, with the task's tensors as numpy views.

Chip tasks run a kernel's plain-numpy ``golden`` by default; ``Worker(..., kernels="fast")``
runs its ``run`` implementation instead. Task ids, scope names, outcomes and producers are
the simulator's (``{scope}:r{run}:t{seq}``, scopes ``l4``, ``l4.w0``, ``l3.chip0``, ...), so
records compare task by task. ``start``/``end`` are step indices of one counter shared by
the whole tree: a leaf task takes one step (start == end), a NEXT_LEVEL task at L4+ spans
the steps of its nested run, so every dependency edge has ``end(producer) <= start(consumer)``.

Limits, by construction: nothing is concurrent, so SUB tasks always land on the lowest
numbered SUB workers, a worker's nested runs are numbered in submit order (the simulator
numbers them in the order its per-worker FIFO releases them), heap rings give no
back-pressure (only a request larger than a whole ring is refused), and when the
orchestration function raises, the tasks it had already submitted have already run.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sim.cost import Profile, load_profile, profile_for_platform
from sim.errors import ErrorClass, InvalidArgument, InvalidState, NotSupported
from sim.node import DEFAULT_HEAP_RING_SIZE, MAX_SCOPE_DEPTH, Node
from sim.orchestrator import Orchestrator as _Facade
from sim.record import Outcome, RunRecord, TaskRecord
from sim.task import TaskKind
from sim.task_args import TaskArgsView
from sim.types import INSERT_TAGS, LOOKUP_TAGS
from sim.worker import Worker as _SimWorker
from sim.worker import _Lifecycle, raise_for_run

KERNEL_MODES = ("golden", "fast")
_TASK_FAILURE = ErrorClass.TASK_FAILURE.value


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


class _Tree:
    """What one initialised tree shares: kernel mode, profile, step counter and task log.

    The submit facade reads ``functional`` and ``profile`` through an engine's ``sim``
    attribute (it prices each task as it checks it; the executor ignores that price).
    """

    __slots__ = ("functional", "kernels", "profile", "step", "tasks")

    def __init__(self, kernels: str, profile: Profile) -> None:
        self.functional = True
        self.kernels = kernels
        self.profile = profile
        self.step = -1
        self.tasks: list[_Task] = []

    def tick(self) -> int:
        self.step += 1
        return self.step


class _Task:
    """One submitted DAG node and what a record shows of it."""

    __slots__ = ("callable_name", "end", "error_class", "group", "kind", "level", "message", "name", "node",
                 "outcome", "producers", "start", "workers")

    def __init__(self, name: str, engine: _Engine, callable_name: str, kind: TaskKind, group: bool) -> None:
        self.name = name
        self.node = engine.scope
        self.level = engine.level
        self.callable_name = callable_name
        self.kind = kind
        self.group = group
        self.outcome = Outcome.COMPLETED
        self.error_class: str | None = None
        self.message = ""
        self.start: int | None = None
        self.end: int | None = None
        self.workers: list[str] = []
        self.producers: tuple[str, ...] = ()

    def fail(self, message: str, error_class: str | None, outcome: Outcome = Outcome.FAILED) -> None:
        if self.outcome is Outcome.COMPLETED:  # the first failure decides (a group's first member)
            self.outcome = outcome
            self.message = message
            self.error_class = error_class

    def record(self) -> TaskRecord:
        kind = ("group" if self.group else "single") + ("/sub" if self.kind is TaskKind.SUB else "/next_level")
        return TaskRecord(self.name, self.node, self.level, kind, self.callable_name, self.outcome,
                          self.error_class, self.message, self.start, self.end, tuple(self.workers),
                          self.producers)


class _Run:
    """One run of an orchestration function on one engine (``docs/orchestrator.md`` §1)."""

    __slots__ = ("error", "failed", "id", "members", "seq")

    def __init__(self, run_id: int) -> None:
        self.id = run_id
        self.seq = 0
        self.error: BaseException | None = None
        self.failed: list[_Task] = []
        # Tensors named by the run stay alive until it ends, as the runtime's task slots keep them:
        # a freed array's address could otherwise come back as a new tensor with a stale writer.
        self.members: list[list] = []


# ---------------------------------------------------------------------------- targets


class _ChipTarget:
    """An L2 chip: runs the task's reference kernel on the member's numpy arrays."""

    __slots__ = ("scope",)

    def __init__(self, scope: str) -> None:
        self.scope = scope

    def execute(self, engine: _Engine, task: _Task, reg: Any, member: tuple, config: Any) -> None:
        kernel = reg.target
        compute = kernel.golden if engine.sim.kernels == "golden" else kernel.run
        try:
            compute(member[2])
        except Exception as exc:  # a kernel fault fails this task, not the executor
            task.fail(f"kernel {reg.name} raised {_describe(exc)}", _TASK_FAILURE)


class _SubTarget:
    """A SUB worker: calls the Python callable as ``fn(args)`` with numpy views, no tags."""

    __slots__ = ("scope",)

    def __init__(self, scope: str) -> None:
        self.scope = scope

    def execute(self, engine: _Engine, task: _Task, reg: Any, member: tuple, config: Any) -> None:
        try:
            reg.target(TaskArgsView([r.array for r in member[0]], member[1]))
        except Exception as exc:  # the SUB child reports failure; the run goes on
            task.fail(f"sub callable {reg.name} raised {_describe(exc)}", _TASK_FAILURE)


class _ChildTarget:
    """A lower-level Worker: runs the registered orchestration function as a nested run."""

    __slots__ = ("child", "scope")

    def __init__(self, scope: str, child: Worker) -> None:
        self.scope = scope
        self.child = child

    def execute(self, engine: _Engine, task: _Task, reg: Any, member: tuple, config: Any) -> None:
        child = self.child._node
        assert child is not None
        run = child.begin_run(reg.target, Orchestrator(self.child),
                              TaskArgsView([r.array for r in member[0]], member[1]), config)
        if run.error is not None:
            cls = getattr(run.error, "error_class", None)
            task.fail(f"L{child.level} run r{run.id} failed: {_describe(run.error)}",
                      cls.value if isinstance(cls, ErrorClass) else _TASK_FAILURE)
        elif run.failed:
            first = run.failed[0]
            task.fail(f"L{child.level} run r{run.id} failed: task {first.name}: {first.message}", _TASK_FAILURE)


# ---------------------------------------------------------------------------- engine


class _Engine:
    """Orchestrator state of one Worker, executing each task inside its submit.

    It offers the engine surface the shared submit facade drives (``submit``, ``alloc``,
    ``check_heap_request``, ``scope_begin``/``scope_end``, the NEXT_LEVEL and SUB target
    lists), with no queues, no Scheduler and no time.
    """

    # A request larger than a whole heap ring is refused exactly as the simulator refuses it.
    check_heap_request = Node.check_heap_request
    has_remote = False  # the executor models no remote L3 workers

    def __init__(self, tree: _Tree, scope: str, level: int, heap_ring_size: int | None) -> None:
        self.sim = tree
        self.scope = scope
        self.level = level
        self.ring_capacity = heap_ring_size or DEFAULT_HEAP_RING_SIZE
        self.kernel_memo: dict[Any, float] = {}
        self.nl_lanes: list[_ChipTarget | _ChildTarget] = []
        self.sub_lanes: list[_SubTarget] = []
        self.tensormap: dict[Any, _Task] = {}
        self.depth = 0
        self.run: _Run | None = None
        self.run_count = 0
        self.orch: Orchestrator | None = None

    @property
    def nl_targets(self) -> tuple[tuple[int], ...]:
        """``Node.nl_targets``: a single's placement per NEXT_LEVEL worker id (the list grows at init)."""
        return tuple((w,) for w in range(len(self.nl_lanes)))

    def begin_run(self, orch_fn: Callable[..., Any], orch: Orchestrator, args: Any, config: Any) -> _Run:
        """Run the orchestration function to its end; every task it submits has run on return."""
        self.run_count += 1
        run = _Run(self.run_count)
        self.run, self.orch, self.tensormap, self.depth = run, orch, {}, 0
        orch._bind(self, run)  # type: ignore[arg-type]
        try:
            orch_fn(orch, args, config)
        except BaseException as exc:  # the run owns the error; whoever waits on the run re-raises it
            run.error = exc
        finally:
            orch._unbind()
            if self.depth and run.error is None:
                run.error = InvalidState(f"orchestration function returned with {self.depth} scope(s) open")
            self.run, self.orch = None, None
        return run

    def submit(self, kind: TaskKind, reg: Any, members: list, targets: tuple[int, ...], group: bool,
               config: Any, durations: list[float], cost_tensors: int) -> _Task:
        """Tag walk (``docs/orchestrator.md`` §2 step 3), then run the task now, or poison it."""
        run = self.run
        assert run is not None and self.orch is not None
        run.seq += 1
        run.members.append(members)
        task = _Task(f"{self.scope}:r{run.id}:t{run.seq}", self, reg.name, kind, group)
        producers: list[_Task] = []
        tm = self.tensormap
        for refs, _scalars, _values, tags in members:
            for ref, tag in zip(refs, tags, strict=True):
                if tag in LOOKUP_TAGS:
                    p = tm.get(ref.key)
                    if p is not None and p not in producers:
                        producers.append(p)
                if tag in INSERT_TAGS:
                    tm[ref.key] = task
        task.producers = tuple(p.name for p in producers)
        tree = self.sim
        tree.tasks.append(task)
        cause = next((p for p in producers if p.outcome is not Outcome.COMPLETED), None)
        if cause is not None:
            task.fail(f"poisoned by failed producer {cause.name}", None, Outcome.NOT_RUN)
            return task
        lanes = self.sub_lanes[:len(members)] if kind is TaskKind.SUB else [self.nl_lanes[w] for w in targets]
        task.start = tree.tick()
        orch = self.orch
        orch._unbind()  # as in the runtime, a running task cannot submit through its parent's facade
        try:
            for lane, member in zip(lanes, members, strict=True):
                task.workers.append(lane.scope)
                lane.execute(self, task, reg, member, config)
        finally:
            orch._bind(self, run)  # type: ignore[arg-type]
        task.end = tree.step
        if task.outcome is Outcome.FAILED:
            run.failed.append(task)
        return task

    def alloc(self, key: Any, nbytes: int) -> None:
        """``Orchestrator.alloc`` (§8b): takes a sequence number; the fresh buffer has no writer yet."""
        assert self.run is not None
        self.run.seq += 1
        self.tensormap.pop(key, None)

    def scope_begin(self) -> None:
        if self.depth >= MAX_SCOPE_DEPTH:
            raise InvalidState(f"scope nesting deeper than {MAX_SCOPE_DEPTH}")
        self.depth += 1

    def scope_end(self) -> None:
        if not self.depth:
            raise InvalidState("scope_end() without a matching scope_begin()")
        self.depth -= 1


class Orchestrator(_Facade):
    """The submit API an orchestration function receives (``docs/orchestrator.md`` §1–§4, §6, §8b).

    The simulator's facade with all of its checks; bound to an executor engine, each accepted
    submit runs its task before it returns.
    """

    __slots__ = ()


# ---------------------------------------------------------------------------- Worker


class Worker(_SimWorker):
    """One level of the hierarchy (``level`` 2 to 6), executed functionally in program order.

    Same constructor keys, lifecycle and errors as :class:`sim.Worker`, except that there is
    no ``sim=``; ``kernels`` chooses the chip implementation (``"golden"``: plain numpy, the
    default; ``"fast"``: the kernel's compiled ``run``). It is read from the root Worker; a
    child may leave it unset or repeat the root's choice.
    """

    def __init__(self, level: int, *, kernels: str | None = None, **config: Any) -> None:
        if "sim" in config:
            raise InvalidArgument("Worker: sim= configures the simulator; the reference executor has no "
                                  "simulation settings")
        super().__init__(level, **config)
        if kernels is not None and kernels not in KERNEL_MODES:
            raise InvalidArgument(f"Worker: kernels must be one of {', '.join(KERNEL_MODES)}, got {kernels!r}")
        self._kernels = kernels
        self._tree: _Tree | None = None

    @property
    def simulation(self) -> Any:
        raise NotSupported("the reference executor runs without a simulation (no time)")

    @property
    def kernels(self) -> str:
        """The chip implementation this Worker's tree runs (``golden`` or ``fast``)."""
        return self._kernels or "golden"

    def add_worker(self, worker: Any) -> int:
        """Attach an un-initialised lower-level reference Worker; return its NEXT_LEVEL worker id."""
        if isinstance(worker, _SimWorker) and not isinstance(worker, Worker):
            raise InvalidArgument("add_worker: a reference Worker holds reference Workers, got a simulator Worker")
        return super().add_worker(worker)

    def init(self) -> None:
        """Bring the whole tree up: build every engine and target, then mark it READY."""
        self._check_can_init()
        try:
            tree = _Tree(self.kernels, load_profile(profile_for_platform(self._config["platform"])))
            self._build(tree, f"l{self._level}")
            self._validate_targets()
        except BaseException:
            self._set_tree_state(_Lifecycle.FAILED)
            raise
        self._set_tree_state(_Lifecycle.READY)

    def _build(self, tree: _Tree, scope: str) -> None:
        if self._kernels not in (None, tree.kernels):
            raise InvalidArgument(f"Worker {scope}: kernels={self._kernels!r} but its root runs "
                                  f"kernels={tree.kernels!r}; set kernels= on the root Worker only")
        self._tree = tree
        self._scope = scope
        engine = _Engine(tree, scope, self._level, self._config.get("heap_ring_size"))
        if self._level == 2:
            engine.nl_lanes.append(_ChipTarget(f"{scope}.chip"))
        else:
            engine.nl_lanes.extend(_ChipTarget(f"{scope}.chip{i}") for i in range(len(self._config.get(
                "device_ids", []))))
            for child in self._children:
                i = len(engine.nl_lanes)
                if child._level == 2:
                    child._tree, child._scope = tree, f"{scope}.chip{i}"
                    engine.nl_lanes.append(_ChipTarget(child._scope))
                else:
                    child._build(tree, f"{scope}.w{i}")
                    engine.nl_lanes.append(_ChildTarget(f"{scope}.w{i}", child))
            engine.sub_lanes.extend(_SubTarget(f"{scope}.sub{j}") for j in range(self._config.get(
                "num_sub_workers", 0)))
        self._node = engine  # type: ignore[assignment]

    def _elaborate(self, sim: Any, scope: str) -> Node:
        raise InvalidState("a reference Worker cannot be part of a simulator Worker's tree")

    def _validate_targets(self) -> None:
        """Reject a registration no child of the frozen topology could resolve (upstream init check)."""
        for w in self._walk():
            engine = w._node
            if w._level == 2 or engine is None:
                continue
            can_run = {
                "LOCAL_PYTHON": bool(engine.sub_lanes) or any(isinstance(t, _ChildTarget) for t in engine.nl_lanes),
                "LOCAL_CHIP": w._chip_below(),  # the recursive ChipCallable cascade reaches descendants' chips
            }
            for reg in w._registry.live.values():
                ns = reg.descriptor.namespace.name
                if can_run.get(ns, True):
                    continue
                if ns == "LOCAL_PYTHON":
                    raise InvalidState(f"init(): registered Python callable {reg.name!r} ({reg.descriptor.hashid}) on "
                                       f"{w._scope} has no eligible target (needs a SUB or next-level child)")
                raise InvalidState(f"init(): registered chip kernel {reg.name!r} on {w._scope} has no eligible "
                                   f"target (needs a chip child: device_ids)")

    def _chip_below(self) -> bool:
        """A chip child here, or one further down a child Worker (docs/callable-identity-registration.md
        "Target Namespace": ``LOCAL_CHIP`` reaches descendant chip registries through the cascade)."""
        if self._node is None:
            return False
        if any(isinstance(t, _ChipTarget) for t in self._node.nl_lanes):
            return True
        return any(c._level >= 3 and c._chip_below() for c in self._children)

    def _install_local(self, desc: Any, name: str) -> None:
        """Nothing to install: the executor runs every callable in-process, so an install cannot fail."""

    def _uninstall_local(self, reg: Any, final: bool) -> None:
        """Nothing to release: no child holds a copy of the registration."""

    def _run_root(self, orch_fn: Callable[..., Any], args: Any, config: Any) -> None:
        engine = self._node
        assert isinstance(engine, _Engine)
        run = engine.begin_run(orch_fn, Orchestrator(self), args, config)
        first = run.failed[0] if run.failed else None
        raise_for_run(engine.scope, run.id, run.error,
                      (first.name, first.callable_name, first.message) if first else None)

    def take_record(self, **metadata: Any) -> RunRecord:
        """The RunRecord of everything executed since the previous call."""
        tree = self._tree
        if tree is None:
            raise InvalidState("the Worker has no record until init()")
        meta = {"backend": "reference", "kernels": tree.kernels, "platform": self._config["platform"],
                "steps": tree.step + 1}
        meta.update(metadata)
        rec = RunRecord(backend="reference", metadata=meta)
        for task in tree.tasks:
            rec.tasks[task.name] = task.record()
            if task.error_class and task.outcome is Outcome.FAILED:
                rec.errors.append(task.error_class)
        tree.tasks.clear()
        rec.calls.extend(self._drain_calls())
        return rec
