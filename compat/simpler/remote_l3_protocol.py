"""``simpler.remote_l3_protocol`` on the simulator: upstream's byte-level API over the simulator's codec.

Upstream ``python/simpler/remote_l3_protocol.py`` is a codec whose frames carry raw payload bytes
and whose commands are built field by field. The simulator's codec (:mod:`sim.remote.wire`, with
``wire_base`` / ``wire_task`` / ``wire_control``) encodes the same bytes from typed payloads. This
module keeps upstream's names, field orders and signatures and routes every encode / decode
through the simulator's codec:

* constants and enums are the simulator's (same values); records whose fields match upstream's
  order (``RemoteTensorDesc``, ``ExportBufferRequest``, ``ReleaseImportRequest``,
  ``RemoteChipCallablePayload``) are the simulator's classes;
* records whose upstream field order or names differ (``FrameHeader``, ``HelloPayload``,
  ``DigestCallableCommand`` ...) are small frozen records here, converted field by field;
* ``Frame.payload`` is bytes, as upstream; ``decode_frame`` checks the header and the length only.

Errors are the simulator's :class:`sim.errors.ProtocolError`, a ``ValueError`` as upstream's. The
simulator's decoders are at least as strict as upstream's (e.g. a HELLO needs a non-zero session).
``decode_call_config`` / ``decode_tensor`` / ``decode_remote_tensor_desc`` take upstream's
``reader`` (a cursor: ``data`` plus ``offset``, advanced past the record) or a standalone record's
bytes.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, fields
from typing import Any

from compat.runtime import CallConfig
from sim.remote import wire as _wire
from sim.remote import wire_control as _control
from sim.remote import wire_task as _task
from sim.remote.wire_base import (
    CALLABLE_DIGEST_BYTES,
    DESC_MAX_BYTES,
    FRAME_FLAG_GROUP_TARGET,
    FRAME_FLAGS_KNOWN,
    FRAME_HEADER_BYTES,
    HOST_TCP_TRANSPORT_PROFILE,
    MAGIC,
    MAX_CHIP_CALLABLE_DESCRIPTOR_BYTES,
    MAX_ERROR_BYTES,
    MAX_FRAME_PAYLOAD_BYTES,
    MAX_INLINE_PAYLOAD_BYTES,
    MAX_SCALARS,
    MAX_STAGED_BLOB_TOKEN_BYTES,
    MAX_STRING_BYTES,
    MAX_TENSORS,
    MAX_TRANSPORT_DESCRIPTOR_BYTES,
    MAX_TRANSPORT_PROFILE_BYTES,
    PROTOCOL_VERSION,
    AccessFlags,
    CallableKind,
    ChipCallableBlobLocation,
    ControlName,
    FrameType,
    ReadyState,
    RemoteAddressSpace,
    RemoteRegistryTarget,
    fail,
)
from sim.remote.wire_control import ChipCallablePayload as RemoteChipCallablePayload
from sim.remote.wire_control import ExportBufferRequest, ReleaseImportRequest
from sim.remote.wire_task import RemoteTensorDesc, TensorWire

__all__ = [
    "CALLABLE_HASH_DIGEST_BYTES", "FRAME_FLAGS_KNOWN", "FRAME_FLAG_GROUP_TARGET", "FRAME_HEADER_BYTES",
    "HOST_TCP_TRANSPORT_PROFILE", "MAGIC", "MAX_BUFFER_DESCRIPTOR_BODY_BYTES", "MAX_CHIP_CALLABLE_DESCRIPTOR_BYTES",
    "MAX_ERROR_BYTES", "MAX_FRAME_PAYLOAD_BYTES", "MAX_INLINE_PAYLOAD_BYTES", "MAX_SCALARS",
    "MAX_STAGED_BLOB_TOKEN_BYTES", "MAX_STRING_BYTES", "MAX_TENSORS", "MAX_TRANSPORT_DESCRIPTOR_BYTES",
    "MAX_TRANSPORT_PROFILE_BYTES", "PROTOCOL_VERSION", "REMOTE_BUFFER_ACCESS_READ", "REMOTE_BUFFER_ACCESS_READ_WRITE",
    "REMOTE_BUFFER_ACCESS_WRITE", "CallableKind", "ChipCallableBlobLocation", "ControlName", "ControlPayload",
    "DigestCallableCommand", "ExportBufferRequest", "ExportBufferResult", "Frame", "FrameHeader", "FrameType",
    "HelloPayload", "ImportBufferRequest", "ImportBufferResult", "ReadyState", "RegisterCallableCommand",
    "ReleaseImportRequest", "RemoteAddressSpace", "RemoteChipCallablePayload", "RemoteRegistryTarget",
    "RemoteTaskArgsWire", "RemoteTensorDesc", "RemoteTensorSidecar", "TaskPayloadWire", "decode_call_config",
    "decode_control", "decode_digest_callable_command", "decode_export_buffer_request", "decode_export_buffer_result",
    "decode_frame", "decode_import_buffer_request", "decode_register_callable_command",
    "decode_release_import_request", "decode_remote_chip_callable_payload", "decode_remote_task_args",
    "decode_remote_tensor_desc", "decode_task_payload", "decode_tensor", "encode_completion", "encode_control_reply",
    "encode_digest_callable_command", "encode_export_buffer_result", "encode_frame", "encode_hello",
    "encode_import_buffer_result", "encode_register_callable_command", "encode_remote_chip_callable_payload",
    "read_exact", "read_frame", "send_frame",
]

CALLABLE_HASH_DIGEST_BYTES = CALLABLE_DIGEST_BYTES
MAX_BUFFER_DESCRIPTOR_BODY_BYTES = DESC_MAX_BYTES
REMOTE_BUFFER_ACCESS_READ = int(AccessFlags.READ)
REMOTE_BUFFER_ACCESS_WRITE = int(AccessFlags.WRITE)
REMOTE_BUFFER_ACCESS_READ_WRITE = int(AccessFlags.READ_WRITE)


def _convert(obj: Any, cls: type, rename: dict[str, str] | None = None) -> Any:
    """A record as another record class with the same fields (``rename``: this name -> that name)."""
    rename = rename or {}
    return cls(**{rename.get(f.name, f.name): getattr(obj, f.name) for f in fields(obj)})


# ----------------------------------------------------------------------------- frames


@dataclass(frozen=True)
class FrameHeader:
    """The 40-byte frame header's fields (``payload_bytes`` is filled in by ``decode_frame``)."""

    frame_type: FrameType
    session_id: int
    worker_id: int
    sequence: int
    payload_bytes: int = 0
    flags: int = 0


