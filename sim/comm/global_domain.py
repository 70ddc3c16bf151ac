"""Global CommDomains: one domain over chips of several L3 nodes, built by their L4 parent.

Models upstream ``docs/comm-domain.md`` "Global CommDomain across local and remote L3 nodes" and
"Attachment axis", the orchestrator calls of ``python/simpler/orchestrator.py``
(``allocate_global_domain``, ``release_global_domain``, ``get_global_domain``,
``copy_to_global_domain`` / ``copy_from_global_domain`` and their range rule) and the handle and
view of ``python/simpler/task_interface.py``.

- ``orch.allocate_global_domain(name=, members=, window_size=, buffers=, retain_after_run=)`` is
  valid only while an L4+ Worker's run is being built. A member is ``(l3_worker_id,
  local_l2_worker_id)``: a NEXT_LEVEL id of a local (``add_worker``) or remote
  (``add_remote_worker``, ``add_mpirun_worker_group``) L3, and a chip index on that node. The
  member order is the dense domain rank order. Every check (members, buffers, window, one comm
  profile that each involved node's platform implements) runs before any node is contacted.
- The build is a transaction over the involved nodes: ``PREPARE_EXPORT`` (each node makes its
  ranks' windows and exports a descriptor per rank), ``IMPORT`` (every node receives the complete
  rank-ordered descriptor table and maps the peers' windows), ``COMMIT`` (each node's view becomes
  usable). Any failure sends ``ABORT`` to every node that was asked to prepare, which releases its
  windows; the request then raises and nothing is left behind.
- On an L3, ``orch.get_global_domain(domain_id)`` returns the committed :class:`GlobalCommDomainView`;
  ``view[local_worker_id]`` is a :class:`~sim.comm.domain.ChipDomainContext` whose ``device_ctx``
  resolves in the Simulation's one :class:`~sim.comm.collective.CommEngine`, so a collective kernel
  meets its ranks wherever they live (the exchange between nodes is timed on the inter-node link).
- ``copy_to_global_domain`` / ``copy_from_global_domain`` move bytes between the L4 host and one
  rank's window, by buffer name or by absolute offset within the mapped window.
- The handle is live, then released (``release()``), then freed: after the fence of the run that
  released it, or at once when no run holds it. A domain the run forgot is swept at its run's fence
  unless ``retain_after_run=True``; ``Worker.close()`` frees whatever is left.

The simulator's nodes share one address space, so an exported descriptor's handle is a token into
the Simulation's window table (the stand-in for a fabric or shared-memory handle); timing charges
each control to the L4 orchestrator (a mailbox round trip for a local L3, the command link for a
remote one). A full MPI group exchanges descriptors rank-side upstream (no L4 import fan-out); here
it takes the same three phases.
"""

from __future__ import annotations

import enum
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from sim.comm.domain import _WINDOW_ALIGN, ChipDomainContext, ReleasableHandle, check_buffers
from sim.device_memory import host_bytes
from sim.errors import (
    ControlFailure,
    DomainReleased,
    InvalidArgument,
    InvalidState,
    NotADomainMember,
    SimError,
    UnknownWorker,
    UnsupportedCommProfile,
)
from sim.trace import EventKind

if TYPE_CHECKING:
    from sim.comm.collective import CommEngine
    from sim.comm.domain import Domain
    from sim.node import Node, RunState

PROFILE_SIM = "sim"
PROFILE_A3_FABRIC = "a3-fabric-v1"
PROFILES = (PROFILE_SIM, PROFILE_A3_FABRIC)
MAX_RANKS = 64


# ------------------------------------------------------------------------------ profile rules


def check_comm_profile(label: str, platform: str, profile: Any) -> str:
    """A spec's comm profile: a known one, and ``a3-fabric-v1`` only on a real a2a3 platform."""
    if not isinstance(profile, str) or profile not in PROFILES:
        raise UnsupportedCommProfile(f"{label}.comm_profile {profile!r} is not supported "
                                     f"(known: {', '.join(PROFILES)})")
    if profile == PROFILE_A3_FABRIC:
        if not platform.startswith("a2a3"):
            raise UnsupportedCommProfile(f"{label}.comm_profile {profile!r} requires an a2a3 platform, "
                                         f"not {platform!r}")
        if platform.endswith("sim"):
            raise UnsupportedCommProfile(f"{label}.comm_profile {profile!r} requires real A3 devices; on "
                                         f"{platform!r} use comm_profile='sim'")
    return profile


