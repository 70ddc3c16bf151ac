"""CONTROL and CONTROL_REPLY payloads of the SLR3 wire and every typed control's request and result.

Spec: upstream ``docs/remote-l3-worker-design/protocol.md``, "CONTROL Payload" (typed names and
versions, register-family commands, ``RemoteChipCallablePayloadWire v1``, the ``PYTHON_IMPORT``
descriptor), "Remote Buffer Export and Import Controls" (``ExportBufferRequestWire v1``,
``ExportBufferResultWire v1``, ``ImportBufferRequestWire v1``, ``ImportBufferResultWire v1``,
``ReleaseImportRequestWire v1``), "CONTROL_REPLY Payload" and "Bounds and Fuzz Tests" ("unknown
control names or control versions", "control reply sequence or control-name mismatch");
``docs/remote-l3-worker-design/buffers-and-transports.md``, "Required Controls". Layouts are the
shipped codec's (``src/common/hierarchical/remote_wire.cpp``, ``python/simpler/remote_l3_protocol.py``)
and, for the buffer controls the doc leaves unspecified, the shipped endpoint and session runner
(``src/common/hierarchical/remote_endpoint.cpp``, ``python/simpler/remote_l3_session.py``).

Discrepancies between the doc and the shipped code, resolved in favour of the code:

* ``ALLOC_REMOTE_BUFFER`` (doc: "returns a buffer id, generation, address space, size, and
  transport-specific export metadata") is ``int32 worker_id, uint64 buffer_id, uint64 generation,
  int32 address_space, uint64 nbytes, uint64 remote_addr, uint64 rkey_or_token, uint64 ub_ldst_va``;
  its request is a bare ``uint64 nbytes``. Note ``address_space`` is *signed* here, unlike every
  other address space on the wire.
* ``FREE_REMOTE_BUFFER`` is ``int32 worker_id, uint64 buffer_id, uint64 generation``;
  ``COPY_TO_REMOTE`` / ``COPY_FROM_REMOTE`` share the header ``int32 worker_id, uint64 buffer_id,
  uint64 generation, uint64 offset, uint64 size``; COPY_TO's data follows it, and COPY_FROM's
  result bytes are the raw data with no length prefix.
* The C++ endpoint encodes ``ImportBufferResultWire`` with an empty ``transport_profile`` and
  ``import_descriptor`` and discards both on decode; the Python session fills the profile. Both are
  valid wire; this codec keeps the fields.
* The doc asks the codec to reject unknown control versions; the shipped decoder rejects only 0 and
  the parent always sends (and expects replies with) version 1. Only version 1 layouts exist, so any
  other version is rejected here.
* A failed reply (non-zero ``error_code``) carries no result bytes in the shipped session runner;
  this codec requires that, and types a successful reply's ``result`` by its control name.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sim.errors import ProtocolError
from sim.remote.wire_base import (
    CALLABLE_DIGEST_BYTES,
    CONTROL_VERSION,
    MAX_CHIP_CALLABLE_DESCRIPTOR_BYTES,
    MAX_ERROR_BYTES,
    MAX_FRAME_PAYLOAD_BYTES,
    MAX_STAGED_BLOB_TOKEN_BYTES,
    MAX_TRANSPORT_DESCRIPTOR_BYTES,
    MAX_TRANSPORT_PROFILE_BYTES,
    U64_MAX,
    AccessFlags,
    CallableKind,
    ChipCallableBlobLocation,
    ControlName,
    Layout,
    Reader,
    RemoteAddressSpace,
    RemoteRegistryTarget,
    check_bytes,
    check_enum,
    enum_value,
    fail,
    pack_u32,
    put_blob,
    put_string,
    renest,
)
from sim.remote.wire_domain import (
    AllocDomainCommand,
    CommInitCommand,
    CommInitResult,
    CopyFromDomainCommand,
    CopyFromDomainResult,
    CopyToDomainCommand,
    DomainDescriptorTable,
    ReleaseDomainCommand,
    decode_alloc_domain,
    decode_comm_init,
    decode_comm_init_result,
    decode_copy_from_domain,
    decode_copy_from_domain_result,
    decode_copy_to_domain,
    decode_descriptor_table,
    decode_release_domain,
    encode_alloc_domain,
    encode_comm_init,
    encode_comm_init_result,
    encode_copy_from_domain,
    encode_copy_from_domain_result,
    encode_copy_to_domain,
    encode_descriptor_table,
    encode_release_domain,
)

__all__ = [
    "AllocRemoteBufferCommand",
    "AllocRemoteBufferResult",
    "ChipCallablePayload",
    "ControlCommand",
    "ControlPayload",
    "ControlReplyPayload",
    "ControlResult",
    "CopyFromRemoteCommand",
    "CopyFromRemoteResult",
    "CopyToRemoteCommand",
    "DigestCallableCommand",
    "ExportBufferRequest",
    "ExportBufferResult",
    "FreeRemoteBufferCommand",
    "ImportBufferRequest",
    "ImportBufferResult",
    "RegisterCallableCommand",
    "ReleaseImportRequest",
    "command_type",
    "decode_chip_callable_payload",
    "decode_command",
    "decode_control",
    "decode_control_reply",
    "decode_result",
    "encode_chip_callable_payload",
    "encode_command",
    "encode_control",
    "encode_control_reply",
    "encode_result",
    "parse_python_import_target",
    "python_import_descriptor",
    "python_import_digest",
    "result_type",
]


# --- Register-family commands -------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class DigestCallableCommand:
    """``UNREGISTER`` / ``COMMIT_REGISTER`` / ``ABORT_REGISTER`` / ``PREPARE_CALLABLE`` command."""

    target_registry: RemoteRegistryTarget
    callable_kind: CallableKind
    callable_digest: bytes


@dataclass(frozen=True, slots=True)
class RegisterCallableCommand:
    """``PREPARE_REGISTER_CALLABLE``: target, kind, digest, ``payload_version`` (>= 1), payload bytes.

    The payload is a ``module:qualname`` UTF-8 string for ``PYTHON_IMPORT`` and a
    ``RemoteChipCallablePayloadWire`` for ``CHIP_CALLABLE`` (see :func:`decode_chip_callable_payload`);
    its contents are checked by the session when it stages the callable, not by the frame codec.
    """

    target_registry: RemoteRegistryTarget
    callable_kind: CallableKind
    callable_digest: bytes
    payload: bytes
    payload_version: int = 1


@dataclass(frozen=True, slots=True)
class ChipCallablePayload:
    """``RemoteChipCallablePayloadWire v1`` (protocol.md "CONTROL Payload")."""

    descriptor_bytes: bytes
    blob_location: ChipCallableBlobLocation
    blob_size: int
    blob_sha256: bytes
    inline_blob: bytes = b""
    staged_blob_token: bytes = b""


# --- Buffer controls ----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class AllocRemoteBufferCommand:
    """``ALLOC_REMOTE_BUFFER`` request: the non-zero size to allocate."""

    nbytes: int


@dataclass(frozen=True, slots=True)
class AllocRemoteBufferResult:
    """``ALLOC_REMOTE_BUFFER`` result: an owner ``REMOTE_DEVICE`` allocation."""

    worker_id: int
    buffer_id: int
    generation: int
    nbytes: int
    remote_addr: int = 0
    rkey_or_token: int = 0
    ub_ldst_va: int = 0
    address_space: RemoteAddressSpace = RemoteAddressSpace.REMOTE_DEVICE


@dataclass(frozen=True, slots=True)
class FreeRemoteBufferCommand:
    """``FREE_REMOTE_BUFFER`` request."""

    owner_worker_id: int
    buffer_id: int
    generation: int


@dataclass(frozen=True, slots=True)
class CopyToRemoteCommand:
    """``COPY_TO_REMOTE`` request; the wire ``size`` is ``len(data)``."""

    worker_id: int
    buffer_id: int
    generation: int
    offset: int
    data: bytes


@dataclass(frozen=True, slots=True)
class CopyFromRemoteCommand:
    """``COPY_FROM_REMOTE`` request (carries no data)."""

    worker_id: int
    buffer_id: int
    generation: int
    offset: int
    nbytes: int


@dataclass(frozen=True, slots=True)
class CopyFromRemoteResult:
    """``COPY_FROM_REMOTE`` result: the raw bytes read."""

    data: bytes


@dataclass(frozen=True, slots=True)
class ExportBufferRequest:
    """``ExportBufferRequestWire v1``."""

    owner_worker_id: int
    buffer_id: int
    generation: int
    offset: int
    nbytes: int
    access_flags: AccessFlags
    transport_profile: str = ""


@dataclass(frozen=True, slots=True)
class ExportBufferResult:
    """``ExportBufferResultWire v1``; ``address_space`` is ``REMOTE_WINDOW`` or ``UB_LDST``."""

    owner_worker_id: int
    buffer_id: int
    generation: int
    address_space: RemoteAddressSpace
    offset: int
    nbytes: int
    export_id: int
    access_flags: AccessFlags
    remote_addr: int = 0
    rkey_or_token: int = 0
    ub_ldst_va: int = 0
    transport_profile: str = ""
    transport_descriptor: bytes = b""


@dataclass(frozen=True, slots=True)
class ImportBufferRequest:
    """``ImportBufferRequestWire v1``: requested access must be a non-empty subset of the export's."""

    importer_worker_id: int
    requested_access_flags: AccessFlags
    export_desc: ExportBufferResult


