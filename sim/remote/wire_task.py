"""TASK payload of the SLR3 wire: CallConfigWire, TensorWire, RemoteTensorDescWire, RemoteTaskArgsWire.

Spec: upstream ``docs/remote-l3-worker-design/protocol.md``, "Wire Encoding" (``CallConfigWire``),
"TASK Payload" (``RemoteTaskArgsWire v1``, ``TensorWire``), "RemoteTensorDesc" (descriptor rules)
and "Bounds and Fuzz Tests"; the layouts are those of the shipped codec
(``src/common/hierarchical/remote_wire.cpp``, ``python/simpler/remote_l3_protocol.py``), and the
Tensor gate is ``validate_tensor`` of ``src/common/task_interface/buffer.h``.

Where the doc and the shipped code disagree, this module follows the code:

* "TASK Payload" names ``CallConfigWire v1``; the wire carries v2 (no leading ``block_dim``), as
  "Wire Encoding" itself says.
* The doc says every ``remote_desc[i]`` is present; the wire has a ``uint8`` presence byte per entry
  (``OptionalRemoteTensorDescWire``) and the codec accepts absent entries. The session runner refuses
  them when it materializes the task, which :func:`check_task_against_handles` models.
* Field widths the doc leaves open are the code's: descriptor ``address_space`` is ``uint32``,
  ``owner_worker_id`` ``int32``, every other descriptor field (``flags`` included) ``uint64``.
* The checks against a live handle ("descriptor offsets outside the referenced handle", "stale
  generations") need the session's registry, so they are not part of decoding here; the codec only
  rejects what is invalid on its own (generation 0, ``offset + nbytes`` overflowing 64 bits).
  :func:`check_task_against_handles` applies the registry checks given a handle table.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass

from sim.errors import ProtocolError
from sim.remote.wire_base import (
    CALLABLE_DIGEST_BYTES,
    DESC_MAX_BYTES,
    MAX_INLINE_PAYLOAD_BYTES,
    MAX_OUTPUT_PREFIX_BYTES,
    MAX_SCALARS,
    MAX_STRING_BYTES,
    MAX_TENSOR_DIMS,
    MAX_TENSORS,
    OWNER_INSTANCE_ID_BYTES,
    U64_MAX,
    AccessMode,
    BackendKind,
    BufferAddressSpace,
    DataType,
    Layout,
    RemoteAddressSpace,
    check_bytes,
    check_enum,
    check_int,
    fail,
    put_string,
    read_string,
    record_builder,
    renest,
)
from sim.types import ELEMENT_SIZES

__all__ = [
    "BufferDescriptorWire",
    "CallConfigWire",
    "HandleBounds",
    "RemoteTaskArgs",
    "RemoteTensorDesc",
    "TaskPayload",
    "TensorWire",
    "check_task_against_handles",
    "decode_call_config",
    "decode_remote_task_args",
    "decode_remote_tensor_desc",
    "decode_task_payload",
    "decode_tensor",
    "encode_call_config",
    "encode_remote_task_args",
    "encode_remote_tensor_desc",
    "encode_task_payload",
    "encode_tensor",
]


# --- Models -------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class CallConfigWire:
    """``CallConfigWire v2`` (protocol.md "Wire Encoding"): six ``int32`` knobs and a bounded prefix.

    ``output_prefix`` is at most 1023 UTF-8 bytes (the C++ decoder stores it NUL-terminated in a
    1024-byte array) and must be non-empty whenever a diagnostic knob is enabled, which is the
    ``CallConfig::validate`` the shipped decoder runs.
    """

    aicpu_thread_num: int = 0
    enable_chip_swimlane: int = 0
    enable_dump_args: int = 0
    enable_pmu: int = 0
    enable_dep_gen: int = 0
    enable_scope_stats: int = 0
    output_prefix: str = ""


@dataclass(frozen=True, slots=True)
class BufferDescriptorWire:
    """The ``BufferDescriptor`` embedded in a ``TensorWire`` (protocol.md "TASK Payload").

    For a remote TASK argument it names no backing of its own: ``backend_kind`` is
    ``REMOTE_SIDECAR`` and ``body`` is empty; ``generation`` is non-zero (0 means uninitialized).
    """

    owner_instance_id: bytes
    buffer_id: int
    generation: int
    address_space: BufferAddressSpace
    access: AccessMode
    nbytes: int
    backend_kind: BackendKind = BackendKind.REMOTE_SIDECAR
    owner_worker_path_id: int = 0
    body: bytes = b""


@dataclass(frozen=True, slots=True)
class TensorWire:
    """The wire ``Tensor``: embedded descriptor plus the strided view (protocol.md "TASK Payload").

    ``shapes`` and ``strides`` are ``ndims``-many (1..5) positive ``uint32`` values; the view must
    fit its descriptor's ``nbytes``. ``byte_offset`` is always zero for a remote TASK argument.
    """

    buffer: BufferDescriptorWire
    shapes: tuple[int, ...]
    strides: tuple[int, ...]
    dtype: DataType
    byte_offset: int = 0


@dataclass(frozen=True, slots=True)
class RemoteTensorDesc:
    """``RemoteTensorDescWire`` (protocol.md "RemoteTensorDesc"), the sidecar naming an arg's backing."""

    address_space: RemoteAddressSpace
    owner_worker_id: int = 0
    buffer_id: int = 0
    offset: int = 0
    nbytes: int = 0
    remote_addr: int = 0
    rkey_or_token: int = 0
    generation: int = 0
    inline_payload_offset: int = 0
    inline_payload_len: int = 0
    flags: int = 0