def check_capability(label: str, platform: str, profile: str) -> None:
    """What a node's backend implements: ``sim`` on a ``*sim`` platform, ``a3-fabric-v1`` on real a2a3."""
    ok = (platform.endswith("sim") and profile == PROFILE_SIM) or (
        platform.startswith("a2a3") and not platform.endswith("sim") and profile == PROFILE_A3_FABRIC)
    if not ok:
        raise UnsupportedCommProfile(f"allocate_global_domain: {label} (platform {platform!r}) does not implement "
                                     f"comm_profile {profile!r}")


def check_global_device_ranks(label: str, ranks: Sequence[int], device_count: int) -> tuple[int, ...]:
    """One global rank per local device (or none: assigned later), unique and non-negative."""
    out = tuple(ranks)
    for r in out:
        if isinstance(r, bool) or not isinstance(r, int | np.integer):
            raise InvalidArgument(f"{label} entries must be ints, got {r!r}")
    if out and len(out) != device_count:
        raise InvalidArgument(f"{label} has {len(out)} entries for {device_count} device(s): give one per device")
    if any(r < 0 for r in out) or len(set(out)) != len(out):
        raise InvalidArgument(f"{label} must be unique and non-negative, got {list(out)}")
    return tuple(int(r) for r in out)


# ------------------------------------------------------------------------------ commands


class Phase(enum.IntEnum):
    """``ALLOC_DOMAIN`` phases (values as on the wire)."""

    PREPARE_EXPORT = 1
    IMPORT = 2
    COMMIT = 3
    ABORT = 4


@dataclass(frozen=True)
class GlobalDomainMember:
    """One device of a global domain, in dense ``domain_rank`` order."""

    node_worker_id: int
    local_worker_id: int
    global_device_rank: int
    domain_rank: int


@dataclass(frozen=True)
class GlobalDomainBuffer:
    """A named slice of every rank's window, in declaration order."""

    name: str
    nbytes: int


@dataclass(frozen=True)
class GlobalDescriptor:
    """One rank's exported window: what the other nodes import."""

    profile: str
    domain_rank: int
    rank_count: int
    mapping_size: int
    handle: bytes


@dataclass(frozen=True)
class GlobalCommand:
    """``ALLOC_DOMAIN`` in one of its phases (descriptors for IMPORT and COMMIT)."""

    phase: Phase
    domain_id: int
    generation: int
    name: str
    profile: str
    window_size: int
    members: tuple[GlobalDomainMember, ...]
    buffers: tuple[GlobalDomainBuffer, ...] = ()
    descriptors: tuple[GlobalDescriptor, ...] = ()


class DomainPort(Protocol):
    """How the L4 reaches one L3 node's domain participant (directly, or over a remote session)."""

    worker_id: int

    def alloc(self, cmd: GlobalCommand) -> tuple[tuple[GlobalDescriptor, ...], float]: ...
    def release(self, domain_id: int, generation: int) -> float: ...
    def copy_to(self, domain_id: int, generation: int, rank: int, offset: int, data: bytes) -> float: ...
    def copy_from(self, domain_id: int, generation: int, rank: int, offset: int,
                  nbytes: int) -> tuple[bytes, float]: ...


@dataclass(frozen=True)
class GlobalNode:
    """What the L4 knows of one child L3 for global domains."""

    worker_id: int
    device_count: int
    platform: str
    comm_profile: str
    global_device_ranks: tuple[int, ...]
    label: str
    port: DomainPort


def resolve_nodes(configs: Sequence[GlobalNode]) -> dict[int, GlobalNode]:
    """Give every node its global device ranks: the explicit ones, then the free ones in worker-id order."""
    explicit: set[int] = set()
    for n in sorted(configs, key=lambda c: c.worker_id):
        overlap = explicit.intersection(n.global_device_ranks)
        if overlap:
            raise InvalidArgument(f"Global CommDomain: {n.label} repeats global_device_ranks {sorted(overlap)} "
                                  f"of another L3")
        explicit.update(n.global_device_ranks)
    used, nxt = set(explicit), 0
    out: dict[int, GlobalNode] = {}
    for n in sorted(configs, key=lambda c: c.worker_id):
        ranks = n.global_device_ranks
        if not ranks:
            assigned = []
            for _ in range(n.device_count):
                while nxt in used:
                    nxt += 1
                assigned.append(nxt)
                used.add(nxt)
            ranks = tuple(assigned)
        out[n.worker_id] = GlobalNode(n.worker_id, n.device_count, n.platform, n.comm_profile, ranks, n.label,
                                      n.port)
    return out


