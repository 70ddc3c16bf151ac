"""The Worker / Orchestrator / TaskArgs the cases drive, over the real runtime's own objects.

- :class:`HwTaskArgs` records ``(tensor, tag)`` pairs and scalars, checking the tag when it is added
  as the runtime's ``TaskArgs.add_tensor`` does (a ``TensorArgType`` or one of its integer values,
  else ``TypeError``); at submit time the
  :class:`HwOrchestrator` turns it into the runtime's ``TaskArgs``: every numpy tensor goes through a
  shared buffer of the Worker (``Worker.create_buffer``, one per host array, its identity kept for the
  Worker's life so dependencies key on it), the host data is copied in once per run and copied back
  after the run; a dispatch token is appended as the last scalar for the SUB probe.
- :class:`HwOrchestrator` wraps the runtime's Orchestrator and names each accepted task in submit
  order following the sim's naming (``l3:r<run>:t<n>``, ``l4.w0:r<run>:t<n>`` for a child's);
  ``alloc`` is the runtime's own (``orchestrator.md`` §8b) and, as there, takes a slot number.
- Composition (``hierarchical-level-runtime.md`` §4): ``add_worker`` composes the runtime's own
  Workers; a Python callable registered at L4 or above runs, when a parent submits it to a child, as
  that child's orchestration function inside the runtime's child process. The probe hands it the
  adapter's orchestrator for that child (:func:`nested_orchestration`), and what it submits travels
  back to the parent's record through the probe's observation.
- :class:`HwWorker` builds a :class:`~sim.record.RunRecord` (``backend="hw"``) after every run from
  the probe observations: COMPLETED / FAILED(class) with wall stamps, NOT_RUN for a task no
  member of which started. Producers are not observable from the runtime's Python surface and are
  left empty (``metadata["producers"] == "not observed"``). Every register / unregister that reaches
  the runtime is logged as a :class:`~sim.record.CallRecord` (OK, or ERROR with its mapped class) and
  handed out with the next record, as the sim logs them.
"""

from __future__ import annotations

import itertools
import operator
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from hw_backend.errors import error_class
from hw_backend.kernels import RUNTIME
from hw_backend.probe import (
    DTYPE_BY_VALUE,
    SubProbe,
    next_token,
    observation_dir,
    read_observation,
    set_nested_runner,
)

_VALUE_BY_DTYPE = {np.dtype(v): k for k, v in DTYPE_BY_VALUE.items()}
_DEFAULT_TAG = object()
_UNSEEN = "outcome not observable (a chip task of a failed run)"
REMOTE_STARTUP_TIMEOUT_S = 10.0
REMOTE_SESSION_TIMEOUT_S = 12.0
#: The most the limits above are stretched on a loaded host (2x keeps them inside the 30 s case timeout).
MAX_LOAD_SCALE = 2.0


def remote_timeouts(env: dict[str, str] | None = None, load: float | None = None,
                    cpus: int | None = None) -> tuple[float, float]:
    """(startup, session) limits in seconds for a remote L3 on the real runtime.

    The runtime's ``remote_session_timeout_s`` (python/simpler/worker.py ``_remote_session_timeout_s``,
    default 30 s) bounds every remote command; tierbed lowers it so that a fault case ends inside its
    case timeout. On a busy host a healthy session can stall for seconds (runs of ``tierbed fuzz
    --backend hw`` saw "progress command timed out" on plain remote runs that passed on replay), so
    the limits grow with the load average per core, up to :data:`MAX_LOAD_SCALE`.
    ``TIERBED_HW_REMOTE_STARTUP_TIMEOUT_S`` / ``TIERBED_HW_REMOTE_SESSION_TIMEOUT_S`` set them outright.
    """
    import os

    env = dict(os.environ) if env is None else env
    if load is None:
        try:
            load = os.getloadavg()[0]
        except OSError:  # no load average on this platform: no scaling
            load = 0.0
    cpus = cpus or os.cpu_count() or 1
    scale = min(MAX_LOAD_SCALE, max(1.0, load / cpus))
    out = []
    for name, base in (("TIERBED_HW_REMOTE_STARTUP_TIMEOUT_S", REMOTE_STARTUP_TIMEOUT_S),
                       ("TIERBED_HW_REMOTE_SESSION_TIMEOUT_S", REMOTE_SESSION_TIMEOUT_S)):
        text = env.get(name)
        if text is None:
            out.append(round(base * scale, 3))
            continue
        try:
            value = float(text)
        except ValueError:
            value = float("nan")
        if not (value > 0 and value < float("inf")):
            raise ValueError(f"{name}={text!r}: give a positive number of seconds")
        out.append(value)
    return out[0], out[1]