@dataclass(frozen=True, slots=True)
class ImportBufferResult:
    """``ImportBufferResultWire v1``; ``address_space`` is ``REMOTE_WINDOW`` or ``UB_LDST``."""

    importer_worker_id: int
    owner_worker_id: int
    buffer_id: int
    generation: int
    import_id: int
    address_space: RemoteAddressSpace
    offset: int
    nbytes: int
    access_flags: AccessFlags
    remote_addr: int = 0
    rkey_or_token: int = 0
    ub_ldst_va: int = 0
    transport_profile: str = ""
    import_descriptor: bytes = b""


@dataclass(frozen=True, slots=True)
class ReleaseImportRequest:
    """``ReleaseImportRequestWire v1`` (the reply has empty result bytes)."""

    importer_worker_id: int
    owner_worker_id: int
    buffer_id: int
    generation: int
    import_id: int


ControlCommand = (
    DigestCallableCommand
    | RegisterCallableCommand
    | AllocRemoteBufferCommand
    | FreeRemoteBufferCommand
    | CopyToRemoteCommand
    | CopyFromRemoteCommand
    | ExportBufferRequest
    | ImportBufferRequest
    | ReleaseImportRequest
    | CommInitCommand
    | AllocDomainCommand
    | ReleaseDomainCommand
    | CopyToDomainCommand
    | CopyFromDomainCommand
)
ControlResult = (
    AllocRemoteBufferResult
    | CopyFromRemoteResult
    | ExportBufferResult
    | ImportBufferResult
    | CommInitResult
    | DomainDescriptorTable
    | CopyFromDomainResult
)