@dataclass(frozen=True, slots=True)
class RemoteTaskArgs:
    """``RemoteTaskArgsWire v1`` (protocol.md "TASK Payload").

    ``remote_desc`` has one entry per tensor; ``None`` is an absent sidecar (presence byte 0).
    """

    tensors: tuple[TensorWire, ...] = ()
    remote_desc: tuple[RemoteTensorDesc | None, ...] = ()
    scalars: tuple[int, ...] = ()
    inline_payload: bytes = b""


@dataclass(frozen=True, slots=True)
class TaskPayload:
    """The TASK payload: callable digest, ``CallConfigWire`` and ``RemoteTaskArgsWire``."""

    callable_digest: bytes
    config: CallConfigWire
    args: RemoteTaskArgs


@dataclass(frozen=True, slots=True)
class HandleBounds:
    """A live remote buffer handle as a session registry knows it, for descriptor checks."""

    owner_worker_id: int
    buffer_id: int
    generation: int
    offset: int
    nbytes: int


# --- Layouts ------------------------------------------------------------------------------------
_CONFIG = Layout(
    [
        ("aicpu_thread_num", "i"),
        ("enable_chip_swimlane", "i"),
        ("enable_dump_args", "i"),
        ("enable_pmu", "i"),
        ("enable_dep_gen", "i"),
        ("enable_scope_stats", "i"),
    ]
)
# Tensor record up to and including ndims, with body_len fused in: a REMOTE_SIDECAR body is empty,
# so a valid record always has body_len == 0 and the view follows directly.
_TENSOR_HEAD = Layout(
    [
        ("buffer.owner_instance_id", "Q"),  # 8 opaque bytes; packed via the "8s" struct below
        ("buffer.buffer_id", "Q"),
        ("buffer.generation", "I"),
        ("buffer.address_space", "B"),
        ("buffer.access", "B"),
        ("buffer.backend_kind", "B"),
        ("buffer.nbytes", "Q"),
        ("buffer.owner_worker_path_id", "I"),
        ("buffer.body", "I"),
        ("byte_offset", "Q"),
        ("ndims", "I"),
    ]
)
_TENSOR_HEAD_S = struct.Struct("<8sQIBBBQIIQI")
assert _TENSOR_HEAD_S.size == _TENSOR_HEAD.size
_TENSOR_HEAD_SIZE = _TENSOR_HEAD_S.size
# shapes[n], strides[n], dtype
_DIMS_S = tuple(struct.Struct(f"<{2 * n + 1}I") for n in range(MAX_TENSOR_DIMS + 1))
_TENSOR_MIN_BYTES = _TENSOR_HEAD_SIZE + _DIMS_S[1].size
_DESC = Layout(
    [
        ("address_space", "I"),
        ("owner_worker_id", "i"),
        ("buffer_id", "Q"),
        ("offset", "Q"),
        ("nbytes", "Q"),
        ("remote_addr", "Q"),
        ("rkey_or_token", "Q"),
        ("generation", "Q"),
        ("inline_payload_offset", "Q"),
        ("inline_payload_len", "Q"),
        ("flags", "Q"),
    ]
)
_DESC_S = _DESC.struct
_DESC_SIZE = _DESC.size
_PRESENT_DESC_S = struct.Struct("<BIiQQQQQQQQQ")
_COUNTS_S = struct.Struct("<II")
_U32_S = struct.Struct("<I")
_SCALARS_CACHE: dict[int, struct.Struct] = {}

