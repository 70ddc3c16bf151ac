"""Running a YAML scenario through a backend's RuntimeAPI, and judging it.

The scenario (:mod:`conformance.scenario`) is replayed exactly as a Python case would drive the
runtime: build the topology (``rt.Worker``, ``add_worker``, ``add_remote_worker``), register the
callables before ``init()`` (unregistering those the scenario releases then), ``init()`` (judged when
the scenario expects it to fail, or when it fails unexpectedly), make the registrations and
unregistrations placed after it, run the root program as the orchestration function (a non-root
Worker's program becomes the orchestration function its parent's ``next_level`` submits run),
take the record and declare the expectations on a :class:`~conformance.context.CaseContext`.
Outputs are judged against a golden made by running the same program on the reference executor.
Builtin callables (:func:`builtin_callable`) are host functions made here for every backend.
The verdict comes from the same judge and the same in-process case execution as the catalog's
cases (:func:`conformance.runner.execute_case`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from conformance.backends import NotSupportedByBackend, RuntimeAPI, get_backend
from conformance.catalog import ALL_BACKENDS, Case, Level
from conformance.context import CaseContext
from conformance.judge import Judgment, Verdict
from conformance.scenario import (
    Alloc,
    CallableDef,
    ErrorExpect,
    FailedExpect,
    Program,
    Scenario,
    Scope,
    Submit,
    TensorArg,
    WorkerNode,
    load_scenario,
)


@dataclass
class Built:
    """A scenario's topology brought up on one backend."""

    root: Any
    tensors: dict[str, Any]
    orch: Any = None  # the root program as an orchestration function
    labels: dict[str, str] = field(default_factory=dict)  # submit id -> task id (root program)
    workers: dict[str, Any] = field(default_factory=dict)  # Worker objects by topology name
    handles: dict[str, Any] = field(default_factory=dict)  # callable handles by callable name
    child_ids: dict[str, dict[str, int]] = field(default_factory=dict)
    child_programs: dict[str, Any] = field(default_factory=dict)  # program handles by child Worker name
    deferred: list[tuple[str, str, Any]] = field(default_factory=list)  # (child, parent, fn) registered after init


@dataclass
class ScenarioResult:
    """The verdict of one scenario on one backend, with what the run observed."""

    scenario: Scenario
    file: str
    backend: str
    seed: int
    judgment: Judgment
    outputs: dict[str, np.ndarray] = field(default_factory=dict)
    record: Any = None
    trace_text: str | None = None
    duration_s: float = 0.0

    @property
    def verdict(self) -> Verdict:
        return self.judgment.verdict


# ------------------------------------------------------------------------------------- building


def _init_tensor(rt: RuntimeAPI, t: Any) -> np.ndarray:
    from sim.types import as_numpy_dtype

    if isinstance(t.init, str):
        fill = {"zeros": 0, "ones": 1}.get(t.init, t.init)
        return rt.tensor(t.shape, t.dtype, fill=fill)
    rng = np.random.default_rng(t.init.random)
    return rng.standard_normal(tuple(t.shape)).astype(as_numpy_dtype(t.dtype))


def _sub_from_kernel(kernel: Any) -> Any:
    """A SUB callable that runs ``kernel``'s plain-numpy golden on the host over the task's args."""

    def sub(args: Any) -> None:
        tensors = [args.tensor(i) for i in range(args.tensor_count())]
        scalars = [args.scalar(i) for i in range(args.scalar_count())]
        kernel.golden(kernel.bind(tensors, scalars))

    sub.__name__ = sub.__qualname__ = f"sub_{kernel.name}"
    return sub


class BuiltinFailure(RuntimeError):
    """What the ``fail`` builtin raises (the runtime turns it into its task's failure)."""


#: The longest real sleep of the ``slow`` builtin off the simulator, in seconds.
SLOW_SLEEP_CAP_S = 0.05