@dataclass(frozen=True, slots=True)
class ControlPayload:
    """CONTROL payload: ``control_name``, ``control_version`` and the typed command."""

    control_name: ControlName
    command: ControlCommand
    control_version: int = CONTROL_VERSION


@dataclass(frozen=True, slots=True)
class ControlReplyPayload:
    """CONTROL_REPLY payload (protocol.md "CONTROL_REPLY Payload").

    ``result`` is the typed result of a successful control, or ``None`` when the control has no
    result bytes (always the case when ``error_code`` is non-zero).
    """

    sequence: int
    control_name: ControlName
    error_code: int = 0
    error_message: str = ""
    result: ControlResult | None = None
    control_version: int = CONTROL_VERSION


# --- Layouts ------------------------------------------------------------------------------------
_DIGEST_HEAD = Layout([("target_registry", "I"), ("callable_kind", "I")])
_REGISTER_TAIL = Layout([("payload_version", "I"), ("payload", "I")])
_CHIP_MID = Layout([("blob_location", "I"), ("blob_size", "Q")])
_ALLOC_REQ = Layout([("nbytes", "Q")])
_ALLOC_RES = Layout(
    [
        ("worker_id", "i"),
        ("buffer_id", "Q"),
        ("generation", "Q"),
        ("address_space", "i"),
        ("nbytes", "Q"),
        ("remote_addr", "Q"),
        ("rkey_or_token", "Q"),
        ("ub_ldst_va", "Q"),
    ]
)
_FREE = Layout([("owner_worker_id", "i"), ("buffer_id", "Q"), ("generation", "Q")])
_COPY = Layout(
    [("worker_id", "i"), ("buffer_id", "Q"), ("generation", "Q"), ("offset", "Q"), ("nbytes", "Q")]
)
_EXPORT_REQ = Layout(
    [
        ("owner_worker_id", "i"),
        ("buffer_id", "Q"),
        ("generation", "Q"),
        ("offset", "Q"),
        ("nbytes", "Q"),
        ("access_flags", "I"),
    ]
)
_EXPORT_RES = Layout(
    [
        ("owner_worker_id", "i"),
        ("buffer_id", "Q"),
        ("generation", "Q"),
        ("address_space", "I"),
        ("offset", "Q"),
        ("nbytes", "Q"),
        ("export_id", "Q"),
        ("remote_addr", "Q"),
        ("rkey_or_token", "Q"),
        ("ub_ldst_va", "Q"),
        ("access_flags", "I"),
    ]
)
_IMPORT_REQ_HEAD = Layout([("importer_worker_id", "i"), ("requested_access_flags", "I")])
_IMPORT_RES = Layout(
    [
        ("importer_worker_id", "i"),
        ("owner_worker_id", "i"),
        ("buffer_id", "Q"),
        ("generation", "Q"),
        ("import_id", "Q"),
        ("address_space", "I"),
        ("offset", "Q"),
        ("nbytes", "Q"),
        ("remote_addr", "Q"),
        ("rkey_or_token", "Q"),
        ("ub_ldst_va", "Q"),
        ("access_flags", "I"),
    ]
)
_RELEASE = Layout(
    [
        ("importer_worker_id", "i"),
        ("owner_worker_id", "i"),
        ("buffer_id", "Q"),
        ("generation", "Q"),
        ("import_id", "Q"),
    ]
)
_CONTROL_HEAD = Layout([("control_name", "I"), ("control_version", "I"), ("command_bytes", "I")])
_REPLY_HEAD = Layout(
    [("sequence", "Q"), ("control_name", "I"), ("control_version", "I"), ("error_code", "i")]
)
_RESERVED = pack_u32(0)
_WINDOW_SPACES = (RemoteAddressSpace.REMOTE_WINDOW, RemoteAddressSpace.UB_LDST)


# --- Shared checks ------------------------------------------------------------------------------
def _check_access(flags: int, field: str) -> None:
    if flags == 0:
        fail("must request at least one access bit", field)
    if flags & ~int(AccessFlags.READ_WRITE):
        fail(f"unknown access bits in {flags:#x}", field)


def _check_nonneg(value: int, field: str) -> None:
    if value < 0:
        fail("worker id must be non-negative", field)


def _check_nonzero(value: int, field: str) -> None:
    if value == 0:
        fail("must be non-zero", field)


def _check_window_space(space: int, field: str) -> None:
    if space not in _WINDOW_SPACES:
        fail("must be REMOTE_WINDOW or UB_LDST (a peer consumes an export through a window)", field)


def _digest(value: object) -> bytes:
    return check_bytes(value, "callable_digest", exact=CALLABLE_DIGEST_BYTES)


# --- Register family ----------------------------------------------------------------------------
def _enc_digest_cmd(c: DigestCallableCommand) -> bytes:
    check_enum(RemoteRegistryTarget, c.target_registry, "target_registry")
    check_enum(CallableKind, c.callable_kind, "callable_kind")
    return _DIGEST_HEAD.pack((c.target_registry, c.callable_kind)) + _digest(c.callable_digest)


def _read_digest_head(r: Reader) -> tuple[RemoteRegistryTarget, CallableKind, bytes]:
    target, kind = r.run(_DIGEST_HEAD)
    return (
        enum_value(RemoteRegistryTarget, target, "target_registry"),
        enum_value(CallableKind, kind, "callable_kind"),
        r.take(CALLABLE_DIGEST_BYTES, "callable_digest"),
    )


