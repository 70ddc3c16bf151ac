"""Global CommDomain control commands and results carried inside SLR3 CONTROL / CONTROL_REPLY frames.

Spec: upstream ``docs/remote-l3-worker-design/protocol.md``, "CONTROL Payload" ("Required Global
CommDomain controls": ``COMM_INIT``, ``ALLOC_DOMAIN`` with its ``PREPARE_EXPORT`` / ``IMPORT`` /
``COMMIT`` / ``ABORT`` phases, ``RELEASE_DOMAIN``, ``COPY_TO_DOMAIN``, ``COPY_FROM_DOMAIN``).
The doc names these controls and their semantics but gives no byte layout; the layout modelled here
is the shipped one (``python/simpler/global_comm_domain.py``, command layout version 2, descriptor
layout version 2), including the table checks its decoders run (dense domain ranks, unique devices,
complete descriptor tables for ``IMPORT`` / ``COMMIT``, ...).

Notes on the shipped layout:

* Each command starts with its own ``uint32`` command-layout version (2), independent of the CONTROL
  frame's ``control_version`` (1).
* A descriptor is a fixed 288-byte record whose handle is zero-padded to 256 bytes. The shipped
  decoder ignores the padding past ``handle_size``; so does this one (it is not declared reserved).
* ``ALLOC_DOMAIN``'s reply carries a descriptor table for ``PREPARE_EXPORT`` and no bytes for the
  other phases; the reply does not say which phase it answers, so an empty result decodes to none.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass

from sim.remote.wire_base import (
    BufferAddressSpace,
    Layout,
    Reader,
    check_bytes,
    check_enum,
    check_int,
    enum_value,
    fail,
    pack_u32,
    put_blob,
    put_string,
)

__all__ = [
    "GLOBAL_DOMAIN_COMMAND_VERSION",
    "GLOBAL_DOMAIN_DESCRIPTOR_BYTES",
    "GLOBAL_DOMAIN_HANDLE_BYTES",
    "GLOBAL_DOMAIN_MAX_ATTACHMENTS",
    "GLOBAL_DOMAIN_MAX_ATTACHMENT_ROWS",
    "GLOBAL_DOMAIN_MAX_BUFFERS",
    "GLOBAL_DOMAIN_MAX_COPY_BYTES",
    "GLOBAL_DOMAIN_MAX_RANKS",
    "GLOBAL_DOMAIN_MAX_STRING_BYTES",
    "GLOBAL_DOMAIN_VERSION",
    "AdapterKind",
    "AdapterProfile",
    "AllocDomainCommand",
    "AttachmentRole",
    "CommInitCommand",
    "CommInitResult",
    "CopyFromDomainCommand",
    "CopyFromDomainResult",
    "CopyToDomainCommand",
    "DomainAttachment",
    "DomainBuffer",
    "DomainDescriptor",
    "DomainDescriptorTable",
    "DomainMember",
    "DomainPhase",
    "DomainProfile",
    "ReleaseDomainCommand",
    "decode_alloc_domain",
    "decode_comm_init",
    "decode_comm_init_result",
    "decode_copy_from_domain",
    "decode_copy_from_domain_result",
    "decode_copy_to_domain",
    "decode_descriptor_table",
    "decode_release_domain",
    "encode_alloc_domain",
    "encode_comm_init",
    "encode_comm_init_result",
    "encode_copy_from_domain",
    "encode_copy_from_domain_result",
    "encode_copy_to_domain",
    "encode_descriptor_table",
    "encode_release_domain",
]

GLOBAL_DOMAIN_VERSION = 2
GLOBAL_DOMAIN_COMMAND_VERSION = 2
GLOBAL_DOMAIN_MAX_RANKS = 64
GLOBAL_DOMAIN_MAX_BUFFERS = 64
GLOBAL_DOMAIN_MAX_ATTACHMENT_ROWS = GLOBAL_DOMAIN_MAX_RANKS
GLOBAL_DOMAIN_MAX_ATTACHMENTS = GLOBAL_DOMAIN_MAX_ATTACHMENT_ROWS * GLOBAL_DOMAIN_MAX_RANKS  # rows per rank, all ranks
GLOBAL_DOMAIN_HANDLE_BYTES = 256
GLOBAL_DOMAIN_MAX_STRING_BYTES = 1024
GLOBAL_DOMAIN_MAX_COPY_BYTES = 8 * 1024 * 1024


class DomainProfile(enum.IntEnum):
    """Communication profile: numeric id in descriptors, name string in commands."""

    SIM = 1
    A3_FABRIC = 2

    @property
    def wire_name(self) -> str:
        """The profile's string form on the command wire."""
        return _PROFILE_NAMES[self]