_DTYPES = tuple(DataType)
_BUF_SPACES = tuple(BufferAddressSpace)
_ACCESS = tuple(AccessMode)
_SIDECAR = BackendKind.REMOTE_SIDECAR
_SPACE_BY_VALUE = RemoteAddressSpace._value2member_map_
_HOST_INLINE = RemoteAddressSpace.HOST_INLINE


_new_config = record_builder(CallConfigWire)
_new_buffer = record_builder(BufferDescriptorWire)
_new_tensor = record_builder(TensorWire)
_new_desc = record_builder(RemoteTensorDesc)
_new_args = record_builder(RemoteTaskArgs)
_new_task = record_builder(TaskPayload)


def _scalars_struct(n: int) -> struct.Struct:
    s = _SCALARS_CACHE.get(n)
    if s is None:
        s = struct.Struct(f"<{n}Q")
        if n <= 64:  # cache the small counts real tasks use; huge ones are rare
            _SCALARS_CACHE[n] = s
    return s


# --- CallConfigWire -----------------------------------------------------------------------------
def _check_config_semantics(knobs: tuple[int, ...], prefix_len: int) -> None:
    if prefix_len > MAX_OUTPUT_PREFIX_BYTES:
        fail(f"{prefix_len} UTF-8 bytes exceeds maximum {MAX_OUTPUT_PREFIX_BYTES}", "output_prefix")
    if prefix_len == 0 and any(knobs[1:]):
        fail("must be set whenever a diagnostic knob is enabled", "output_prefix")


def encode_call_config(config: CallConfigWire) -> bytes:
    """Encode ``CallConfigWire v2`` (protocol.md "Wire Encoding")."""
    knobs = (
        config.aicpu_thread_num,
        config.enable_chip_swimlane,
        config.enable_dump_args,
        config.enable_pmu,
        config.enable_dep_gen,
        config.enable_scope_stats,
    )
    head = _CONFIG.pack(knobs)
    prefix = put_string(config.output_prefix, MAX_STRING_BYTES, "output_prefix")
    _check_config_semantics(knobs, len(prefix) - 4)
    return head + prefix


def _decode_call_config_at(data: bytes, pos: int, end: int) -> tuple[CallConfigWire, int]:
    if _CONFIG.size > end - pos:
        _CONFIG.truncated(end - pos)
    knobs = _CONFIG.struct.unpack_from(data, pos)
    prefix, pos = read_string(data, pos + _CONFIG.size, end, MAX_STRING_BYTES, "output_prefix")
    # Only the length matters here; ASCII prefixes are the norm, so avoid re-encoding them.
    _check_config_semantics(knobs, len(prefix) if prefix.isascii() else len(prefix.encode("utf-8")))
    return _new_config(*knobs, prefix), pos


def decode_call_config(data: bytes) -> CallConfigWire:
    """Decode a standalone ``CallConfigWire v2``; trailing bytes are rejected."""
    config, pos = _decode_call_config_at(data, 0, len(data))
    if pos != len(data):
        fail(f"{len(data) - pos} trailing byte(s)", "output_prefix")
    return config


# --- TensorWire ---------------------------------------------------------------------------------
def _check_view(
    generation: int,
    space: int,
    access: int,
    backend: int,
    nbytes: int,
    byte_offset: int,
    shapes: tuple[int, ...],
    strides: tuple[int, ...],
    dtype: int,
) -> None:
    """The remote-TASK ``validate_tensor`` gate over already-width-checked values."""
    # One combined test on the hot path; the field-by-field diagnosis runs only on failure.
    if backend != 3 or space > 1 or access > 2 or generation == 0 or byte_offset != 0 or dtype >= 15:
        _reject_record(generation, space, access, backend, byte_offset, dtype)
    last = 0
    for shape, stride in zip(shapes, strides):  # noqa: B905 - equal lengths are guaranteed by the callers
        if shape == 0 or stride == 0:
            _reject_dims(shapes, strides)
        last += (shape - 1) * stride
    # buffer.h saturates the extent at 2**64 - 1 and treats that value as unrepresentable.
    extent = (last + 1) * ELEMENT_SIZES[dtype]
    if extent >= U64_MAX:
        fail("view extent does not fit 64 bits", "shapes")
    if extent > nbytes:
        fail(f"view extent {extent} exceeds the backing's {nbytes} bytes", "buffer.nbytes")