@dataclass(frozen=True)
class Frame:
    """One frame: its header and its payload bytes."""

    header: FrameHeader
    payload: bytes


def _bytes(data: Any, what: str) -> bytes:
    if not isinstance(data, bytes | bytearray | memoryview):
        fail(f"expected bytes, got {type(data).__name__}", what)
    return bytes(data)


def encode_frame(header: FrameHeader, payload: bytes) -> bytes:
    """Header plus payload bytes; the payload bound and the flag bits are checked."""
    payload = _bytes(payload, "payload")
    sim_header = _wire.FrameHeader(header.frame_type, header.session_id, header.worker_id, header.sequence,
                                   header.flags)
    return _wire.encode_header(sim_header, len(payload)) + payload


def decode_frame(data: bytes) -> Frame:
    """A frame's header (magic, version, type, flags, payload bound checked) and its payload bytes,
    which must be exactly ``payload_bytes`` long."""
    data = _bytes(data, "data")
    h = _wire.decode_header(data)
    if len(data) - FRAME_HEADER_BYTES != h.payload_bytes:
        fail(f"payload is {len(data) - FRAME_HEADER_BYTES} bytes, the header says {h.payload_bytes}",
             "header.payload_bytes")
    return Frame(FrameHeader(h.frame_type, h.session_id, h.worker_id, h.sequence, h.payload_bytes, h.flags),
                 data[FRAME_HEADER_BYTES:])


