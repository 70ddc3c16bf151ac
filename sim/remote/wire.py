"""The SLR3 remote-L3 frame codec: frame header, every payload type, ``encode_frame`` / ``decode_frame``.

Spec: upstream ``docs/remote-l3-worker-design/protocol.md`` ("Frames", "Wire Encoding", "HELLO
Payload", "TASK Payload", "RemoteTensorDesc", "COMPLETION Payload", "CONTROL Payload", "Remote
Buffer Export and Import Controls", "CONTROL_REPLY Payload", "Ordering", "Bounds and Fuzz Tests")
and ``docs/remote-l3-worker-design/buffers-and-transports.md``; byte layouts follow the shipped
codec (``src/common/hierarchical/remote_wire.*``, ``python/simpler/remote_l3_protocol.py``), which
is what a real peer puts on the wire. This module is the entry point and re-exports the payload
modules (``wire_base``, ``wire_task``, ``wire_control``, ``wire_domain``).

Frame header (40 bytes, little-endian): ``magic "SLR3"``, ``uint32 version``, ``uint32
frame_type``, ``uint64 session_id``, ``int32 worker_id``, ``uint64 sequence``, ``uint32
payload_bytes``, ``uint32 flags``. ``magic`` and ``version`` are checked before anything else and
``payload_bytes`` is bounds-checked before the payload is touched.

Discrepancies with the doc, resolved in favour of the shipped code:

* "Frames" says ``version = 1``; the wire carries 3 (``PROTOCOL_VERSION``).
* The doc gives the header's fields but not their widths or order; they are the code's (above).
* ``HEALTH`` and ``SHUTDOWN`` frames carry an empty payload in every shipped sender (the doc gives
  them no payload). This codec models them as empty and rejects payload bytes on them.
* Reply frames carry the answered request's sequence in the header ("Frames") and again in the
  COMPLETION / CONTROL_REPLY payload; the shipped endpoint matches both against the request, so a
  frame whose two sequences differ is rejected here.
* HELLO repeats ``session_id`` / ``worker_id`` in its payload. The shipped parent checks only the
  payload copy, but its runner always writes the header's values there; this codec is stricter
  and rejects a HELLO whose two copies differ.

Decoding raises :class:`sim.errors.ProtocolError` with a dotted field path: ``header.*`` for the
header, otherwise the payload kind first (``hello``, ``task``, ``control``, ``control_reply``,
``completion``, ``health``, ``shutdown``), e.g. ``control.EXPORT_BUFFER.access_flags``.
"""

from __future__ import annotations

import functools
import inspect
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sim.errors import ProtocolError
from sim.remote import wire_base as _base
from sim.remote import wire_control as _control
from sim.remote import wire_domain as _domain
from sim.remote import wire_task as _task
from sim.remote.wire_base import *  # noqa: F403 - the codec's public vocabulary is re-exported here
from sim.remote.wire_base import (
    FRAME_FLAGS_KNOWN,
    FRAME_HEADER_BYTES,
    MAGIC,
    MAX_ERROR_BYTES,
    MAX_FRAME_PAYLOAD_BYTES,
    MAX_STRING_BYTES,
    PROTOCOL_VERSION,
    ControlName,
    FrameType,
    Layout,
    Reader,
    ReadyState,
    check_enum,
    enum_value,
    fail,
    put_string,
    record_builder,
    renest,
)
from sim.remote.wire_control import *  # noqa: F403
from sim.remote.wire_control import (
    ControlPayload,
    ControlReplyPayload,
    decode_control_at,
    decode_control_reply_at,
    encode_control,
    encode_control_reply,
)
from sim.remote.wire_domain import *  # noqa: F403
from sim.remote.wire_task import *  # noqa: F403
from sim.remote.wire_task import TaskPayload, decode_task_at, encode_task_parts

_OWN = [
    "CompletionPayload",
    "Frame",
    "FrameHeader",
    "HEADER_FIELD_OFFSETS",
    "HealthPayload",
    "HelloPayload",
    "Payload",
    "ShutdownPayload",
    "decode_completion",
    "decode_frame",
    "decode_header",
    "decode_hello",
    "encode_completion",
    "encode_frame",
    "encode_header",
    "encode_hello",
    "frame_size",
]
__all__ = sorted({*_OWN, *_base.__all__, *_task.__all__, *_control.__all__, *_domain.__all__})


_BYTES_LIKE = (bytes, bytearray, memoryview)

