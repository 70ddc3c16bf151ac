"""The ``Orchestrator`` an orchestration function receives: the submit API and its checks.

Models the Python facade of upstream ``python/simpler/orchestrator.py`` as documented in
``docs/orchestrator.md`` §1–§4 and ``docs/directed-next-level-scheduling.md`` "Placement
contract": ``submit_next_level(handle, args, config=None, *, worker)``,
``submit_next_level_group(handle, args_list, config=None, *, workers)``,
``submit_sub(handle, args=None)``, ``submit_sub_group(handle, args_list)``,
``alloc(shape, dtype)`` and scopes. Every check runs before anything is submitted, so a
rejected call leaves no slot, TensorMap entry or scope reference behind; among them the
submit-time overlap check of ``docs/buffer-abi.md`` "What a submit checks" → "No overlapping
writes within one task" (:mod:`sim.overlap`), per TaskArgs and never across group members.
"""

from __future__ import annotations

import contextlib
import math
import operator
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from sim.comm.domain import CommDomainHandle
from sim.comm.global_domain import GlobalCommDomainHandle, GlobalCommDomainView
from sim.errors import InvalidArgument, InvalidState, KernelArgumentError, UnknownWorker
from sim.install import check_dispatch
from sim.kernel_spec import ChipKernel, Direction, KernelArgError
from sim.overlap import check_task_writes
from sim.registry import CallableHandle
from sim.task import TaskKind
from sim.task_args import TaskArgs
from sim.tensors import Buffer, normalize_tensor, shape_tuple
from sim.types import CallConfig, as_numpy_dtype

if TYPE_CHECKING:
    from sim.node import Node, RunState
    from sim.registry import Registration
    from sim.worker import Worker


_DEFAULT_CONFIG = CallConfig()  # shared, never mutated: the engine only reads a task's config
_NEXT_LEVEL = TaskKind.NEXT_LEVEL
_SIG = operator.attrgetter("sig")