def _dec_digest_cmd(data: bytes) -> DigestCallableCommand:
    r = Reader(data)
    out = DigestCallableCommand(*_read_digest_head(r))
    r.done("callable_digest")
    return out


def _enc_register(c: RegisterCallableCommand) -> bytes:
    check_enum(RemoteRegistryTarget, c.target_registry, "target_registry")
    check_enum(CallableKind, c.callable_kind, "callable_kind")
    digest = _digest(c.callable_digest)
    payload = check_bytes(c.payload, "payload", maximum=MAX_FRAME_PAYLOAD_BYTES)
    tail = _REGISTER_TAIL.pack((c.payload_version, len(payload)))
    _check_nonzero(c.payload_version, "payload_version")
    return _DIGEST_HEAD.pack((c.target_registry, c.callable_kind)) + digest + tail + payload


def _dec_register(data: bytes) -> RegisterCallableCommand:
    r = Reader(data)
    target, kind, digest = _read_digest_head(r)
    version = r.u32("payload_version")
    _check_nonzero(version, "payload_version")
    payload = r.blob(MAX_FRAME_PAYLOAD_BYTES, "payload")
    r.done("payload")
    return RegisterCallableCommand(target, kind, digest, payload, version)


def _check_chip(p: ChipCallablePayload) -> None:
    if p.blob_size == 0:
        fail("must be non-zero", "blob_size")
    if p.blob_location == ChipCallableBlobLocation.INLINE_BLOB:
        if len(p.inline_blob) != p.blob_size:
            fail(f"{len(p.inline_blob)} bytes but blob_size is {p.blob_size}", "inline_blob")
        if p.staged_blob_token:
            fail("must be empty for INLINE_BLOB", "staged_blob_token")
    else:
        if p.inline_blob:
            fail("must be empty for STAGED_BLOB", "inline_blob")
        if not p.staged_blob_token:
            fail("must name the staged bytes for STAGED_BLOB", "staged_blob_token")


def encode_chip_callable_payload(p: ChipCallablePayload) -> bytes:
    """Encode ``RemoteChipCallablePayloadWire v1`` (the ``CHIP_CALLABLE`` register payload)."""
    check_enum(ChipCallableBlobLocation, p.blob_location, "blob_location")
    parts = [
        put_blob(p.descriptor_bytes, MAX_CHIP_CALLABLE_DESCRIPTOR_BYTES, "descriptor_bytes"),
        _CHIP_MID.pack((p.blob_location, p.blob_size)),
        check_bytes(p.blob_sha256, "blob_sha256", exact=CALLABLE_DIGEST_BYTES),
        put_blob(p.inline_blob, MAX_FRAME_PAYLOAD_BYTES, "inline_blob"),
        put_blob(p.staged_blob_token, MAX_STAGED_BLOB_TOKEN_BYTES, "staged_blob_token"),
        _RESERVED,
    ]
    _check_chip(p)
    return b"".join(parts)


def decode_chip_callable_payload(data: bytes) -> ChipCallablePayload:
    """Decode ``RemoteChipCallablePayloadWire v1``."""
    r = Reader(data)
    descriptor = r.blob(MAX_CHIP_CALLABLE_DESCRIPTOR_BYTES, "descriptor_bytes")
    location, size = r.run(_CHIP_MID)
    p = ChipCallablePayload(
        descriptor,
        enum_value(ChipCallableBlobLocation, location, "blob_location"),
        size,
        r.take(CALLABLE_DIGEST_BYTES, "blob_sha256"),
        r.blob(MAX_FRAME_PAYLOAD_BYTES, "inline_blob"),
        r.blob(MAX_STAGED_BLOB_TOKEN_BYTES, "staged_blob_token"),
    )
    r.reserved_u32("reserved")
    r.done("reserved")
    _check_chip(p)
    return p


_DESCRIPTOR_SCHEMA_VERSION = 1


def parse_python_import_target(payload: bytes | str) -> tuple[str, str]:
    """Split a ``PYTHON_IMPORT`` payload into ``(module, qualname)`` (protocol.md "CONTROL Payload").

    Trims surrounding ASCII whitespace, requires exactly one colon, non-empty parts, an absolute
    module, no ``<locals>``, and dotted Python identifiers on both sides.
    """
    if isinstance(payload, bytes | bytearray):
        try:
            payload = bytes(payload).decode("utf-8")
        except UnicodeDecodeError:
            fail("not valid UTF-8", "payload")
    text = payload.strip(" \t\r\n")
    if text.count(":") != 1:
        fail("must have exactly one ':' separator", "payload")
    module, qualname = text.split(":")
    if not module or not qualname:
        fail("module and qualname must be non-empty", "payload")
    if module.startswith("."):
        fail("module must be absolute", "payload")
    if "<locals>" in qualname.split("."):
        fail("qualname must not contain <locals>", "payload")
    for part in (*module.split("."), *qualname.split(".")):
        if not part.isidentifier():
            fail(f"{part!r} is not a Python identifier", "payload")
    return module, qualname


def python_import_descriptor(module: str, qualname: str) -> bytes:
    """The canonical ``REMOTE_PYTHON_IMPORT`` descriptor whose SHA-256 is the callable digest."""
    parse_python_import_target(f"{module}:{qualname}")
    return (
        pack_u32(_DESCRIPTOR_SCHEMA_VERSION)
        + pack_u32(int(CallableKind.PYTHON_IMPORT))
        + put_string(module, U64_MAX, "module")
        + put_string(qualname, U64_MAX, "qualname")
    )


def python_import_digest(module: str, qualname: str) -> bytes:
    """The 32-byte ``callable_hash_digest`` of a ``PYTHON_IMPORT`` target."""
    return hashlib.sha256(python_import_descriptor(module, qualname)).digest()