def read_exact(sock: socket.socket, n: int) -> bytes:
    """Exactly ``n`` bytes from ``sock``; ``EOFError`` if the peer closes first."""
    out = bytearray()
    while len(out) < n:
        chunk = sock.recv(n - len(out))
        if not chunk:
            raise EOFError("remote socket closed")
        out.extend(chunk)
    return bytes(out)


def read_frame(sock: socket.socket) -> Frame:
    """One frame from ``sock``: the header is validated before its payload is read."""
    head = read_exact(sock, FRAME_HEADER_BYTES)
    size = _wire.frame_size(head)
    return decode_frame(head + read_exact(sock, size - FRAME_HEADER_BYTES))


def send_frame(sock: socket.socket, header: FrameHeader, payload: bytes = b"") -> None:
    """Send one encoded frame on ``sock``."""
    sock.sendall(encode_frame(header, payload))


# ----------------------------------------------------------------------------- HELLO, COMPLETION


@dataclass(frozen=True)
class HelloPayload:
    """HELLO: session, worker, protocol version, comm profile, feature flags, readiness."""

    session_id: int
    worker_id: int
    protocol_version: int
    comm_profile: str
    feature_flags: int
    ready_state: ReadyState


def encode_hello(payload: HelloPayload) -> bytes:
    """The HELLO payload bytes (the simulator's codec checks the fields)."""
    return _wire.encode_hello(_convert(payload, _wire.HelloPayload))


def encode_completion(sequence: int, error_code: int, error_message: str) -> bytes:
    """The COMPLETION payload bytes for the task of ``sequence`` (``error_code`` 0 is success)."""
    return _wire.encode_completion(_wire.CompletionPayload(sequence, error_code, error_message))


# ----------------------------------------------------------------------------- TASK


@dataclass(frozen=True)
class RemoteTensorSidecar:
    """One tensor's sidecar slot: ``present`` and, when present, its ``RemoteTensorDesc``."""

    present: bool
    desc: RemoteTensorDesc | None = None


@dataclass(frozen=True)
class RemoteTaskArgsWire:
    """A remote task's arguments: wire tensors, one sidecar per tensor, scalars, the inline arena."""

    tensors: tuple[TensorWire, ...]
    remote_desc: tuple[RemoteTensorSidecar, ...]
    scalars: tuple[int, ...]
    inline_payload: bytes


@dataclass(frozen=True)
class TaskPayloadWire:
    """A TASK payload: the callable's digest, its ``CallConfig`` and its arguments."""

    callable_digest: bytes
    config: CallConfig
    args: RemoteTaskArgsWire


def _args_from_sim(args: _task.RemoteTaskArgs) -> RemoteTaskArgsWire:
    sidecars = tuple(RemoteTensorSidecar(d is not None, d) for d in args.remote_desc)
    return RemoteTaskArgsWire(tuple(args.tensors), sidecars, tuple(args.scalars), bytes(args.inline_payload))


def _config_from_sim(cfg: _task.CallConfigWire) -> CallConfig:
    return CallConfig(**{f.name: getattr(cfg, f.name) for f in fields(cfg)})


def _read_at(reader: Any, decode_at: Any, what: str) -> Any:
    """Decode one record from a reader (advancing it) or from standalone bytes (no trailing bytes)."""
    if isinstance(reader, bytes | bytearray | memoryview):
        data = bytes(reader)
        value, pos = decode_at(data, 0, len(data))
        if pos != len(data):
            fail(f"{len(data) - pos} trailing byte(s)", what)
        return value
    data = bytes(reader.data)
    value, reader.offset = decode_at(data, reader.offset, len(data))
    return value


def decode_call_config(reader: Any) -> CallConfig:
    """A ``CallConfigWire`` as the facade's ``CallConfig``."""
    return _config_from_sim(_read_at(reader, _task._decode_call_config_at, "output_prefix"))