def builtin_callable(kind: str, duration_us: float | None, name: str, *, modeled: bool) -> Any:
    """The host SUB callable of builtin ``kind`` (``fail``, ``slow``, ``noop``); it ignores its args.

    ``modeled`` (the simulator): ``duration_us`` is its modeled time (``sim.modeled_duration``) and nothing
    sleeps; elsewhere ``slow`` really sleeps ``duration_us``, at most :data:`SLOW_SLEEP_CAP_S`.
    """
    from sim.cost import modeled_duration

    if kind == "fail":
        def fn(args: Any) -> None:
            raise BuiltinFailure(f"builtin fail callable {name!r} raised, as it always does")
    elif kind == "slow" and not modeled:
        seconds = min((duration_us or 0.0) / 1e6, SLOW_SLEEP_CAP_S)

        def fn(args: Any) -> None:
            import time

            time.sleep(seconds)
    else:
        def fn(args: Any) -> None:
            return None

    fn.__name__ = fn.__qualname__ = f"builtin_{kind}_{name}"
    if modeled and duration_us is not None:
        fn = modeled_duration(duration_us)(fn)
    return fn


def _fault(f: Any, remote_ids: dict[str, int], scopes: dict[str, str] | None = None) -> Any:
    """The backend fault of a scenario fault; ``scopes`` (:func:`_scopes`) maps a FaultPoint's target."""
    from sim.remote import faults as sf

    d = f.model_dump(exclude={"type"})
    if f.type == "FaultPoint" and d.get("target") is not None:
        if scopes is None or d["target"] not in scopes:
            raise ValueError(f"FaultPoint target {d['target']!r} names no worker of the topology")
        d["target"] = scopes[d["target"]]
    if "worker" in d and isinstance(d["worker"], str):
        d["worker"] = remote_ids[d["worker"]]
    if f.type == "ControlFault":
        d["worker_id"] = d.pop("worker")
    if f.type == "LinkDelay" and d.get("end_us") is None:
        d.pop("end_us")
    return getattr(sf, f.type)(**d)


#: How a scenario fault reads in the runtime-shaped fault vocabulary (``rt.fault(kind, ...)``), for backends
#: that inject faults of their own (hw); each entry: kind, and the predicate a fault must meet to have one.
_RT_KINDS: dict[str, tuple[str, Any]] = {
    "LinkCut": ("link_cut", None), "LinkDelay": ("link_delay", None), "SessionCrash": ("session_crash", None),
    "SessionHang": ("session_hang", None), "FrameFault": ("frame_drop", lambda d: d.get("action") == "drop"),
    "ControlFault": ("control_error", lambda d: d.get("outcome") == "error"),
}


def backend_fault(rt: RuntimeAPI, f: Any, remote_ids: dict[str, int], scopes: dict[str, str] | None = None) -> Any:
    """A scenario fault as ``rt``'s own fault object: the sim's records, or ``rt.fault(kind, ...)`` elsewhere
    (:class:`NotSupportedByBackend` for a fault the backend cannot inject)."""
    if rt.name == "sim":
        return _fault(f, remote_ids, scopes)
    from conformance.backends import NotSupportedByBackend

    d = f.model_dump(exclude={"type"})
    kind, ok = _RT_KINDS.get(f.type, (None, None))
    if kind is None or (ok is not None and not ok(d)):
        raise NotSupportedByBackend(f"backend {rt.name} cannot inject {f.type} {d}")
    if isinstance(d.get("worker"), str):
        d["worker"] = remote_ids[d["worker"]]
    if d.get("end_us") is None:
        d.pop("end_us", None)
    return rt.fault(kind, **{k: v for k, v in d.items() if k not in ("action", "outcome", "probability")})


def _remote_ids(node: WorkerNode) -> dict[str, int]:
    """Remote children's worker ids, as the parent's add order numbers them."""
    out: dict[str, int] = {}

    def walk(n: WorkerNode) -> None:
        for i, c in enumerate(n.children):
            if c.remote:
                out[c.name] = i
            walk(c)

    walk(node)
    return out


def _scopes(node: WorkerNode) -> dict[str, str]:
    """Every topology node's scope name in the simulator (``l4``, ``l4.w1``, ``l4.w0.chip2``), by node name.

    A child's NEXT_LEVEL worker id follows its parent's chips and the children added before it; an L2
    child is a chip lane, a remote child the lane its session sits behind.
    """
    out: dict[str, str] = {}

    def walk(n: WorkerNode, scope: str) -> None:
        out.setdefault(n.name, scope)
        base = len(n.device_ids or ())
        for i, c in enumerate(n.children):
            walk(c, f"{scope}.{'chip' if c.level == 2 else 'w'}{base + i}")

    walk(node, f"l{node.level}")
    return out


