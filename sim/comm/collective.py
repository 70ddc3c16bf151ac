"""Collective kernels: chip tasks that meet their domain peers, exchange data over links, and finish.

Upstream runs a collective as one chip callable per rank whose AIV kernel publishes into the windows,
signals its peers, waits for theirs and then reads (``docs/comm-domain.md`` §1; the four-phase
kernels of ``examples/workers/l3/allreduce`` and ``ffn_tp_parallel``). No rank can finish before
every rank of the domain has published, and a rank that never arrives leaves the others waiting.

The simulator models exactly that rendezvous:

- A :class:`CollectiveKernel` is a :class:`~sim.kernel_spec.ChipKernel` whose ``collective`` flag
  routes its launches here instead of the plain lane timing. One of its scalars is the rank's
  ``device_ctx`` (:class:`sim.comm.domain.ChipDomainContext`), which names the domain and the rank.
- Each rank's k-th collective on a domain joins the domain's k-th :class:`Rendezvous`. A rank is
  *ready* when its local work is done (dispatch plus the kernel's own roofline time).
- When the last rank is ready, the exchange starts at the latest ready time and each rank's transfer
  is timed by :class:`sim.comm.links.LinkModel`; each rank's task ends when its receive side does.
  In functional runs the data is computed then, for all ranks at once, by the kernel's ``op``: a
  kernel over rank-stacked tensors (the reference collectives' convention, axis 0 = rank), so the
  numbers a collective delivers are real and checkable against numpy.
- A *one-sided* collective (``sync="onesided"``: a TLOAD of peer windows, as the Global
  CommDomain examples' kernels do) waits for nobody: when the rank is ready it reads the same
  window slices of every peer as they are then, computes its own output and pays its own
  transfer. Its bound tensors must be window buffers, since that is all a peer can read.
- Fault points (:mod:`sim.faultpoints`): ``domain_member_crash`` -- the rank's chip dies as it
  enters the collective: its task fails, it never publishes, and its peers wait (the run hangs, as
  upstream's signal waits do); ``domain_link_cut`` -- a rank's link fails during the exchange: every
  rank of that collective fails with ENDPOINT_FAILURE naming the rank and link.

A rank waiting for peers keeps its chip busy, as a spinning kernel does; collectives submitted one
rank at a time can therefore deadlock exactly as they would on devices.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from heapq import heappush
from typing import TYPE_CHECKING, Any

import numpy as np
from simpy.events import NORMAL

from sim.comm.domain import _WINDOW_ALIGN, _WINDOW_BASE, CommBufferSpec, Domain, WindowBuffer
from sim.comm.links import LinkModel
from sim.errors import ErrorClass, KernelArgumentError
from sim.kernel_spec import ChipKernel, Direction, KernelArgError
from sim.trace import EventKind

if TYPE_CHECKING:
    from sim.lanes import Lane
    from sim.node import Node
    from sim.simulation import Simulation
    from sim.task import Task

#: How many bytes each rank receives from its peers, by traffic pattern, given the rank's payload P
#: (the bytes of the collective's first tensor) and n ranks.
TRAFFIC = {
    # every rank reads every peer's whole payload (one-phase mesh all-reduce, all-gather, TLOAD of peers)
    "mesh": lambda p, n: p * (n - 1),
    # every rank receives one n-th of its payload size from each peer (all-to-all, reduce-scatter)
    "alltoall": lambda p, n: p * (n - 1) / n,
    # no peer data (a collective that only synchronises)
    "barrier": lambda p, n: 0.0,
}


#: How a collective's ranks synchronise: all wait for all, or each reads its peers' windows at once.
SYNC = ("rendezvous", "onesided")


@dataclass(frozen=True)
class _Spec:
    """A shape/dtype stand-in for a rank-stacked tensor (timing-only checks and costs)."""

    shape: tuple[int, ...]
    dtype: Any


@dataclass(frozen=True)
class _Cost:
    flops: float
    bytes_moved: float


@dataclass(frozen=True)
class CollectiveParam:
    """One parameter of a collective callable's signature."""

    name: str
    direction: Direction


