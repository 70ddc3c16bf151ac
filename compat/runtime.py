"""The real runtime's Python surface (``simpler.worker``, ``simpler.task_interface``) over the simulator.

Models ``docs/user/reference/python-api.md`` ("``Worker``", "Lifecycle", "Memory", "Execution",
"Callables and task args", "``CallConfig``") and the signatures of upstream
``python/simpler/worker.py`` / ``python/simpler/orchestrator.py`` where the page is silent
(``Worker.malloc(size)`` is L2-only and returns a device Buffer with ``base``;
``alloc_child_tensor(worker_id, shapes, dtype)`` allocates on a chip child; ``copy_to(dst, src)``
and ``copy_from(dst, src)`` take the destination first). Each class here adapts names and argument
shapes and hands the work to :mod:`sim`: :class:`Worker` wraps a :class:`sim.Worker`, the
orchestrator an orchestration function receives wraps :class:`sim.orchestrator.Orchestrator`,
device memory is :mod:`sim.device_memory`, ring overrides are checked by :mod:`sim.runtime_env`.
A ``ChipCallable`` becomes a reference kernel through the session's kernel map
(:mod:`compat.kernel_map`) when it is registered.
"""

from __future__ import annotations

import builtins
import contextlib
import math
import weakref
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

import sim
from compat.callables import ChipCallable
from compat.host import as_host, as_host_array, is_torch_tensor, torch_to_numpy
from compat.session import current_session
from sim.comm.domain import CommDomainHandle, WindowBuffer, copy_window
from sim.comm.global_domain import GlobalCommDomainHandle, GlobalCommDomainView
from sim.cost import DURATION_ATTR
from sim.device_memory import DeviceBuffer, DeviceMemory
from sim.errors import InvalidArgument, InvalidState
from sim.kernel_spec import ChipKernel
from sim.runtime_env import RING_FIELDS, check_runtime_env
from sim.tensors import Buffer, Tensor
from sim.types import ELEMENT_SIZES, DataType, TensorArgType, as_numpy_dtype
from sim.worker import _KNOWN_CONFIG

# sim.Worker -> the facade Worker wrapping it (nested orchestration functions need the facade).
_FACADES: weakref.WeakKeyDictionary[sim.Worker, Worker] = weakref.WeakKeyDictionary()


# ----------------------------------------------------------------------------------- data types


def get_element_size(dtype: Any) -> int:
    """Bytes of one element of ``dtype`` (a DataType or its int value)."""
    return ELEMENT_SIZES[int(DataType(int(dtype)))]


def get_dtype_name(dtype: Any) -> str:
    """Upstream's name of ``dtype`` (``FLOAT32``, ``BFLOAT16``, ...)."""
    return DataType(int(dtype)).name


def _tensor_arg(tensor: Any) -> Any:
    """What a TaskArgs gets for ``tensor``: torch tensors become numpy views over the same memory."""
    return torch_to_numpy(tensor) if is_torch_tensor(tensor) else tensor


class TaskArgs(sim.TaskArgs):
    """Upstream ``TaskArgs``: tensors with tags, then scalars; ``len`` counts both.

    Tensors are ``Buffer.tensor(...)`` views as upstream; numpy arrays and CPU torch tensors are
    accepted too (named by their memory, as ``make_tensor_arg`` would).
    """

    __slots__ = ()

    def add_tensor(self, t: Any, tag: Any = TensorArgType.INPUT) -> None:
        super().add_tensor(_tensor_arg(t), tag)

    @staticmethod
    def _index(i: int, count: int, what: str) -> int:
        if not 0 <= i < count:
            raise IndexError(f"TaskArgs {what} index out of range")
        return i

    def tensor(self, i: int) -> Any:
        return super().tensor(self._index(i, self.tensor_count(), "tensor"))

    def scalar(self, i: int) -> Any:
        return super().scalar(self._index(i, self.scalar_count(), "scalar"))

    def tag(self, i: int) -> TensorArgType:
        return super().tag(self._index(i, self.tensor_count(), "tag"))

    def set_tag(self, i: int, tag: Any) -> None:
        """Retag the tensor at index ``i``."""
        self._index(i, self.tensor_count(), "set_tag")
        self._tags[i] = TensorArgType(tag)

    def __len__(self) -> int:
        return self.tensor_count() + self.scalar_count()