def _reject_record(
    generation: int, space: int, access: int, backend: int, byte_offset: int, dtype: int
) -> None:
    if backend != 3:
        if backend <= 5:
            fail(
                "a remote TASK tensor must carry no local backing (REMOTE_SIDECAR only)",
                "buffer.backend_kind",
            )
        fail(f"unknown BackendKind value {backend}", "buffer.backend_kind")
    if space > 1:
        fail(f"unknown BufferAddressSpace value {space}", "buffer.address_space")
    if access > 2:
        fail(f"unknown AccessMode value {access}", "buffer.access")
    if generation == 0:
        fail("generation 0 is reserved (uninitialized)", "buffer.generation")
    if byte_offset != 0:
        fail("a remote TASK tensor must carry no byte_offset", "byte_offset")
    fail(f"unknown DataType value {dtype}", "dtype")


def _reject_dims(shapes: tuple[int, ...], strides: tuple[int, ...]) -> None:
    for i, (shape, stride) in enumerate(zip(shapes, strides, strict=True)):
        if shape == 0:
            fail("shape dimension is zero", f"shapes[{i}]")
        if stride == 0:
            fail("stride must be > 0", f"strides[{i}]")


def _encode_tensor(t: TensorWire) -> bytes:
    b = t.buffer
    shapes = t.shapes
    strides = t.strides
    dtype = t.dtype
    try:
        n = len(shapes)
        head = _TENSOR_HEAD_S.pack(
            b.owner_instance_id,
            b.buffer_id,
            b.generation,
            b.address_space,
            b.access,
            b.backend_kind,
            b.nbytes,
            b.owner_worker_path_id,
            len(b.body),
            t.byte_offset,
            n,
        )
        dims = _DIMS_S[n].pack(*shapes, *strides, dtype) if 0 < n <= MAX_TENSOR_DIMS else None
    except (struct.error, TypeError):
        _diagnose_tensor(t)
        raise  # pragma: no cover - _diagnose_tensor always raises
    # "8s" pads or truncates silently, and a body would shift the view, so both are checked here.
    if dims is None or len(strides) != n or len(b.owner_instance_id) != OWNER_INSTANCE_ID_BYTES or b.body:
        _diagnose_tensor(t)
    _check_view(
        b.generation,
        b.address_space,
        b.access,
        b.backend_kind,
        b.nbytes,
        t.byte_offset,
        shapes,
        strides,
        dtype,
    )
    return head + dims


def _diagnose_tensor(t: TensorWire) -> None:
    """Name the field that made a tensor record unpackable (error path only)."""
    b = t.buffer
    check_bytes(b.owner_instance_id, "buffer.owner_instance_id", exact=OWNER_INSTANCE_ID_BYTES)
    check_int(b.buffer_id, "Q", "buffer.buffer_id")
    check_int(b.generation, "I", "buffer.generation")
    check_enum(BufferAddressSpace, b.address_space, "buffer.address_space")
    check_enum(AccessMode, b.access, "buffer.access")
    check_enum(BackendKind, b.backend_kind, "buffer.backend_kind")
    check_int(b.nbytes, "Q", "buffer.nbytes")
    check_int(b.owner_worker_path_id, "I", "buffer.owner_worker_path_id")
    body = check_bytes(b.body, "buffer.body", maximum=DESC_MAX_BYTES)
    if body:
        fail("a REMOTE_SIDECAR descriptor carries no body", "buffer.body")
    check_int(t.byte_offset, "Q", "byte_offset")
    if not isinstance(t.shapes, tuple | list) or not 0 < len(t.shapes) <= MAX_TENSOR_DIMS:
        fail(f"ndims must be 1..{MAX_TENSOR_DIMS}", "shapes")
    if not isinstance(t.strides, tuple | list) or len(t.strides) != len(t.shapes):
        fail("strides must have one entry per shape dimension", "strides")
    for i, v in enumerate(t.shapes):
        check_int(v, "I", f"shapes[{i}]")
    for i, v in enumerate(t.strides):
        check_int(v, "I", f"strides[{i}]")
    check_enum(DataType, t.dtype, "dtype")
    fail("tensor record does not pack", "buffer")  # pragma: no cover - defensive


def encode_tensor(tensor: TensorWire) -> bytes:
    """Encode one ``TensorWire``; refuses a local backing, a byte_offset or an invalid view."""
    return _encode_tensor(tensor)


