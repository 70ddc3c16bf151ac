"""Communication domains: symmetric windows over a subset of one Worker's chips.

Models upstream ``docs/comm-domain.md`` §1 "API", §2 "Lifetime model" and §3 "Lazy base
communicator", and the request checks of ``python/simpler/worker.py``
(``_validate_domain_allocation``):

- ``orch.allocate_domain(name=, workers=, window_size=, buffers=)`` is valid only while a run's
  graph is being built, on an L3+ Worker. ``workers`` is a non-empty, duplicate-free subset of the
  chip worker ids (``[0, len(device_ids))``); their order fixes the dense domain ranks. Buffers
  (:class:`CommBufferSpec`) are carved from each rank's window in declaration order and must fit
  in ``window_size``; names must be unique, and so must the domain name among live domains. Every
  check runs before anything is allocated, so a refused request leaves nothing behind.
- The handle (:class:`CommDomainHandle`) is *live*, then *released* (``release()`` or ``with``
  exit: indexing raises, the handle must not reach a new submit), then *freed* after the owning
  run's completion fence, when no task that captured the window can still touch it. Domains the
  orchestration forgot are swept at the same fence, newest first.
- The first allocation of a Worker pays the base communicator's set-up once; each allocation
  pays its own window handshake; both are charged on the orchestrator's timeline
  (``[comm]`` in the profile).
- Windows are zero-filled when they become reachable (``docs/comm-domain.md`` §4).

Each rank's :class:`ChipDomainContext` carries ``device_ctx``: a non-zero handle the kernels
receive as a scalar. The simulator resolves it to (domain, rank) in :mod:`sim.comm.collective`
when a collective kernel runs; a handle of a freed domain is refused there.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from sim.device_memory import DeviceBuffer, host_bytes
from sim.errors import DomainReleased, InvalidArgument, NotADomainMember
from sim.trace import EventKind

if TYPE_CHECKING:
    from sim.comm.collective import CommEngine, Rendezvous
    from sim.node import Node, RunState

#: Where windows and contexts live in the simulated device address space (never 0: NULL is failure).
_WINDOW_BASE = 0x6000_0000_0000
_WINDOW_ALIGN = 4096
_CTX_BASE = 0x7000_0000_0000


@dataclass(frozen=True)
class CommBufferSpec:
    """A named slice of every rank's window (upstream ``simpler.task_interface.CommBufferSpec``)."""

    name: str
    dtype: str
    count: int
    nbytes: int
    load_from_host: bool = False
    store_to_host: bool = False


class WindowBuffer(DeviceBuffer):
    """One named slice of one rank's window: a device buffer over the window's bytes."""

    __slots__ = ("domain", "name", "rank")

    def __init__(self, window: np.ndarray | None, offset: int, nbytes: int, *, base: int, chip: int, owner: str,
                 domain: Domain, rank: int, name: str = "") -> None:
        super().__init__(nbytes, base=base, owner_worker_id=chip, owner=owner, with_data=False)
        if window is not None:
            self.array = window[offset:offset + nbytes]
            self.shm.buf = memoryview(self.array)
        self.domain = domain
        self.rank = rank
        self.name = name  # the CommBufferSpec it was carved for: the same slice of every rank's window

    def __repr__(self) -> str:
        return (f"WindowBuffer(domain={self.domain.name!r}, rank={self.rank}, base=0x{self.base:x}, "
                f"nbytes={self.nbytes})")


@dataclass
class ChipDomainContext:
    """One member chip's view of a domain (upstream ``ChipDomainContext``)."""

    name: str
    domain_rank: int
    domain_size: int
    device_ctx: int
    local_window_base: int
    actual_window_size: int
    buffers: dict[str, WindowBuffer] = field(default_factory=dict)


class Domain:
    """The simulator's state of one allocated domain: its members, windows and collectives in flight."""

    def __init__(self, engine: CommEngine, allocation_id: int, name: str, members: tuple[tuple[Node, int], ...],
                 window_size: int, specs: Sequence[CommBufferSpec], functional: bool,
                 windows: Sequence[np.ndarray | None] | None = None) -> None:
        self.engine = engine
        self.allocation_id = allocation_id
        self.name = name
        self.members = members  # (node, chip worker id) per dense rank
        self.size = len(members)
        self.window_size = window_size
        self.windows: list[np.ndarray | None] = []
        self.contexts: list[ChipDomainContext] = []
        self.freed = False
        # Collectives: the next sequence number each rank joins, and the rendezvous not yet complete.
        self.seq = [0] * self.size
        self.pending: dict[int, Rendezvous] = {}
        for rank, (node, chip) in enumerate(members):
            if windows is not None:  # a Global CommDomain: each node exported its ranks' windows
                window = windows[rank]
            else:
                window = np.zeros(window_size, dtype=np.uint8) if functional else None
            self.windows.append(window)
            base = engine.window_base(window_size)
            ctx_addr = _CTX_BASE + (allocation_id << 20) + rank * 64
            bufs: dict[str, WindowBuffer] = {}
            offset = 0
            for spec in specs:
                bufs[spec.name] = WindowBuffer(window, offset, spec.nbytes, base=base + offset, chip=chip,
                                               owner=f"{node.scope}.chip{chip}.domain[{name}]", domain=self, rank=rank,
                                               name=spec.name)
                offset += spec.nbytes
            self.contexts.append(ChipDomainContext(name, rank, self.size, ctx_addr, base, window_size, bufs))

    def scope_of(self, rank: int) -> str:
        node, chip = self.members[rank]
        return f"{node.scope}.chip{chip}"

    def free(self) -> None:
        """Free every window (after the run fence); the contexts stop resolving."""
        if self.freed:
            return
        self.freed = True
        for ctx in self.contexts:
            for buf in ctx.buffers.values():
                buf.close()
        self.windows = [None] * self.size
        self.engine.forget(self)