# --- ALLOC / FREE / COPY ------------------------------------------------------------------------
def _enc_alloc(c: AllocRemoteBufferCommand) -> bytes:
    out = _ALLOC_REQ.pack((c.nbytes,))
    _check_nonzero(c.nbytes, "nbytes")
    return out


def _dec_alloc(data: bytes) -> AllocRemoteBufferCommand:
    r = Reader(data)
    (nbytes,) = r.run(_ALLOC_REQ)
    r.done("nbytes")
    _check_nonzero(nbytes, "nbytes")
    return AllocRemoteBufferCommand(nbytes)


def _check_alloc_result(res: AllocRemoteBufferResult) -> None:
    _check_nonneg(res.worker_id, "worker_id")
    _check_nonzero(res.buffer_id, "buffer_id")
    _check_nonzero(res.generation, "generation")
    if res.address_space != RemoteAddressSpace.REMOTE_DEVICE:
        fail("an owner allocation must be REMOTE_DEVICE", "address_space")
    _check_nonzero(res.nbytes, "nbytes")


def _enc_alloc_result(res: AllocRemoteBufferResult) -> bytes:
    check_enum(RemoteAddressSpace, res.address_space, "address_space")
    out = _ALLOC_RES.pack(
        (
            res.worker_id,
            res.buffer_id,
            res.generation,
            res.address_space,
            res.nbytes,
            res.remote_addr,
            res.rkey_or_token,
            res.ub_ldst_va,
        )
    )
    _check_alloc_result(res)
    return out


def _dec_alloc_result(data: bytes) -> AllocRemoteBufferResult:
    r = Reader(data)
    worker, buffer_id, generation, space, nbytes, addr, rkey, va = r.run(_ALLOC_RES)
    r.done("ub_ldst_va")
    res = AllocRemoteBufferResult(
        worker,
        buffer_id,
        generation,
        nbytes,
        addr,
        rkey,
        va,
        enum_value(RemoteAddressSpace, space, "address_space"),
    )
    _check_alloc_result(res)
    return res


def _enc_free(c: FreeRemoteBufferCommand) -> bytes:
    return _FREE.pack((c.owner_worker_id, c.buffer_id, c.generation))


def _dec_free(data: bytes) -> FreeRemoteBufferCommand:
    r = Reader(data)
    out = FreeRemoteBufferCommand(*r.run(_FREE))
    r.done("generation")
    return out


def _enc_copy_to(c: CopyToRemoteCommand) -> bytes:
    data = check_bytes(c.data, "data", maximum=MAX_FRAME_PAYLOAD_BYTES)
    return _COPY.pack((c.worker_id, c.buffer_id, c.generation, c.offset, len(data))) + data


def _dec_copy_to(data: bytes) -> CopyToRemoteCommand:
    r = Reader(data)
    worker, buffer_id, generation, offset, size = r.run(_COPY)
    if r.remaining != size:
        fail(f"declares {size} bytes but {r.remaining} follow", "nbytes")
    return CopyToRemoteCommand(worker, buffer_id, generation, offset, r.take(size, "data"))


def _enc_copy_from(c: CopyFromRemoteCommand) -> bytes:
    return _COPY.pack((c.worker_id, c.buffer_id, c.generation, c.offset, c.nbytes))


def _dec_copy_from(data: bytes) -> CopyFromRemoteCommand:
    r = Reader(data)
    out = CopyFromRemoteCommand(*r.run(_COPY))
    r.done("nbytes")
    return out


def _enc_copy_from_result(res: CopyFromRemoteResult) -> bytes:
    return check_bytes(res.data, "data", maximum=MAX_FRAME_PAYLOAD_BYTES)


def _dec_copy_from_result(data: bytes) -> CopyFromRemoteResult:
    return CopyFromRemoteResult(data)


# --- EXPORT / IMPORT / RELEASE ------------------------------------------------------------------
def _check_export_request(c: ExportBufferRequest) -> None:
    _check_nonneg(c.owner_worker_id, "owner_worker_id")
    _check_nonzero(c.buffer_id, "buffer_id")
    _check_nonzero(c.generation, "generation")
    _check_nonzero(c.nbytes, "nbytes")
    if c.offset + c.nbytes > U64_MAX:
        fail("offset + nbytes overflows 64 bits", "offset")
    _check_access(c.access_flags, "access_flags")


def _enc_export_request(c: ExportBufferRequest) -> bytes:
    head = _EXPORT_REQ.pack(
        (c.owner_worker_id, c.buffer_id, c.generation, c.offset, c.nbytes, c.access_flags)
    )
    profile = put_string(c.transport_profile, MAX_TRANSPORT_PROFILE_BYTES, "transport_profile")
    _check_export_request(c)
    return head + profile + _RESERVED


def _dec_export_request(data: bytes) -> ExportBufferRequest:
    r = Reader(data)
    owner, buffer_id, generation, offset, nbytes, access = r.run(_EXPORT_REQ)
    profile = r.string(MAX_TRANSPORT_PROFILE_BYTES, "transport_profile")
    r.reserved_u32("reserved")
    r.done("reserved")
    c = ExportBufferRequest(owner, buffer_id, generation, offset, nbytes, AccessFlags(access), profile)
    _check_export_request(c)
    return c