_PROFILE_NAMES = {DomainProfile.SIM: "sim", DomainProfile.A3_FABRIC: "a3-fabric-v1"}
_PROFILE_BY_NAME = {name: profile for profile, name in _PROFILE_NAMES.items()}


class DomainPhase(enum.IntEnum):
    """``ALLOC_DOMAIN`` transaction phase."""

    PREPARE_EXPORT = 1
    IMPORT = 2
    COMMIT = 3
    ABORT = 4


class AttachmentRole(enum.IntEnum):
    """Attachment role; values are the command wire ids."""

    PROVIDER = 1
    CONSUMER = 2


class AdapterKind(enum.IntEnum):
    """Attachment adapter kind; values are wire ids (0 on the wire means no adapter)."""

    DIRECT_MAP = 1
    DEVICE_PEER = 2
    OWNER_DELEGATED_COPY = 3
    EXPLICIT_TRANSFER = 4
    COLLECTIVE = 5


class AdapterProfile(enum.IntEnum):
    """Attachment adapter profile; values are wire ids (0 on the wire means no adapter)."""

    HOST_SVM_MAP = 1
    HOST_VMM_COPY = 2
    DEVICE_VMM_PEER_IMPORT = 3
    DEVICE_FABRIC_V2_PEER_IMPORT = 4
    HOST_SHM_MAP = 5
    REMOTE_COPY = 6


# --- Models -------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class DomainMember:
    """One device of a domain, listed in dense ``domain_rank`` order."""

    node_worker_id: int
    local_worker_id: int
    global_device_rank: int
    domain_rank: int


@dataclass(frozen=True, slots=True)
class DomainAttachment:
    """One receiving node's attachment to one rank window (row = node, column = rank)."""

    node_worker_id: int
    address_space: BufferAddressSpace
    role: AttachmentRole
    adapter_kind: AdapterKind | None = None
    adapter_profile: AdapterProfile | None = None


@dataclass(frozen=True, slots=True)
class DomainBuffer:
    """A named buffer carved out of the domain window."""

    name: str
    nbytes: int


@dataclass(frozen=True, slots=True)
class DomainDescriptor:
    """A rank's exported transport descriptor (fixed 288-byte record, layout version 2)."""

    profile: DomainProfile
    domain_rank: int
    rank_count: int
    mapping_size: int
    handle: bytes


@dataclass(frozen=True, slots=True)
class CommInitCommand:
    """``COMM_INIT``: cluster id, node identity, profile, topology hash and the member table."""

    cluster_id: str
    topology_hash: str
    profile: DomainProfile
    node_rank: int
    node_count: int
    members: tuple[DomainMember, ...]


@dataclass(frozen=True, slots=True)
class CommInitResult:
    """``COMM_INIT`` reply: the capability the node's platform backend implements."""

    profile: DomainProfile
    max_ranks: int
    descriptor_bytes: int
    local_device_count: int


@dataclass(frozen=True, slots=True)
class AllocDomainCommand:
    """``ALLOC_DOMAIN`` in one of its four phases."""

    phase: DomainPhase
    domain_id: int
    generation: int
    name: str
    profile: DomainProfile
    window_size: int
    members: tuple[DomainMember, ...]
    buffers: tuple[DomainBuffer, ...] = ()
    descriptors: tuple[DomainDescriptor, ...] = ()
    attachments: tuple[DomainAttachment, ...] = ()


@dataclass(frozen=True, slots=True)
class DomainDescriptorTable:
    """``ALLOC_DOMAIN`` ``PREPARE_EXPORT`` reply: this node's exported descriptors."""

    descriptors: tuple[DomainDescriptor, ...] = ()