# ------------------------------------------------------------------------------ handle and view


class GlobalCommDomainHandle(ReleasableHandle):
    """What ``orch.allocate_global_domain`` returns: topology and buffer offsets, live/released/freed."""

    __slots__ = ("_freed", "_release_fn", "_released", "attachments", "buffers", "domain_id", "generation",
                 "mapping_size", "members", "name", "retain_after_run")

    def __init__(self, *, name: str, members: tuple[GlobalDomainMember, ...], buffers: tuple[GlobalDomainBuffer, ...],
                 domain_id: int, generation: int, mapping_size: int, retain_after_run: bool,
                 _release_fn: Callable[[GlobalCommDomainHandle], None], attachments: tuple = ()) -> None:
        self.name = str(name)
        self.members = tuple(members)
        self.buffers = tuple(buffers)
        self.attachments = tuple(attachments)
        self.domain_id = int(domain_id)
        self.generation = int(generation)
        self.mapping_size = int(mapping_size)
        self.retain_after_run = bool(retain_after_run)
        self._release_fn = _release_fn
        self._released = False
        self._freed = False

    def _check_live(self, api: str) -> None:
        if self._released:
            raise DomainReleased(f"{api}: global domain {self.name!r} (id {self.domain_id}) is already released")

    def member(self, domain_rank: int) -> GlobalDomainMember:
        """The member at ``domain_rank``."""
        self._check_live("member")
        if isinstance(domain_rank, bool) or not isinstance(domain_rank, int | np.integer):
            raise InvalidArgument(f"global domain {self.name!r}: domain_rank must be an int, got {domain_rank!r}")
        rank = int(domain_rank)
        if not 0 <= rank < len(self.members):
            raise NotADomainMember(f"global domain {self.name!r} has no rank {rank} (ranks 0..{len(self.members) - 1})")
        return self.members[rank]

    def buffer_range(self, name: str) -> tuple[int, int]:
        """``(offset, nbytes)`` of buffer ``name`` within each rank's window."""
        self._check_live("buffer_range")
        offset = 0
        for b in self.buffers:
            if b.name == name:
                return offset, b.nbytes
            offset += b.nbytes
        raise InvalidArgument(f"global domain {self.name!r} has no buffer {name!r} "
                              f"(buffers: {[b.name for b in self.buffers]})")

    def __repr__(self) -> str:
        state = "freed" if self._freed else "released-pending-free" if self._released else "live"
        return f"GlobalCommDomainHandle(name={self.name!r}, id={self.domain_id}, ranks={len(self.members)}, {state})"


class GlobalCommDomainView:
    """One L3's imported view of a global domain: its own ranks' contexts, usable once committed."""

    __slots__ = ("_committed", "attachments", "contexts", "domain_id", "generation", "mapping_size", "members",
                 "name")

    def __init__(self, *, name: str, members: tuple[GlobalDomainMember, ...], contexts: dict[int, ChipDomainContext],
                 domain_id: int, generation: int, mapping_size: int, attachments: tuple = ()) -> None:
        self.name = str(name)
        self.members = tuple(members)
        self.attachments = tuple(attachments)
        self.contexts = dict(contexts)
        self.domain_id = int(domain_id)
        self.generation = int(generation)
        self.mapping_size = int(mapping_size)
        self._committed = False

    def __getitem__(self, local_worker_id: int) -> ChipDomainContext:
        if not self._committed:
            raise InvalidState(f"global domain {self.name!r} (id {self.domain_id}) is not committed on this node")
        try:
            return self.contexts[int(local_worker_id)]
        except (KeyError, TypeError, ValueError):
            raise NotADomainMember(f"chip {local_worker_id!r} of this node is not a member of global domain "
                                   f"{self.name!r} (this node's members: {sorted(self.contexts)})") from None

    @property
    def committed(self) -> bool:
        return self._committed


# ------------------------------------------------------------------------------ the shared window table


class _Fabric:
    """The Simulation's exported windows (token -> window, node, chip) and the domains built over them."""

    def __init__(self) -> None:
        self.exports: dict[bytes, tuple[np.ndarray | None, Node, int]] = {}
        self.domains: dict[tuple[int, int], Domain] = {}


_FABRICS: weakref.WeakKeyDictionary[CommEngine, _Fabric] = weakref.WeakKeyDictionary()