# ----------------------------------------------------------------------------------- CallConfig


class RuntimeEnv:
    """Per-run ring sizing: each field unset (0), one int for every ring, or a list per ring."""

    __slots__ = RING_FIELDS

    def __init__(self, **fields: Any) -> None:
        for name in RING_FIELDS:
            object.__setattr__(self, name, 0)
        for k, v in fields.items():
            setattr(self, k, v)

    def __setattr__(self, name: str, value: Any) -> None:
        if name not in RING_FIELDS:
            raise AttributeError(f"RuntimeEnv has no field {name!r}; fields: {', '.join(RING_FIELDS)}")
        object.__setattr__(self, name, list(value) if isinstance(value, list | tuple) else value)

    def as_dict(self) -> dict[str, Any]:
        """The set fields only (a 0 scalar is 'unset')."""
        return {k: getattr(self, k) for k in RING_FIELDS if getattr(self, k) != 0}

    def __repr__(self) -> str:
        return "RuntimeEnv(" + ", ".join(f"{k}={getattr(self, k)!r}" for k in RING_FIELDS) + ")"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RuntimeEnv) and self.as_dict() == other.as_dict()

    __hash__ = None  # type: ignore[assignment]


_CONFIG_FIELDS = ("aicpu_thread_num", "enable_chip_swimlane", "enable_dump_args", "enable_pmu", "enable_dep_gen",
                  "enable_scope_stats", "output_prefix")


class CallConfig:
    """Upstream ``CallConfig``: diagnostics switches, ``output_prefix`` and a ``RuntimeEnv``."""

    def __init__(self, **fields: Any) -> None:
        self.aicpu_thread_num = 0
        self.enable_chip_swimlane = 0
        self.enable_dump_args = 0
        self.enable_pmu = 0
        self.enable_dep_gen = 0
        self.enable_scope_stats = 0
        self.output_prefix = ""
        self.runtime_env = RuntimeEnv()
        for k, v in fields.items():
            if k not in (*_CONFIG_FIELDS, "runtime_env"):
                raise TypeError(f"CallConfig has no field {k!r}")
            setattr(self, k, RuntimeEnv(**v) if k == "runtime_env" and isinstance(v, dict) else v)

    def to_sim(self) -> sim.CallConfig:
        """The simulator's CallConfig for this one (validated); it remembers this facade object."""
        env = self.runtime_env.as_dict() if isinstance(self.runtime_env, RuntimeEnv) else self.runtime_env
        check_runtime_env(env)
        cfg = sim.CallConfig(**{k: getattr(self, k) for k in _CONFIG_FIELDS}, runtime_env=dict(env))
        cfg.validate()
        cfg._compat = self  # type: ignore[attr-defined] - what a nested orchestration function receives
        return cfg

    def validate(self) -> None:
        """Raise if a diagnostic lacks ``output_prefix`` or a ring override breaks its ring's rule."""
        self.to_sim()

    def __repr__(self) -> str:
        parts = [f"{k}={getattr(self, k)!r}" for k in _CONFIG_FIELDS] + [f"runtime_env={self.runtime_env!r}"]
        return "CallConfig(" + ", ".join(parts) + ")"


def _sim_config(config: Any) -> sim.CallConfig | None:
    if config is None:
        return None
    if isinstance(config, CallConfig):
        return config.to_sim()
    if isinstance(config, sim.CallConfig):
        return config
    raise InvalidArgument(f"config must be a CallConfig, got {type(config).__name__}")


def _facade_config(config: Any) -> CallConfig:
    found = getattr(config, "_compat", None)
    return found if isinstance(found, CallConfig) else CallConfig()


# ----------------------------------------------------------------------------------- Python callables