def build(rt: RuntimeAPI, scn: Scenario) -> Built:
    """Create the Workers, register the callables and programs, ``init()`` the root, then make the
    registrations and unregistrations the scenario places after ``init()``."""
    built = prepare(rt, scn)
    built.root.init()
    after_init(rt, scn, built)
    return built


def prepare(rt: RuntimeAPI, scn: Scenario) -> Built:
    """Everything :func:`build` does before ``init()``: the Workers, the callables registered before it (and
    unregistered before it), and the programs."""
    tensors = {t.name: _init_tensor(rt, t) for t in scn.tensors}
    faults = [backend_fault(rt, f, _remote_ids(scn.topology), _scopes(scn.topology)) for f in scn.faults]
    if faults:
        rt.require("faults")
    programs = scn.programs()
    workers: dict[str, Any] = {}
    child_ids: dict[str, dict[str, int]] = {}
    kernels: dict[str, Any] = {}

    def config(n: WorkerNode) -> dict[str, Any]:
        cfg: dict[str, Any] = {}
        if n.device_ids is not None:
            cfg["device_ids"] = list(n.device_ids)
        if n.num_sub_workers:
            cfg["num_sub_workers"] = n.num_sub_workers
        if n.heap_ring_size is not None:
            cfg["heap_ring_size"] = n.heap_ring_size
        return cfg

    def make(n: WorkerNode, root: bool) -> Any:
        w = rt.Worker(n.level, faults=faults or None, **config(n)) if root else rt.Worker(n.level, **config(n))
        workers[n.name] = w
        ids: dict[str, int] = {}
        for i, c in enumerate(n.children):
            if c.remote:
                rt.require("remote")
                spec = rt.RemoteWorkerSpec(c.endpoint or f"127.0.0.1:{9000 + i}", "a2a3sim",
                                           device_ids=tuple(c.device_ids or (0,)), num_sub_workers=c.num_sub_workers)
                ids[c.name] = w.add_remote_worker(spec)
            else:
                ids[c.name] = w.add_worker(make(c, False))
        child_ids[n.name] = ids
        return w

    root = make(scn.topology, True)
    built = Built(root, tensors, workers=workers, child_ids=child_ids)
    handles = built.handles
    nodes = {name: n for name, (n, _) in scn.workers().items()}
    for c in scn.callables:
        if not c.after_init:
            remote = {k.name for k in nodes[c.worker].children if k.remote}
            handles[c.name] = _register(rt, workers[c.worker], c, child_ids[c.worker], remote, kernels)
    by_name = {c.name: c for c in scn.callables}
    for u in scn.unregister:
        if u.when == "before_init":
            workers[by_name[u.callable].worker].unregister(handles[u.callable])
    # A non-root local Worker's program is the orchestration function its parent registers for it, children
    # first (a parent's program names its children's). A real runtime ships a registered function to the child
    # process as it was when registered, so a program that needs a callable registered after init() (on its
    # Worker or below) is registered after init() too, after those callables.
    child_programs = built.child_programs
    late = {c.worker for c in scn.callables if c.after_init}
    for name, (n, parent) in reversed(list(scn.workers().items())):
        if parent is not None and not n.remote and name in programs:
            fn = _orchestration(rt, scn, programs[name], n, handles, child_programs, child_ids, tensors, None)
            fn.__name__ = fn.__qualname__ = f"program_{name}"
            if name in late:
                late.add(parent.name)
                built.deferred.append((name, parent.name, fn))
            else:
                child_programs[name] = workers[parent.name].register(fn)
    built.orch = _orchestration(rt, scn, programs[scn.topology.name], nodes[scn.topology.name], handles,
                                child_programs, child_ids, tensors, built.labels)
    built.orch.__name__ = built.orch.__qualname__ = f"program_{scn.topology.name}"
    return built


def after_init(rt: RuntimeAPI, scn: Scenario, built: Built) -> None:
    """The registrations (``after_init: true``), then the unregistrations (``when: after_init``), that follow
    ``init()``; the programs look their handles up when they run."""
    nodes = {name: n for name, (n, _) in scn.workers().items()}
    for c in scn.callables:
        if c.after_init:
            remote = {k.name for k in nodes[c.worker].children if k.remote}
            built.handles[c.name] = _register(rt, built.workers[c.worker], c, built.child_ids[c.worker], remote, {})
    for name, parent, fn in built.deferred:  # children first, as prepare() found them
        built.child_programs[name] = built.workers[parent].register(fn)
    by_name = {c.name: c for c in scn.callables}
    for u in scn.unregister:
        if u.when == "after_init":
            built.workers[by_name[u.callable].worker].unregister(built.handles[u.callable])