@dataclass(frozen=True, slots=True)
class ReleaseDomainCommand:
    """``RELEASE_DOMAIN`` (idempotent)."""

    domain_id: int
    generation: int


@dataclass(frozen=True, slots=True)
class CopyToDomainCommand:
    """``COPY_TO_DOMAIN``: bounded smoke/control write into a committed window."""

    domain_id: int
    generation: int
    domain_rank: int
    offset: int
    data: bytes


@dataclass(frozen=True, slots=True)
class CopyFromDomainCommand:
    """``COPY_FROM_DOMAIN``: bounded read of a committed window (carries no data)."""

    domain_id: int
    generation: int
    domain_rank: int
    offset: int
    nbytes: int


@dataclass(frozen=True, slots=True)
class CopyFromDomainResult:
    """``COPY_FROM_DOMAIN`` reply: the bytes read."""

    data: bytes


# --- Layouts ------------------------------------------------------------------------------------
_MEMBER = Layout(
    [("node_worker_id", "i"), ("local_worker_id", "I"), ("global_device_rank", "I"), ("domain_rank", "I")]
)
_ATTACHMENT = Layout(
    [
        ("node_worker_id", "i"),
        ("address_space", "I"),
        ("role", "I"),
        ("adapter_kind", "I"),
        ("adapter_profile", "I"),
    ]
)
_DESCRIPTOR_HEAD = Layout(
    [
        ("version", "I"),
        ("profile", "I"),
        ("domain_rank", "I"),
        ("rank_count", "I"),
        ("mapping_size", "Q"),
        ("handle", "I"),
        ("reserved", "I"),
    ]
)
_DESCRIPTOR = struct.Struct("<IIIIQII256s")
GLOBAL_DOMAIN_DESCRIPTOR_BYTES = _DESCRIPTOR.size
_COMM_INIT_HEAD = Layout([("command_version", "I"), ("node_rank", "I"), ("node_count", "I")])
_ALLOC_HEAD = Layout(
    [("command_version", "I"), ("phase", "I"), ("domain_id", "Q"), ("generation", "Q"), ("window_size", "Q")]
)
_RELEASE = Layout([("command_version", "I"), ("domain_id", "Q"), ("generation", "Q")])
_COPY_HEAD = Layout(
    [
        ("command_version", "I"),
        ("domain_id", "Q"),
        ("generation", "Q"),
        ("domain_rank", "I"),
        ("offset", "Q"),
        ("nbytes", "Q"),
    ]
)
_COMM_RESULT_HEAD = Layout([("max_ranks", "I"), ("descriptor_bytes", "I"), ("local_device_count", "I")])
_Q = struct.Struct("<Q")


def _check_version(value: int) -> None:
    if value != GLOBAL_DOMAIN_COMMAND_VERSION:
        fail(f"command layout version {value}; expected {GLOBAL_DOMAIN_COMMAND_VERSION}", "command_version")


def _profile_from_name(name: str, field: str) -> DomainProfile:
    profile = _PROFILE_BY_NAME.get(name)
    if profile is None:
        fail(f"unsupported domain profile {name!r}", field)
    return profile


def _put_profile(profile: object, field: str) -> bytes:
    check_enum(DomainProfile, profile, field)
    return put_string(_PROFILE_NAMES[DomainProfile(profile)], GLOBAL_DOMAIN_MAX_STRING_BYTES, field)


def _put_name(value: object, field: str) -> bytes:
    return put_string(value, GLOBAL_DOMAIN_MAX_STRING_BYTES, field)