# --- Models -------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class FrameHeader:
    """The versioned frame header (protocol.md "Frames").

    ``payload_bytes`` is filled in by :func:`decode_header` / :func:`decode_frame`; the encoder
    always writes the real payload length, so it takes no part in equality.
    """

    frame_type: FrameType
    session_id: int
    worker_id: int
    sequence: int
    flags: int = 0
    payload_bytes: int = field(default=0, compare=False)


@dataclass(frozen=True, slots=True)
class HelloPayload:
    """HELLO payload (protocol.md "HELLO Payload"): non-zero session, non-negative worker."""

    session_id: int
    worker_id: int
    comm_profile: str = ""
    feature_flags: int = 0
    ready_state: ReadyState = ReadyState.READY
    protocol_version: int = PROTOCOL_VERSION


@dataclass(frozen=True, slots=True)
class CompletionPayload:
    """COMPLETION payload (protocol.md "COMPLETION Payload"); ``error_code == 0`` is success."""

    sequence: int
    error_code: int = 0
    error_message: str = ""


@dataclass(frozen=True, slots=True)
class HealthPayload:
    """HEALTH carries no payload bytes; liveness is the frame itself (protocol.md "Ordering")."""


@dataclass(frozen=True, slots=True)
class ShutdownPayload:
    """SHUTDOWN carries no payload bytes."""


Payload = (
    HelloPayload
    | TaskPayload
    | ControlPayload
    | ControlReplyPayload
    | CompletionPayload
    | HealthPayload
    | ShutdownPayload
)


@dataclass(frozen=True, slots=True)
class Frame:
    """One decoded frame: header plus the typed payload its ``frame_type`` selects."""

    header: FrameHeader
    payload: Payload


_new_header = record_builder(FrameHeader)
_new_frame = record_builder(Frame)


# --- Header -------------------------------------------------------------------------------------
_HEADER_S = struct.Struct("<4sIIQiQII")
assert _HEADER_S.size == FRAME_HEADER_BYTES
_HEADER_FIELDS = Layout(
    [
        ("magic", "I"),
        ("version", "I"),
        ("frame_type", "I"),
        ("session_id", "Q"),
        ("worker_id", "i"),
        ("sequence", "Q"),
        ("payload_bytes", "I"),
        ("flags", "I"),
    ]
)
_FRAME_TYPES = FrameType._value2member_map_
# Byte offset of each header field inside a frame, for tools that patch one field of raw frame bytes.
HEADER_FIELD_OFFSETS: dict[str, int] = dict(zip(_HEADER_FIELDS.names, _HEADER_FIELDS.offsets, strict=True))


def encode_header(header: FrameHeader, payload_bytes: int) -> bytes:
    """Encode a 40-byte frame header for a payload of ``payload_bytes`` bytes."""
    try:
        ftype = header.frame_type
        if ftype not in _FRAME_TYPES:
            check_enum(FrameType, ftype, "frame_type")
        if header.flags & ~FRAME_FLAGS_KNOWN:
            fail(f"unknown flag bits {header.flags:#x}", "flags")
        if not 0 <= payload_bytes <= MAX_FRAME_PAYLOAD_BYTES:
            fail(f"{payload_bytes} bytes exceeds maximum {MAX_FRAME_PAYLOAD_BYTES}", "payload_bytes")
        try:
            return _HEADER_S.pack(
                MAGIC,
                PROTOCOL_VERSION,
                ftype,
                header.session_id,
                header.worker_id,
                header.sequence,
                payload_bytes,
                header.flags,
            )
        except struct.error:
            _HEADER_FIELDS.diagnose(
                (0, 0, 0, header.session_id, header.worker_id, header.sequence, 0, header.flags)
            )
    except ProtocolError as exc:
        raise renest(exc, "header") from None
    except (TypeError, AttributeError):
        if not isinstance(header, FrameHeader):
            fail(f"expected a FrameHeader, got {type(header).__name__}", "header")
        if isinstance(payload_bytes, bool) or not isinstance(payload_bytes, int):
            fail(f"expected an int, got {type(payload_bytes).__name__}", "payload_bytes")
        fail("flags must be an integer", "header.flags")