class CollectiveKernel(ChipKernel):
    """A chip callable that runs as one rank of a collective over a communication domain.

    - ``params``: the callable's signature, in order (each with ``name`` and ``direction``);
    - ``op``: a chip kernel over rank-stacked tensors; ``bind`` lists, for each of ``op``'s tensor
      params in order, the index of the callable param that feeds it (the rank's slice);
    - ``ctx``: the index of the scalar param carrying the rank's ``device_ctx``;
    - ``traffic``: a key of :data:`TRAFFIC`, how many bytes each rank receives;
    - ``sync``: ``"rendezvous"`` (every rank waits for all) or ``"onesided"`` (reads peers' windows
      without waiting).
    """

    __slots__ = ("bind", "ctx", "name", "op", "params", "sync", "tensor_index", "traffic")
    collective = True

    def __init__(self, name: str, params: Sequence[Any], op: ChipKernel, bind: Sequence[int], ctx: int,
                 traffic: str = "mesh", sync: str = "rendezvous") -> None:
        self.name = name
        if sync not in SYNC:
            raise ValueError(f"collective {name!r}: sync must be one of {list(SYNC)}, got {sync!r}")
        self.sync = sync
        self.params = tuple(params)
        self.op = op
        self.bind = tuple(bind)
        self.ctx = ctx
        if traffic not in TRAFFIC:
            raise ValueError(f"collective {name!r}: traffic must be one of {sorted(TRAFFIC)}, got {traffic!r}")
        self.traffic = traffic
        op_tensors = [p for p in op.params if p.direction.is_tensor]
        if len(op_tensors) != len(self.bind):
            raise ValueError(f"collective {name!r}: {op.name!r} has {len(op_tensors)} tensor params, "
                             f"bind names {len(self.bind)}")
        for i in self.bind:
            if not 0 <= i < len(self.params) or not self.params[i].direction.is_tensor:
                raise ValueError(f"collective {name!r}: bind index {i} is not a tensor param of the callable")
        if not 0 <= ctx < len(self.params) or self.params[ctx].direction is not Direction.SCALAR:
            raise ValueError(f"collective {name!r}: ctx index {ctx} is not a scalar param of the callable")
        tensors = [i for i, p in enumerate(self.params) if p.direction.is_tensor]
        self.tensor_index = {i: t for t, i in enumerate(tensors)}  # param index -> position among the tensors

    def check(self, values: Sequence[Any]) -> None:
        if len(values) != len(self.params):
            raise KernelArgError(f"{self.name} takes {len(self.params)} arguments, got {len(values)}")
        ctx = values[self.ctx]
        if isinstance(ctx, bool) or not isinstance(ctx, int | np.integer) or ctx == 0:
            raise KernelArgError(f"{self.name}: argument {self.params[self.ctx].name!r} must be a domain's "
                                 f"device_ctx (a non-zero int), got {ctx!r}")

    def stacked(self, values_by_rank: Sequence[Sequence[Any]]) -> list[Any]:
        """The op's tensor arguments over all ranks, stacked on axis 0 (specs when not arrays)."""
        out = []
        for i in self.bind:
            vals = [v[i] for v in values_by_rank]
            if all(isinstance(v, np.ndarray) for v in vals):
                out.append(np.stack(vals))
            else:
                out.append(_Spec((len(vals), *tuple(vals[0].shape)), vals[0].dtype))
        return out

    def cost(self, values: Sequence[Any]) -> _Cost:
        """One rank's local work: the op's cost over a stack of this rank's arguments alone."""
        c = self.op.cost([_Spec((1, *tuple(values[i].shape)), values[i].dtype) for i in self.bind])
        return _Cost(c.flops, c.bytes_moved)

    def payload(self, values: Sequence[Any]) -> float:
        v = values[self.bind[0]]
        return float(math.prod(v.shape) * np.dtype(v.dtype).itemsize)

    def run(self, values: Sequence[Any]) -> None:  # pragma: no cover - the engine runs it for all ranks
        raise RuntimeError(f"{self.name} is a collective: it runs through its domain's rendezvous")


@dataclass
class _Arrival:
    lane: Lane
    task: Task
    member: int
    start: float
    ready: float


@dataclass
class Rendezvous:
    """The k-th collective of one domain: who has arrived, and with what."""

    seq: int
    size: int
    kernel: CollectiveKernel
    arrivals: dict[int, _Arrival] = field(default_factory=dict)

    def missing(self) -> list[int]:
        return [r for r in range(self.size) if r not in self.arrivals]