# --- Table checks (shared by encode and decode) --------------------------------------------------
def _check_members(members: tuple[DomainMember, ...]) -> None:
    if not 0 < len(members) <= GLOBAL_DOMAIN_MAX_RANKS:
        fail(f"must list 1..{GLOBAL_DOMAIN_MAX_RANKS} devices, got {len(members)}", "members")
    devices: set[tuple[int, int]] = set()
    globals_: set[int] = set()
    for i, m in enumerate(members):
        if m.domain_rank != i:
            fail(
                f"domain ranks must be dense and ordered; rank {m.domain_rank} at index {i}", f"members[{i}]"
            )
        if m.node_worker_id < 0 or m.local_worker_id < 0:
            fail("node/local worker ids must be non-negative", f"members[{i}]")
        device = (m.node_worker_id, m.local_worker_id)
        if device in devices:
            fail("duplicate node/local device", f"members[{i}]")
        devices.add(device)
        if m.global_device_rank < 0 or m.global_device_rank in globals_:
            fail("global device ranks must be unique and non-negative", f"members[{i}].global_device_rank")
        globals_.add(m.global_device_rank)


def _check_attachment(a: DomainAttachment, field: str) -> None:
    if (a.adapter_kind is None) != (a.adapter_profile is None):
        fail("adapter_kind and adapter_profile must be paired", field)
    if a.node_worker_id < 0:
        fail("node_worker_id must be non-negative", field)


def _check_attachments(attachments: tuple[DomainAttachment, ...], rank_count: int) -> None:
    if not attachments:
        return
    if len(attachments) > GLOBAL_DOMAIN_MAX_ATTACHMENTS:
        fail(f"{len(attachments)} entries exceeds maximum {GLOBAL_DOMAIN_MAX_ATTACHMENTS}", "attachments")
    if len(attachments) % rank_count:
        fail("must hold complete rows of one entry per rank", "attachments")
    if len(attachments) // rank_count > GLOBAL_DOMAIN_MAX_ATTACHMENT_ROWS:
        fail("row count exceeds maximum", "attachments")  # pragma: no cover - implied by the entry bound
    seen: set[int] = set()
    for start in range(0, len(attachments), rank_count):
        row = attachments[start : start + rank_count]
        nodes = {a.node_worker_id for a in row}
        if len(nodes) != 1:
            fail("a row must target one node worker", f"attachments[{start}]")
        node = next(iter(nodes))
        if node in seen:
            fail(f"duplicate row for node worker {node}", f"attachments[{start}]")
        seen.add(node)


def _check_descriptor(d: DomainDescriptor, field: str) -> None:
    if not 0 < d.rank_count <= GLOBAL_DOMAIN_MAX_RANKS:
        fail(f"rank_count must be 1..{GLOBAL_DOMAIN_MAX_RANKS}", f"{field}.rank_count")
    if not 0 <= d.domain_rank < d.rank_count:
        fail("domain_rank must be below rank_count", f"{field}.domain_rank")
    if d.mapping_size <= 0:
        fail("mapping_size must be positive", f"{field}.mapping_size")
    if not 0 < len(d.handle) <= GLOBAL_DOMAIN_HANDLE_BYTES:
        fail(f"handle must be 1..{GLOBAL_DOMAIN_HANDLE_BYTES} bytes", f"{field}.handle")


def _check_descriptor_table(
    descs: tuple[DomainDescriptor, ...], rank_count: int, profile: DomainProfile
) -> None:
    if len(descs) != rank_count:
        fail(f"table has {len(descs)} descriptors for {rank_count} ranks", "descriptors")
    ranks: set[int] = set()
    mapping: int | None = None
    for i, d in enumerate(descs):
        if d.profile != profile or d.rank_count != rank_count:
            fail("profile or rank_count differs from the command", f"descriptors[{i}]")
        if d.domain_rank in ranks:
            fail(f"duplicate rank {d.domain_rank}", f"descriptors[{i}].domain_rank")
        ranks.add(d.domain_rank)
        if mapping is None:
            mapping = d.mapping_size
        elif d.mapping_size != mapping:
            fail("mapping sizes differ across ranks", f"descriptors[{i}].mapping_size")