def decode_header(data: bytes, *, max_payload_bytes: int = MAX_FRAME_PAYLOAD_BYTES) -> FrameHeader:
    """Decode and validate the first 40 bytes of ``data`` (magic and version first, then the rest)."""
    if data.__class__ is not bytes and not isinstance(data, _BYTES_LIKE):
        fail(f"expected bytes, got {type(data).__name__}", "data")
    if len(data) < FRAME_HEADER_BYTES:
        fail(f"truncated: {len(data)} of {FRAME_HEADER_BYTES} bytes", "header")
    magic, version, ftype, session_id, worker_id, sequence, payload_bytes, flags = _HEADER_S.unpack_from(
        data, 0
    )
    if magic != MAGIC:
        fail(f"bad magic {magic!r}", "header.magic")
    if version != PROTOCOL_VERSION:
        fail(f"unsupported version {version}; expected {PROTOCOL_VERSION}", "header.version")
    frame_type = _FRAME_TYPES.get(ftype)
    if frame_type is None:
        fail(f"unknown frame type {ftype}", "header.frame_type")
    if flags & ~FRAME_FLAGS_KNOWN:
        fail(f"unknown flag bits {flags:#x}", "header.flags")
    if payload_bytes > max_payload_bytes:
        fail(f"{payload_bytes} bytes exceeds maximum {max_payload_bytes}", "header.payload_bytes")
    return _new_header(frame_type, session_id, worker_id, sequence, flags, payload_bytes)


def frame_size(header_bytes: bytes, *, max_payload_bytes: int = MAX_FRAME_PAYLOAD_BYTES) -> int:
    """Total frame length announced by a 40-byte header, validated before the payload is read."""
    return FRAME_HEADER_BYTES + decode_header(header_bytes, max_payload_bytes=max_payload_bytes).payload_bytes


# --- HELLO --------------------------------------------------------------------------------------
_HELLO_HEAD = Layout([("session_id", "Q"), ("worker_id", "i"), ("protocol_version", "I")])
_HELLO_TAIL = Layout([("feature_flags", "Q"), ("ready_state", "I")])


def _check_hello(p: HelloPayload) -> None:
    if p.session_id == 0:
        fail("must be non-zero", "session_id")
    if p.worker_id < 0:
        fail("must be non-negative", "worker_id")
    if p.protocol_version != PROTOCOL_VERSION:
        fail(f"{p.protocol_version}; this codec speaks {PROTOCOL_VERSION}", "protocol_version")


def encode_hello(p: HelloPayload) -> bytes:
    """Encode a HELLO payload."""
    check_enum(ReadyState, p.ready_state, "ready_state")
    head = _HELLO_HEAD.pack((p.session_id, p.worker_id, p.protocol_version))
    profile = put_string(p.comm_profile, MAX_STRING_BYTES, "comm_profile")
    tail = _HELLO_TAIL.pack((p.feature_flags, p.ready_state))
    _check_hello(p)
    return head + profile + tail


def _decode_hello_at(data: bytes, pos: int, end: int) -> HelloPayload:
    r = Reader(data, pos, end)
    session_id, worker_id, version = r.run(_HELLO_HEAD)
    profile = r.string(MAX_STRING_BYTES, "comm_profile")
    flags, ready = r.run(_HELLO_TAIL)
    r.done("ready_state")
    p = HelloPayload(
        session_id, worker_id, profile, flags, enum_value(ReadyState, ready, "ready_state"), version
    )
    _check_hello(p)
    return p


def decode_hello(data: bytes) -> HelloPayload:
    """Decode a standalone HELLO payload."""
    return _decode_hello_at(data, 0, len(data))


# --- COMPLETION ---------------------------------------------------------------------------------
_COMPLETION_HEAD = Layout([("sequence", "Q"), ("error_code", "i")])


def encode_completion(p: CompletionPayload) -> bytes:
    """Encode a COMPLETION payload (bounded UTF-8 error message)."""
    return _COMPLETION_HEAD.pack((p.sequence, p.error_code)) + put_string(
        p.error_message, MAX_ERROR_BYTES, "error_message"
    )


def _decode_completion_at(
    data: bytes, pos: int, end: int, expected_sequence: int | None
) -> CompletionPayload:
    r = Reader(data, pos, end)
    sequence, error_code = r.run(_COMPLETION_HEAD)
    if expected_sequence is not None and sequence != expected_sequence:
        fail(f"completion answers sequence {sequence}, expected {expected_sequence}", "sequence")
    message = r.string(MAX_ERROR_BYTES, "error_message")
    r.done("error_message")
    return CompletionPayload(sequence, error_code, message)


def decode_completion(data: bytes, expected_sequence: int | None = None) -> CompletionPayload:
    """Decode a standalone COMPLETION payload; ``expected_sequence`` rejects a mismatched one."""
    return _decode_completion_at(data, 0, len(data), expected_sequence)