def _decode_tensor_at(data: bytes, pos: int, end: int) -> tuple[TensorWire, int]:
    if end - pos < _TENSOR_HEAD_SIZE:
        _TENSOR_HEAD.truncated(end - pos)
    (nonce, buffer_id, generation, space, access, backend, nbytes, path_id, body_len, byte_offset, n) = (
        _TENSOR_HEAD_S.unpack_from(data, pos)
    )
    if body_len != 0:
        # A non-empty body is never valid for REMOTE_SIDECAR, so the view offsets need not be found.
        if backend != 3:
            _check_view(generation, space, access, backend, nbytes, 0, (), (), 0)
        if body_len > DESC_MAX_BYTES:
            fail(f"length {body_len} exceeds maximum {DESC_MAX_BYTES}", "buffer.body")
        fail("a REMOTE_SIDECAR descriptor carries no body", "buffer.body")
    if not 0 < n <= MAX_TENSOR_DIMS:
        if backend != 3 or byte_offset != 0:
            _check_view(generation, space, access, backend, nbytes, byte_offset, (), (), 0)
        fail(f"ndims {n} out of range 1..{MAX_TENSOR_DIMS}", "ndims")
    pos += _TENSOR_HEAD_SIZE
    dims_s = _DIMS_S[n]
    if dims_s.size > end - pos:
        fail(f"truncated: shapes/strides/dtype need {dims_s.size} bytes, {end - pos} left", "shapes")
    dims = dims_s.unpack_from(data, pos)
    shapes = dims[:n]
    strides = dims[n : 2 * n]
    dtype = dims[2 * n]
    _check_view(generation, space, access, backend, nbytes, byte_offset, shapes, strides, dtype)
    buf = _new_buffer(
        nonce, buffer_id, generation, _BUF_SPACES[space], _ACCESS[access], nbytes, _SIDECAR, path_id, b""
    )
    return _new_tensor(buf, shapes, strides, _DTYPES[dtype], byte_offset), pos + dims_s.size


def decode_tensor(data: bytes) -> TensorWire:
    """Decode one standalone ``TensorWire`` record; trailing bytes are rejected."""
    tensor, pos = _decode_tensor_at(data, 0, len(data))
    if pos != len(data):
        fail(f"{len(data) - pos} trailing byte(s)", "dtype")
    return tensor


# --- RemoteTensorDescWire -----------------------------------------------------------------------
def _check_desc(desc: RemoteTensorDesc, arena_len: int) -> None:
    """Descriptor rules of protocol.md "RemoteTensorDesc" that need no session state."""
    if desc.flags != 0:
        fail("reserved in v1; must be zero", "flags")
    if desc.offset + desc.nbytes > U64_MAX:
        fail("offset + nbytes overflows 64 bits", "offset")
    if desc.address_space == _HOST_INLINE:
        # Remote handle fields are reserved for HOST_INLINE.
        if desc.owner_worker_id != 0:
            fail("must be zero for HOST_INLINE", "owner_worker_id")
        if desc.buffer_id != 0:
            fail("must be zero for HOST_INLINE", "buffer_id")
        if desc.remote_addr != 0:
            fail("must be zero for HOST_INLINE", "remote_addr")
        if desc.rkey_or_token != 0:
            fail("must be zero for HOST_INLINE", "rkey_or_token")
        if desc.generation != 0:
            fail("must be zero for HOST_INLINE", "generation")
        if desc.inline_payload_len != desc.nbytes:
            fail("HOST_INLINE inline_payload_len must equal nbytes", "inline_payload_len")
        if desc.inline_payload_offset > arena_len:
            fail(f"offset past the {arena_len}-byte inline arena", "inline_payload_offset")
        if desc.inline_payload_len > arena_len - desc.inline_payload_offset:
            fail(f"range exceeds the {arena_len}-byte inline arena", "inline_payload_len")
    else:
        if desc.inline_payload_offset != 0:
            fail("must be zero for a non-HOST_INLINE descriptor", "inline_payload_offset")
        if desc.inline_payload_len != 0:
            fail("must be zero for a non-HOST_INLINE descriptor", "inline_payload_len")
        if desc.owner_worker_id < 0:
            fail("owner worker must be non-negative", "owner_worker_id")
        if desc.buffer_id == 0:
            fail("must be non-zero for a remote buffer", "buffer_id")
        if desc.generation == 0:
            fail("generation 0 is never live (stale)", "generation")