class Orchestrator:
    """DAG builder handed to an orchestration function; valid only while that function runs."""

    __slots__ = ("_fast_ns", "_node", "_run", "_targets", "_worker")

    def __init__(self, worker: Worker) -> None:
        self._worker = worker
        self._node: Node | None = None
        self._run: RunState | None = None
        self._fast_ns: str | None = None
        self._targets: tuple[tuple[int], ...] = ()

    def _bind(self, node: Node, run: RunState) -> None:
        self._node = node
        self._run = run
        # What the submit hot path needs of the node, fixed since init: the placement of a
        # single on each NEXT_LEVEL worker id, and the namespace a local timing-only NEXT_LEVEL
        # submit resolves in (None when the node has remote workers or runs functionally:
        # those submits take the checked path).
        self._targets = node.nl_targets
        self._fast_ns = None if node.has_remote or node.sim.functional else self._expected_nl_namespace(node)

    def _unbind(self) -> None:
        self._node = None
        self._run = None
        self._fast_ns = None

    def _live(self, api: str) -> Node:
        node = self._node
        if node is None:
            raise InvalidState(f"orch.{api}() called outside the orchestration function it was given to")
        return node

    # ------------------------------------------------------------------ validation helpers

    def _worker_id(self, node: Node, value: Any, argument: str, api: str) -> int:
        if type(value) is int and 0 <= value < len(node.nl_lanes):
            return value
        if isinstance(value, bool):
            raise InvalidArgument(f"{api}: {argument} must be an integer NEXT_LEVEL worker id, got {value!r}")
        try:
            wid = operator.index(value)
        except TypeError:
            raise InvalidArgument(
                f"{api}: {argument} must be an integer NEXT_LEVEL worker id, got {type(value).__name__}") from None
        if wid < 0:
            raise InvalidArgument(f"{api}: {argument} must be a non-negative worker id, got {wid}")
        if wid >= len(node.nl_lanes):
            known = f"0..{len(node.nl_lanes) - 1}" if node.nl_lanes else "none"
            raise UnknownWorker(f"{api}: {argument}={wid} names no NEXT_LEVEL worker of {node.scope} "
                                f"(worker ids: {known})")
        return wid

    def _config(self, config: Any, api: str) -> CallConfig:
        if config is None:
            return _DEFAULT_CONFIG
        if not isinstance(config, CallConfig):
            raise InvalidArgument(f"{api}: config must be a CallConfig, got {type(config).__name__}")
        config.validate()
        return config

    def _member(self, node: Node, reg: Registration, args: Any, api: str, index: str) -> tuple[tuple, float]:
        """Validate one member's TaskArgs; return the member tuple and its modeled duration."""
        if args.__class__ is not TaskArgs and not isinstance(args, TaskArgs):
            raise InvalidArgument(f"{api}: {index}args must be a TaskArgs, got {type(args).__name__}")
        # The task keeps a snapshot: the TaskArgs may change once the submit returns.
        refs = tuple(args._refs)
        # No overlapping writes within one task (sim.overlap): two arguments can share a backing
        # only if two are views (not specs) or one spec is named twice; otherwise nothing to compare.
        if len(refs) > 1 and (args._views > 1 or len(set(refs)) < len(refs)):
            check_task_writes(refs, args._tags, api, index)
        if args._remote and reg.descriptor.namespace.name != "REMOTE_TASK_DISPATCHER":
            raise InvalidArgument(f"{api}: {index}args carry a RemoteTensorRef; remote data is consumed only by a "
                                  f"remote worker (RemoteCallable), local workers reject it")
        functional = node.sim.functional
        if functional:
            for i, ref in enumerate(refs):
                if ref.array is None and not ref.remote:
                    raise InvalidArgument(
                        f"{api}: {index}tensor argument {i} ({ref.source!r}) has no data; functional runs "
                        f"need numpy arrays (use data_mode='timing' for shape-only models)")
        scalars = tuple(args._scalars)
        tags = tuple(args._tags)
        target = reg.target
        if isinstance(target, ChipKernel):
            # The argument counts, signature check and cost depend only on shapes, dtypes and
            # scalars: memoise them per registration. A memo hit was counted and checked when
            # it was stored (a key of signature ids alone never equals a (sigs, scalars) pair).
            memo_key = tuple(map(_SIG, refs))
            if scalars:
                memo_key = (memo_key, tuple(scalars))
            memo = reg.durations.get(memo_key)
            if memo is None:
                values = _kernel_values(target, refs, scalars, functional, api)
                memo = reg.durations[memo_key] = (_kernel_duration(node, target, refs, values, api),)
            elif functional or scalars:
                values = _kernel_values(target, refs, scalars, functional, api)
            else:
                values = refs  # timing-only, tensors only: the values are the refs themselves
            return (refs, scalars, values, tags), memo[0]
        duration = reg.duration_us if reg.duration_us is not None else node.sim.profile.sub["default_task_us"]
        return (refs, scalars, None, tags), duration

    def _members(self, node: Node, reg: Registration, args_list: Sequence[Any], api: str
                 ) -> tuple[list[tuple], list[float], int]:
        """A group's members (see :meth:`_member`), their durations, and their tensor count."""
        members, durations = [], []
        for i, a in enumerate(args_list):
            m, d = self._member(node, reg, a, api, f"member {i} ")
            members.append(m)
            durations.append(d)
        return members, durations, sum(len(m[0]) for m in members)

    def _expected_nl_namespace(self, node: Node) -> str:
        return "LOCAL_CHIP" if node.level <= 3 else "LOCAL_PYTHON"

    # ------------------------------------------------------------------ submit API

    def submit_next_level(self, callable_handle: Any, args: Any, config: Any = None, *, worker: Any) -> None:
        """Submit one NEXT_LEVEL task to exactly the worker ``worker``."""
        ns = self._fast_ns
        # The hot path: a live, unchanged handle of this Worker, an in-range int worker id, no
        # config, and a timing-only TaskArgs of local tensors, no two of which can share a backing
        # (see ``_member``), whose signature a submit already checked (its duration is memoised).
        # Every check passes, so the task goes straight to the engine with the same member,
        # duration and placement the checked path would give.
        if (ns is not None and config is None and worker.__class__ is int
                and callable_handle.__class__ is CallableHandle and args.__class__ is TaskArgs):
            registry = self._worker._registry
            reg = registry.by_handle.get(callable_handle)
            refs = args._refs
            if (reg is not None and not callable_handle._reassigned and 0 <= worker < len(self._targets)
                    and not registry.uncertain and not args._remote and not args._scalars
                    and callable_handle.target_namespace == ns
                    and args._views < 2 and (len(refs) < 2 or len(set(refs)) == len(refs))):
                # Only a kernel's checked signatures are memoised, so a hit means a kernel call.
                durations = reg.durations.get(tuple(map(_SIG, refs)))
                if durations is not None:
                    refs = tuple(refs)  # the task keeps a snapshot, as ``_member`` does
                    self._node.submit(_NEXT_LEVEL, reg, ((refs, (), refs, tuple(args._tags)),),
                                      self._targets[worker], False, _DEFAULT_CONFIG, durations, len(refs))
                    return
        self._submit_next_level_checked(callable_handle, args, config, worker)

    def _submit_next_level_checked(self, callable_handle: Any, args: Any, config: Any, worker: Any) -> None:
        api = "submit_next_level"
        node = self._live(api)
        wid = self._worker_id(node, worker, "worker", api)
        rs = self._worker._remote if node.has_remote else None  # the remote layer's (sim.plugins)
        eps = rs.placement(node, (wid,), api) if rs is not None else None
        ns = "REMOTE_TASK_DISPATCHER" if eps else self._expected_nl_namespace(node)
        registry = self._worker._registry
        reg = registry.resolve(callable_handle, api=api, namespace=ns)
        if registry.uncertain:
            check_dispatch(registry, reg, (node.nl_lanes[wid].scope,), api)
        if eps:
            rs.check_submit(reg, eps, (args,), api)
        cfg = self._config(config, api)
        member, duration = self._member(node, reg, args, api, "")
        if reg.collective:
            self._check_collective(node, reg, (member,), (wid,), api)
        task = node.submit(TaskKind.NEXT_LEVEL, reg, (member,), (wid,), False, cfg, (duration,), len(member[0]))
        if eps:
            rs.submitted(eps, task, bool(args._remote))

    def submit_next_level_group(self, callable_handle: Any, args_list: Any, config: Any = None, *,
                                workers: Any) -> None:
        """Submit one group DAG node: member i runs ``args_list[i]`` on ``workers[i]``."""
        api = "submit_next_level_group"
        node = self._live(api)
        if not isinstance(args_list, Sequence) or isinstance(args_list, str | bytes) or not args_list:
            raise InvalidArgument(f"{api}: args_list must be a non-empty list of TaskArgs")
        if not isinstance(workers, Sequence) or isinstance(workers, str | bytes):
            raise InvalidArgument(f"{api}: workers must be a list of worker ids")
        wids = [self._worker_id(node, w, "workers entries", api) for w in workers]
        if len(wids) != len(args_list):
            raise InvalidArgument(f"{api}: workers has {len(wids)} entries but args_list has {len(args_list)}")
        if len(set(wids)) != len(wids):
            raise InvalidArgument(f"{api}: workers must not repeat a worker id, got {wids}")
        rs = self._worker._remote if node.has_remote else None  # the remote layer's (sim.plugins)
        eps = rs.placement(node, wids, api) if rs is not None else None
        ns = "REMOTE_TASK_DISPATCHER" if eps else self._expected_nl_namespace(node)
        registry = self._worker._registry
        reg = registry.resolve(callable_handle, api=api, namespace=ns)
        if registry.uncertain:
            check_dispatch(registry, reg, [node.nl_lanes[w].scope for w in wids], api)
        if eps:
            rs.check_submit(reg, eps, args_list, api)
        cfg = self._config(config, api)
        members, durations, ntensors = self._members(node, reg, args_list, api)
        if reg.collective:
            self._check_collective(node, reg, members, wids, api)
        task = node.submit(TaskKind.NEXT_LEVEL, reg, members, tuple(wids), True, cfg, durations, ntensors)
        if eps:
            rs.submitted(eps, task, any(a._remote for a in args_list))

    @staticmethod
    def _check_collective(node: Node, reg: Registration, members: Sequence[tuple], wids: Sequence[int],
                          api: str) -> None:
        """A collective's ``device_ctx`` must name a live domain rank owned by the chip it goes to."""
        eng = node.sim.comm
        if eng is None:
            raise KernelArgumentError(f"{api}: {reg.name} is a collective kernel, but no communication domain "
                                      f"was ever allocated (orch.allocate_domain)")
        for m, w in zip(members, wids, strict=True):
            eng.check_submit(reg.target, node, m[2], w, api)

    # ------------------------------------------------------------------ communication domains

    def allocate_domain(self, *, name: Any, workers: Any, window_size: Any, buffers: Any = ()) -> CommDomainHandle:
        """Allocate a communication domain over chips ``workers`` (``docs/comm-domain.md`` §1).

        Valid only inside the orchestration function of an L3+ Worker with chips. Returns a
        :class:`~sim.comm.domain.CommDomainHandle` (a context manager); see :mod:`sim.comm.domain`
        for the checks, the rank order and the lifetime.
        """
        self._live("allocate_domain")
        assert self._run is not None
        return self._worker._domain_table().allocate(self._run, name, workers, window_size, buffers)

    def release_domain(self, handle: Any) -> None:
        """Release a domain; the same as ``handle.release()``."""
        if not isinstance(handle, CommDomainHandle):
            raise InvalidArgument(f"release_domain: expected a CommDomainHandle, got {type(handle).__name__}")
        handle.release()

    # ------------------------------------------------------------------ Global CommDomains (L4+)

    def allocate_global_domain(self, *, name: Any, members: Any, window_size: Any, buffers: Any = (),
                               retain_after_run: Any = False) -> GlobalCommDomainHandle:
        """A domain over chips of several L3 nodes (``docs/comm-domain.md`` "Global CommDomain across local
        and remote L3 nodes"): ``members`` are ``(l3_worker_id, local_l2_worker_id)`` pairs in rank order.
        See :mod:`sim.comm.global_domain` for the checks, the transaction and the lifetime."""
        api = "allocate_global_domain"
        self._live(api)
        assert self._run is not None
        return self._worker._global_domains(api).allocate(self._run, name, members, window_size, buffers,
                                                          retain_after_run)

    def release_global_domain(self, handle: Any) -> None:
        """Release a global domain; the same as ``handle.release()``."""
        if not isinstance(handle, GlobalCommDomainHandle):
            raise InvalidArgument(f"release_global_domain: expected a GlobalCommDomainHandle, got "
                                  f"{type(handle).__name__}")
        handle.release()

    def get_global_domain(self, domain_id: Any) -> GlobalCommDomainView:
        """On an L3: the committed view of global domain ``domain_id`` (index it by local chip id)."""
        api = "get_global_domain"
        self._live(api)
        return self._worker._global_participant(api).view(domain_id)

    def copy_to_global_domain(self, handle: Any, domain_rank: Any, data: Any, *, buffer: Any = None,
                              offset: Any = 0) -> None:
        """Write ``data`` into rank ``domain_rank``'s window: at ``offset`` in ``buffer``, or in the whole window."""
        api = "copy_to_global_domain"
        self._live(api)
        self._worker._global_domains(api).copy_to(handle, domain_rank, data, buffer, offset)

    def copy_from_global_domain(self, handle: Any, domain_rank: Any, nbytes: Any, *, buffer: Any = None,
                                offset: Any = 0) -> bytes:
        """Read ``nbytes`` from rank ``domain_rank``'s window (``buffer``-relative when a buffer is named)."""
        api = "copy_from_global_domain"
        self._live(api)
        return self._worker._global_domains(api).copy_from(handle, domain_rank, nbytes, buffer, offset)

    def submit_sub(self, callable_handle: Any, args: Any = None) -> None:
        """Submit one SUB task; any idle SUB worker runs it."""
        api = "submit_sub"
        node = self._live(api)
        if not node.sub_lanes:
            raise InvalidArgument(f"{api}: {node.scope} has no SUB workers (num_sub_workers=0)")
        registry = self._worker._registry
        reg = registry.resolve(callable_handle, api=api, namespace="LOCAL_PYTHON")
        if registry.uncertain:
            check_dispatch(registry, reg, [lane.scope for lane in node.sub_lanes], api)
        member, duration = self._member(node, reg, TaskArgs() if args is None else args, api, "")
        node.submit(TaskKind.SUB, reg, (member,), (), False, None, (duration,), len(member[0]))

    def submit_sub_group(self, callable_handle: Any, args_list: Any) -> None:
        """Submit a SUB group: one member per TaskArgs, each on a distinct idle SUB worker."""
        api = "submit_sub_group"
        node = self._live(api)
        if not isinstance(args_list, Sequence) or isinstance(args_list, str | bytes) or not args_list:
            raise InvalidArgument(f"{api}: args_list must be a non-empty list of TaskArgs")
        if len(args_list) > len(node.sub_lanes):
            raise InvalidArgument(f"{api}: {len(args_list)} members but {node.scope} has only "
                                  f"{len(node.sub_lanes)} SUB workers")
        registry = self._worker._registry
        reg = registry.resolve(callable_handle, api=api, namespace="LOCAL_PYTHON")
        if registry.uncertain:
            check_dispatch(registry, reg, [lane.scope for lane in node.sub_lanes], api)
        members, durations, ntensors = self._members(node, reg, args_list, api)
        node.submit(TaskKind.SUB, reg, members, (), True, None, durations, ntensors)

    def alloc(self, shape: Sequence[int], dtype: Any) -> Buffer:
        """A runtime-owned intermediate buffer from the heap ring (``docs/orchestrator.md`` §8b).

        Name it in task args with ``buffer.tensor(shape, dtype)``; tag it OUTPUT/INOUT on the
        producer and INPUT on the consumer. It is reclaimed when its consumers are done and
        its scope has ended.
        """
        node = self._live("alloc")
        dims = shape_tuple(shape, "alloc")
        dt = as_numpy_dtype(dtype)
        nbytes = math.prod(dims) * dt.itemsize
        node.check_heap_request(nbytes, f"alloc({dims}, {dt.name})")
        buf = Buffer(nbytes, owner=node.scope, with_data=node.sim.functional)
        # The slab's dependency key is the one any tensor over it will carry.
        key = normalize_tensor(buf.tensor(dims, dt), 0).key
        node.alloc(key, nbytes)
        return buf

    def scope_begin(self) -> None:
        """Open a nested scope; prefer ``with orch.scope():``."""
        self._live("scope_begin").scope_begin()

    def scope_end(self) -> None:
        """End the innermost scope begun with ``scope_begin()``."""
        self._live("scope_end").scope_end()

    @contextlib.contextmanager
    def scope(self) -> Iterator[Orchestrator]:
        """A nested scope for the ``with`` block: its tasks use a deeper heap ring."""
        node = self._live("scope")
        node.scope_begin()
        try:
            yield self
        finally:
            node.scope_end()