def decode_tensor(reader: Any) -> TensorWire:
    """One wire tensor (a remote TASK tensor must be a REMOTE_SIDECAR view with no byte offset)."""
    return _read_at(reader, _task._decode_tensor_at, "dtype")


def _desc_at(data: bytes, pos: int, end: int) -> tuple[RemoteTensorDesc, int]:
    size = _task._DESC_SIZE
    record = data[pos:pos + size]
    arena = _task.MAX_INLINE_PAYLOAD_BYTES  # the arena's real bounds are checked with the whole args
    return _task.decode_remote_tensor_desc(record, arena), pos + len(record)


def decode_remote_tensor_desc(reader: Any) -> RemoteTensorDesc:
    """One ``RemoteTensorDesc`` record (its HOST_INLINE range is checked when the args are decoded)."""
    return _read_at(reader, _desc_at, "flags")


def decode_remote_task_args(data: bytes) -> RemoteTaskArgsWire:
    """A standalone ``RemoteTaskArgsWire``."""
    return _args_from_sim(_task.decode_remote_task_args(_bytes(data, "data")))


def decode_task_payload(data: bytes) -> TaskPayloadWire:
    """A TASK payload: digest, config and arguments."""
    p = _task.decode_task_payload(_bytes(data, "data"))
    return TaskPayloadWire(p.callable_digest, _config_from_sim(p.config), _args_from_sim(p.args))


# ----------------------------------------------------------------------------- CONTROL


@dataclass(frozen=True)
class ControlPayload:
    """A CONTROL payload: the control's name and version and its command bytes."""

    control_name: ControlName
    control_version: int
    command_bytes: bytes


def decode_control(data: bytes) -> ControlPayload:
    """A CONTROL payload; the simulator's codec decodes (and so validates) the command as well."""
    p = _control.decode_control(_bytes(data, "data"))
    return ControlPayload(p.control_name, p.control_version, _control.encode_command(p.control_name, p.command))


@dataclass(frozen=True)
class RegisterCallableCommand:
    """``PREPARE_REGISTER_CALLABLE``: registry target, kind, digest, payload version and payload."""

    target_registry: RemoteRegistryTarget
    callable_kind: CallableKind
    digest: bytes
    payload_version: int
    payload: bytes


@dataclass(frozen=True)
class DigestCallableCommand:
    """``COMMIT`` / ``ABORT_REGISTER_CALLABLE``, ``UNREGISTER_CALLABLE``, ``PREPARE_CALLABLE``."""

    target_registry: RemoteRegistryTarget
    callable_kind: CallableKind
    digest: bytes


_DIGEST = {"digest": "callable_digest"}
_FROM_SIM_DIGEST = {"callable_digest": "digest"}


def encode_register_callable_command(target_registry: RemoteRegistryTarget, callable_kind: CallableKind,
                                     digest: bytes, payload_version: int, payload: bytes) -> bytes:
    """``PREPARE_REGISTER_CALLABLE`` command bytes."""
    cmd = _control.RegisterCallableCommand(target_registry, callable_kind, digest, payload, payload_version)
    return _control.encode_command(ControlName.PREPARE_REGISTER_CALLABLE, cmd)


def decode_register_callable_command(data: bytes) -> RegisterCallableCommand:
    """A ``PREPARE_REGISTER_CALLABLE`` command."""
    cmd = _control.decode_command(ControlName.PREPARE_REGISTER_CALLABLE, _bytes(data, "data"))
    return _convert(cmd, RegisterCallableCommand, _FROM_SIM_DIGEST)


def encode_digest_callable_command(target_registry: RemoteRegistryTarget, callable_kind: CallableKind,
                                   digest: bytes) -> bytes:
    """The command bytes of a digest-only control (commit / abort / unregister / prepare)."""
    cmd = _control.DigestCallableCommand(target_registry, callable_kind, digest)
    return _control.encode_command(ControlName.UNREGISTER_CALLABLE, cmd)


