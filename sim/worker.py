"""``Worker``: the public face of every level, as the real package's ``simpler.Worker``.

Models ``docs/user/reference/python-api.md`` ("``Worker``": config keys, lifecycle, memory,
execution) and ``docs/hierarchical-level-runtime.md`` §4 "Recursive Composition":
``Worker(level=2)`` is one chip; ``Worker(level=3, device_ids=[...], num_sub_workers=M)``
holds chips and SUB workers; ``Worker(level>=4)`` holds lower Workers added with
``add_worker`` and SUB workers. Children are attached un-initialised; the root's ``init()``
brings the whole tree up (elaboration, before virtual time starts) and its ``close()``
tears it down. Level rules are checked at ``add_worker`` time (seed 000).

The simulator-only :class:`~sim.simulation.SimConfig` comes in as ``sim=``; everything else
mirrors the real constructor's ``**config``.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
from simpy.events import Event

from sim.collector import collector_paused
from sim.cost import DURATION_ATTR
from sim.errors import (
    InvalidArgument,
    InvalidState,
    InvalidWorkerType,
    SimError,
    SimulationHang,
    TaskFailure,
)
from sim.kernel_spec import ChipKernel
from sim.lanes import ChipLane, SubLane, WorkerLane
from sim.levels import LEVEL_WORDS, accepts, check_child, check_level
from sim.livelock import Livelock, run_until
from sim.node import Node
from sim.orchestrator import Orchestrator
from sim.plugins import remote_plugin, require_remote
from sim.record import CallRecord, RunRecord
from sim.registry import CallableHandle, CallableRegistry, describe_target
from sim.simulation import SimConfig, Simulation
from sim.tensors import Buffer, Tensor
from sim.trace import EventKind
from sim.types import CallConfig, WorkerType, as_numpy_dtype

if TYPE_CHECKING:
    from sim.plugins import RemoteChildren

_KNOWN_CONFIG = {
    "platform": str, "runtime": str, "device_id": int, "device_ids": list, "num_sub_workers": int,
    "enable_sdma": bool, "heap_ring_size": int, "remote_heap_ring_size": int, "remote_session_timeout_s": float,
}
_RUNTIMES = ("tensormap_and_ringbuffer", "host_build_graph")


class _Lifecycle(enum.Enum):
    NEW = "NEW"
    READY = "READY"
    RUNNING = "RUNNING"
    FAILED = "FAILED"
    CLOSED = "CLOSED"


def _check_config(level: int, config: dict[str, Any]) -> dict[str, Any]:
    for key, value in config.items():
        if key not in _KNOWN_CONFIG:
            raise InvalidArgument(f"Worker: unknown config key {key!r}; known keys: {', '.join(sorted(_KNOWN_CONFIG))}")
        want = _KNOWN_CONFIG[key]
        ok = isinstance(value, want) and not (want is int and isinstance(value, bool))
        if want is float:
            ok = isinstance(value, int | float) and not isinstance(value, bool)
        if want is list:
            if not isinstance(value, list | tuple):
                raise InvalidArgument(f"Worker: config {key}={value!r} must be a list of device ids")
            for v in value:
                if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                    raise InvalidArgument(f"Worker: config {key}: a device id must be an int >= 0, got {v!r}")
            ok = True
        if not ok:
            raise InvalidArgument(f"Worker: config {key}={value!r} has the wrong type (expected {want.__name__})")
    out = dict(config)
    out.setdefault("platform", "a2a3sim")
    out.setdefault("runtime", "tensormap_and_ringbuffer")
    if out["runtime"] not in _RUNTIMES:
        raise InvalidArgument(f"Worker: runtime {out['runtime']!r} is not one of {', '.join(_RUNTIMES)}")
    if "device_id" in out and level != 2:
        raise InvalidArgument("Worker: device_id applies to level 2; use device_ids at level 3")
    if "device_ids" in out:
        if level != 3:
            raise InvalidArgument(f"Worker: device_ids applies to level 3 (chips are L3's children), not L{level}")
        if len(set(out["device_ids"])) != len(out["device_ids"]):
            raise InvalidArgument(f"Worker: device_ids has a repeated device: {list(out['device_ids'])}")
    if "num_sub_workers" in out:
        if level < 3:
            raise InvalidArgument("Worker: num_sub_workers applies to level 3 and above")
        if out["num_sub_workers"] < 0:
            raise InvalidArgument(f"Worker: num_sub_workers must be >= 0, got {out['num_sub_workers']}")
    if "heap_ring_size" in out and out["heap_ring_size"] <= 0:
        raise InvalidArgument(f"Worker: heap_ring_size must be > 0, got {out['heap_ring_size']}")
    return out


class Worker:
    """One level of the hierarchy (``level`` 2 to 6) in the simulator."""

    def __init__(self, level: int, *, sim: SimConfig | None = None, **config: Any) -> None:
        self._level = check_level(level)
        if sim is not None and not isinstance(sim, SimConfig):
            raise InvalidArgument(f"Worker: sim must be a SimConfig, got {type(sim).__name__}")
        self._config = _check_config(self._level, config)
        from sim.cost import profile_for_platform

        profile_for_platform(self._config["platform"])  # rejects an unknown platform now
        self._sim_config = sim or SimConfig()
        self._state = _Lifecycle.NEW
        self._parent: Worker | None = None
        self._children: list[Worker] = []
        self._registry = CallableRegistry(self)
        self._sim: Simulation | None = None
        self._node: Node | None = None
        self._scope = ""
        self._calls: list[CallRecord] = []
        self._remote: RemoteChildren | None = None  # the remote layer's, once add_remote_worker is called
        self._scope_install: Any = None  # sim.install.ScopeInstall, built at the first post-init register

    # ------------------------------------------------------------------ introspection

    @property
    def level(self) -> int:
        return self._level

    @property
    def level_word(self) -> str:
        """The topology word upstream uses for this level (``worker_level.py``)."""
        return LEVEL_WORDS[self._level]

    @property
    def simulation(self) -> Simulation:
        """The simulation this Worker's tree runs in (after ``init()``)."""
        if self._sim is None:
            raise InvalidState("the Worker has no simulation until init()")
        return self._sim

    def accepts_worker_type(self, worker_type: WorkerType) -> bool:
        """Whether this level accepts children of ``worker_type`` (seed 000 level rules)."""
        return accepts(self._level, worker_type)

    def __repr__(self) -> str:
        return f"Worker(level={self._level}, state={self._state.value})"

    # ------------------------------------------------------------------ composition

    def add_worker(self, worker: Worker) -> int:
        """Attach an un-initialised lower-level Worker; return its stable NEXT_LEVEL worker id."""
        if not isinstance(worker, Worker):
            raise InvalidArgument(f"add_worker expects a Worker, got {type(worker).__name__}")
        if worker is self:
            raise InvalidArgument("add_worker: a Worker cannot be added to itself")
        if self._state is not _Lifecycle.NEW:
            raise InvalidState(f"add_worker must be called before init() (Worker is {self._state.value})")
        if self._parent is not None:
            raise InvalidState("add_worker: this Worker is already attached to a parent; compose bottom-up")
        if worker._state is not _Lifecycle.NEW:
            raise InvalidState(f"add_worker: the child must be NEW, it is {worker._state.value}")
        if worker._parent is not None:
            raise InvalidState("add_worker: the child is already attached to another parent")
        check_child(self._level, worker._level)
        worker._parent = self
        self._children.append(worker)
        self._log_call("add_worker", f"L{worker._level}", True)
        return len(self._config.get("device_ids", [])) + len(self._children) + self._remote_count() - 1

    def _remote_count(self) -> int:
        return len(self._remote.specs) if self._remote is not None else 0

    def add_remote_worker(self, spec: Any) -> int:
        """Attach a remote L3 (``RemoteWorkerSpec``); return its stable NEXT_LEVEL worker id (see sim.plugins)."""
        if self._state is not _Lifecycle.NEW:
            raise InvalidState(f"add_remote_worker must be called before init() (Worker is {self._state.value})")
        if self._level < 4:
            raise InvalidWorkerType(f"add_remote_worker: remote L3 workers need a level >= 4 parent, this is "
                                    f"L{self._level}")
        remote = self._remote or require_remote("add_remote_worker").children(self)
        wid = remote.add(spec, len(self._children) + self._remote_count(), self._sim_config.mode)
        self._remote = remote
        self._log_call("add_remote_worker", spec.endpoint, True)
        return wid

    # ------------------------------------------------------------------ registration

    def register(self, target: Any, *, workers: list[int] | None = None) -> CallableHandle:
        """Register a reference Kernel (chip callable) or a Python callable; return its handle.

        After ``init()`` the callable is installed on every child of its namespace's scope before
        the handle is published, or on none (``sim.install``); every call is logged OK or ERROR.
        """
        try:
            return self._register(target, workers)
        except SimError as exc:
            name = getattr(target, "name", None) or getattr(target, "target", None) or type(target).__name__
            self._log_call("register", str(name), False, exc)
            raise

    def _register(self, target: Any, workers: list[int] | None) -> CallableHandle:
        if self._state in (_Lifecycle.CLOSED, _Lifecycle.FAILED):
            raise InvalidState(f"register on a {self._state.value} Worker")
        plugin = remote_plugin()
        if workers is not None or (plugin is not None and plugin.is_remote_target(target)):
            if self._remote is None:
                raise InvalidArgument("register: RemoteCallable / workers= need remote workers "
                                      "(add_remote_worker); this Worker has none")
            reg = self._remote.register(target, workers)
            self._log_call("register", reg.name, True)
            return reg.handle
        if self._level == 2 and not isinstance(target, ChipKernel):
            raise InvalidArgument(f"register: an L2 Worker runs chip kernels only, got {type(target).__name__}")
        desc, name = describe_target(target, platform=self._config["platform"], runtime=self._config["runtime"])
        if self._state is _Lifecycle.READY and self._node is not None:
            self._install_local(desc, name)
        reg = self._registry.install(desc, target, name, getattr(target, DURATION_ATTR, None))
        if self._sim is not None:
            self._sim.trace.add(self._sim.now, EventKind.REGISTER, self._scope, reg.name, reg.descriptor.hashid)
        self._log_call("register", reg.name, True)
        return reg.handle

    def unregister(self, handle: CallableHandle) -> None:
        """Release one registration; other handles with the same hashid stay valid."""
        if self._state is _Lifecycle.CLOSED:
            raise InvalidState("unregister on a closed Worker")
        try:
            if self._remote is not None and getattr(handle, "target_namespace", "") == "REMOTE_TASK_DISPATCHER":
                reg = self._remote.unregister(handle)
            else:
                reg = self._registry.unregister(handle)
                if self._state is _Lifecycle.READY and self._node is not None:
                    d = reg.descriptor
                    self._uninstall_local(reg, d.digest not in self._registry.tables[d.namespace])
        except SimError as exc:
            self._log_call("unregister", getattr(handle, "name", "?"), False, exc)
            raise
        if self._sim is not None:
            self._sim.trace.add(self._sim.now, EventKind.UNREGISTER, self._scope, reg.name, reg.descriptor.hashid)
        self._log_call("unregister", reg.name, True)

    def _install_local(self, desc: Any, name: str) -> None:
        """Whole-scope install of a post-``init()`` registration into the local children."""
        from sim.install import scope_install

        scope_install(self).register(desc, name)

    def _uninstall_local(self, reg: Any, final: bool) -> None:
        """Release a registration from the local children (``final``: the last handle of its hashid)."""
        from sim.install import scope_install

        scope_install(self).unregister(reg, final)

    # ------------------------------------------------------------------ lifecycle

    def _check_can_init(self) -> None:
        """Only a NEW root Worker can be brought up; its children come up with it."""
        if self._parent is not None:
            raise InvalidState("init(): this Worker is a child; its root's init() brings it up")
        if self._state is not _Lifecycle.NEW:
            raise InvalidState(f"init() on a {self._state.value} Worker")

    def init(self) -> None:
        """Bring the whole tree up: elaborate every component, then mark it READY."""
        self._check_can_init()
        try:
            sim = Simulation(self._sim_config, self._config["platform"])
            self._elaborate(sim, f"l{self._level}")
            self._validate_targets()
            from sim.install import check_local_faults

            check_local_faults(self)
            plugin = remote_plugin()
            if plugin is not None:
                plugin.start(self, sim)
            if sim.points is not None:
                sim.points.check_targets()  # after the remote sessions have elaborated their scopes
        except BaseException:
            self._close_remote()
            self._set_tree_state(_Lifecycle.FAILED)
            raise
        self._set_tree_state(_Lifecycle.READY)
        sim.trace.add(sim.now, EventKind.INIT, self._scope, f"L{self._level}", sim.profile.name)

    def _elaborate(self, sim: Simulation, scope: str) -> Node:
        self._sim = sim
        self._scope = scope
        node = Node(sim, scope, self._level, self._config.get("heap_ring_size"))
        if self._level == 2:
            node.c_submit = node.c_submit_tensor = node.c_dispatch = node.c_complete = node.c_release = 0.0
            node.c_run_begin = node.c_run_end = 0.0
            lane = ChipLane(node, f"{scope}.chip", 0)
            lane.c_dispatch = lane.c_complete = lane.c_tensor = 0.0
            node.attach([lane], [])
        else:
            nl: list = []
            for i, _dev in enumerate(self._config.get("device_ids", [])):
                nl.append(ChipLane(node, f"{scope}.chip{i}", i))
            children = iter(self._children)
            for _ in range(len(self._children) + self._remote_count()):
                i = len(nl)
                if self._remote is not None and i in self._remote.specs:
                    nl.append(self._remote.make_lane(node, f"{scope}.w{i}", i))
                    continue
                child = next(children)
                if child._level == 2:
                    child._sim, child._scope = sim, f"{scope}.chip{i}"
                    nl.append(ChipLane(node, f"{scope}.chip{i}", i))
                else:
                    child_node = child._elaborate(sim, f"{scope}.w{i}")
                    nl.append(WorkerLane(node, f"{scope}.w{i}", i, child_node,
                                         lambda c=child: Orchestrator(c)))
            subs = [SubLane(node, f"{scope}.sub{j}", j) for j in range(self._config.get("num_sub_workers", 0))]
            node.attach(nl, subs)
        self._node = node
        return node

    def _validate_targets(self) -> None:
        """Reject a registration no child of the frozen topology could resolve (upstream init check)."""
        for w in self._walk():
            if w._level == 2 or w._node is None:
                continue
            has_python = bool(w._node.sub_lanes) or any(isinstance(lane, WorkerLane) for lane in w._node.nl_lanes)
            has_chip = w._chip_below()
            for reg in w._registry.live.values():
                ns = reg.descriptor.namespace.name
                if ns == "LOCAL_PYTHON" and not has_python:
                    raise InvalidState(f"init(): registered Python callable {reg.name!r} ({reg.descriptor.hashid}) on "
                                       f"{w._scope} has no eligible target (needs a SUB or next-level child)")
                if ns == "LOCAL_CHIP" and not has_chip:
                    raise InvalidState(f"init(): registered chip kernel {reg.name!r} on {w._scope} has no eligible "
                                       f"target (needs a chip child: device_ids)")

    def _chip_below(self) -> bool:
        """Whether a chip kernel registered here reaches a chip: a chip child, a remote L3 (its session installs
        it), or a chip further down a local child (upstream ``docs/callable-identity-registration.md``
        "Target Namespace": ``LOCAL_CHIP`` covers "descendant chip registries reached by the existing
        recursive ``ChipCallable`` cascade")."""
        if self._remote is not None or any(isinstance(lane, ChipLane) for lane in self._node.nl_lanes):
            return True
        return any(c._level >= 3 and c._node is not None and c._chip_below() for c in self._children)

    def _walk(self) -> list[Worker]:
        out = [self]
        for c in self._children:
            out.extend(c._walk())
        return out

    def _set_tree_state(self, state: _Lifecycle) -> None:
        for w in self._walk():
            w._state = state

    def close(self) -> None:
        """Tear the tree down. Safe after a failed init, and safe to call again.

        A later ``close()`` of a closed Worker is a no-op: upstream ``python/simpler/worker.py``
        ``Worker.close`` is "publicly terminal and retryable" and a fresh call after a finished
        close "replays" its result (``None``) instead of tearing down twice; python-api.md asks for
        the call in a ``finally``. The Worker stays CLOSED and refuses new work.
        """
        if self._parent is not None:
            raise InvalidState("close(): this Worker is a child; close its root")
        if self._state is _Lifecycle.CLOSED:
            return  # already torn down: nothing to release, nothing traced
        if self._state is _Lifecycle.RUNNING:
            raise InvalidState("close(): a run is in progress")
        if self._state is _Lifecycle.FAILED:  # nothing was brought up, but close is terminal all the same
            self._set_tree_state(_Lifecycle.CLOSED)
            return
        self._close_remote()
        if self._sim is not None:
            self._sim.trace.add(self._sim.now, EventKind.CLOSE, self._scope, f"L{self._level}")
        self._set_tree_state(_Lifecycle.CLOSED)

    def _close_remote(self) -> None:
        for w in self._walk():
            if w._remote is not None:
                w._remote.close()

    # ------------------------------------------------------------------ execution

    def run(self, callable: Any, args: Any = None, config: Any = None) -> None:
        """Run to completion: an orchestration function at L3+, a registered kernel handle at L2.

        Returns when every task of the run is terminal; raises :class:`TaskFailure` naming the
        first failed task, or re-raises what the orchestration function raised.
        """
        if self._parent is not None:
            raise InvalidState("run(): this Worker is a child; its parent dispatches to it")
        if self._state is _Lifecycle.NEW:
            raise InvalidState("run() before init(): call init() first")
        if self._state is _Lifecycle.RUNNING:
            raise InvalidState("run() while another run of this Worker is in progress")
        if self._state is not _Lifecycle.READY:
            raise InvalidState(f"run() on a {self._state.value} Worker")
        if config is not None and not isinstance(config, CallConfig):
            raise InvalidArgument(f"run: config must be a CallConfig, got {type(config).__name__}")
        if config is not None:
            config.validate()
        if self._level == 2:
            orch_fn = self._l2_orchestration(callable, args, config)
            fn_args = None
        else:
            if not callable or not hasattr(callable, "__call__"):  # noqa: B004 - any callable object
                raise InvalidArgument(f"run: an L{self._level} Worker runs an orchestration function, "
                                      f"got {type(callable).__name__}")
            orch_fn, fn_args = callable, args
        self._state = _Lifecycle.RUNNING
        try:
            with collector_paused():
                self._run_root(orch_fn, fn_args, config)
        finally:
            for w in self._walk() if self._remote is not None else ():
                if w._remote is not None:  # run fence: deferred remote frees whose references drained
                    w._remote.fence()
            if self._state is _Lifecycle.RUNNING:
                self._state = _Lifecycle.READY

    def _l2_orchestration(self, handle: Any, args: Any, config: Any) -> Callable[..., None]:
        # Validate now, so that bad input raises before anything is scheduled.
        reg = self._registry.resolve(handle, api="run", namespace="LOCAL_CHIP")
        assert self._node is not None
        Orchestrator(self)._member(self._node, reg, args, "run", "")

        def l2(o: Orchestrator, _a: Any, _c: Any) -> None:
            o.submit_next_level(handle, args, config, worker=0)

        l2.__qualname__ = f"L2 run of {reg.name}"
        return l2

    def _run_root(self, orch_fn: Callable[..., Any], args: Any, config: Any) -> None:
        sim = self._sim
        node = self._node
        assert sim is not None and node is not None
        done = Event(sim.env)
        run = node.begin_run(orch_fn, Orchestrator(self), args, config, lambda r: done.succeed(r))
        try:
            run_until(sim, done)  # ``env.run(until=done)`` that also ends a livelock (sim.livelock)
        except Livelock as ll:
            stuck = [t.name for t in ll.stuck][:8]
            raise SimulationHang(f"run r{run.id} of {node.scope} livelocked at t={ll.now_us:.3f}us: only "
                                 f"self-renewing events (e.g. health ticks) ran since t={ll.since_us:.3f}us, "
                                 f"with tasks not terminal: {', '.join(stuck)}") from None
        except RuntimeError:
            if done.triggered:
                raise
            stuck = [t.name for t in sim._tasks if not t.terminal][:8]
            raise SimulationHang(f"run r{run.id} of {node.scope} stalled at t={sim.now:.3f}us with tasks not "
                                 f"terminal: {', '.join(stuck) or 'none'}") from None
        first = run.failed[0] if run.failed else None
        raise_for_run(node.scope, run.id, run.error,
                      (first.name, getattr(first.callable, "name", ""), first.error) if first else None)

    def take_record(self, **metadata: Any) -> RunRecord:
        """The RunRecord of everything observed since the previous call (sim only)."""
        sim = self.simulation
        meta = {"backend": "sim", "seed": sim.config.seed, "profile": sim.profile.name,
                "data_mode": sim.config.data_mode, "platform": sim.platform, "virtual_time_us": sim.now}
        meta.update(metadata)
        return sim.take_record(meta, self._drain_calls())

    def _drain_calls(self) -> list[CallRecord]:
        """Every call record of this tree since the last record, in tree order; then forget them."""
        calls: list[CallRecord] = []
        for w in self._walk():
            calls.extend(w._calls)
            w._calls.clear()
        return calls

    # ------------------------------------------------------------------ memory

    def create_buffer(self, nbytes: int) -> Buffer:
        """A shared host buffer owned by this Worker; view it with ``buffer.tensor(shapes, dtype)``."""
        if self._state is _Lifecycle.CLOSED:
            raise InvalidState("create_buffer on a closed Worker")
        functional = self._sim_config.data_mode == "functional"
        return Buffer(nbytes, owner=self._scope or f"l{self._level}", with_data=functional)

    def make_tensor_arg(self, tensor: Any, shapes: Any, dtype: Any, *, strides: Any = None) -> Tensor:
        """Name an existing host array as a Tensor (same memory, so its writes are seen)."""
        if not isinstance(tensor, np.ndarray):
            raise InvalidArgument(f"make_tensor_arg expects a numpy array, got {type(tensor).__name__}")
        if not tensor.flags.c_contiguous:
            raise InvalidArgument("make_tensor_arg needs a C-contiguous array")
        buf = Buffer(0, owner=self._scope or f"l{self._level}", with_data=False)
        buf.nbytes = tensor.nbytes
        buf.array = tensor.reshape(-1).view(np.uint8)
        buf.shm.buf = memoryview(buf.array)
        return buf.tensor(shapes, as_numpy_dtype(dtype), strides=strides)

    # ------------------------------------------------------------------ remote memory (the remote layer's)

    def _remote_buffers(self, api: str) -> Any:
        """The remote layer's buffer registry of this Worker (``sim.plugins``); checks lifecycle state."""
        return require_remote(api).buffers(self, api)

    def remote_malloc(self, *, worker: int, nbytes: int) -> Any:
        """Allocate ``nbytes`` on remote worker ``worker``; return an owner ``RemoteBufferHandle``."""
        return self._remote_buffers("remote_malloc").malloc(worker, nbytes)

    def remote_free(self, handle: Any) -> None:
        """Free an owner handle; the physical free waits for its slot references and imports. Idempotent."""
        self._remote_buffers("remote_free").free(handle)

    def remote_copy_to(self, handle: Any, host_ptr: Any, nbytes: int, *, offset: int = 0) -> None:
        """Copy ``nbytes`` of host memory (array, bytes-like, Tensor) into an owner buffer at ``offset``."""
        self._remote_buffers("remote_copy_to").copy_to(handle, host_ptr, nbytes, offset)

    def remote_copy_from(self, handle: Any, host_ptr: Any, nbytes: int, *, offset: int = 0) -> None:
        """Copy ``nbytes`` from an owner buffer at ``offset`` into writable host memory."""
        self._remote_buffers("remote_copy_from").copy_from(handle, host_ptr, nbytes, offset)

    def remote_export(self, handle: Any, *, offset: int = 0, nbytes: int | None = None,
                      access: str | int = "readwrite", transport_profile: str = "host_tcp") -> Any:
        """Export a range of an owner buffer; return an opaque ``RemoteBufferExport``."""
        return self._remote_buffers("remote_export").export(handle, offset, nbytes, access, transport_profile)

    def remote_import(self, exported: Any, *, worker: int, access: str | int | None = None) -> Any:
        """Import an export on remote worker ``worker``; return an imported ``RemoteBufferHandle``."""
        return self._remote_buffers("remote_import").import_(exported, worker, access)

    def remote_release_import(self, handle: Any) -> None:
        """Release an imported handle; the teardown waits for its slot references. Idempotent."""
        self._remote_buffers("remote_release_import").release_import(handle)

    # ------------------------------------------------------------------ helpers

    def _log_call(self, call: str, subject: str, ok: bool, exc: BaseException | None = None) -> None:
        cls = getattr(exc, "error_class", None)
        self._calls.append(CallRecord(call, subject, ok, cls.value if cls is not None else None,
                                      str(exc) if exc else ""))


def raise_for_run(scope: str, run_id: int, error: BaseException | None,
                  first_failed: tuple[str, str, str | None] | None) -> None:
    """How a finished run ends for its caller: the orchestration function's own error, else
    :class:`TaskFailure` naming the first failed task (name, callable, message), else nothing."""
    if error is not None:
        raise error
    if first_failed is not None:
        name, callable_name, message = first_failed
        raise TaskFailure(f"run r{run_id} of {scope} failed: task {name} ({callable_name}): {message}")