class PythonTarget:
    """A registered Python callable, called as upstream calls it.

    A SUB callable gets ``fn(args)`` with the task's tensors (numpy views) and scalars; an
    orchestration function dispatched to a lower-level Worker gets ``fn(orch, args, config)``
    with the facade orchestrator and the facade CallConfig of the submit.
    """

    def __init__(self, fn: Any) -> None:
        self.fn = fn
        for attr in ("__name__", "__qualname__", "__module__", "__doc__"):
            with contextlib.suppress(AttributeError, TypeError):
                setattr(self, attr, getattr(fn, attr))
        duration = getattr(fn, DURATION_ATTR, None)
        if duration is not None:
            setattr(self, DURATION_ATTR, duration)

    def __call__(self, *args: Any) -> Any:
        if len(args) == 3:
            orch, task_args, config = args
            return self.fn(Orchestrator(orch), task_args, _facade_config(config))
        return self.fn(*args)


def _root_orchestration(fn: Any, config: Any) -> Any:
    def orchestration(orch: Any, args: Any, _cfg: Any) -> Any:
        facade_orch = Orchestrator(orch)
        worker = _FACADES.get(orch._worker)
        if worker is None:
            return fn(facade_orch, args, config if config is not None else CallConfig())
        # While the function builds the run: the orchestrator alloc_shared_tensor uses and the
        # buffers the run's submits name (release_buffer refuses those).
        worker._building.append(facade_orch)
        worker._touched.clear()
        try:
            return fn(facade_orch, args, config if config is not None else CallConfig())
        finally:
            worker._building.pop()

    orchestration.__qualname__ = getattr(fn, "__qualname__", "orchestration")
    return orchestration


# ----------------------------------------------------------------------------------- Orchestrator


class Orchestrator:
    """What an orchestration function receives: upstream's ``Orchestrator`` over the simulator's."""

    __slots__ = ("_o",)

    def __init__(self, o: Any) -> None:
        self._o = o

    @property
    def _worker(self) -> Worker:
        facade = _FACADES.get(self._o._worker)
        if facade is None:
            raise InvalidArgument("this orchestrator belongs to a Worker built outside the facade")
        return facade

    def _note(self, *args_list: Any) -> None:
        """Record the buffers a submit names in its Worker's run being built (see ``release_buffer``)."""
        facade = _FACADES.get(self._o._worker)
        if facade is None or not facade._building:
            return
        for args in args_list:
            for i in range(args.tensor_count() if args is not None else 0):
                buf = getattr(args.tensor(i), "buffer", None)
                if buf is not None:
                    facade._touched.add(id(buf))

    def submit_next_level(self, callable_handle: Any, args: Any, config: Any = None, *, worker: int) -> None:
        self._note(args)
        self._o.submit_next_level(callable_handle, args, _sim_config(config), worker=worker)

    def submit_next_level_group(self, callable_handle: Any, args_list: Any, config: Any = None, *,
                                workers: Any) -> None:
        args_list = list(args_list)
        self._note(*args_list)
        self._o.submit_next_level_group(callable_handle, list(args_list), _sim_config(config), workers=workers)

    def submit_sub(self, callable_handle: Any, args: Any = None) -> None:
        self._note(args)
        self._o.submit_sub(callable_handle, args)

    def submit_sub_group(self, callable_handle: Any, args_list: Any) -> None:
        args_list = list(args_list)
        self._note(*args_list)
        self._o.submit_sub_group(callable_handle, list(args_list))

    def alloc(self, shape: Sequence[int], dtype: Any) -> Buffer:
        return self._o.alloc(shape, dtype)

    def alloc_child_tensor(self, worker_id: int, shapes: Sequence[int], dtype: Any) -> DeviceBuffer:
        return self._worker.alloc_child_tensor(worker_id, shapes, dtype)

    def malloc(self, worker_id: int, size: int) -> DeviceBuffer:
        """Device memory on chip ``worker_id`` -- note the order ``(worker_id, size)``."""
        return self._worker._device_memory("malloc").malloc(worker_id, size, "orch.malloc")

    def free(self, handle: Any) -> None:
        self._worker.free(handle)

    def committed_device_memory(self, worker_id: int) -> int:
        """What the bound Worker's ``committed_device_memory(worker_id)`` reports (upstream's query)."""
        return self._worker.committed_device_memory(int(worker_id))

    def copy_to(self, dst: Any, src: Any) -> None:
        self._worker.copy_to(dst, src)

    def allocate_domain(self, *, name: str, workers: Sequence[int], window_size: int,
                        buffers: Sequence[Any] = ()) -> CommDomainHandle:
        """A communication domain over chips ``workers`` (``docs/comm-domain.md`` §1; :mod:`sim.comm.domain`)."""
        return self._o.allocate_domain(name=name, workers=workers, window_size=window_size, buffers=buffers)

    def release_domain(self, handle: Any) -> None:
        self._o.release_domain(handle)

    def allocate_global_domain(self, *, name: str, members: Sequence[tuple[int, int]], window_size: int,
                               buffers: Sequence[Any] = (), retain_after_run: bool = False) -> GlobalCommDomainHandle:
        """A domain over chips of local and remote L3 nodes (:mod:`sim.comm.global_domain`); L4+ only."""
        return self._o.allocate_global_domain(name=name, members=members, window_size=window_size,
                                              buffers=buffers, retain_after_run=retain_after_run)

    def release_global_domain(self, handle: Any) -> None:
        self._o.release_global_domain(handle)

    def get_global_domain(self, domain_id: int) -> GlobalCommDomainView:
        """On an L3: the committed view of a global domain built by the L4 parent."""
        return self._o.get_global_domain(domain_id)

    def copy_to_global_domain(self, handle: Any, domain_rank: int, data: bytes, *, buffer: str | None = None,
                              offset: int = 0) -> None:
        self._o.copy_to_global_domain(handle, domain_rank, data, buffer=buffer, offset=offset)

    def copy_from_global_domain(self, handle: Any, domain_rank: int, nbytes: int, *, buffer: str | None = None,
                                offset: int = 0) -> bytes:
        return self._o.copy_from_global_domain(handle, domain_rank, nbytes, buffer=buffer, offset=offset)

    def copy_from(self, dst: Any, src: Any) -> None:
        self._worker.copy_from(dst, src)

    def scope_begin(self) -> None:
        self._o.scope_begin()

    def scope_end(self) -> None:
        self._o.scope_end()

    @contextlib.contextmanager
    def scope(self) -> Iterator[Orchestrator]:
        with self._o.scope():
            yield self