def _tensor_arg_type(tag: Any) -> Any:
    """``tag`` as the runtime's ``TensorArgType``, checked when it is added as the runtime's
    ``TaskArgs.add_tensor`` checks it: a ``TensorArgType`` or an integer that is one of its values
    (a bool is an integer) is accepted; anything else, ``None`` included, is a ``TypeError``."""
    from simpler.task_interface import TensorArgType

    if tag is _DEFAULT_TAG:
        return TensorArgType.INPUT
    if isinstance(tag, TensorArgType):
        return tag
    try:
        return TensorArgType(operator.index(tag))
    except (TypeError, ValueError):
        raise TypeError(f"add_tensor(): incompatible function arguments: tag {tag!r} is not a "
                        f"TensorArgType") from None


class HwTaskArgs:
    """Task args as the cases build them; converted to the runtime's ``TaskArgs`` at submit."""

    def __init__(self) -> None:
        self.tensors: list[tuple[Any, Any]] = []
        self.scalars: list[Any] = []

    def add_tensor(self, tensor: Any, tag: Any = _DEFAULT_TAG) -> None:
        self.tensors.append((tensor, _tensor_arg_type(tag)))

    def add_scalar(self, value: Any) -> None:
        self.scalars.append(value)

    def tensor_count(self) -> int:
        return len(self.tensors)

    def scalar_count(self) -> int:
        return len(self.scalars)

    def tensor(self, i: int) -> Any:
        return self.tensors[i][0]

    def scalar(self, i: int) -> Any:
        return self.scalars[i]

    def clear(self) -> None:
        self.tensors.clear()
        self.scalars.clear()


@dataclass
class _Submitted:
    task_id: str
    scope: str
    level: int
    kind: str
    callable: str
    tokens: list[int]
    workers: tuple[str, ...] = ()
    chip: bool = False  # a chip callable: no probe runs inside it


@dataclass
class _Run:
    number: int
    nested: bool = False  # a nested orchestration, inside a child process of the runtime
    tasks: list[_Submitted] = field(default_factory=list)
    copied_in: set[int] = field(default_factory=set)
    slots: int = 0  # task slots taken so far: submits and allocs, as the runtime numbers them


#: Every HwWorker of this process by serial. A nested orchestration runs in a forked child of the
#: runtime, whose copy of this table was taken after the tree was built, so the serial a parent
#: appends to a next-level submit finds the child's adapter object there.
_LIVE: dict[int, HwWorker] = {}
_SERIALS = itertools.count(1)


def _child_task(c: dict[str, Any], parent: _Submitted, member: str) -> _Submitted:
    """A task a nested orchestration reported, named in the parent's tree. A remote target reports
    scopes relative to its remote L3 (``l3``); they are placed under the worker that ran it
    (``l4.w0.l3:r1:t1``), as the sim names them."""
    sub = _Submitted(**{**c, "tokens": list(c["tokens"]), "workers": tuple(c["workers"])})
    if parent.kind.startswith("next_level") and not sub.scope.startswith(parent.scope + "."):
        base = f"{parent.scope}.{member}."
        sub.task_id, sub.scope = base + sub.task_id, base + sub.scope
        sub.workers = tuple(f"{sub.scope}.{w}" for w in sub.workers)
    return sub