# --- Frames -------------------------------------------------------------------------------------
_PAYLOAD_TYPE = {
    FrameType.HELLO: HelloPayload,
    FrameType.TASK: TaskPayload,
    FrameType.CONTROL: ControlPayload,
    FrameType.CONTROL_REPLY: ControlReplyPayload,
    FrameType.COMPLETION: CompletionPayload,
    FrameType.HEALTH: HealthPayload,
    FrameType.SHUTDOWN: ShutdownPayload,
}
_PREFIX = {
    FrameType.HELLO: "hello",
    FrameType.TASK: "task",
    FrameType.CONTROL: "control",
    FrameType.CONTROL_REPLY: "control_reply",
    FrameType.COMPLETION: "completion",
    FrameType.HEALTH: "health",
    FrameType.SHUTDOWN: "shutdown",
}


def _payload_parts(header: FrameHeader, payload: Payload, parts: list[bytes]) -> None:
    ftype = header.frame_type
    if ftype is FrameType.TASK:
        encode_task_parts(payload, parts)  # type: ignore[arg-type]
    elif ftype is FrameType.CONTROL:
        parts.append(encode_control(payload))  # type: ignore[arg-type]
    elif ftype is FrameType.CONTROL_REPLY:
        if payload.sequence != header.sequence:  # type: ignore[union-attr]
            fail("must equal the header sequence (the answered request)", "sequence")
        parts.append(encode_control_reply(payload))  # type: ignore[arg-type]
    elif ftype is FrameType.COMPLETION:
        if payload.sequence != header.sequence:  # type: ignore[union-attr]
            fail("must equal the header sequence (the answered request)", "sequence")
        parts.append(encode_completion(payload))  # type: ignore[arg-type]
    elif ftype is FrameType.HELLO:
        if payload.session_id != header.session_id:  # type: ignore[union-attr]
            fail("must equal the header session_id", "session_id")
        if payload.worker_id != header.worker_id:  # type: ignore[union-attr]
            fail("must equal the header worker_id", "worker_id")
        parts.append(encode_hello(payload))  # type: ignore[arg-type]
    # HEALTH and SHUTDOWN have no payload bytes.


def encode_frame(frame: Frame) -> bytes:
    """Encode a frame: header + canonical payload, refusing anything the decoder would reject."""
    try:
        header = frame.header
        payload = frame.payload
        ftype = header.frame_type
    except AttributeError:
        if not isinstance(frame, Frame):
            fail(f"expected a Frame, got {type(frame).__name__}", "frame")
        fail(f"expected a FrameHeader, got {type(frame.header).__name__}", "header")
    if ftype not in _FRAME_TYPES:
        try:
            check_enum(FrameType, ftype, "frame_type")
        except ProtocolError as exc:
            raise renest(exc, "header") from None
    ftype = FrameType(ftype)
    if type(payload) is not _PAYLOAD_TYPE[ftype]:
        fail(
            f"a {ftype.name} frame carries {_PAYLOAD_TYPE[ftype].__name__}, got {type(payload).__name__}",
            "payload",
        )
    parts: list[bytes] = [b""]
    try:
        _payload_parts(header, payload, parts)
    except ProtocolError as exc:
        raise renest(exc, _PREFIX[ftype]) from None
    except (AttributeError, TypeError) as exc:
        # A record of the wrong shape somewhere inside the payload: still refuse with the codec's error.
        raise ProtocolError(f"malformed payload: {exc}", field=_PREFIX[ftype]) from exc
    size = 0
    for part in parts:
        size += len(part)
    parts[0] = encode_header(header, size)
    return b"".join(parts)