_PLANS: dict[int, tuple[tuple[bool, ...], int, int]] = {}


def _kernel_plan(kernel: ChipKernel) -> tuple[tuple[bool, ...], int, int]:
    """(is-scalar flag per param, tensor count, scalar count) of a kernel's signature, cached."""
    plan = _PLANS.get(id(kernel))
    if plan is None:
        flags = tuple(p.direction is Direction.SCALAR for p in kernel.params)
        plan = _PLANS[id(kernel)] = (flags, flags.count(False), flags.count(True))
    return plan


def _kernel_duration(node: Node, kernel: ChipKernel, refs: Sequence[Any], values: Sequence[Any], api: str) -> float:
    """Check one call's arguments against the kernel and model its duration on a chip."""
    try:
        kernel.check(values)
        cost = kernel.cost(values)
    except KernelArgError as exc:
        raise KernelArgumentError(f"{api}: {exc}") from None
    dtype = refs[0].dtype if refs else "float32"
    prof = node.sim.profile
    return prof.chip["run_launch_us"] + prof.kernel_us(cost.flops, cost.bytes_moved, dtype)


def _kernel_values(kernel: ChipKernel, refs: Sequence[Any], scalars: Sequence[Any], functional: bool,
                   api: str) -> Sequence[Any]:
    """Positional kernel arguments: tensors and scalars assigned to params in signature order."""
    flags, n_tensor, n_scalar = _kernel_plan(kernel)
    if len(refs) != n_tensor or len(scalars) != n_scalar:
        raise KernelArgumentError(
            f"{api}: kernel {kernel.name!r} takes {n_tensor} tensors and {n_scalar} scalars "
            f"({', '.join(p.name for p in kernel.params)}), got {len(refs)} tensors and {len(scalars)} scalars")
    if not n_scalar:
        return [r.array for r in refs] if functional else refs
    values: list = []
    ti = si = 0
    for is_scalar in flags:
        if is_scalar:
            values.append(scalars[si])
            si += 1
        else:
            ref = refs[ti]
            values.append(ref.array if functional else ref)
            ti += 1
    return values