# ----------------------------------------------------------------------------------- RunHandle


class RunHandle:
    """What ``Worker.submit`` returns. The simulator runs to completion inside ``submit``."""

    def __init__(self, error: BaseException | None) -> None:
        self._error = error

    def done(self) -> bool:
        return True

    def wait(self, timeout: float | None = None) -> None:
        if self._error is not None:
            raise self._error

    def result(self, timeout: float | None = None) -> None:
        self.wait(timeout)


# ----------------------------------------------------------------------------------- Worker


def _sim_kwargs(level: int, config: dict[str, Any]) -> dict[str, Any]:
    """The keys the simulator models; upstream keeps ``**config`` and reads only what applies."""
    out = {k: v for k, v in config.items() if k in _KNOWN_CONFIG}
    if level == 2:
        out.pop("device_ids", None)
        out.pop("num_sub_workers", None)
    else:
        out.pop("device_id", None)
    if isinstance(out.get("device_ids"), tuple):
        out["device_ids"] = list(out["device_ids"])
    return out


class Worker:
    """Upstream ``Worker(level, **config)`` running on the simulator (see the module docstring)."""

    def __init__(self, level: int, **config: Any) -> None:
        session = current_session()
        self.level = level
        self._config = dict(config)
        self._sim = sim.Worker(level, sim=session.sim_config(), **_sim_kwargs(level, config))
        self._devmem: DeviceMemory | None = None
        self._building: list[Orchestrator] = []  # the orchestrator of the run being built, if any
        self._touched: set[int] = set()  # ids of the buffers that run's submits named
        _FACADES[self._sim] = self
        session.workers.append(self)

    @property
    def sim_worker(self) -> sim.Worker:
        """The simulator Worker behind this one (traces, records)."""
        return self._sim

    def __repr__(self) -> str:
        return f"Worker(level={self.level}) on the simulator"

    # ---------------------------------------------------------------- registration and composition

    def register(self, target: Any, *, workers: list[int] | None = None) -> Any:
        """Register a ChipCallable (through the kernel map), a Python callable or a RemoteCallable."""
        if isinstance(target, ChipCallable):
            target = current_session().kernel_map().resolve(target)
        elif callable(target) and not isinstance(target, ChipKernel) and not _is_remote(target):
            target = PythonTarget(target)
        return self._sim.register(target, workers=workers)

    def unregister(self, handle_or_slot: Any) -> None:
        """Drop a registration by its handle (the simulator issues handles, never bare slot numbers)."""
        self._sim.unregister(handle_or_slot)

    def add_worker(self, worker: Worker) -> int:
        return self._sim.add_worker(worker._sim if isinstance(worker, Worker) else worker)

    def add_remote_worker(self, spec: Any) -> int:
        return self._sim.add_remote_worker(spec)

    def add_mpirun_worker_group(self, spec: Any) -> tuple[int, ...]:
        """The ranks of one ``MpiL3GroupSpec`` as simulated remote L3 nodes (no ``mpirun`` is launched)."""
        return self._sim.add_mpirun_worker_group(spec)

    def accepts_worker_type(self, worker_type: Any) -> bool:
        return self._sim.accepts_worker_type(worker_type)

    # ---------------------------------------------------------------- lifecycle

    def init(self, prewarm_config: Any = None) -> None:
        self._sim.init()

    def close(self) -> None:
        if self._devmem is not None:
            self._devmem.release_all()
        self._sim.close()

    # ---------------------------------------------------------------- execution

    def run(self, callable: Any, args: Any = None, config: Any = None) -> None:
        """Run to completion: a registered chip handle at L2, an orchestration function at L3+."""
        if self.level == 2:
            self._sim.run(callable, args, _sim_config(config))
        else:
            # Anything not callable goes through as is: the simulator rejects it with its own message.
            fn = _root_orchestration(callable, config) if builtins.callable(callable) else callable
            self._sim.run(fn, args, _sim_config(config))

    def submit(self, callable: Any, args: Any = None, config: Any = None) -> RunHandle:
        """Non-blocking upstream; the simulator completes the run before returning its handle."""
        try:
            self.run(callable, args, config)
        except Exception as exc:
            return RunHandle(exc)
        return RunHandle(None)

    @property
    def live_domains(self) -> dict[str, Any]:
        """A snapshot of the live communication domains by name (``docs/comm-domain.md``)."""
        return self._sim.live_domains

    # ---------------------------------------------------------------- memory

    def committed_device_memory(self, worker_id: int = 0) -> int:
        """Bytes of device memory the script holds on chip ``worker_id`` (live allocations only)."""
        if self._devmem is None:
            return 0
        return sum(b.nbytes for b in self._devmem.live() if b.owner_worker_id == worker_id)

    def _device_memory(self, api: str) -> DeviceMemory:
        if self._devmem is None:
            if self._sim._sim is None:
                raise InvalidState(f"{api} before init(): call init() first")
            chips = 1 if self.level == 2 else len(self._config.get("device_ids") or ())
            functional = self._sim.simulation.config.data_mode == "functional"
            self._devmem = DeviceMemory(self._sim._scope or f"l{self.level}", chips, with_data=functional)
        return self._devmem

    def malloc(self, size: int, worker_id: int = 0) -> DeviceBuffer:
        """Device memory on this L2 Worker's chip; at L3+ use ``alloc_child_tensor``."""
        if self.level != 2:
            raise TypeError("worker.malloc is L2-only; at L3+ use worker.alloc_child_tensor(worker_id, ...)")
        return self._device_memory("malloc").malloc(worker_id, size)

    def alloc_child_tensor(self, worker_id: int, shapes: Sequence[int], dtype: Any) -> DeviceBuffer:
        """Device memory on chip child ``worker_id`` sized for ``shapes`` x ``dtype`` (L3)."""
        if self.level < 3:
            raise TypeError("alloc_child_tensor needs an L3 Worker (chip children); at L2 use malloc")
        nbytes = math.prod(int(s) for s in shapes) * as_numpy_dtype(dtype).itemsize
        return self._device_memory("alloc_child_tensor").malloc(worker_id, nbytes, "alloc_child_tensor")

    def free(self, handle: Any) -> None:
        self._device_memory("free").free(handle)

    def _host_side(self, obj: Any, api: str) -> Any:
        obj = as_host(obj)
        if self.level != 2 and not isinstance(obj, Buffer):
            raise TypeError(f"Worker.{api}: an L{self.level} host side must be a Buffer from create_buffer "
                            "(write the payload into buffer.shm.buf); raw host memory is L2-only")
        return obj

    def copy_to(self, dst: Any, src: Any) -> None:
        """Host to device: ``dst`` a device Buffer (or a domain window's buffer), ``src`` the host side
        (any host object at L2)."""
        if isinstance(dst, WindowBuffer):
            copy_window(dst, self._host_side(src, "copy_to"), to_window=True)
            return
        self._device_memory("copy_to").copy_to(dst, self._host_side(src, "copy_to"))

    def copy_from(self, dst: Any, src: Any) -> None:
        """Device to host: ``dst`` the host side (any writable host object at L2), ``src`` a device Buffer
        (or a domain window's buffer)."""
        if isinstance(src, WindowBuffer):
            copy_window(src, self._host_side(dst, "copy_from"), to_window=False)
            return
        self._device_memory("copy_from").copy_from(self._host_side(dst, "copy_from"), src)

    def create_buffer(self, nbytes: int) -> Buffer:
        return self._sim.create_buffer(nbytes)

    def alloc_shared_tensor(self, shapes: Sequence[int], dtype: Any) -> Buffer:
        """Inside an orchestration function: a runtime-managed intermediate of ``shapes`` x ``dtype``
        (``orch.alloc``), reclaimed once its consumers are done; name it with ``.tensor(...)``."""
        if not self._building:
            raise InvalidState("alloc_shared_tensor requires an L3+ orchestration context (call it inside the "
                               "orchestration function of a run)")
        return self._building[-1].alloc(shapes, dtype)

    def release_buffer(self, buffer: Any) -> None:
        """Close a buffer this Worker's ``create_buffer`` made (idempotent). Runs complete before
        ``run`` / ``submit`` return, so the only run that can still name it is the one being built:
        a buffer its submits named so far is refused."""
        if not isinstance(buffer, Buffer):
            raise TypeError(f"release_buffer expects a Buffer from create_buffer, got {type(buffer).__name__}")
        if not buffer.closed and self._building and id(buffer) in self._touched:
            raise RuntimeError(f"release_buffer: {buffer!r} is still referenced by an in-flight run")
        buffer.close()

    def make_tensor_arg(self, tensor: Any, shapes: Sequence[int], dtype: Any, *, strides: Any = None) -> Tensor:
        """Name a host tensor (torch or numpy) as a task tensor over the same memory."""
        arr = as_host(tensor)
        if not isinstance(arr, np.ndarray):
            try:
                arr = np.frombuffer(memoryview(arr).cast("B"), dtype=np.uint8)
            except TypeError:
                raise InvalidArgument(f"make_tensor_arg: {type(tensor).__name__} is not a host tensor") from None
        return self._sim.make_tensor_arg(arr, tuple(shapes), dtype, strides=strides)

    # ---------------------------------------------------------------- remote memory (L4)

    def remote_malloc(self, *, worker: int, nbytes: int) -> Any:
        return self._sim.remote_malloc(worker=worker, nbytes=nbytes)

    def remote_free(self, handle: Any) -> None:
        self._sim.remote_free(handle)

    def remote_copy_to(self, handle: Any, host_ptr: Any, nbytes: int, *, offset: int = 0) -> None:
        self._sim.remote_copy_to(handle, as_host_array(host_ptr), nbytes, offset=offset)

    def remote_copy_from(self, handle: Any, host_ptr: Any, nbytes: int, *, offset: int = 0) -> None:
        self._sim.remote_copy_from(handle, as_host_array(host_ptr), nbytes, offset=offset)

    def remote_export(self, handle: Any, **kwargs: Any) -> Any:
        return self._sim.remote_export(handle, **kwargs)

    def remote_import(self, exported: Any, **kwargs: Any) -> Any:
        return self._sim.remote_import(exported, **kwargs)

    def remote_release_import(self, handle: Any) -> None:
        self._sim.remote_release_import(handle)


def _is_remote(target: Any) -> bool:
    return type(target).__name__ == "RemoteCallable" and type(target).__module__.startswith("sim.")