class ReleasableHandle:
    """The live → released → freed lifetime a domain handle shares with a global one (§2).

    ``release()`` marks the handle released at once (idempotent) and hands it to its owner's
    ``_release_fn``, which frees the windows after the owning run's fence and then sets ``_freed``.
    A subclass holds the ``_released``, ``_freed`` and ``_release_fn`` slots.
    """

    __slots__ = ()
    _released: bool
    _freed: bool
    _release_fn: Any

    @property
    def released(self) -> bool:
        return self._released

    @property
    def freed(self) -> bool:
        return self._freed

    def release(self) -> None:
        """Mark released (idempotent); the windows are freed after the owning run's fence."""
        if self._released:
            return
        self._released = True
        self._release_fn(self)

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *_: Any) -> None:
        self.release()


class CommDomainHandle(ReleasableHandle):
    """What ``orch.allocate_domain`` returns (upstream ``CommDomainHandle``): live, released, freed."""

    __slots__ = ("_domain", "_freed", "_release_fn", "_released", "allocation_id", "contexts", "name", "workers")

    def __init__(self, domain: Domain, workers: tuple[int, ...], release_fn: Any) -> None:
        self._domain = domain
        self.name = domain.name
        self.workers = workers
        self.contexts: dict[int, ChipDomainContext] = dict(zip(workers, domain.contexts, strict=True))
        self.allocation_id = domain.allocation_id
        self._release_fn = release_fn
        self._released = False
        self._freed = False

    def __getitem__(self, chip_idx: int) -> ChipDomainContext:
        if self._released:
            raise DomainReleased(f"domain {self.name!r} (allocation {self.allocation_id}) is already released: "
                                 f"do not pass it to submit_* after release(); tasks submitted before still see "
                                 f"its windows until the run drains")
        try:
            return self.contexts[chip_idx]
        except (KeyError, TypeError):
            raise NotADomainMember(f"chip {chip_idx!r} is not a member of domain {self.name!r} "
                                   f"(members: {list(self.workers)})") from None

    def __contains__(self, chip_idx: object) -> bool:
        return chip_idx in self.contexts

    def __repr__(self) -> str:
        state = "freed" if self._freed else "released-pending-free" if self._released else "live"
        return f"CommDomainHandle(name={self.name!r}, workers={self.workers}, {state})"


def copy_window(buf: WindowBuffer, host: Any, *, to_window: bool) -> int:
    """``orch.copy_to`` / ``copy_from`` between a host object and one rank's window buffer (§5).

    A buffer of a freed domain is no live device range any more: the copy is refused with
    ``ValueError`` (INVALID_ARGUMENT), as upstream's range check (``Worker.copy_to`` / ``copy_from``,
    python/simpler/worker.py) refuses a range outside every live allocation.
    """
    api = "copy_to" if to_window else "copy_from"
    if buf.closed:
        raise InvalidArgument(f"{api}: {buf!r} is not a live device range: its domain {buf.domain.name!r} was "
                              f"freed after its run; allocate a new domain to stage data")
    data = host_bytes(host, writable=not to_window, api=api)
    if data.size > buf.nbytes:
        raise InvalidArgument(f"{api}: {data.size} bytes exceeds window buffer of {buf.nbytes} bytes ({buf!r})")
    if buf.array is not None:
        if to_window:
            buf.array[:data.size] = data
        else:
            data[:] = buf.array[:data.size]
    return int(data.size)


def _int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise InvalidArgument(f"allocate_domain: {what} must be an int, got {value!r}")
    return int(value)