def _host_ptr(host: Any) -> Any:
    """A host numpy array as the address the runtime's copy calls take; anything else unchanged."""
    return host.ctypes.data if isinstance(host, np.ndarray) else host


def _live_worker(serial: int) -> HwWorker:
    return _LIVE[serial]


def nested_orchestration(fn: Any, orch: Any, args: Any, config: Any, serial: int, extra: dict[str, Any]) -> None:
    """Run ``fn`` as the orchestration function of child Worker ``serial`` (in the runtime's child
    process), with the adapter's orchestrator in front of the real one; what it submitted goes into
    ``extra`` for the parent's record (``children``), and a feature the adapter lacks into
    ``not_supported``."""
    from sim.backend_api import NotSupportedByBackend

    w = _LIVE[serial]
    # This child process serves every task of child Worker ``serial``: its runs are numbered here, in
    # the order they begin, as the sim numbers a child node's runs.
    w._runs += 1
    w._run = _Run(w._runs, nested=True)
    try:
        fn(HwOrchestrator(orch, w), args, config)
    except NotSupportedByBackend as exc:
        extra["not_supported"] = str(exc)
        raise
    finally:
        extra["children"] = [asdict(t) for t in w._run.tasks]
        w._run = None


set_nested_runner(nested_orchestration)


class HwOrchestrator:
    """The runtime's Orchestrator with task naming and args conversion in front of it."""

    def __init__(self, real: Any, worker: HwWorker) -> None:
        self._o = real
        self._w = worker

    def _convert(self, args: Any, worker: Any = None) -> tuple[Any, int]:
        """The runtime's TaskArgs for ``args``, with the dispatch token last; a next-level submit at L4
        and above (``worker`` given) also carries the child's serial before it."""
        from simpler.task_interface import TaskArgs

        ta = TaskArgs()
        if args is not None:
            if not isinstance(args, HwTaskArgs):
                raise TypeError(f"task args must be the backend's TaskArgs, got {type(args).__name__}")
            for tensor, tag in args.tensors:
                ta.add_tensor(self._w._tensor_arg(tensor), tag)
            for s in args.scalars:
                ta.add_scalar(s)
        token = self._w._next_token()
        if worker is not None and self._w.level >= 4:
            child = self._w._child(worker)
            ta.add_scalar(child.serial if child is not None else 0)
        ta.add_scalar(token)
        return ta, token

    def _accept(self, kind: str, handle: Any, tokens: list[int], workers: tuple[str, ...] = ()) -> None:
        self._w._accept(kind, handle, tokens, workers)

    def submit_sub(self, callable_handle: Any, args: Any = None) -> None:
        ta, token = self._convert(args)
        self._o.submit_sub(callable_handle, ta)
        self._accept("sub", callable_handle, [token])

    def submit_sub_group(self, callable_handle: Any, args_list: list[Any]) -> None:
        converted = [self._convert(a) for a in args_list]
        self._o.submit_sub_group(callable_handle, [ta for ta, _ in converted])
        self._accept("sub_group", callable_handle, [t for _, t in converted],
                     tuple(f"sub{i}" for i in range(len(converted))))

    def submit_next_level(self, callable_handle: Any, args: Any, config: Any = None, *, worker: int) -> None:
        ta, token = self._convert(args, worker)
        self._o.submit_next_level(callable_handle, ta, config, worker=worker)
        self._accept("next_level", callable_handle, [token], (f"w{worker}",))

    def submit_next_level_group(self, callable_handle: Any, args_list: list[Any], config: Any = None, *,
                                workers: list[int]) -> None:
        converted = [self._convert(a, w) for a, w in zip(args_list, workers, strict=False)]
        self._o.submit_next_level_group(callable_handle, [ta for ta, _ in converted], config, workers=workers)
        self._accept("next_level_group", callable_handle, [t for _, t in converted],
                     tuple(f"w{w}" for w in workers))

    def scope_begin(self) -> None:
        self._o.scope_begin()

    def scope_end(self) -> None:
        self._o.scope_end()

    def scope(self) -> Any:
        return self._o.scope()

    # Communication domains (``comm-domain.md``): the runtime's own allocate_domain / release_domain /
    # copy_to / copy_from; only a host numpy array is staged through a Buffer of the Worker, as an L3
    # copy takes one (``worker.py`` ``copy_to``: "an L3 host side must be a Buffer from create_buffer").
    def allocate_domain(self, **kw: Any) -> HwDomainHandle:
        return HwDomainHandle(self._o.allocate_domain(**kw))

    def release_domain(self, handle: Any) -> None:
        self._o.release_domain(handle.real if isinstance(handle, HwDomainHandle) else handle)

    def copy_to(self, dst: Any, host: Any) -> None:
        if not isinstance(host, np.ndarray):
            self._o.copy_to(dst, host)
            return
        data = np.ascontiguousarray(host).view(np.uint8).reshape(-1)
        stage = self._w._real.create_buffer(max(1, data.size))
        try:
            stage.shm.buf[:data.size] = data.tobytes()
            self._o.copy_to(dst, stage)
        finally:
            stage.close()

    def copy_from(self, host: Any, src: Any) -> None:
        if not isinstance(host, np.ndarray):
            self._o.copy_from(host, src)
            return
        stage = self._w._real.create_buffer(max(1, host.nbytes))
        try:
            self._o.copy_from(stage, src)
            host.reshape(-1).view(np.uint8)[...] = np.frombuffer(bytes(stage.shm.buf[:host.nbytes]), np.uint8)
        finally:
            stage.close()

    def alloc(self, shape: Any, dtype: Any) -> AllocBuffer:
        """The runtime's own ``Orchestrator.alloc``: a runtime-owned slab, named through ``.tensor``."""
        buf = AllocBuffer(self._o.alloc(tuple(int(s) for s in shape), _data_type(dtype)))
        self._w._current_run().slots += 1  # its synthetic producer slot (named ``a<n>``, never recorded)
        return buf