def _check_alloc(c: AllocDomainCommand) -> None:
    _check_members(c.members)
    for i, a in enumerate(c.attachments):
        _check_attachment(a, f"attachments[{i}]")
    _check_attachments(c.attachments, len(c.members))
    if c.phase != DomainPhase.PREPARE_EXPORT and c.attachments:
        fail("only PREPARE_EXPORT carries attachments", "attachments")
    if c.domain_id == 0:
        fail("must be non-zero", "domain_id")
    if c.generation == 0:
        fail("must be non-zero", "generation")
    if c.window_size <= 0:
        fail("must be positive", "window_size")
    if not c.name:
        fail("must be non-empty", "name")
    if len(c.buffers) > GLOBAL_DOMAIN_MAX_BUFFERS:
        fail(f"count exceeds maximum {GLOBAL_DOMAIN_MAX_BUFFERS}", "buffers")
    names: set[str] = set()
    total = 0
    for i, b in enumerate(c.buffers):
        if not b.name or b.nbytes <= 0:
            fail("a buffer needs a name and a positive size", f"buffers[{i}]")
        if b.name in names:
            fail(f"duplicate buffer name {b.name!r}", f"buffers[{i}].name")
        names.add(b.name)
        total += b.nbytes
    if total > c.window_size:
        fail(f"buffers total {total} bytes, more than the {c.window_size}-byte window", "buffers")
    for i, d in enumerate(c.descriptors):
        _check_descriptor(d, f"descriptors[{i}]")
    if c.descriptors:
        _check_descriptor_table(c.descriptors, len(c.members), c.profile)
    if c.phase in (DomainPhase.IMPORT, DomainPhase.COMMIT):
        if len(c.descriptors) != len(c.members):
            fail("IMPORT and COMMIT require a complete descriptor table", "descriptors")
    elif c.descriptors:
        fail("PREPARE_EXPORT and ABORT carry no descriptors", "descriptors")


# --- Element codecs -----------------------------------------------------------------------------
def _put_member(m: DomainMember, field: str) -> bytes:
    return _MEMBER.pack(
        (m.node_worker_id, m.local_worker_id, m.global_device_rank, m.domain_rank), field + "."
    )


def _read_members(r: Reader, field: str) -> tuple[DomainMember, ...]:
    n = r.count(GLOBAL_DOMAIN_MAX_RANKS, _MEMBER.size, field)
    return tuple(DomainMember(*r.run(_MEMBER, f"{field}[{i}].")) for i in range(n))


def _put_attachment(a: DomainAttachment, field: str) -> bytes:
    check_enum(BufferAddressSpace, a.address_space, f"{field}.address_space")
    check_enum(AttachmentRole, a.role, f"{field}.role")
    if a.adapter_kind is not None:
        check_enum(AdapterKind, a.adapter_kind, f"{field}.adapter_kind")
    if a.adapter_profile is not None:
        check_enum(AdapterProfile, a.adapter_profile, f"{field}.adapter_profile")
    kind = 0 if a.adapter_kind is None else a.adapter_kind
    profile = 0 if a.adapter_profile is None else a.adapter_profile
    return _ATTACHMENT.pack((a.node_worker_id, a.address_space, a.role, kind, profile), field + ".")


def _read_attachment(r: Reader, field: str) -> DomainAttachment:
    node, space, role, kind, profile = r.run(_ATTACHMENT, field + ".")
    return DomainAttachment(
        node,
        enum_value(BufferAddressSpace, space, f"{field}.address_space"),
        enum_value(AttachmentRole, role, f"{field}.role"),
        None if kind == 0 else enum_value(AdapterKind, kind, f"{field}.adapter_kind"),
        None if profile == 0 else enum_value(AdapterProfile, profile, f"{field}.adapter_profile"),
    )


def _put_descriptor(d: DomainDescriptor, field: str) -> bytes:
    check_enum(DomainProfile, d.profile, f"{field}.profile")
    handle = check_bytes(d.handle, f"{field}.handle", maximum=GLOBAL_DOMAIN_HANDLE_BYTES)
    _DESCRIPTOR_HEAD.pack(
        (GLOBAL_DOMAIN_VERSION, d.profile, d.domain_rank, d.rank_count, d.mapping_size, len(handle), 0),
        field + ".",
    )
    _check_descriptor(d, field)
    return _DESCRIPTOR.pack(
        GLOBAL_DOMAIN_VERSION, d.profile, d.domain_rank, d.rank_count, d.mapping_size, len(handle), 0, handle
    )