def _desc_values(d: RemoteTensorDesc) -> tuple[int, ...]:
    return (
        d.address_space,
        d.owner_worker_id,
        d.buffer_id,
        d.offset,
        d.nbytes,
        d.remote_addr,
        d.rkey_or_token,
        d.generation,
        d.inline_payload_offset,
        d.inline_payload_len,
        d.flags,
    )


def encode_remote_tensor_desc(desc: RemoteTensorDesc, arena_len: int = 0) -> bytes:
    """Encode one ``RemoteTensorDescWire`` (HOST_INLINE ranges checked against ``arena_len``)."""
    check_enum(RemoteAddressSpace, desc.address_space, "address_space")
    out = _DESC.pack(_desc_values(desc))
    _check_desc(desc, arena_len)
    return out


def _make_desc(values: tuple[int, ...]) -> RemoteTensorDesc:
    space = _SPACE_BY_VALUE.get(values[0])
    if space is None:
        fail(f"unknown RemoteAddressSpace value {values[0]}", "address_space")
    return _new_desc(space, *values[1:])


def decode_remote_tensor_desc(data: bytes, arena_len: int = 0) -> RemoteTensorDesc:
    """Decode one standalone ``RemoteTensorDescWire`` (HOST_INLINE checked against ``arena_len``)."""
    if len(data) < _DESC_SIZE:
        _DESC.truncated(len(data))
    if len(data) > _DESC_SIZE:
        fail(f"{len(data) - _DESC_SIZE} trailing byte(s)", "flags")
    desc = _make_desc(_DESC_S.unpack(data))
    _check_desc(desc, arena_len)
    return desc


# --- RemoteTaskArgsWire -------------------------------------------------------------------------
def _encode_args_parts(args: RemoteTaskArgs, parts: list[bytes]) -> None:
    tensors = args.tensors
    descs = args.remote_desc
    scalars = args.scalars
    inline = args.inline_payload
    nt = len(tensors)
    ns = len(scalars)
    if nt > MAX_TENSORS:
        fail(f"count {nt} exceeds maximum {MAX_TENSORS}", "tensor_count")
    if ns > MAX_SCALARS:
        fail(f"count {ns} exceeds maximum {MAX_SCALARS}", "scalar_count")
    if len(descs) != nt:
        fail(f"{len(descs)} sidecar entries for {nt} tensors", "remote_desc")
    if type(inline) is not bytes:
        inline = check_bytes(inline, "inline_payload")
    arena = len(inline)
    if arena > MAX_INLINE_PAYLOAD_BYTES:
        fail(f"{arena} bytes exceeds maximum {MAX_INLINE_PAYLOAD_BYTES}", "inline_payload")
    parts.append(_COUNTS_S.pack(nt, ns))
    for i, t in enumerate(tensors):
        try:
            parts.append(_encode_tensor(t))
        except ProtocolError as exc:
            raise renest(exc, f"tensors[{i}]") from None
        except (AttributeError, TypeError) as exc:
            fail(f"malformed TensorWire ({type(t).__name__}): {exc}", f"tensors[{i}]")
    pack_desc = _PRESENT_DESC_S.pack
    for i, d in enumerate(descs):
        if d is None:
            parts.append(b"\x00")
            continue
        try:
            if d.address_space not in _SPACE_BY_VALUE:
                check_enum(RemoteAddressSpace, d.address_space, "address_space")
            try:
                # Fields spelled out rather than ``*_desc_values(d)``: that extra call and tuple
                # cost ~9% of TASK encode time (benchmarks/bench_wire.py); keep the order in sync.
                parts.append(pack_desc(1, d.address_space, d.owner_worker_id, d.buffer_id, d.offset, d.nbytes,
                                       d.remote_addr, d.rkey_or_token, d.generation, d.inline_payload_offset,
                                       d.inline_payload_len, d.flags))
            except struct.error:
                _DESC.diagnose(_desc_values(d))
            _check_desc(d, arena)
        except ProtocolError as exc:
            raise renest(exc, f"remote_desc[{i}]") from None
        except (AttributeError, TypeError) as exc:
            fail(f"malformed RemoteTensorDesc ({type(d).__name__}): {exc}", f"remote_desc[{i}]")
    if ns:
        try:
            parts.append(_scalars_struct(ns).pack(*scalars))
        except struct.error:
            for i, v in enumerate(scalars):
                check_int(v, "Q", f"scalars[{i}]")
            raise  # pragma: no cover - check_int raised
    parts.append(_U32_S.pack(arena))
    if arena:
        parts.append(inline)