class HwDomainHandle:
    """The runtime's ``CommDomainHandle``, unchanged but for one message: indexing a chip that is not a
    member raises the runtime's bare ``KeyError(chip)``, re-raised as a ``KeyError`` that says so, so that
    its class can be told from other missing keys (``hw_backend.errors``)."""

    def __init__(self, real: Any) -> None:
        self.real = real

    def __getitem__(self, chip_idx: Any) -> Any:
        try:
            return self.real[chip_idx]
        except KeyError:
            raise KeyError(f"chip {chip_idx!r} is not a member of domain {self.real.name!r} "
                           f"(members: {list(self.real.workers)})") from None

    def __contains__(self, chip_idx: Any) -> bool:
        return chip_idx in self.real.contexts

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    def release(self) -> None:
        self.real.release()

    def __enter__(self) -> HwDomainHandle:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.real.release()


class AllocBuffer:
    """The runtime's alloc ``Buffer``, taking a dtype as the cases give it (a name, numpy or DataType)."""

    def __init__(self, real: Any) -> None:
        self.real = real

    def tensor(self, shape: Any, dtype: Any) -> Any:
        return self.real.tensor(shapes=tuple(int(s) for s in shape), dtype=_data_type(dtype))


def _data_type(dtype: Any) -> Any:
    """A dtype as the runtime's ``DataType``: one already, or anything numpy names (``"float32"``)."""
    from simpler.task_interface import DataType

    if isinstance(dtype, DataType):
        return dtype
    try:
        return DataType(_VALUE_BY_DTYPE[np.dtype(dtype)])
    except (KeyError, TypeError) as exc:
        raise TypeError(f"no DataType for dtype {dtype!r}") from exc