def _read_descriptor(r: Reader, field: str) -> DomainDescriptor:
    raw = r.take(GLOBAL_DOMAIN_DESCRIPTOR_BYTES, field)
    version, profile, rank, count, mapping, handle_size, reserved, handle = _DESCRIPTOR.unpack(raw)
    if version != GLOBAL_DOMAIN_VERSION:
        fail(f"descriptor layout version {version}; expected {GLOBAL_DOMAIN_VERSION}", f"{field}.version")
    if reserved != 0:
        fail("reserved field must be zero", f"{field}.reserved")
    if handle_size > GLOBAL_DOMAIN_HANDLE_BYTES:
        fail(f"handle size {handle_size} exceeds maximum {GLOBAL_DOMAIN_HANDLE_BYTES}", f"{field}.handle")
    d = DomainDescriptor(
        enum_value(DomainProfile, profile, f"{field}.profile"), rank, count, mapping, handle[:handle_size]
    )
    _check_descriptor(d, field)
    return d


def _read_descriptors(r: Reader, field: str) -> tuple[DomainDescriptor, ...]:
    n = r.count(GLOBAL_DOMAIN_MAX_RANKS, GLOBAL_DOMAIN_DESCRIPTOR_BYTES, field)
    return tuple(_read_descriptor(r, f"{field}[{i}]") for i in range(n))


def _seq(value: object, field: str) -> tuple:
    if not isinstance(value, tuple | list):
        fail(f"expected a tuple, got {type(value).__name__}", field)
    return tuple(value)


# --- COMM_INIT ----------------------------------------------------------------------------------
def encode_comm_init(c: CommInitCommand) -> bytes:
    """Encode ``COMM_INIT`` (command layout version 2)."""
    members = _seq(c.members, "members")
    parts = [
        _COMM_INIT_HEAD.pack((GLOBAL_DOMAIN_COMMAND_VERSION, c.node_rank, c.node_count)),
        _put_name(c.cluster_id, "cluster_id"),
        _put_name(c.topology_hash, "topology_hash"),
        _put_profile(c.profile, "profile"),
        pack_u32(len(members)),
        *(_put_member(m, f"members[{i}]") for i, m in enumerate(members)),
    ]
    _check_comm_init(c)
    return b"".join(parts)


def _check_comm_init(c: CommInitCommand) -> None:
    _check_members(c.members)
    if not c.cluster_id:
        fail("must be non-empty", "cluster_id")
    if not c.topology_hash:
        fail("must be non-empty", "topology_hash")
    if c.node_count <= 0:
        fail("must be positive", "node_count")
    if not 0 <= c.node_rank < c.node_count:
        fail("must be below node_count", "node_rank")


def decode_comm_init(data: bytes) -> CommInitCommand:
    """Decode ``COMM_INIT``."""
    r = Reader(data)
    version, node_rank, node_count = r.run(_COMM_INIT_HEAD)
    _check_version(version)
    cluster_id = r.string(GLOBAL_DOMAIN_MAX_STRING_BYTES, "cluster_id")
    topology_hash = r.string(GLOBAL_DOMAIN_MAX_STRING_BYTES, "topology_hash")
    profile = _profile_from_name(r.string(GLOBAL_DOMAIN_MAX_STRING_BYTES, "profile"), "profile")
    members = _read_members(r, "members")
    r.done("members")
    c = CommInitCommand(cluster_id, topology_hash, profile, node_rank, node_count, members)
    _check_comm_init(c)
    return c


def encode_comm_init_result(res: CommInitResult) -> bytes:
    """Encode the ``COMM_INIT`` reply result."""
    head = _COMM_RESULT_HEAD.pack((res.max_ranks, res.descriptor_bytes, res.local_device_count))
    return head + _put_profile(res.profile, "profile")


def decode_comm_init_result(data: bytes) -> CommInitResult:
    """Decode the ``COMM_INIT`` reply result."""
    r = Reader(data)
    max_ranks, descriptor_bytes, local = r.run(_COMM_RESULT_HEAD)
    profile = _profile_from_name(r.string(GLOBAL_DOMAIN_MAX_STRING_BYTES, "profile"), "profile")
    r.done("profile")
    return CommInitResult(profile, max_ranks, descriptor_bytes, local)