def _register(rt: RuntimeAPI, w: Any, c: CallableDef, ids: dict[str, int], remote: set[str],
              kernels: dict[str, Any]) -> Any:
    if c.remote is not None:
        on = c.targets or [n for n in ids if n in remote]
        return w.register(rt.RemoteCallable(rt.remote_target(c.remote)), workers=[ids[n] for n in on])
    if c.builtin is not None:
        return w.register(builtin_callable(c.builtin, c.duration_us, c.name, modeled=rt.name == "sim"))
    if c.runs_on == "sub":  # a host Python callable on every backend: the reference kernel's golden
        from reference import get_kernel

        k = get_kernel(c.kernel)
        kernels[c.name] = k
        return w.register(_sub_from_kernel(k))
    k = rt.kernel(c.kernel)
    kernels[c.name] = k
    return w.register(k)


def _orchestration(rt: RuntimeAPI, scn: Scenario, prog: Program, node: WorkerNode, handles: dict[str, Any],
                   child_programs: dict[str, Any], child_ids: dict[str, dict[str, int]], tensors: dict[str, Any],
                   labels: dict[str, str] | None) -> Any:
    """The orchestration function that runs ``prog``'s steps on ``node``."""
    T = rt.TensorArgType
    counter = [0]

    def wid(ref: Any) -> int:
        if node.level == 3:
            return int(ref)
        names = [c.name for c in node.children]
        name = ref if isinstance(ref, str) else names[ref]
        return child_ids[node.name][name]

    def targs(args: list[Any], env: dict[str, Any]) -> Any:
        ta = rt.TaskArgs()
        for a in args:
            if isinstance(a, TensorArg):
                ta.add_tensor(env[a.tensor], getattr(T, a.tag))
            else:
                ta.add_scalar(a.scalar)
        return ta

    def callable_of(st: Submit) -> Any:
        if st.callable is not None:
            return handles[st.callable]
        names = [c.name for c in node.children]
        return child_programs[st.worker if isinstance(st.worker, str) else names[st.worker]]

    def steps(o: Any, items: list[Any], env: dict[str, Any]) -> None:
        for st in items:
            if isinstance(st, Scope):
                o.scope_begin()
                try:
                    steps(o, st.scope, dict(env))  # what the scope allocs ends with it
                finally:
                    o.scope_end()
                continue
            counter[0] += 1  # an alloc takes a task slot too (docs/orchestrator.md §8b)
            if isinstance(st, Alloc):
                if not hasattr(o, "alloc"):
                    raise NotSupportedByBackend(f"backend {rt.name} has no Orchestrator.alloc")
                env[st.alloc] = o.alloc(st.shape, st.dtype).tensor(st.shape, st.dtype)
                continue
            if labels is not None and st.id is not None:
                labels[st.id] = f"l{node.level}:r1:t{counter[0]}"
            if st.kind == "next_level":
                o.submit_next_level(callable_of(st), targs(st.args, env), worker=wid(st.worker))
            elif st.kind == "sub":
                o.submit_sub(handles[st.callable], targs(st.args, env))
            elif st.kind == "sub_group":
                o.submit_sub_group(handles[st.callable], [targs(m.args, env) for m in st.members or []])
            else:
                members = st.members or []
                o.submit_next_level_group(handles[st.callable], [targs(m.args, env) for m in members],
                                          workers=[wid(m.worker) for m in members])

    def orch(o: Any, args: Any, _config: Any) -> None:
        env = dict(tensors)
        for i, p in enumerate(prog.params):
            env[p] = args.tensor(i)
        counter[0] = 0
        steps(o, prog.steps, env)

    return orch


# ------------------------------------------------------------------------------------- running