def _check_export_result(res: ExportBufferResult) -> None:
    _check_nonneg(res.owner_worker_id, "owner_worker_id")
    _check_nonzero(res.buffer_id, "buffer_id")
    _check_nonzero(res.generation, "generation")
    _check_nonzero(res.nbytes, "nbytes")
    _check_nonzero(res.export_id, "export_id")
    _check_window_space(res.address_space, "address_space")
    _check_access(res.access_flags, "access_flags")


def _enc_export_result(res: ExportBufferResult) -> bytes:
    check_enum(RemoteAddressSpace, res.address_space, "address_space")
    head = _EXPORT_RES.pack(
        (
            res.owner_worker_id,
            res.buffer_id,
            res.generation,
            res.address_space,
            res.offset,
            res.nbytes,
            res.export_id,
            res.remote_addr,
            res.rkey_or_token,
            res.ub_ldst_va,
            res.access_flags,
        )
    )
    profile = put_string(res.transport_profile, MAX_TRANSPORT_PROFILE_BYTES, "transport_profile")
    desc = put_blob(res.transport_descriptor, MAX_TRANSPORT_DESCRIPTOR_BYTES, "transport_descriptor")
    _check_export_result(res)
    return head + profile + desc + _RESERVED


def _read_export_result(r: Reader) -> ExportBufferResult:
    owner, buffer_id, generation, space, offset, nbytes, export_id, addr, rkey, va, access = r.run(
        _EXPORT_RES
    )
    space_e = enum_value(RemoteAddressSpace, space, "address_space")
    profile = r.string(MAX_TRANSPORT_PROFILE_BYTES, "transport_profile")
    desc = r.blob(MAX_TRANSPORT_DESCRIPTOR_BYTES, "transport_descriptor")
    r.reserved_u32("reserved")
    _check_access(access, "access_flags")
    res = ExportBufferResult(
        owner,
        buffer_id,
        generation,
        space_e,
        offset,
        nbytes,
        export_id,
        AccessFlags(access),
        addr,
        rkey,
        va,
        profile,
        desc,
    )
    _check_export_result(res)
    return res


def _dec_export_result(data: bytes) -> ExportBufferResult:
    r = Reader(data)
    res = _read_export_result(r)
    r.done("reserved")
    return res


def _check_import_request(c: ImportBufferRequest) -> None:
    _check_nonneg(c.importer_worker_id, "importer_worker_id")
    _check_access(c.requested_access_flags, "requested_access_flags")
    if c.requested_access_flags & ~int(c.export_desc.access_flags):
        fail("must be a subset of export_desc.access_flags", "requested_access_flags")


def _enc_import_request(c: ImportBufferRequest) -> bytes:
    head = _IMPORT_REQ_HEAD.pack((c.importer_worker_id, c.requested_access_flags))
    if not isinstance(c.export_desc, ExportBufferResult):
        fail(f"expected ExportBufferResult, got {type(c.export_desc).__name__}", "export_desc")
    try:
        export = _enc_export_result(c.export_desc)
    except ProtocolError as exc:
        raise renest(exc, "export_desc") from None
    _check_import_request(c)
    return head + export + _RESERVED


def _dec_import_request(data: bytes) -> ImportBufferRequest:
    r = Reader(data)
    importer, access = r.run(_IMPORT_REQ_HEAD)
    try:
        export = _read_export_result(r)
    except ProtocolError as exc:
        raise renest(exc, "export_desc") from None
    r.reserved_u32("reserved")
    r.done("reserved")
    c = ImportBufferRequest(importer, AccessFlags(access), export)
    _check_import_request(c)
    return c


def _check_import_result(res: ImportBufferResult) -> None:
    _check_nonneg(res.importer_worker_id, "importer_worker_id")
    _check_nonneg(res.owner_worker_id, "owner_worker_id")
    _check_nonzero(res.buffer_id, "buffer_id")
    _check_nonzero(res.generation, "generation")
    _check_nonzero(res.import_id, "import_id")
    _check_nonzero(res.nbytes, "nbytes")
    _check_window_space(res.address_space, "address_space")
    _check_access(res.access_flags, "access_flags")


def _enc_import_result(res: ImportBufferResult) -> bytes:
    check_enum(RemoteAddressSpace, res.address_space, "address_space")
    head = _IMPORT_RES.pack(
        (
            res.importer_worker_id,
            res.owner_worker_id,
            res.buffer_id,
            res.generation,
            res.import_id,
            res.address_space,
            res.offset,
            res.nbytes,
            res.remote_addr,
            res.rkey_or_token,
            res.ub_ldst_va,
            res.access_flags,
        )
    )
    profile = put_string(res.transport_profile, MAX_TRANSPORT_PROFILE_BYTES, "transport_profile")
    desc = put_blob(res.import_descriptor, MAX_TRANSPORT_DESCRIPTOR_BYTES, "import_descriptor")
    _check_import_result(res)
    return head + profile + desc + _RESERVED


def _dec_import_result(data: bytes) -> ImportBufferResult:
    r = Reader(data)
    importer, owner, buffer_id, generation, import_id, space, offset, nbytes, addr, rkey, va, access = r.run(
        _IMPORT_RES
    )
    space_e = enum_value(RemoteAddressSpace, space, "address_space")
    profile = r.string(MAX_TRANSPORT_PROFILE_BYTES, "transport_profile")
    desc = r.blob(MAX_TRANSPORT_DESCRIPTOR_BYTES, "import_descriptor")
    r.reserved_u32("reserved")
    r.done("reserved")
    _check_access(access, "access_flags")
    res = ImportBufferResult(
        importer,
        owner,
        buffer_id,
        generation,
        import_id,
        space_e,
        offset,
        nbytes,
        AccessFlags(access),
        addr,
        rkey,
        va,
        profile,
        desc,
    )
    _check_import_result(res)
    return res