def encode_remote_task_args(args: RemoteTaskArgs) -> bytes:
    """Encode ``RemoteTaskArgsWire v1`` (protocol.md "TASK Payload")."""
    parts: list[bytes] = []
    _encode_args_parts(args, parts)
    return b"".join(parts)


def _decode_args_at(data: bytes, pos: int, end: int) -> RemoteTaskArgs:
    if end - pos < 8:
        fail(
            f"truncated: needs 8 bytes, {end - pos} left", "tensor_count" if end - pos < 4 else "scalar_count"
        )
    nt, ns = _COUNTS_S.unpack_from(data, pos)
    pos += 8
    if nt > MAX_TENSORS:
        fail(f"count {nt} exceeds maximum {MAX_TENSORS}", "tensor_count")
    if ns > MAX_SCALARS:
        fail(f"count {ns} exceeds maximum {MAX_SCALARS}", "scalar_count")
    # Smallest possible args: every tensor a 1-dim record plus an absent sidecar byte, the scalars,
    # and the inline length. Counts that cannot fit are rejected before any list is built.
    left = end - pos
    if nt * (_TENSOR_MIN_BYTES + 1) + 4 > left:
        fail(f"count {nt} cannot fit in the {left} byte(s) left", "tensor_count")
    if nt * (_TENSOR_MIN_BYTES + 1) + ns * 8 + 4 > left:
        fail(f"count {ns} cannot fit in the {left} byte(s) left", "scalar_count")
    tensors = []
    append = tensors.append
    for i in range(nt):
        try:
            t, pos = _decode_tensor_at(data, pos, end)
        except ProtocolError as exc:
            raise renest(exc, f"tensors[{i}]") from None
        append(t)
    descs: list[RemoteTensorDesc | None] = []
    dappend = descs.append
    unpack_desc = _DESC_S.unpack_from
    for i in range(nt):
        if pos >= end:
            fail("truncated: presence byte missing", f"remote_desc[{i}]")
        present = data[pos]
        pos += 1
        if present == 0:
            dappend(None)
            continue
        if present != 1:
            fail(f"presence byte must be 0 or 1, got {present}", f"remote_desc[{i}]")
        if end - pos < _DESC_SIZE:
            try:
                _DESC.truncated(end - pos)
            except ProtocolError as exc:
                raise renest(exc, f"remote_desc[{i}]") from None
        sp, owner, bid, off, nb, addr, rkey, gen, ioff, ilen, flags = unpack_desc(data, pos)
        space = _SPACE_BY_VALUE.get(sp)
        if space is None:
            fail(f"unknown RemoteAddressSpace value {sp}", f"remote_desc[{i}].address_space")
        dappend(_new_desc(space, owner, bid, off, nb, addr, rkey, gen, ioff, ilen, flags))
        pos += _DESC_SIZE
    if ns:
        s = _scalars_struct(ns)
        if s.size > end - pos:
            fail(f"truncated: {ns} scalars need {s.size} bytes, {end - pos} left", "scalars")
        scalars = s.unpack_from(data, pos)
        pos += s.size
    else:
        scalars = ()
    if end - pos < 4:
        fail(f"truncated: needs 4 bytes, {end - pos} left", "inline_payload")
    (arena,) = _U32_S.unpack_from(data, pos)
    pos += 4
    if arena > MAX_INLINE_PAYLOAD_BYTES:
        fail(f"length {arena} exceeds maximum {MAX_INLINE_PAYLOAD_BYTES}", "inline_payload")
    if arena > end - pos:
        fail(f"length {arena} exceeds the {end - pos} byte(s) left", "inline_payload")
    inline = data[pos : pos + arena]
    pos += arena
    if pos != end:
        fail(f"{end - pos} trailing byte(s)", "inline_payload")
    # Descriptors are validated last: HOST_INLINE ranges are checked against the arena length.
    for i, d in enumerate(descs):
        if d is not None:
            try:
                _check_desc(d, arena)
            except ProtocolError as exc:
                raise renest(exc, f"remote_desc[{i}]") from None
    return _new_args(tuple(tensors), tuple(descs), scalars, inline)