class CommEngine:
    """The domains of one Simulation: their contexts, collectives in flight and link occupancy."""

    def __init__(self, sim: Simulation) -> None:
        self.sim = sim
        self.links = LinkModel(sim.profile)
        self.contexts: dict[int, tuple[Domain, int]] = {}
        self.domains: dict[int, Domain] = {}
        self._next_alloc = 1
        self._next_window = _WINDOW_BASE

    # ------------------------------------------------------------------ domains

    def window_base(self, nbytes: int) -> int:
        base = self._next_window
        self._next_window += -(-nbytes // _WINDOW_ALIGN) * _WINDOW_ALIGN + _WINDOW_ALIGN
        return base

    def new_domain(self, name: str, members: tuple[tuple[Node, int], ...], window_size: int,
                   specs: Sequence[CommBufferSpec], windows: Sequence[Any] | None = None) -> Domain:
        """A domain over ``members``; ``windows`` (one per rank) when the members exported their own."""
        aid = self._next_alloc
        self._next_alloc += 1
        d = Domain(self, aid, name, members, window_size, specs, self.sim.functional, windows)
        self.domains[aid] = d
        for rank, ctx in enumerate(d.contexts):
            self.contexts[ctx.device_ctx] = (d, rank)
        return d

    def forget(self, domain: Domain) -> None:
        self.domains.pop(domain.allocation_id, None)
        for ctx in domain.contexts:
            self.contexts.pop(ctx.device_ctx, None)

    def resolve(self, kernel: CollectiveKernel, values: Sequence[Any], api: str) -> tuple[Domain, int]:
        """The (domain, rank) a collective call's ``device_ctx`` names; KernelArgumentError if none."""
        ctx = int(values[kernel.ctx])
        hit = self.contexts.get(ctx)
        if hit is None:
            raise KernelArgumentError(f"{api}: {kernel.name}: device_ctx 0x{ctx:x} names no live communication "
                                      f"domain (never allocated, or freed after its run)")
        return hit

    def check_submit(self, kernel: CollectiveKernel, node: Node, values: Sequence[Any], target: int | None,
                     api: str) -> None:
        """Submit-time checks: the context is live, and the task goes to the chip that owns that rank."""
        domain, rank = self.resolve(kernel, values, api)
        owner, chip = domain.members[rank]
        if target is not None and (owner is not node or chip != target):
            raise KernelArgumentError(f"{api}: {kernel.name}: device_ctx of domain {domain.name!r} rank {rank} "
                                      f"belongs to {owner.scope}.chip{chip}, but the task goes to "
                                      f"{node.scope}.chip{target}")

    # ------------------------------------------------------------------ the rendezvous

    def arrive(self, lane: Lane, task: Task, member: int, start: float, ready: float) -> None:
        """One rank of a collective started on ``lane`` at ``start`` (``Lane.launch`` timed and traced
        it) and has done its local work at ``ready``; its completion is scheduled here."""
        kernel: CollectiveKernel = task.callable.target
        values = task.members[member][2]
        name = task._name or task.name
        hit = self.contexts.get(int(values[kernel.ctx]))
        if hit is None:
            self._finish(lane, start, f"kernel {kernel.name}: its domain was freed before it ran",
                         ErrorClass.INVALID_STATE.value)
            return
        domain, rank = hit
        if lane.points is not None and lane.points.fires("domain_member_crash", lane.scope, name) is not None:
            # The chip dies as it enters: it never publishes, so its peers keep waiting.
            domain.seq[rank] += 1
            self._finish(lane, start, f"chip {lane.scope} crashed in collective {kernel.name} on domain "
                                      f"{domain.name!r} (rank {rank})", ErrorClass.TASK_FAILURE.value)
            return
        if kernel.sync == "onesided":
            self._one_sided(lane, task, member, ready, domain, rank)
            return
        k = domain.seq[rank]
        domain.seq[rank] = k + 1
        rv = domain.pending.get(k)
        if rv is None:
            rv = domain.pending[k] = Rendezvous(k, domain.size, kernel)
        rv.arrivals[rank] = _Arrival(lane, task, member, start, ready)
        if len(rv.arrivals) == domain.size:
            del domain.pending[k]
            self._complete(domain, rv)

    def _complete(self, domain: Domain, rv: Rendezvous) -> None:
        n = domain.size
        order = [rv.arrivals[r] for r in range(n)]
        kernel = rv.kernel
        t0 = max(a.ready for a in order)
        chips = [domain.scope_of(r) for r in range(n)]
        nodes = [domain.members[r][0].scope for r in range(n)]
        payloads = [kernel.payload(a.task.members[a.member][2]) for a in order]
        traffic = TRAFFIC[kernel.traffic]
        transfers = self.links.exchange(t0, chips, nodes, [traffic(p, n) for p in payloads])
        error: str | None = None
        cls: str | None = None
        for r, a in enumerate(order):
            pts = a.lane.points
            if pts is not None and pts.fires("domain_link_cut", a.lane.scope, a.task._name or a.task.name):
                link = self.sim.profile.comm["inter_node_link" if transfers[r].inter_bytes else "intra_node_link"]
                error = (f"collective {kernel.name} on domain {domain.name!r}: the {link} link of rank {r} "
                         f"({chips[r]}) was cut during the exchange")
                cls = ErrorClass.ENDPOINT_FAILURE.value
                break
        if error is None and self.sim.functional:
            error = self._compute(domain, rv, order)
            cls = ErrorClass.TASK_FAILURE.value if error else None
        tr = self.sim.trace
        if tr.enabled:
            tr.add(t0, EventKind.CONTROL, domain.members[0][0].scope, f"domain {domain.name}",
                   f"{kernel.name}#{rv.seq} ranks={n} exchange")
        for r, a in enumerate(order):
            self._finish(a.lane, transfers[r].end, error, cls)

    def _one_sided(self, lane: Lane, task: Task, member: int, ready: float, domain: Domain, rank: int) -> None:
        """One rank reads every peer's copy of its window slices now, computes its own output, and ends."""
        kernel: CollectiveKernel = task.callable.target
        n = domain.size
        refs, _scalars, values, _tags = task.members[member]
        slices = []  # per bound param: (buffer name, byte offset, shape, dtype)
        for i in kernel.bind:
            src = refs[kernel.tensor_index[i]].source
            buf = getattr(src, "buffer", None)
            if not isinstance(buf, WindowBuffer) or buf.domain is not domain:
                self._finish(lane, ready, f"one-sided collective {kernel.name}: argument {kernel.params[i].name!r} "
                                          f"is not a window buffer of domain {domain.name!r}, so no peer can read it",
                             ErrorClass.TASK_FAILURE.value)
                return
            slices.append((buf.name, src.byte_offset, tuple(src.shape), np.dtype(src.dtype)))
        chips = [domain.scope_of(r) for r in range(n)]
        nodes = [domain.members[r][0].scope for r in range(n)]
        bytes_in = [TRAFFIC[kernel.traffic](kernel.payload(values), n) if r == rank else 0.0 for r in range(n)]
        end = self.links.exchange(ready, chips, nodes, bytes_in)[rank].end
        error = cls = None
        pts = lane.points
        if pts is not None and pts.fires("domain_link_cut", lane.scope, task._name or task.name):
            error = (f"collective {kernel.name} on domain {domain.name!r}: the link of rank {rank} ({chips[rank]}) "
                     f"was cut during its read")
            cls = ErrorClass.ENDPOINT_FAILURE.value
        elif self.sim.functional:
            stacked = []
            for name, off, shape, dt in slices:
                count = int(math.prod(shape))
                rows = [domain.contexts[r].buffers[name].array[off:off + count * dt.itemsize].view(dt).reshape(shape)
                        for r in range(n)]
                stacked.append(np.stack(rows))
            # only this rank's own slice is written: a one-sided read writes nothing of its peers'
            error = _run_stacked(kernel, domain, stacked, {rank: values})
            cls = ErrorClass.TASK_FAILURE.value if error else None
        self._finish(lane, end, error, cls)

    def _compute(self, domain: Domain, rv: Rendezvous, order: Sequence[_Arrival]) -> str | None:
        values = [a.task.members[a.member][2] for a in order]
        return _run_stacked(rv.kernel, domain, rv.kernel.stacked(values), dict(enumerate(values)))

    def _finish(self, lane: Lane, end: float, error: str | None, cls: str | None) -> None:
        """Deliver one rank's completion at ``end``, through the lane's own completion event."""
        lane.end = end
        lane.coll_result = (error, cls)
        ev = lane.completion
        ev.callbacks = ev.armed
        env = lane.env
        now = env._now
        heappush(env._queue, (now + (max(end, now) + lane.c_complete - now), NORMAL, next(env._eid), ev))

    def waits(self) -> list[str]:
        """What collectives are still waiting, and for which ranks (for a hang's message)."""
        out = []
        for aid in sorted(self.domains):
            d = self.domains[aid]
            for k in sorted(d.pending):
                rv = d.pending[k]
                out.append(f"{rv.kernel.name}#{k} on domain {d.name!r} waits for rank(s) {rv.missing()} "
                           f"({', '.join(d.scope_of(r) for r in rv.missing())})")
        return out


def _run_stacked(kernel: CollectiveKernel, domain: Domain, stacked: list[Any],
                 outputs: dict[int, Sequence[Any]]) -> str | None:
    """Run the op over rank-stacked arguments and copy the rows it wrote back to the ranks in
    ``outputs`` (rank -> that rank's kernel values); the error message if the op raised."""
    try:
        kernel.op.check(stacked)
        kernel.op.run(stacked)
    except Exception as exc:  # a kernel fault fails the ranks' tasks, not the simulator
        return f"collective {kernel.name} on domain {domain.name!r} raised {type(exc).__name__}: {exc}"
    op_dirs = [p.direction for p in kernel.op.params if p.direction.is_tensor]
    for j, (i, d) in enumerate(zip(kernel.bind, op_dirs, strict=True)):
        if d.writes:
            for r, v in outputs.items():
                v[i][...] = stacked[j][r]
    return None


def engine(sim: Simulation) -> CommEngine:
    """The Simulation's CommEngine, made on first use."""
    eng = sim.comm
    if eng is None:
        eng = sim.comm = CommEngine(sim)
    return eng