def _check_release(c: ReleaseImportRequest) -> None:
    _check_nonneg(c.importer_worker_id, "importer_worker_id")
    _check_nonneg(c.owner_worker_id, "owner_worker_id")
    _check_nonzero(c.buffer_id, "buffer_id")
    _check_nonzero(c.generation, "generation")
    _check_nonzero(c.import_id, "import_id")


def _enc_release(c: ReleaseImportRequest) -> bytes:
    out = _RELEASE.pack((c.importer_worker_id, c.owner_worker_id, c.buffer_id, c.generation, c.import_id))
    _check_release(c)
    return out + _RESERVED


def _dec_release(data: bytes) -> ReleaseImportRequest:
    r = Reader(data)
    c = ReleaseImportRequest(*r.run(_RELEASE))
    r.reserved_u32("reserved")
    r.done("reserved")
    _check_release(c)
    return c


# --- Dispatch tables ----------------------------------------------------------------------------
_Codec = tuple[type, Callable[[Any], bytes], Callable[[bytes], Any]]
_DIGEST_CODEC: _Codec = (DigestCallableCommand, _enc_digest_cmd, _dec_digest_cmd)
_COMMANDS: dict[ControlName, _Codec] = {
    ControlName.UNREGISTER_CALLABLE: _DIGEST_CODEC,
    ControlName.PREPARE_REGISTER_CALLABLE: (RegisterCallableCommand, _enc_register, _dec_register),
    ControlName.COMMIT_REGISTER_CALLABLE: _DIGEST_CODEC,
    ControlName.ABORT_REGISTER_CALLABLE: _DIGEST_CODEC,
    ControlName.PREPARE_CALLABLE: _DIGEST_CODEC,
    ControlName.ALLOC_REMOTE_BUFFER: (AllocRemoteBufferCommand, _enc_alloc, _dec_alloc),
    ControlName.FREE_REMOTE_BUFFER: (FreeRemoteBufferCommand, _enc_free, _dec_free),
    ControlName.COPY_TO_REMOTE: (CopyToRemoteCommand, _enc_copy_to, _dec_copy_to),
    ControlName.COPY_FROM_REMOTE: (CopyFromRemoteCommand, _enc_copy_from, _dec_copy_from),
    ControlName.EXPORT_BUFFER: (ExportBufferRequest, _enc_export_request, _dec_export_request),
    ControlName.IMPORT_BUFFER: (ImportBufferRequest, _enc_import_request, _dec_import_request),
    ControlName.RELEASE_IMPORT: (ReleaseImportRequest, _enc_release, _dec_release),
    ControlName.COMM_INIT: (CommInitCommand, encode_comm_init, decode_comm_init),
    ControlName.ALLOC_DOMAIN: (AllocDomainCommand, encode_alloc_domain, decode_alloc_domain),
    ControlName.RELEASE_DOMAIN: (ReleaseDomainCommand, encode_release_domain, decode_release_domain),
    ControlName.COPY_TO_DOMAIN: (CopyToDomainCommand, encode_copy_to_domain, decode_copy_to_domain),
    ControlName.COPY_FROM_DOMAIN: (CopyFromDomainCommand, encode_copy_from_domain, decode_copy_from_domain),
}
_RESULTS: dict[ControlName, _Codec] = {
    ControlName.ALLOC_REMOTE_BUFFER: (AllocRemoteBufferResult, _enc_alloc_result, _dec_alloc_result),
    ControlName.COPY_FROM_REMOTE: (CopyFromRemoteResult, _enc_copy_from_result, _dec_copy_from_result),
    ControlName.EXPORT_BUFFER: (ExportBufferResult, _enc_export_result, _dec_export_result),
    ControlName.IMPORT_BUFFER: (ImportBufferResult, _enc_import_result, _dec_import_result),
    ControlName.COMM_INIT: (CommInitResult, encode_comm_init_result, decode_comm_init_result),
    ControlName.ALLOC_DOMAIN: (DomainDescriptorTable, encode_descriptor_table, decode_descriptor_table),
    ControlName.COPY_FROM_DOMAIN: (
        CopyFromDomainResult,
        encode_copy_from_domain_result,
        decode_copy_from_domain_result,
    ),
}
# Controls whose successful reply may also carry no bytes at all (ALLOC_DOMAIN's non-PREPARE phases).
_RESULT_OPTIONAL = frozenset({ControlName.ALLOC_DOMAIN})


def command_type(name: ControlName) -> type:
    """The command dataclass a control of this name carries."""
    return _COMMANDS[name][0]


def result_type(name: ControlName) -> type | None:
    """The result dataclass a successful reply to this control carries, or ``None`` if it has none."""
    codec = _RESULTS.get(name)
    return None if codec is None else codec[0]


def encode_command(name: ControlName, command: ControlCommand) -> bytes:
    """Encode the command bytes of control ``name``; field paths are relative to the command."""
    check_enum(ControlName, name, "control_name")
    cls, enc, _ = _COMMANDS[ControlName(name)]
    if type(command) is not cls:
        fail(f"{ControlName(name).name} carries {cls.__name__}, got {type(command).__name__}", "command")
    return enc(command)


def decode_command(name: ControlName, data: bytes) -> ControlCommand:
    """Decode the command bytes of control ``name``."""
    return _COMMANDS[name][2](data)