def golden_outputs(scn: Scenario, seed: int) -> dict[str, np.ndarray]:
    """Every tensor after running the scenario's program on the reference executor (no faults)."""
    rt = get_backend("reference", seed)
    try:
        b = build(rt, scn.model_copy(update={"faults": []}))
        try:
            b.root.run(b.orch)
        except NotSupportedByBackend:
            raise
        except Exception:  # a failing run's tensors are its golden too: what ran wrote them
            pass
        return {k: rt.read(v) for k, v in b.tensors.items()}
    finally:
        rt.close_all()


def _tolerance(scn: Scenario, dtype: Any) -> tuple[float, float]:
    from reference import get_kernel

    tols = [get_kernel(c.kernel).tolerance(dtype) for c in scn.callables if c.kernel is not None]
    return (max(t[0] for t in tols), max(t[1] for t in tols)) if tols else (0.0, 0.0)


def _bring_up(rt: RuntimeAPI, scn: Scenario, b: Built, ctx: CaseContext) -> bool:
    """``init()`` and what follows it, judged: whether the run goes ahead.

    An init error the scenario expects (``expect.init``) passes and ends the case; an unexpected one fails
    it with the error class in the evidence. A passing init is judged only when an error was expected, so
    the evidence of a scenario without ``expect.init`` is what it always was.
    """
    want = scn.expect.init
    if isinstance(want, ErrorExpect):
        classes = want.classes()
        with ctx.expect_error("init", classes[0] if len(classes) == 1 else classes):
            b.root.init()
        b.root.close()  # safe after a failed init
        return False
    try:
        b.root.init()
    except NotSupportedByBackend:
        raise
    except Exception as exc:
        with ctx.expect_ok("init"):
            raise exc
        b.root.close()
        return False
    after_init(rt, scn, b)
    return True


def scenario_case(scn: Scenario, file: str, state: dict[str, Any]) -> Case:
    """The scenario as a :class:`Case` (its function drives ``rt`` and fills ``ctx``)."""

    def fn(rt: RuntimeAPI, ctx: CaseContext) -> None:
        b = prepare(rt, scn)
        if not _bring_up(rt, scn, b, ctx):
            return
        run = scn.expect.run
        err = run.classes() if isinstance(run, ErrorExpect) else None
        rec = ctx.run_expecting(b.root, b.orch, err[0] if err and len(err) == 1 else err)
        for name, arr in b.tensors.items():
            rt.record_output(rec, name, arr)
        state["record"] = rec
        if rt.supports("trace"):
            state["trace"] = b.root.simulation.trace.text()
        tasks: dict[str, Any] = {}
        for key, want in scn.expect.tasks.items():
            tid = b.labels.get(key, key)
            tasks[tid] = ("FAILED", want.failed) if isinstance(want, FailedExpect) else want
        if tasks or scn.expect.exact_tasks:
            ctx.expect_outcomes(rec, tasks, exact=scn.expect.exact_tasks)
        if scn.expect.outputs:
            gold = golden_outputs(scn, rt.seed)
            for name in scn.expect.outputs:
                g = gold[name]
                ctx.expect_output(rec, name, g, tolerance=_tolerance(scn, g.dtype))
        b.root.close()

    fn.__name__ = fn.__qualname__ = f"scenario_{scn.scenario}"
    return Case(id=scn.scenario, title=scn.description or scn.scenario, spec=(file, "scenario"),
                level=Level(scn.level), backends=ALL_BACKENDS, fn=fn, file=file)


def run_scenario(scenario: Scenario | str | Path, backend: str = "sim", seed: int = 0) -> ScenarioResult:
    """Load (if given a path), run and judge a scenario on ``backend``, in this process."""
    from conformance.runner import execute_case

    if isinstance(scenario, Scenario):
        scn, file = scenario, f"<{scenario.scenario}>"
    else:
        scn, file = load_scenario(scenario), str(scenario)
    state: dict[str, Any] = {}
    out = execute_case(scenario_case(scn, file, state), backend, seed)
    j = Judgment(Verdict(out["verdict"]), out["evidence"], out["summary"])
    return ScenarioResult(scn, file, backend, seed, j, out["outputs"], state.get("record"), state.get("trace"),
                          out["duration_s"])


#: The naming rule the campaign shares with the scenario runner.
remote_ids = _remote_ids

__all__ = ["Built", "BuiltinFailure", "ScenarioResult", "after_init", "backend_fault", "build", "builtin_callable",
           "golden_outputs", "prepare", "remote_ids", "run_scenario", "scenario_case"]