def decode_frame(
    data: bytes,
    *,
    max_payload_bytes: int = MAX_FRAME_PAYLOAD_BYTES,
    expected_sequence: int | None = None,
    expected_control: ControlName | None = None,
) -> Frame:
    """Decode one whole frame.

    ``max_payload_bytes`` is the configured payload maximum (never above the protocol's 16 MiB).
    For COMPLETION / CONTROL_REPLY frames, ``expected_sequence`` and ``expected_control`` reject a
    reply to some other request ("completion sequence mismatch", "control reply sequence or
    control-name mismatch"); without them the payload's sequence is still matched to the header's.
    """
    if type(data) is not bytes:
        if not isinstance(data, _BYTES_LIKE):
            fail(f"expected bytes, got {type(data).__name__}", "data")
        data = bytes(data)
    header = decode_header(data, max_payload_bytes=min(max_payload_bytes, MAX_FRAME_PAYLOAD_BYTES))
    end = len(data)
    declared = header.payload_bytes
    if end - FRAME_HEADER_BYTES != declared:
        have = end - FRAME_HEADER_BYTES
        if have < declared:
            fail(
                f"truncated payload: header declares {declared} bytes, {have} present", "header.payload_bytes"
            )
        fail(
            f"{have - declared} trailing byte(s) after the declared {declared}-byte payload",
            "header.payload_bytes",
        )
    ftype = header.frame_type
    pos = FRAME_HEADER_BYTES
    try:
        payload: Payload
        if ftype is FrameType.TASK:
            payload = decode_task_at(data, pos, end)
        elif ftype is FrameType.COMPLETION:
            payload = _decode_completion_at(data, pos, end, expected_sequence)
            if payload.sequence != header.sequence:
                fail(f"{payload.sequence} differs from the header sequence {header.sequence}", "sequence")
        elif ftype is FrameType.CONTROL:
            payload = decode_control_at(data, pos, end)
        elif ftype is FrameType.CONTROL_REPLY:
            payload = decode_control_reply_at(data, pos, end, expected_sequence, expected_control)
            if payload.sequence != header.sequence:
                fail(f"{payload.sequence} differs from the header sequence {header.sequence}", "sequence")
        elif ftype is FrameType.HELLO:
            payload = _decode_hello_at(data, pos, end)
            if payload.session_id != header.session_id:
                fail("differs from the header session_id", "session_id")
            if payload.worker_id != header.worker_id:
                fail("differs from the header worker_id", "worker_id")
        else:
            if declared:
                fail(f"{declared} payload byte(s); {ftype.name} carries none", "payload")
            payload = HealthPayload() if ftype is FrameType.HEALTH else ShutdownPayload()
    except ProtocolError as exc:
        raise renest(exc, _PREFIX[ftype]) from None
    return _new_frame(header, payload)


# --- Typed errors at the other entry points -------------------------------------------------------
# The record codecs above (and those re-exported from wire_control / wire_domain / wire_task) assume
# records of the right class and bytes-like input. A caller passing some other Python type gets the
# codec's ProtocolError naming the argument, not whatever TypeError / AttributeError / KeyError the
# body tripped on. Decoders check their input's class up front (one class test); encoders inspect their
# argument only on the failure path, so a well-typed call pays one extra call and nothing else.


def _typed_entry(fn: Callable[..., Any]) -> Callable[..., Any]:
    params = list(inspect.signature(fn).parameters.values())
    names = [p.name for p in params]
    record = next((p for p in params if p.name not in ("name", "data")), None) if fn.__name__.startswith(
        "encode_") else None

    data_at = names.index("data") if "data" in names else -1

    @functools.wraps(fn)
    def entry(*args: Any, **kwargs: Any) -> Any:
        if data_at >= 0:  # a str or list of the right length would otherwise "decode" as a truncated record
            data = args[data_at] if len(args) > data_at else kwargs.get("data", b"")
            if data.__class__ is not bytes and not isinstance(data, _BYTES_LIKE):
                raise ProtocolError(f"expected bytes, got {type(data).__name__}", field="data")
        try:
            return fn(*args, **kwargs)
        except (TypeError, AttributeError, KeyError) as exc:
            bound = dict(zip(names, args, strict=False)) | kwargs
            n = bound.get("name", 0)
            if "name" in bound and (not isinstance(n, int) or n not in ControlName._value2member_map_):
                raise ProtocolError(f"expected a ControlName, got {bound['name']!r}", field="name") from exc
            if "data" in bound and not isinstance(bound["data"], _BYTES_LIKE):
                raise ProtocolError(f"expected bytes, got {type(bound['data']).__name__}", field="data") from exc
            if record is not None and record.name in bound:
                value = bound[record.name]
                want = str(record.annotation)
                if type(value).__name__ not in want.replace(" ", "").split("|"):
                    raise ProtocolError(f"expected {want}, got {type(value).__name__}", field=record.name) from exc
                raise ProtocolError(f"malformed {type(value).__name__}: {exc}", field=record.name) from exc
            raise

    return entry


for _name in __all__:
    if _name.startswith(("encode_", "decode_")) and _name not in ("encode_frame", "decode_frame", "decode_header",
                                                                    "encode_header"):
        globals()[_name] = _typed_entry(globals()[_name])
del _name