def fabric(engine: CommEngine) -> _Fabric:
    f = _FABRICS.get(engine)
    if f is None:
        f = _FABRICS[engine] = _Fabric()
    return f


def _mapping_size(window_size: int) -> int:
    return -(-window_size // _WINDOW_ALIGN) * _WINDOW_ALIGN


@dataclass
class _NodeDomain:
    command: GlobalCommand
    ranks: tuple[GlobalDomainMember, ...]  # this node's members
    handles: dict[int, bytes]  # domain rank -> exported token
    phase: Phase
    view: GlobalCommDomainView | None = None


class GlobalParticipant:
    """One L3 Worker's side of global domains: export, import, commit, abort, release and copies."""

    def __init__(self, engine: CommEngine, node: Node, chips: int) -> None:
        self.engine = engine
        self.node = node
        self.chips = chips
        self.states: dict[int, _NodeDomain] = {}

    def _trace(self, subject: str, detail: str) -> None:
        self.node.trace.add(self.node.env.now, EventKind.CONTROL, self.node.scope, subject, detail)

    def alloc(self, cmd: GlobalCommand, me: int) -> tuple[GlobalDescriptor, ...]:
        """Apply one ``ALLOC_DOMAIN`` phase addressed to this node (NEXT_LEVEL id ``me`` of its parent)."""
        if cmd.phase is Phase.ABORT:
            self._drop(cmd.domain_id, "abort")
            return ()
        if cmd.phase is Phase.PREPARE_EXPORT:
            return self._prepare(cmd, me)
        st = self.states.get(cmd.domain_id)
        if st is None or st.command.generation != cmd.generation:
            raise InvalidState(f"{cmd.phase.name} of global domain {cmd.name!r} (id {cmd.domain_id}) on "
                               f"{self.node.scope}: it was never prepared here")
        if cmd.phase is Phase.IMPORT:
            if st.phase is not Phase.PREPARE_EXPORT:
                raise InvalidState(f"IMPORT of global domain {cmd.name!r} on {self.node.scope} after {st.phase.name}")
            self._import(st, cmd)
        else:
            if st.phase is not Phase.IMPORT:
                raise InvalidState(f"COMMIT of global domain {cmd.name!r} on {self.node.scope} before IMPORT")
            assert st.view is not None
            st.view._committed = True
            st.phase = Phase.COMMIT
            self._trace(f"global domain {cmd.name}", f"commit#{cmd.domain_id}")
        return ()

    def _prepare(self, cmd: GlobalCommand, me: int) -> tuple[GlobalDescriptor, ...]:
        if cmd.domain_id in self.states:
            raise InvalidState(f"PREPARE_EXPORT of global domain id {cmd.domain_id} on {self.node.scope}: "
                               f"already prepared")
        mine = tuple(m for m in cmd.members if m.node_worker_id == me)
        if not mine:
            raise InvalidArgument(f"PREPARE_EXPORT of global domain {cmd.name!r}: no member is on {self.node.scope}")
        for m in mine:
            if not 0 <= m.local_worker_id < self.chips:
                raise InvalidArgument(f"PREPARE_EXPORT of global domain {cmd.name!r}: chip {m.local_worker_id} is "
                                      f"outside {self.node.scope}'s {self.chips} chip(s)")
        mapping = _mapping_size(cmd.window_size)
        fab = fabric(self.engine)
        functional = self.node.sim.functional
        handles: dict[int, bytes] = {}
        out = []
        for m in mine:
            token = f"sim-window:{cmd.domain_id}:{cmd.generation}:{m.domain_rank}".encode()
            fab.exports[token] = (np.zeros(mapping, dtype=np.uint8) if functional else None, self.node,
                                  m.local_worker_id)
            handles[m.domain_rank] = token
            out.append(GlobalDescriptor(cmd.profile, m.domain_rank, len(cmd.members), mapping, token))
        self.states[cmd.domain_id] = _NodeDomain(cmd, mine, handles, Phase.PREPARE_EXPORT)
        self._trace(f"global domain {cmd.name}", f"prepare#{cmd.domain_id} ranks={[m.domain_rank for m in mine]}")
        return tuple(out)

    def _import(self, st: _NodeDomain, cmd: GlobalCommand) -> None:
        fab = fabric(self.engine)
        table = sorted(cmd.descriptors, key=lambda d: d.domain_rank)
        if [d.domain_rank for d in table] != list(range(len(cmd.members))):
            raise ControlFailure(f"IMPORT of global domain {cmd.name!r}: the descriptor table is not one per rank")
        peers = []
        for d in table:
            hit = fab.exports.get(d.handle)
            if hit is None:
                raise ControlFailure(f"IMPORT of global domain {cmd.name!r} on {self.node.scope}: rank "
                                     f"{d.domain_rank}'s descriptor names no exported window")
            peers.append(hit)
        key = (cmd.domain_id, cmd.generation)
        domain = fab.domains.get(key)
        if domain is None:
            specs = check_buffers([_Spec(b.name, b.nbytes) for b in cmd.buffers], cmd.window_size, "IMPORT")
            domain = self.engine.new_domain(cmd.name, tuple((n, c) for _w, n, c in peers), cmd.window_size, specs,
                                            windows=[w for w, _n, _c in peers])
            fab.domains[key] = domain
        contexts = {m.local_worker_id: domain.contexts[m.domain_rank] for m in st.ranks}
        st.view = GlobalCommDomainView(name=cmd.name, members=cmd.members, contexts=contexts,
                                       domain_id=cmd.domain_id, generation=cmd.generation,
                                       mapping_size=table[0].mapping_size)
        st.phase = Phase.IMPORT
        self._trace(f"global domain {cmd.name}", f"import#{cmd.domain_id} table={len(table)}")

    def _drop(self, domain_id: int, why: str) -> None:
        st = self.states.pop(domain_id, None)
        if st is None:
            return
        fab = fabric(self.engine)
        for token in st.handles.values():
            fab.exports.pop(token, None)
        if st.view is not None:
            st.view._committed = False
        domain = fab.domains.pop((domain_id, st.command.generation), None)
        if domain is not None:
            domain.free()
        self._trace(f"global domain {st.command.name}", f"{why}#{domain_id}")

    def release(self, domain_id: int, generation: int) -> None:
        """``RELEASE_DOMAIN``: free this node's windows and view (idempotent)."""
        st = self.states.get(domain_id)
        if st is not None and st.command.generation == generation:
            self._drop(domain_id, "release")

    def _window(self, domain_id: int, generation: int, rank: int, offset: int, nbytes: int,
                api: str) -> np.ndarray | None:
        st = self.states.get(domain_id)
        if st is None or st.command.generation != generation or st.phase is not Phase.COMMIT:
            raise InvalidState(f"{api}: global domain id {domain_id} is not committed on {self.node.scope}")
        token = st.handles.get(rank)
        if token is None:
            raise NotADomainMember(f"{api}: rank {rank} of global domain {st.command.name!r} is not on "
                                   f"{self.node.scope}")
        window = fabric(self.engine).exports[token][0]
        limit = _mapping_size(st.command.window_size)
        if offset < 0 or nbytes < 0 or offset + nbytes > limit:
            raise InvalidArgument(f"{api}: [{offset}, {offset + nbytes}) exceeds the {limit}-byte mapped window")
        return window

    def copy_to(self, domain_id: int, generation: int, rank: int, offset: int, data: bytes) -> None:
        window = self._window(domain_id, generation, rank, offset, len(data), "COPY_TO_DOMAIN")
        if window is not None:
            window[offset:offset + len(data)] = np.frombuffer(data, dtype=np.uint8)

    def copy_from(self, domain_id: int, generation: int, rank: int, offset: int, nbytes: int) -> bytes:
        window = self._window(domain_id, generation, rank, offset, nbytes, "COPY_FROM_DOMAIN")
        return bytes(nbytes) if window is None else window[offset:offset + nbytes].tobytes()

    def view(self, domain_id: Any) -> GlobalCommDomainView:
        """``orch.get_global_domain(domain_id)`` on this node."""
        if isinstance(domain_id, bool) or not isinstance(domain_id, int | np.integer):
            raise InvalidArgument(f"get_global_domain: domain_id must be an int, got {domain_id!r}")
        st = self.states.get(int(domain_id))
        if st is None or st.view is None:
            raise InvalidArgument(f"get_global_domain: no Global CommDomain with id {domain_id} is imported on "
                                  f"{self.node.scope}")
        return st.view

    def close(self) -> None:
        for did in sorted(self.states):
            self._drop(did, "close")


@dataclass(frozen=True)
class _Spec:
    name: str
    nbytes: int


class LocalPort:
    """A local L3 child's participant, reached through the node's control mailbox.

    Every control costs ``control_us`` (the profile's ``[comm] domain_alloc_us``: one control-mailbox
    round trip plus the handle work on the chips, which run in parallel).
    """

    def __init__(self, worker_id: int, participant: Callable[[], GlobalParticipant], control_us: float) -> None:
        self.worker_id = worker_id
        self._participant = participant
        self.control_us = control_us

    def alloc(self, cmd: GlobalCommand) -> tuple[tuple[GlobalDescriptor, ...], float]:
        return self._participant().alloc(cmd, self.worker_id), self.control_us

    def release(self, domain_id: int, generation: int) -> float:
        self._participant().release(domain_id, generation)
        return self.control_us

    def copy_to(self, domain_id: int, generation: int, rank: int, offset: int, data: bytes) -> float:
        self._participant().copy_to(domain_id, generation, rank, offset, data)
        return self.control_us

    def copy_from(self, domain_id: int, generation: int, rank: int, offset: int, nbytes: int) -> tuple[bytes, float]:
        return self._participant().copy_from(domain_id, generation, rank, offset, nbytes), self.control_us


# ------------------------------------------------------------------------------ the L4 side


def _int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise InvalidArgument(f"allocate_global_domain: {what} must be an int, got {value!r}")
    return int(value)


class GlobalDomainTable:
    """One L4+ Worker's global domains: the transaction, the handles, the run fence and close."""

    def __init__(self, node: Node, nodes: Callable[[], dict[int, GlobalNode]]) -> None:
        self.node = node
        self._nodes = nodes
        self.live: dict[str, GlobalCommDomainHandle] = {}
        self._next_id = 0
        self._involved: dict[int, tuple[int, ...]] = {}  # domain id -> involved node worker ids
        self._owned: dict[int, list[GlobalCommDomainHandle]] = {}
        self._pending: dict[int, list[GlobalCommDomainHandle]] = {}
        self._armed: set[int] = set()
        self._unfreed: list[GlobalCommDomainHandle] = []  # freed nowhere yet (a failed release), for close()

    def _charge(self, cost: float) -> None:
        node = self.node
        node.orch_cursor = max(node.orch_cursor, node.env.now) + cost

    def _trace(self, subject: str, detail: str) -> None:
        self.node.trace.add(max(self.node.orch_cursor, self.node.env.now), EventKind.CONTROL, self.node.scope,
                            subject, detail)

    # ---------------------------------------------------------------- allocate

    def allocate(self, run: RunState, name: Any, members: Any, window_size: Any, buffers: Any,
                 retain_after_run: Any) -> GlobalCommDomainHandle:
        api = "allocate_global_domain"
        if not isinstance(name, str) or not name:
            raise InvalidArgument(f"{api}: name must be a non-empty str, got {name!r}")
        if name in self.live:
            raise InvalidArgument(f"{api}: global domain {name!r} is already live")
        if isinstance(members, str | bytes) or not isinstance(members, Sequence):
            raise InvalidArgument(f"{api}: members must be a list of (l3_worker_id, local_l2_worker_id) pairs")
        pairs = []
        for i, m in enumerate(members):
            if isinstance(m, str | bytes) or not isinstance(m, Sequence) or len(m) != 2:
                raise InvalidArgument(f"{api}: members[{i}] must be a (l3_worker_id, local_l2_worker_id) pair, "
                                      f"got {m!r}")
            pairs.append((_int(m[0], f"members[{i}] l3_worker_id"), _int(m[1], f"members[{i}] local_l2_worker_id")))
        if not pairs or len(pairs) > MAX_RANKS:
            raise InvalidArgument(f"{api}: members must list 1..{MAX_RANKS} devices, got {len(pairs)}")
        seen: set[tuple[int, int]] = set()
        for p in pairs:
            if p in seen:
                raise InvalidArgument(f"{api}: member (l3_worker_id={p[0]}, local_l2_worker_id={p[1]}) is listed "
                                      f"twice")
            seen.add(p)
        size = _int(window_size, "window_size")
        if size <= 0:
            raise InvalidArgument(f"{api}: window_size must be positive, got {size}")
        specs = check_buffers(buffers, size, api)
        nodes = self._nodes()
        table: list[GlobalDomainMember] = []
        for rank, (wid, local) in enumerate(pairs):
            n = nodes.get(wid)
            if n is None:
                raise UnknownWorker(f"{api}: member {rank} names worker {wid}, which is not an L3 child of "
                                    f"{self.node.scope} (L3 worker ids: {sorted(nodes) or 'none'})")
            if not 0 <= local < n.device_count:
                raise InvalidArgument(f"{api}: member {rank} names local_l2_worker_id {local}, outside {n.label}'s "
                                      f"{n.device_count} device(s)")
            table.append(GlobalDomainMember(wid, local, n.global_device_ranks[local], rank))
        involved = tuple(dict.fromkeys(m.node_worker_id for m in table))
        profiles = {nodes[w].comm_profile for w in involved}
        if len(profiles) != 1:
            used = ", ".join(f"{nodes[w].label}: {nodes[w].comm_profile}" for w in involved)
            raise UnsupportedCommProfile(f"{api}: the members' L3 nodes use different comm profiles ({used}); "
                                         f"every node of one domain must use the same")
        profile = profiles.pop()
        for w in involved:
            check_capability(nodes[w].label, nodes[w].platform, profile)
        # Everything checked: run the transaction.
        self._next_id += 1
        did = self._next_id
        gen = 1
        gbufs = tuple(GlobalDomainBuffer(s.name, s.nbytes) for s in specs)
        members_t = tuple(table)

        def command(phase: Phase, descriptors: tuple[GlobalDescriptor, ...] = ()) -> GlobalCommand:
            return GlobalCommand(phase, did, gen, name, profile, size, members_t, gbufs, descriptors)

        prepared: list[int] = []
        try:
            by_rank: dict[int, GlobalDescriptor] = {}
            for w in involved:
                prepared.append(w)
                descs, cost = nodes[w].port.alloc(command(Phase.PREPARE_EXPORT))
                self._charge(cost)
                for d in descs:
                    if d.domain_rank in by_rank:
                        raise ControlFailure(f"{api}: PREPARE_EXPORT on {nodes[w].label} returned rank {d.domain_rank} "
                                             f"twice")
                    by_rank[d.domain_rank] = d
            missing = [r for r in range(len(members_t)) if r not in by_rank]
            if missing:
                raise ControlFailure(f"{api}: no descriptor was exported for rank(s) {missing}")
            descriptors = tuple(by_rank[r] for r in range(len(members_t)))
            if any(d.mapping_size < size or d.mapping_size != descriptors[0].mapping_size for d in descriptors):
                raise ControlFailure(f"{api}: the nodes mapped windows of differing or too small sizes")
            for phase in (Phase.IMPORT, Phase.COMMIT):
                for w in involved:
                    _, cost = nodes[w].port.alloc(command(phase, descriptors))
                    self._charge(cost)
        except BaseException as exc:
            for w in prepared:
                try:
                    _, cost = nodes[w].port.alloc(command(Phase.ABORT))
                    self._charge(cost)
                except SimError as abort_exc:  # its windows may stay mapped: say so in the trace
                    self._trace(f"global domain {name}", f"abort on {nodes[w].label} failed: {abort_exc}")
            self._trace(f"global domain {name}", f"aborted#{did}: {type(exc).__name__}")
            raise
        handle = GlobalCommDomainHandle(name=name, members=members_t, buffers=gbufs, domain_id=did, generation=gen,
                                        mapping_size=descriptors[0].mapping_size,
                                        retain_after_run=bool(retain_after_run),
                                        _release_fn=lambda h, r=run: self._release(h, r))
        self.live[name] = handle
        self._involved[did] = involved
        self._owned.setdefault(run.id, []).append(handle)
        self._arm(run)
        self._trace(f"global domain {name}", f"committed#{did} ranks={len(members_t)} nodes={list(involved)}")
        return handle

    # ---------------------------------------------------------------- copies

    @staticmethod
    def copy_range(handle: GlobalCommDomainHandle, buffer: Any, offset: Any, nbytes: int, api: str) -> int:
        """The absolute window offset of a copy (``_global_copy_range`` upstream)."""
        if isinstance(offset, bool) or not isinstance(offset, int | np.integer):
            raise InvalidArgument(f"{api}: offset must be an int, got {offset!r}")
        absolute = int(offset)
        if absolute < 0 or nbytes <= 0:
            raise InvalidArgument(f"{api}: offset must be non-negative and the size positive "
                                  f"(offset={absolute}, nbytes={nbytes})")
        if buffer is not None:
            b_off, b_size = handle.buffer_range(str(buffer))
            if absolute > b_size or nbytes > b_size - absolute:
                raise InvalidArgument(f"{api}: [{absolute}, {absolute + nbytes}) exceeds buffer {buffer!r} of "
                                      f"{b_size} bytes in global domain {handle.name!r}")
            return absolute + b_off
        if absolute > handle.mapping_size or nbytes > handle.mapping_size - absolute:
            raise InvalidArgument(f"{api}: [{absolute}, {absolute + nbytes}) exceeds the {handle.mapping_size}-byte "
                                  f"mapped window of global domain {handle.name!r}")
        return absolute

    def _own(self, handle: Any, api: str) -> GlobalCommDomainHandle:
        if not isinstance(handle, GlobalCommDomainHandle):
            raise InvalidArgument(f"{api}: expected a GlobalCommDomainHandle, got {type(handle).__name__}")
        if handle.domain_id not in self._involved:
            raise InvalidArgument(f"{api}: global domain {handle.name!r} was not allocated by this Worker")
        handle._check_live(api)
        return handle

    def copy_to(self, handle: Any, rank: Any, data: Any, buffer: Any, offset: Any) -> None:
        api = "copy_to_global_domain"
        h = self._own(handle, api)
        payload = bytes(host_bytes(data, writable=False, api=api))
        absolute = self.copy_range(h, buffer, offset, len(payload), api)
        m = h.member(rank)
        cost = self._nodes()[m.node_worker_id].port.copy_to(h.domain_id, h.generation, m.domain_rank, absolute,
                                                             payload)
        self._charge(cost)

    def copy_from(self, handle: Any, rank: Any, nbytes: Any, buffer: Any, offset: Any) -> bytes:
        api = "copy_from_global_domain"
        h = self._own(handle, api)
        if isinstance(nbytes, bool) or not isinstance(nbytes, int | np.integer):
            raise InvalidArgument(f"{api}: nbytes must be an int, got {nbytes!r}")
        absolute = self.copy_range(h, buffer, offset, int(nbytes), api)
        m = h.member(rank)
        data, cost = self._nodes()[m.node_worker_id].port.copy_from(h.domain_id, h.generation, m.domain_rank,
                                                                    absolute, int(nbytes))
        self._charge(cost)
        return data

    # ---------------------------------------------------------------- lifetime

    def _arm(self, run: RunState) -> None:
        if run.id in self._armed:
            return
        self._armed.add(run.id)
        run.fences.append(self.fence)

    def _release(self, handle: GlobalCommDomainHandle, alloc_run: RunState) -> None:
        if self.live.get(handle.name) is handle:
            del self.live[handle.name]
        if alloc_run.id in self._armed:  # the allocating run has not drained: free at its fence
            self._pending.setdefault(alloc_run.id, []).append(handle)
            return
        current = self.node.run  # a retained handle released while a later run is being built
        if current is not None and not current.done:
            self._arm(current)
            self._pending.setdefault(current.id, []).append(handle)
            return
        self._free(handle)

    def fence(self, run: RunState) -> None:
        """The run drained: sweep what it forgot (unless retained), then free what it released."""
        for h in reversed(self._owned.pop(run.id, [])):
            if not h._released and not h.retain_after_run:
                h._released = True
                if self.live.get(h.name) is h:
                    del self.live[h.name]
                self._pending.setdefault(run.id, []).append(h)
        self._armed.discard(run.id)
        for h in self._pending.pop(run.id, []):
            self._free(h)

    def _free(self, handle: GlobalCommDomainHandle) -> None:
        if handle._freed:
            return
        nodes = self._nodes()
        failed = []
        for w in self._involved.get(handle.domain_id, ()):
            try:
                nodes[w].port.release(handle.domain_id, handle.generation)
            except SimError as exc:
                failed.append(f"{nodes[w].label}: {exc}")
        if failed:
            self._trace(f"global domain {handle.name}", f"release failed: {'; '.join(failed)}")
            if handle not in self._unfreed:
                self._unfreed.append(handle)
            return
        handle._freed = True
        self._involved.pop(handle.domain_id, None)
        if handle in self._unfreed:
            self._unfreed.remove(handle)
        self._trace(f"global domain {handle.name}", f"freed#{handle.domain_id}")

    def close(self) -> None:
        """``Worker.close()``: the final safety net frees every global domain still allocated."""
        handles: list[GlobalCommDomainHandle] = []
        for group in (*self._owned.values(), *self._pending.values(), list(self.live.values()), self._unfreed):
            for h in group:
                if h not in handles:
                    handles.append(h)
        for h in handles:
            h._released = True
            self._free(h)
        self._owned.clear()
        self._pending.clear()
        self.live.clear()
        self._armed.clear()