def decode_digest_callable_command(data: bytes) -> DigestCallableCommand:
    """A digest-only control's command."""
    cmd = _control.decode_command(ControlName.UNREGISTER_CALLABLE, _bytes(data, "data"))
    return _convert(cmd, DigestCallableCommand, _FROM_SIM_DIGEST)


def encode_remote_chip_callable_payload(payload: RemoteChipCallablePayload) -> bytes:
    """A chip callable's registration payload (descriptor, blob location, size, sha256, blob or token)."""
    return _control.encode_chip_callable_payload(payload)


def decode_remote_chip_callable_payload(data: bytes) -> RemoteChipCallablePayload:
    """A chip callable's registration payload."""
    return _control.decode_chip_callable_payload(_bytes(data, "data"))


@dataclass(frozen=True)
class ExportBufferResult:
    """An owner's export of a remote buffer range: identity, window, access and transport."""

    owner_worker_id: int
    buffer_id: int
    generation: int
    address_space: RemoteAddressSpace
    offset: int
    nbytes: int
    export_id: int
    remote_addr: int
    rkey_or_token: int
    ub_ldst_va: int
    access_flags: int
    transport_profile: str
    transport_descriptor: bytes


@dataclass(frozen=True)
class ImportBufferRequest:
    """An importer's request for an exported range with the access it needs."""

    importer_worker_id: int
    requested_access_flags: int
    export_desc: ExportBufferResult


@dataclass(frozen=True)
class ImportBufferResult:
    """An importer's mapping of an exported range."""

    importer_worker_id: int
    owner_worker_id: int
    buffer_id: int
    generation: int
    import_id: int
    address_space: RemoteAddressSpace
    offset: int
    nbytes: int
    remote_addr: int
    rkey_or_token: int
    ub_ldst_va: int
    access_flags: int
    transport_profile: str
    import_descriptor: bytes


def decode_export_buffer_request(data: bytes) -> ExportBufferRequest:
    """An ``EXPORT_BUFFER`` command."""
    return _control.decode_command(ControlName.EXPORT_BUFFER, _bytes(data, "data"))


def encode_export_buffer_result(result: ExportBufferResult) -> bytes:
    """An ``EXPORT_BUFFER`` reply's result bytes."""
    return _control.encode_result(ControlName.EXPORT_BUFFER, _convert(result, _control.ExportBufferResult))


def decode_export_buffer_result(data: bytes) -> ExportBufferResult:
    """An ``EXPORT_BUFFER`` reply's result."""
    return _convert(_control.decode_result(ControlName.EXPORT_BUFFER, _bytes(data, "data")), ExportBufferResult)


def decode_import_buffer_request(data: bytes) -> ImportBufferRequest:
    """An ``IMPORT_BUFFER`` command (with the export it names)."""
    req = _control.decode_command(ControlName.IMPORT_BUFFER, _bytes(data, "data"))
    return ImportBufferRequest(req.importer_worker_id, int(req.requested_access_flags),
                               _convert(req.export_desc, ExportBufferResult))


def encode_import_buffer_result(result: ImportBufferResult) -> bytes:
    """An ``IMPORT_BUFFER`` reply's result bytes."""
    return _control.encode_result(ControlName.IMPORT_BUFFER, _convert(result, _control.ImportBufferResult))


def decode_release_import_request(data: bytes) -> ReleaseImportRequest:
    """A ``RELEASE_IMPORT`` command."""
    return _control.decode_command(ControlName.RELEASE_IMPORT, _bytes(data, "data"))


def encode_control_reply(sequence: int, control_name: ControlName, control_version: int, error_code: int,
                         error_message: str, result_bytes: bytes = b"") -> bytes:
    """A CONTROL_REPLY payload; a success's ``result_bytes`` must decode as that control's result."""
    name = ControlName(control_name)
    result = _control.decode_result(name, _bytes(result_bytes, "result_bytes")) if not error_code else None
    if error_code and result_bytes:
        fail("a failed control carries no result bytes", "result")
    reply = _control.ControlReplyPayload(sequence, name, error_code, error_message, result, control_version)
    return _control.encode_control_reply(reply)