def encode_result(name: ControlName, result: ControlResult | None) -> bytes:
    """Encode the result bytes of a successful reply to control ``name``."""
    check_enum(ControlName, name, "control_name")
    name = ControlName(name)
    codec = _RESULTS.get(name)
    if result is None:
        if codec is None or name in _RESULT_OPTIONAL:
            return b""
        fail(f"a successful {name.name} reply carries a {codec[0].__name__}", "result")
    if codec is None:
        fail(f"{name.name} has no result, got {type(result).__name__}", "result")
    if type(result) is not codec[0]:
        fail(f"{name.name} result is {codec[0].__name__}, got {type(result).__name__}", "result")
    return codec[1](result)


def decode_result(name: ControlName, data: bytes) -> ControlResult | None:
    """Decode the result bytes of a successful reply to control ``name``."""
    codec = _RESULTS.get(name)
    if codec is None:
        if data:
            fail(f"{name.name} has no result but {len(data)} byte(s) arrived", "result")
        return None
    if not data and name in _RESULT_OPTIONAL:
        return None
    return codec[2](data)


# --- CONTROL / CONTROL_REPLY envelopes ----------------------------------------------------------
def _check_version(version: int) -> None:
    if version != CONTROL_VERSION:
        fail(f"unsupported control version {version}; only {CONTROL_VERSION} is defined", "control_version")


def encode_control(payload: ControlPayload) -> bytes:
    """Encode a CONTROL payload (protocol.md "CONTROL Payload")."""
    check_enum(ControlName, payload.control_name, "control_name")
    name = ControlName(payload.control_name)
    _check_version(payload.control_version)
    try:
        command = encode_command(name, payload.command)
    except ProtocolError as exc:
        raise renest(exc, name.name) from None
    if len(command) > MAX_FRAME_PAYLOAD_BYTES:
        fail(f"{len(command)} bytes exceeds maximum {MAX_FRAME_PAYLOAD_BYTES}", "command_bytes")
    return _CONTROL_HEAD.pack((name, payload.control_version, len(command))) + command


def decode_control_at(data: bytes, pos: int, end: int) -> ControlPayload:
    """Decode a CONTROL payload occupying exactly ``data[pos:end]``."""
    r = Reader(data, pos, end)
    raw_name = r.u32("control_name")
    name = enum_value(ControlName, raw_name, "control_name")
    _check_version(r.u32("control_version"))
    command_bytes = r.blob(MAX_FRAME_PAYLOAD_BYTES, "command_bytes")
    r.done("command_bytes")
    try:
        command = decode_command(name, command_bytes)
    except ProtocolError as exc:
        raise renest(exc, name.name) from None
    return ControlPayload(name, command, CONTROL_VERSION)


def decode_control(data: bytes) -> ControlPayload:
    """Decode a standalone CONTROL payload."""
    return decode_control_at(data, 0, len(data))


def encode_control_reply(payload: ControlReplyPayload) -> bytes:
    """Encode a CONTROL_REPLY payload (protocol.md "CONTROL_REPLY Payload")."""
    check_enum(ControlName, payload.control_name, "control_name")
    name = ControlName(payload.control_name)
    _check_version(payload.control_version)
    head = _REPLY_HEAD.pack((payload.sequence, name, payload.control_version, payload.error_code))
    message = put_string(payload.error_message, MAX_ERROR_BYTES, "error_message")
    if payload.error_code != 0:
        if payload.result is not None:
            fail("a failed reply carries no result", "result")
        result = b""
    else:
        try:
            result = encode_result(name, payload.result)
        except ProtocolError as exc:
            raise renest(exc, name.name) from None
    if len(result) > MAX_FRAME_PAYLOAD_BYTES:
        fail(f"{len(result)} bytes exceeds maximum {MAX_FRAME_PAYLOAD_BYTES}", "result")
    return head + message + pack_u32(len(result)) + result


def decode_control_reply_at(
    data: bytes,
    pos: int,
    end: int,
    expected_sequence: int | None = None,
    expected_name: ControlName | None = None,
    expected_version: int | None = None,
) -> ControlReplyPayload:
    """Decode a CONTROL_REPLY payload occupying exactly ``data[pos:end]``, checking expectations."""
    r = Reader(data, pos, end)
    sequence, raw_name, version, error_code = r.run(_REPLY_HEAD)
    if expected_sequence is not None and sequence != expected_sequence:
        fail(f"reply answers sequence {sequence}, expected {expected_sequence}", "sequence")
    name = enum_value(ControlName, raw_name, "control_name")
    if expected_name is not None and name != expected_name:
        fail(f"reply names {name.name}, expected {ControlName(expected_name).name}", "control_name")
    _check_version(version)
    if expected_version is not None and version != expected_version:
        fail(f"reply version {version}, expected {expected_version}", "control_version")  # pragma: no cover
    message = r.string(MAX_ERROR_BYTES, "error_message")
    result_bytes = r.blob(MAX_FRAME_PAYLOAD_BYTES, "result")
    r.done("result")
    if error_code != 0:
        if result_bytes:
            fail("a failed reply carries no result", "result")
        result = None
    else:
        try:
            result = decode_result(name, result_bytes)
        except ProtocolError as exc:
            raise renest(exc, name.name) from None
    return ControlReplyPayload(sequence, name, error_code, message, result, version)


def decode_control_reply(
    data: bytes,
    expected_sequence: int | None = None,
    expected_name: ControlName | None = None,
    expected_version: int | None = None,
) -> ControlReplyPayload:
    """Decode a standalone CONTROL_REPLY payload; expectations reject a mismatched reply."""
    return decode_control_reply_at(data, 0, len(data), expected_sequence, expected_name, expected_version)