class HwWorker:
    """One real ``simpler.Worker`` and what the adapter observed of its runs."""

    def __init__(self, level: int, *, platform: str, sessions: Any = None, faults: tuple[Any, ...] = (),
                 **config: Any) -> None:
        from simpler import Worker

        self.level = int(level)
        self._sessions = sessions  # hw_backend.remote.RemoteSessions of the case
        self._faults = faults  # hw_backend.remote.HwFault, by remote worker index
        self._remote: list[int] = []  # relay index of each remote worker, in attach order
        self._remote_ids: set[str] = set()  # "w<id>" of each remote worker, as task records name workers
        self._crash_after_submit: list[int] = []
        self._hang_after_submit: list[int] = []
        self.platform = platform
        self._obs_dir = observation_dir()
        # Chip workers need a runtime variant; the sim's default one, as upstream's examples use.
        config.setdefault("runtime", RUNTIME)
        if self.level >= 4:
            # Bounded remote waits, so that a fault case ends inside the case timeout.
            startup_s, session_s = remote_timeouts()
            config.setdefault("startup_timeout_s", startup_s)
            config.setdefault("remote_session_timeout_s", session_s)
        self._real = Worker(level=level, platform=platform, **config)
        self._runs = 0
        self._names: dict[int, str] = {}  # id(handle) -> callable name
        self._buffers: dict[int, tuple[np.ndarray, Any]] = {}  # id(array) -> (array, Buffer)
        self._run: _Run | None = None
        self._record: Any = None
        self._parent: Any = None
        self._closed = False
        self._calls: list[Any] = []  # sim.record.CallRecord, drained into the next record
        self._children: dict[int, HwWorker] = {}  # worker id the runtime gave -> child adapter
        self._chip_handles: set[int] = set()  # id(handle) of registered chip callables
        self._index: int | None = None  # this Worker's id in its parent
        self.serial = next(_SERIALS)
        _LIVE[self.serial] = self

    def __reduce__(self) -> Any:
        # A nested orchestration function that closes over a Worker is pickled into its registration;
        # in the runtime's child process the name resolves to that process's copy of the adapter.
        return (_live_worker, (self.serial,))

    @property
    def prefix(self) -> str:
        """Task-name prefix, as the sim names scopes: ``l4`` for a root, ``l4.w0`` for its child 0."""
        if self._parent is None:
            return f"l{self.level}"
        return f"{self._parent.prefix}.w{self._index}"

    # ------------------------------------------------------------ lifecycle and registration

    def register(self, target: Any, **kw: Any) -> Any:
        from sim.backend_api import NotSupportedByBackend

        if getattr(target, "__tierbed_missing_kernel__", False):
            raise NotSupportedByBackend(f"chip kernel {target.name!r}: {getattr(target, 'reason', 'no kernel map')}")
        from simpler.worker import RemoteCallable

        remote = isinstance(target, RemoteCallable)
        name = target.target if remote else getattr(target, "__qualname__", type(target).__name__)
        wrapped = SubProbe(target) if callable(target) else target
        try:
            handle = self._real.register(wrapped, **kw)
        except Exception as exc:
            self._log_call("register", name, False, exc)
            raise
        self._names[id(handle)] = name
        if not callable(target) and not remote:
            self._chip_handles.add(id(handle))
        self._log_call("register", name, True)
        return handle

    def unregister(self, handle: Any) -> None:
        name = self._names.get(id(handle), "?")
        try:
            self._real.unregister(handle)
        except Exception as exc:
            self._log_call("unregister", name, False, exc)
            raise
        self._log_call("unregister", name, True)

    def _log_call(self, call: str, subject: str, ok: bool, exc: BaseException | None = None) -> None:
        from sim.record import CallRecord

        self._calls.append(CallRecord(call, subject, ok, error_class(exc) if exc is not None else None,
                                      str(exc) if exc is not None else ""))

    def _drain_calls(self) -> list[Any]:
        calls, self._calls = self._calls, []
        return calls

    def add_worker(self, worker: Any) -> int:
        """Compose a local child (``hierarchical-level-runtime.md`` §4): the runtime's own
        ``add_worker`` decides what is accepted; the adapter remembers the child for task naming."""
        child = worker._real if isinstance(worker, HwWorker) else worker
        wid = self._real.add_worker(child)
        if isinstance(worker, HwWorker):
            worker._parent, worker._index = self, int(wid)
            self._children[int(wid)] = worker
        return wid

    def add_remote_worker(self, spec: Any) -> int:
        """Attach a remote L3 (``remote-l3-worker-design.md`` "Remote Worker Session") through a real
        daemon on loopback, with a fault relay in front (:mod:`hw_backend.remote`). A spec the hw
        backend cannot serve (not a numeric loopback endpoint, or a parent below L4) goes to the
        runtime unchanged, so that the runtime's own validation judges it."""
        import dataclasses

        host, _, port = str(getattr(spec, "endpoint", "")).rpartition(":")
        if self.level < 4 or self._sessions is None or host not in ("127.0.0.1", "localhost") \
                or not port.isdigit() or not 0 < int(port) < 65536:
            return self._real.add_remote_worker(spec)
        index = len(self._remote)
        faults = [f for f in self._faults if f.worker == index]
        relay = self._sessions.attach(spec.endpoint, faults)
        wid = self._real.add_remote_worker(dataclasses.replace(spec, endpoint=self._sessions.endpoint(relay)))
        self._remote.append(relay)
        self._remote_ids.add(f"w{wid}")
        if any(f.kind == "session_crash" and float(f.params.get("at_us", 0.0)) for f in faults):
            self._crash_after_submit.append(relay)
        elif any(f.kind == "session_hang" and float(f.params.get("at_us", 0.0)) for f in faults):
            self._hang_after_submit.append(relay)
        return wid

    # The remote-memory calls (``buffers-and-transports.md`` "Remote Memory API") go to the runtime as
    # they are: their handles and exports are the runtime's own objects.
    def remote_malloc(self, **kw: Any) -> Any:
        return self._real.remote_malloc(**kw)

    def remote_free(self, handle: Any) -> None:
        self._real.remote_free(handle)

    def remote_copy_to(self, handle: Any, host: Any, nbytes: int, **kw: Any) -> None:
        self._real.remote_copy_to(handle, _host_ptr(host), nbytes, **kw)

    def remote_copy_from(self, handle: Any, host: Any, nbytes: int, **kw: Any) -> None:
        self._real.remote_copy_from(handle, _host_ptr(host), nbytes, **kw)

    def remote_export(self, handle: Any, **kw: Any) -> Any:
        return self._real.remote_export(handle, **kw)

    def remote_import(self, export: Any, **kw: Any) -> Any:
        return self._real.remote_import(export, **kw)

    def remote_release_import(self, handle: Any) -> None:
        self._real.remote_release_import(handle)

    @property
    def live_domains(self) -> dict[str, Any]:
        """The runtime's own snapshot of live communication domains, by name."""
        return self._real.live_domains

    def accepts_worker_type(self, worker_type: Any) -> bool:
        from sim.backend_api import NotSupportedByBackend

        raise NotSupportedByBackend("the real runtime has no Worker.accepts_worker_type")

    def init(self, *args: Any, **kw: Any) -> None:
        self._real.init(*args, **kw)

    def close(self) -> None:
        self._closed = True
        try:
            self._real.close()  # a second close is the runtime's to judge
        finally:
            self._buffers.clear()

    # ------------------------------------------------------------ runs

    def run(self, orch_fn: Any, args: Any = None, config: Any = None) -> None:
        self._runs += 1
        run = self._run = _Run(self._runs)
        error: BaseException | None = None
        def orchestrate(o: Any, a: Any, c: Any) -> None:
            orch_fn(HwOrchestrator(o, self), a, c)
            while self._crash_after_submit:  # a session crash with at_us > 0: its tasks are in flight
                self._sessions.kill_session(self._crash_after_submit.pop(0))
            while self._hang_after_submit:  # a session hang with at_us > 0: the same moment, SIGSTOP
                self._sessions.hang_session(self._hang_after_submit.pop(0))

        try:
            self._real.run(orchestrate, args, config)
        except BaseException as exc:
            error = exc
            raise
        finally:
            self._copy_back(run)
            self._record = self._build_record(run, error)
            self._run = None

    def take_record(self) -> Any:
        """The RunRecord of the last run (then forgotten)."""
        from sim.record import RunRecord

        rec, self._record = self._record, None
        if rec is None:
            rec = RunRecord("hw", {"platform": self.platform})
        rec.calls.extend(self._drain_calls())
        return rec

    # ------------------------------------------------------------ helpers the orchestrator uses

    def _next_token(self) -> int:
        return next_token()

    def _current_run(self) -> _Run:
        assert self._run is not None, "submit outside a run"
        return self._run

    def _child(self, worker: Any) -> HwWorker | None:
        try:
            return self._children.get(operator.index(worker))
        except TypeError:
            return None  # the runtime judges a bad worker id

    def _accept(self, kind: str, handle: Any, tokens: list[int], workers: tuple[str, ...]) -> None:
        run = self._current_run()
        run.slots += 1
        tid = f"{self.prefix}:r{run.number}:t{run.slots}"
        run.tasks.append(_Submitted(tid, self.prefix, self.level, kind, self._names.get(id(handle), "?"), tokens,
                                    workers, id(handle) in self._chip_handles))

    def _tensor_arg(self, tensor: Any) -> Any:
        from simpler.task_interface import RemoteTensorRef, Tensor

        from sim.backend_api import NotSupportedByBackend

        if isinstance(tensor, Tensor | RemoteTensorRef):
            return tensor  # handed down by a parent, or remote data: the runtime's own reference
        if self._run is not None and self._run.nested:
            raise NotSupportedByBackend("a nested orchestration on hw passes on the tensors it was given; "
                                        "host arrays of its own would need buffers of the child process")
        if not isinstance(tensor, np.ndarray):
            raise NotSupportedByBackend(f"the hw adapter passes numpy tensors only, got {type(tensor).__name__}")
        if not tensor.flags.c_contiguous:
            raise NotSupportedByBackend("the hw adapter passes C-contiguous numpy tensors only")
        dtv = _VALUE_BY_DTYPE.get(tensor.dtype)
        if dtv is None:
            raise NotSupportedByBackend(f"the hw adapter has no DataType for numpy dtype {tensor.dtype}")
        entry = self._buffers.get(id(tensor))
        if entry is None or entry[0] is not tensor:
            buf = self._real.create_buffer(max(1, tensor.nbytes))
            entry = self._buffers[id(tensor)] = (tensor, buf)
        buf = entry[1]
        run = self._run
        if run is not None and id(tensor) not in run.copied_in:
            buf.shm.buf[:tensor.nbytes] = tensor.tobytes()
            run.copied_in.add(id(tensor))
        return buf.tensor(shapes=tuple(int(s) for s in tensor.shape), dtype=dtv)

    def _copy_back(self, run: _Run) -> None:
        for key in run.copied_in:
            arr, buf = self._buffers[key]
            if arr.flags.writeable:
                arr[...] = np.frombuffer(bytes(buf.shm.buf[:arr.nbytes]), dtype=arr.dtype).reshape(arr.shape)

    def _build_record(self, run: _Run, error: BaseException | None) -> Any:
        from sim.backend_api import NotSupportedByBackend
        from sim.record import RunRecord

        rec = RunRecord("hw", {"platform": self.platform, "level": self.level, "run": run.number,
                               "clock": "monotonic wall seconds", "producers": "not observed"})
        rec.calls.extend(self._drain_calls())
        if error is not None:
            rec.errors.append(f"{type(error).__name__}: {error}"[:500])
        lacking: list[str] = []
        unseen: list[str] = []
        self._record_tasks(rec, run.tasks, error, lacking, unseen)
        if unseen:
            rec.metadata["unobserved_tasks"] = unseen
        if lacking:
            raise NotSupportedByBackend(lacking[0])
        return rec

    def _record_tasks(self, rec: Any, tasks: list[_Submitted], error: BaseException | None,
                      lacking: list[str], unseen: list[str]) -> bool:
        """Add ``tasks`` and, from the observations, the tasks their nested orchestrations submitted;
        True when any of them FAILED.

        A SUB task is COMPLETED when every member's probe saw it end, FAILED(TASK_FAILURE) when one
        raised, NOT_RUN when none started. A next-level task at L4 and above is FAILED with the class
        of its orchestration function's error, or FAILED(TASK_FAILURE) when a task it submitted
        failed (the failure reaches its parent, ``task-flow.md`` "Completion").
        """
        from sim.record import Outcome, TaskRecord

        any_failed = False
        for t in tasks:
            obs = [read_observation(self._obs_dir, tok) for tok in t.tokens]
            seen = [o for o in obs if o is not None]
            rec.tasks[t.task_id] = None  # keeps submit order: a task before what it submitted
            child_failed = False
            child_ids: list[str] = []
            for i, o in enumerate(obs):
                if o is None:
                    continue
                if o.get("not_supported"):
                    lacking.append(o["not_supported"])
                member = t.workers[i] if len(t.workers) == len(t.tokens) else (t.workers[0] if t.workers else "w")
                children = [_child_task(c, t, member) for c in o.get("children", ())]
                child_failed |= self._record_tasks(rec, children, error, lacking, unseen)
                child_ids += [c.task_id for c in children]
            failed = [o for o in seen if o.get("error")]
            if t.chip:
                # A chip kernel reports nothing per task: a run that returned normally completed every
                # accepted task; after a failed run its outcome cannot be seen.
                outcome, cls, msg = (Outcome.COMPLETED, None, "") if error is None else (Outcome.NOT_RUN, None,
                                                                                          _UNSEEN)
                if error is not None:
                    unseen.append(t.task_id)
            elif failed:
                cls = failed[0].get("error_class") if t.kind.startswith("next_level") else "TASK_FAILURE"
                outcome, cls, msg = Outcome.FAILED, cls or "TASK_FAILURE", failed[0]["error"]
            elif child_failed:
                outcome, cls, msg = Outcome.FAILED, "TASK_FAILURE", "a task it submitted failed"
            elif seen and len(seen) == len(obs):
                outcome, cls, msg = Outcome.COMPLETED, None, ""
            elif not seen and error is not None and t.kind.startswith("next_level") \
                    and error_class(error) == "ENDPOINT_FAILURE" and any(w in self._remote_ids for w in t.workers):
                # Its session died before the task's probe could report (a crash takes the observation
                # with it): the endpoint failure is the task's.
                outcome, cls, msg = Outcome.FAILED, "ENDPOINT_FAILURE", str(error)[:300]
            elif not seen:
                outcome, cls, msg = Outcome.NOT_RUN, None, ""
            else:
                outcome, cls = Outcome.FAILED, error_class(error) if error is not None else "TASK_FAILURE"
                msg = "some group members never started"
            any_failed |= outcome is Outcome.FAILED
            start = min((o["start"] for o in seen), default=None)
            # A nested orchestration's probe times the function, which returns once it has submitted;
            # its run goes on until the tasks it submitted end, so the task ends no earlier than they do.
            end = max([o["end"] for o in seen] + [e for c in child_ids if (e := rec.tasks[c].end) is not None],
                      default=None)
            rec.tasks[t.task_id] = TaskRecord(t.task_id, t.scope, t.level, t.kind, t.callable, outcome, cls, msg,
                                              start, end, t.workers, ())
        return any_failed