# --- ALLOC_DOMAIN -------------------------------------------------------------------------------
def encode_alloc_domain(c: AllocDomainCommand) -> bytes:
    """Encode ``ALLOC_DOMAIN`` (any phase); refuses the tables its decoder would reject."""
    check_enum(DomainPhase, c.phase, "phase")
    members = _seq(c.members, "members")
    attachments = _seq(c.attachments, "attachments")
    buffers = _seq(c.buffers, "buffers")
    descriptors = _seq(c.descriptors, "descriptors")
    parts = [
        _ALLOC_HEAD.pack((GLOBAL_DOMAIN_COMMAND_VERSION, c.phase, c.domain_id, c.generation, c.window_size)),
        _put_name(c.name, "name"),
        _put_profile(c.profile, "profile"),
        pack_u32(len(members)),
        *(_put_member(m, f"members[{i}]") for i, m in enumerate(members)),
        pack_u32(len(attachments)),
        *(_put_attachment(a, f"attachments[{i}]") for i, a in enumerate(attachments)),
        pack_u32(len(buffers)),
    ]
    for i, b in enumerate(buffers):
        parts.append(_put_name(b.name, f"buffers[{i}].name"))
        check_int(b.nbytes, "Q", f"buffers[{i}].nbytes")
        parts.append(_Q.pack(b.nbytes))
    parts.append(pack_u32(len(descriptors)))
    parts.extend(_put_descriptor(d, f"descriptors[{i}]") for i, d in enumerate(descriptors))
    _check_alloc(c)
    return b"".join(parts)


def decode_alloc_domain(data: bytes) -> AllocDomainCommand:
    """Decode ``ALLOC_DOMAIN`` and apply the shipped decoder's table checks."""
    r = Reader(data)
    version, phase, domain_id, generation, window_size = r.run(_ALLOC_HEAD)
    _check_version(version)
    phase_e = enum_value(DomainPhase, phase, "phase")
    name = r.string(GLOBAL_DOMAIN_MAX_STRING_BYTES, "name")
    profile = _profile_from_name(r.string(GLOBAL_DOMAIN_MAX_STRING_BYTES, "profile"), "profile")
    members = _read_members(r, "members")
    n = r.count(GLOBAL_DOMAIN_MAX_ATTACHMENTS, _ATTACHMENT.size, "attachments")
    attachments = tuple(_read_attachment(r, f"attachments[{i}]") for i in range(n))
    n = r.count(GLOBAL_DOMAIN_MAX_BUFFERS, 4 + 8, "buffers")
    buffers = []
    for i in range(n):
        bname = r.string(GLOBAL_DOMAIN_MAX_STRING_BYTES, f"buffers[{i}].name")
        (nbytes,) = _Q.unpack(r.take(8, f"buffers[{i}].nbytes"))
        buffers.append(DomainBuffer(bname, nbytes))
    descriptors = _read_descriptors(r, "descriptors")
    r.done("descriptors")
    c = AllocDomainCommand(
        phase_e,
        domain_id,
        generation,
        name,
        profile,
        window_size,
        members,
        tuple(buffers),
        descriptors,
        attachments,
    )
    _check_alloc(c)
    return c


def encode_descriptor_table(table: DomainDescriptorTable) -> bytes:
    """Encode the ``PREPARE_EXPORT`` reply: ``uint32`` count + fixed descriptor records."""
    descs = _seq(table.descriptors, "descriptors")
    if len(descs) > GLOBAL_DOMAIN_MAX_RANKS:
        fail(f"count exceeds maximum {GLOBAL_DOMAIN_MAX_RANKS}", "descriptors")
    return pack_u32(len(descs)) + b"".join(
        _put_descriptor(d, f"descriptors[{i}]") for i, d in enumerate(descs)
    )


def decode_descriptor_table(data: bytes) -> DomainDescriptorTable:
    """Decode the ``PREPARE_EXPORT`` reply (each descriptor validated on its own)."""
    r = Reader(data)
    descs = _read_descriptors(r, "descriptors")
    r.done("descriptors")
    return DomainDescriptorTable(descs)