def decode_remote_task_args(data: bytes) -> RemoteTaskArgs:
    """Decode ``RemoteTaskArgsWire v1``; the whole of ``data`` must be consumed."""
    return _decode_args_at(data, 0, len(data))


# --- TASK payload -------------------------------------------------------------------------------
def encode_task_parts(payload: TaskPayload, parts: list[bytes]) -> None:
    """Append the TASK payload's encoded pieces to ``parts`` (lets a frame join once)."""
    digest = payload.callable_digest
    if type(digest) is not bytes or len(digest) != CALLABLE_DIGEST_BYTES:
        check_bytes(digest, "callable_digest", exact=CALLABLE_DIGEST_BYTES)
        digest = bytes(digest)
    parts.append(digest)
    try:
        parts.append(encode_call_config(payload.config))
    except ProtocolError as exc:
        raise renest(exc, "config") from None
    try:
        _encode_args_parts(payload.args, parts)
    except ProtocolError as exc:
        raise renest(exc, "args") from None


def encode_task_payload(payload: TaskPayload) -> bytes:
    """Encode a TASK payload (protocol.md "TASK Payload")."""
    parts: list[bytes] = []
    encode_task_parts(payload, parts)
    return b"".join(parts)


def decode_task_at(data: bytes, pos: int, end: int) -> TaskPayload:
    """Decode a TASK payload occupying exactly ``data[pos:end]``."""
    if end - pos < CALLABLE_DIGEST_BYTES:
        fail(f"truncated: needs {CALLABLE_DIGEST_BYTES} bytes, {end - pos} left", "callable_digest")
    digest = data[pos : pos + CALLABLE_DIGEST_BYTES]
    try:
        config, pos = _decode_call_config_at(data, pos + CALLABLE_DIGEST_BYTES, end)
    except ProtocolError as exc:
        raise renest(exc, "config") from None
    try:
        args = _decode_args_at(data, pos, end)
    except ProtocolError as exc:
        raise renest(exc, "args") from None
    return _new_task(digest, config, args)


def decode_task_payload(data: bytes) -> TaskPayload:
    """Decode a standalone TASK payload; the whole of ``data`` must be consumed."""
    return decode_task_at(data, 0, len(data))


# --- Session-registry checks --------------------------------------------------------------------
def check_task_against_handles(
    args: RemoteTaskArgs, handles: Mapping[tuple[int, int], HandleBounds], *, worker_id: int | None = None
) -> None:
    """Apply the descriptor rules that need the session's live handle table.

    protocol.md "RemoteTensorDesc" (``offset + nbytes`` inside the referenced handle, ``generation``
    matching the live entry) and "Bounds and Fuzz Tests" ("descriptor offsets outside the referenced
    handle", "stale generations"). ``handles`` maps ``(owner_worker_id, buffer_id)`` to the live
    handle. Like the shipped session runner, it also refuses an absent sidecar and a descriptor whose
    ``nbytes`` differs from its tensor's backing. ``worker_id``, when given, is the receiving worker:
    a ``REMOTE_DEVICE`` descriptor must be owned by it (peers' buffers arrive as imported windows).
    Field paths are relative to the args (``remote_desc[i].generation``).
    """
    for i, (tensor, desc) in enumerate(zip(args.tensors, args.remote_desc, strict=True)):
        where = f"remote_desc[{i}]"
        if desc is None:
            fail("a remote TASK tensor requires a sidecar descriptor", where)
        if desc.nbytes != tensor.buffer.nbytes:
            fail(f"{desc.nbytes} differs from the tensor backing's {tensor.buffer.nbytes}", f"{where}.nbytes")
        if desc.address_space == _HOST_INLINE:
            continue
        if (
            worker_id is not None
            and desc.address_space == RemoteAddressSpace.REMOTE_DEVICE
            and desc.owner_worker_id != worker_id
        ):
            fail("names another worker's buffer without an import", f"{where}.owner_worker_id")
        handle = handles.get((desc.owner_worker_id, desc.buffer_id))
        if handle is None:
            fail("names no live buffer handle", f"{where}.buffer_id")
        if handle.generation != desc.generation:
            fail(f"stale generation {desc.generation}; live is {handle.generation}", f"{where}.generation")
        if desc.offset < handle.offset or desc.offset + desc.nbytes > handle.offset + handle.nbytes:
            fail(
                f"range [{desc.offset}, {desc.offset + desc.nbytes}) is outside the handle's "
                f"[{handle.offset}, {handle.offset + handle.nbytes})",
                f"{where}.offset",
            )