def check_buffers(buffers: Any, window_size: int, api: str) -> tuple[CommBufferSpec, ...]:
    """The buffer specs of a request, checked: names unique, sizes positive, their sum within the window."""
    if isinstance(buffers, str | bytes) or not isinstance(buffers, Sequence):
        raise InvalidArgument(f"{api}: buffers must be a list of CommBufferSpec, got {type(buffers).__name__}")
    specs: list[CommBufferSpec] = []
    for i, b in enumerate(buffers):
        name, nbytes = getattr(b, "name", None), getattr(b, "nbytes", None)
        if not isinstance(name, str) or not name:
            raise InvalidArgument(f"{api}: buffers[{i}] must be a CommBufferSpec with a non-empty name, got {b!r}")
        # Only the sum is bounded (python/simpler/worker.py _validate_domain_allocation): a zero-byte
        # slice is a legal, empty buffer; a negative size is no size at all.
        if isinstance(nbytes, bool) or not isinstance(nbytes, int | np.integer) or nbytes < 0:
            raise InvalidArgument(f"{api}: buffer {name!r} nbytes must be a non-negative int, got {nbytes!r}")
        specs.append(CommBufferSpec(name, str(getattr(b, "dtype", "uint8")), int(getattr(b, "count", 0) or 0),
                                    int(nbytes), bool(getattr(b, "load_from_host", False)),
                                    bool(getattr(b, "store_to_host", False))))
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise InvalidArgument(f"{api}: duplicate buffer names: {names}")
    total = sum(s.nbytes for s in specs)
    if total > window_size:
        raise InvalidArgument(f"{api}: buffers sum to {total} bytes, which exceeds window_size={window_size} "
                              f"({', '.join(f'{s.name}={s.nbytes}' for s in specs)})")
    return tuple(specs)


class DomainTable:
    """One Worker's domains: allocation, release, the run fence and ``live_domains``."""

    def __init__(self, engine: CommEngine, node: Node, chips: int) -> None:
        self.engine = engine
        self.node = node
        self.chips = chips
        self.live: dict[str, CommDomainHandle] = {}
        self._base_ready = False
        # Released or swept handles waiting for their run's fence, per run.
        self._pending: dict[int, list[CommDomainHandle]] = {}
        self._owned: dict[int, list[CommDomainHandle]] = {}

    def allocate(self, run: RunState, name: Any, workers: Any, window_size: Any, buffers: Any) -> CommDomainHandle:
        """Check the whole request, then allocate: ``docs/comm-domain.md`` §1."""
        api = "allocate_domain"
        if not isinstance(name, str) or not name:
            raise InvalidArgument(f"{api}: name must be a non-empty str, got {name!r}")
        if isinstance(workers, str | bytes) or not isinstance(workers, Sequence | range):
            raise InvalidArgument(f"{api}: workers must be a list of chip worker ids, got {workers!r}")
        ids = tuple(_int(w, "each worker id") for w in workers)
        if not ids:
            raise InvalidArgument(f"{api}: workers must be non-empty")
        if len(set(ids)) != len(ids):
            raise InvalidArgument(f"{api}: workers contains duplicates: {list(ids)}")
        for w in ids:
            if not 0 <= w < self.chips:
                raise InvalidArgument(f"{api}: worker_id {w} is outside [0, {self.chips}): "
                                       f"{self.node.scope} has {self.chips} chip(s)")
        size = _int(window_size, "window_size")
        if size <= 0:
            raise InvalidArgument(f"{api}: window_size must be positive, got {size}")
        specs = check_buffers(buffers, size, api)
        if name in self.live:
            raise InvalidArgument(f"{api}: domain {name!r} is already live on {self.node.scope}")
        # Everything checked: from here on the request succeeds.
        node = self.node
        cost = node.sim.profile.comm["domain_alloc_us"]
        if not self._base_ready:
            self._base_ready = True
            cost += node.sim.profile.comm["comm_init_us"]
        now = node.env.now
        node.orch_cursor = max(node.orch_cursor, now) + cost
        domain = self.engine.new_domain(name, tuple((node, w) for w in ids), size, specs)
        handle = CommDomainHandle(domain, ids, lambda h, r=run: self._release(h, r))
        self.live[name] = handle
        if run.id not in self._owned:  # the run's first domain: free its domains at its fence
            self._owned[run.id] = []
            run.fences.append(self.fence)
        self._owned[run.id].append(handle)
        node.trace.add(node.orch_cursor, EventKind.CONTROL, node.scope, f"domain {name}",
                       f"alloc#{domain.allocation_id} ranks={list(ids)} window={size}B")
        return handle

    def _release(self, handle: CommDomainHandle, run: RunState) -> None:
        if self.live.get(handle.name) is handle:
            del self.live[handle.name]
        self._pending.setdefault(run.id, []).append(handle)

    def fence(self, run: RunState) -> None:
        """The run drained: sweep what it left live (newest first), then free everything it released."""
        for handle in reversed(self._owned.pop(run.id, [])):
            if not handle.released:
                handle.release()
        node = self.node
        for handle in self._pending.pop(run.id, []):
            if not handle._freed:
                handle._domain.free()
                handle._freed = True
                node.trace.add(node.env.now, EventKind.CONTROL, node.scope, f"domain {handle.name}",
                               f"freed#{handle.allocation_id}")

    def close(self) -> None:
        """``Worker.close()``: the final safety net frees every domain still allocated."""
        for runs in (self._owned, self._pending):
            for handles in runs.values():
                for h in handles:
                    h._released = True
                    if not h._freed:
                        h._domain.free()
                        h._freed = True
        self._owned.clear()
        self._pending.clear()
        self.live.clear()