# --- RELEASE_DOMAIN -----------------------------------------------------------------------------
def _check_identity(domain_id: int, generation: int) -> None:
    if domain_id == 0:
        fail("must be non-zero", "domain_id")
    if generation == 0:
        fail("must be non-zero", "generation")


def encode_release_domain(c: ReleaseDomainCommand) -> bytes:
    """Encode ``RELEASE_DOMAIN``."""
    out = _RELEASE.pack((GLOBAL_DOMAIN_COMMAND_VERSION, c.domain_id, c.generation))
    _check_identity(c.domain_id, c.generation)
    return out


def decode_release_domain(data: bytes) -> ReleaseDomainCommand:
    """Decode ``RELEASE_DOMAIN`` (exactly 20 bytes)."""
    r = Reader(data)
    version, domain_id, generation = r.run(_RELEASE)
    r.done("generation")
    _check_version(version)
    _check_identity(domain_id, generation)
    return ReleaseDomainCommand(domain_id, generation)


# --- COPY_TO_DOMAIN / COPY_FROM_DOMAIN ----------------------------------------------------------
def _check_copy(domain_id: int, generation: int, nbytes: int) -> None:
    _check_identity(domain_id, generation)
    if not 0 < nbytes <= GLOBAL_DOMAIN_MAX_COPY_BYTES:
        fail(f"must be 1..{GLOBAL_DOMAIN_MAX_COPY_BYTES}", "nbytes")


def encode_copy_to_domain(c: CopyToDomainCommand) -> bytes:
    """Encode ``COPY_TO_DOMAIN``: fixed header whose ``nbytes`` is the length of the trailing data."""
    data = check_bytes(c.data, "data", maximum=GLOBAL_DOMAIN_MAX_COPY_BYTES)
    head = _COPY_HEAD.pack(
        (GLOBAL_DOMAIN_COMMAND_VERSION, c.domain_id, c.generation, c.domain_rank, c.offset, len(data))
    )
    _check_copy(c.domain_id, c.generation, len(data))
    return head + data


def decode_copy_to_domain(data: bytes) -> CopyToDomainCommand:
    """Decode ``COPY_TO_DOMAIN``; the trailing data must be exactly ``nbytes`` long."""
    r = Reader(data)
    version, domain_id, generation, rank, offset, nbytes = r.run(_COPY_HEAD)
    _check_version(version)
    _check_copy(domain_id, generation, nbytes)
    if r.remaining != nbytes:
        fail(f"declares {nbytes} bytes but {r.remaining} follow", "nbytes")
    return CopyToDomainCommand(domain_id, generation, rank, offset, r.take(nbytes, "data"))


def encode_copy_from_domain(c: CopyFromDomainCommand) -> bytes:
    """Encode ``COPY_FROM_DOMAIN``."""
    out = _COPY_HEAD.pack(
        (GLOBAL_DOMAIN_COMMAND_VERSION, c.domain_id, c.generation, c.domain_rank, c.offset, c.nbytes)
    )
    _check_copy(c.domain_id, c.generation, c.nbytes)
    return out


def decode_copy_from_domain(data: bytes) -> CopyFromDomainCommand:
    """Decode ``COPY_FROM_DOMAIN``; the request carries no data bytes."""
    r = Reader(data)
    version, domain_id, generation, rank, offset, nbytes = r.run(_COPY_HEAD)
    _check_version(version)
    _check_copy(domain_id, generation, nbytes)
    r.done("nbytes")
    return CopyFromDomainCommand(domain_id, generation, rank, offset, nbytes)


def encode_copy_from_domain_result(res: CopyFromDomainResult) -> bytes:
    """Encode the ``COPY_FROM_DOMAIN`` reply (bounded blob)."""
    return put_blob(res.data, GLOBAL_DOMAIN_MAX_COPY_BYTES, "data")


def decode_copy_from_domain_result(data: bytes) -> CopyFromDomainResult:
    """Decode the ``COPY_FROM_DOMAIN`` reply."""
    r = Reader(data)
    out = r.blob(GLOBAL_DOMAIN_MAX_COPY_BYTES, "data")
    r.done("data")
    return CopyFromDomainResult(out)
