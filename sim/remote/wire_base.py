"""Primitives of the SLR3 remote-L3 wire: bounds, enums, and bounded readers and writers.

Spec: upstream ``docs/remote-l3-worker-design/protocol.md``, "Wire Encoding" (little-endian
integers, ``uint8`` booleans, fixed-width enums that reject unknown values, ``uint32``-length
strings and blobs with per-field maxima, ``uint32``-count repeated fields, reserved fields written
as zero and rejected when non-zero) and "Bounds and Fuzz Tests". The numeric bounds and enum values
are the ones the shipped codec uses (``python/simpler/remote_l3_protocol.py`` and
``src/common/hierarchical/remote_wire.h``); the buffer-ABI values come from
``src/common/task_interface/buffer.h`` and ``data_type.h``.

Every rejection raises :class:`sim.errors.ProtocolError` whose ``field`` is a dotted path to the
offending wire field, relative to the payload being decoded (``renest`` prefixes it as the error
climbs out of nested records, so a frame-level error reads e.g. ``task.args.tensors[2].ndims``).
"""

from __future__ import annotations

import dataclasses
import enum
import struct
from collections.abc import Callable, Iterable
from typing import Any, NoReturn, TypeVar

from sim.errors import ProtocolError
from sim.types import ELEMENT_SIZES, DataType

__all__ = [
    "CALLABLE_DIGEST_BYTES",
    "CONTROL_VERSION",
    "DESC_MAX_BYTES",
    "FRAME_FLAGS_KNOWN",
    "FRAME_FLAG_GROUP_TARGET",
    "FRAME_HEADER_BYTES",
    "HOST_TCP_TRANSPORT_PROFILE",
    "MAGIC",
    "MAX_CHIP_CALLABLE_DESCRIPTOR_BYTES",
    "MAX_ERROR_BYTES",
    "MAX_FRAME_PAYLOAD_BYTES",
    "MAX_INLINE_PAYLOAD_BYTES",
    "MAX_OUTPUT_PREFIX_BYTES",
    "MAX_SCALARS",
    "MAX_STAGED_BLOB_TOKEN_BYTES",
    "MAX_STRING_BYTES",
    "MAX_TENSORS",
    "MAX_TENSOR_DIMS",
    "MAX_TRANSPORT_DESCRIPTOR_BYTES",
    "MAX_TRANSPORT_PROFILE_BYTES",
    "OWNER_INSTANCE_ID_BYTES",
    "PROTOCOL_VERSION",
    "AccessFlags",
    "AccessMode",
    "BackendKind",
    "BufferAddressSpace",
    "CallableKind",
    "ChipCallableBlobLocation",
    "ControlName",
    "DataType",
    "FrameType",
    "ReadyState",
    "RemoteAddressSpace",
    "RemoteRegistryTarget",
    "dtype_size",
]

# --- Bounds ------------------------------------------------------------------------------------
# protocol.md "Frames" names version 1; the shipped codec stamps 3 (a TASK argument became the
# self-describing wire Tensor), and that is what a real peer sends and accepts.
PROTOCOL_VERSION = 3
MAGIC = b"SLR3"
FRAME_HEADER_BYTES = 40
MAX_FRAME_PAYLOAD_BYTES = 16 * 1024 * 1024
MAX_STRING_BYTES = 1024
MAX_ERROR_BYTES = 4096
MAX_TENSORS = 4096
MAX_SCALARS = 4096
MAX_INLINE_PAYLOAD_BYTES = 1024 * 1024
MAX_TRANSPORT_PROFILE_BYTES = 128
MAX_TRANSPORT_DESCRIPTOR_BYTES = 4096
MAX_CHIP_CALLABLE_DESCRIPTOR_BYTES = 4096
MAX_STAGED_BLOB_TOKEN_BYTES = 1024
CALLABLE_DIGEST_BYTES = 32
# The C++ CallConfig holds output_prefix in a NUL-terminated char[1024], so the decoder that fills
# it refuses a 1024-byte prefix even though the string's wire bound is 1024.
MAX_OUTPUT_PREFIX_BYTES = MAX_STRING_BYTES - 1
# Only one control payload version is defined; the shipped parent always sends it.
CONTROL_VERSION = 1
# Frame flag bit: address every member of the target's worker group (group-capable transports).
FRAME_FLAG_GROUP_TARGET = 0x1
FRAME_FLAGS_KNOWN = FRAME_FLAG_GROUP_TARGET
HOST_TCP_TRANSPORT_PROFILE = "host_tcp"

# buffer.h / data_type.h
OWNER_INSTANCE_ID_BYTES = 8
DESC_MAX_BYTES = 32
MAX_TENSOR_DIMS = 5

U8_MAX = 0xFF
U32_MAX = 0xFFFF_FFFF
U64_MAX = 0xFFFF_FFFF_FFFF_FFFF
I32_MIN = -(1 << 31)
I32_MAX = (1 << 31) - 1


# --- Enums (numeric values are wire values) -----------------------------------------------------
class FrameType(enum.IntEnum):
    """``FrameHeader.frame_type`` (protocol.md "Frames")."""

    HELLO = 1
    TASK = 2
    CONTROL = 3
    CONTROL_REPLY = 4
    COMPLETION = 5
    HEALTH = 6
    SHUTDOWN = 7


class ControlName(enum.IntEnum):
    """Typed remote control names (protocol.md "CONTROL Payload")."""

    UNREGISTER_CALLABLE = 1
    PREPARE_REGISTER_CALLABLE = 2
    COMMIT_REGISTER_CALLABLE = 3
    ABORT_REGISTER_CALLABLE = 4
    PREPARE_CALLABLE = 5
    ALLOC_REMOTE_BUFFER = 6
    FREE_REMOTE_BUFFER = 7
    COPY_TO_REMOTE = 8
    COPY_FROM_REMOTE = 9
    EXPORT_BUFFER = 10
    IMPORT_BUFFER = 11
    RELEASE_IMPORT = 12
    COMM_INIT = 13
    ALLOC_DOMAIN = 14
    RELEASE_DOMAIN = 15
    COPY_TO_DOMAIN = 16
    COPY_FROM_DOMAIN = 17


class ReadyState(enum.IntEnum):
    """``HELLO.ready_state`` (protocol.md "HELLO Payload")."""

    NOT_READY = 0
    READY = 1


class RemoteRegistryTarget(enum.IntEnum):
    """Register-family ``target_registry`` (protocol.md "CONTROL Payload")."""

    REMOTE_TASK_DISPATCHER = 1
    INNER_L3_WORKER = 2


class CallableKind(enum.IntEnum):
    """Register-family ``callable_kind``; PYTHON_IMPORT extends PR #891's 1 and 2."""

    CHIP_CALLABLE = 1
    PYTHON_SERIALIZED = 2
    PYTHON_IMPORT = 3


class ChipCallableBlobLocation(enum.IntEnum):
    """``RemoteChipCallablePayloadWire.blob_location``."""

    INLINE_BLOB = 1
    STAGED_BLOB = 2


class RemoteAddressSpace(enum.IntEnum):
    """``RemoteTensorDescWire.address_space`` and the export/import result address spaces."""

    HOST_INLINE = 1
    REMOTE_DEVICE = 2
    REMOTE_WINDOW = 3
    UB_LDST = 4


class AccessFlags(enum.IntFlag):
    """Remote buffer access bits (protocol.md "Remote Buffer Export and Import Controls")."""

    READ = 1 << 0
    WRITE = 1 << 1
    READ_WRITE = READ | WRITE


class BufferAddressSpace(enum.IntEnum):
    """``BufferDescriptor.address_space`` of the embedded wire Tensor (``data_type.h``)."""

    HOST = 0
    DEVICE = 1


class AccessMode(enum.IntEnum):
    """``BufferDescriptor.access`` (``buffer.h``)."""

    READ = 0
    WRITE = 1
    READWRITE = 2


class BackendKind(enum.IntEnum):
    """``BufferDescriptor.backend_kind`` (``buffer.h``); a remote TASK accepts only REMOTE_SIDECAR."""

    FORK_SHM = 0
    POSIX_SHM = 1
    VMM_WINDOW = 2
    REMOTE_SIDECAR = 3
    DEVICE_MALLOC = 4
    FORK_COW = 5


def dtype_size(dtype: int) -> int:
    """Element size in bytes of a dtype value (``data_type.h`` ``get_element_size``)."""
    return ELEMENT_SIZES[dtype]


E = TypeVar("E", bound=enum.IntEnum)


T = TypeVar("T")


def record_builder(cls: type[T]) -> Callable[..., T]:
    """A positional constructor for the frozen, slotted dataclass ``cls`` that skips its ``__init__``.

    Decoding builds dozens of frozen records per frame, and a frozen ``__init__`` routes every field
    through ``object.__setattr__`` (about 1.5 us per record here). The builder fills a mutable twin
    with the same slot layout using plain slot stores and then re-classes it, which CPython permits
    between classes with identical slot layouts; the result is an ordinary, immutable instance of
    ``cls``. Only decoders use it, on values they have already validated.
    """
    names = tuple(f.name for f in dataclasses.fields(cls))  # type: ignore[arg-type]
    if tuple(cls.__dict__.get("__slots__", ())) != names:
        raise TypeError(f"{cls.__name__} must be a slots dataclass whose slots are its fields")
    twin = type(f"_{cls.__name__}Builder", (), {"__slots__": names})
    stores = "".join(f"    o.{name} = {name}\n" for name in names)
    source = (
        f"def build({', '.join(names)}):\n    o = new(twin)\n{stores}    o.__class__ = cls\n    return o\n"
    )
    namespace: dict[str, Any] = {}
    exec(source, {"new": object.__new__, "twin": twin, "cls": cls}, namespace)
    return namespace["build"]


# --- Errors -------------------------------------------------------------------------------------
def fail(message: str, field: str) -> NoReturn:
    """Raise the codec's one error type, naming the field."""
    raise ProtocolError(message, field=field)


def renest(exc: ProtocolError, prefix: str) -> ProtocolError:
    """The same error with ``prefix`` prepended to its field path (as it leaves a nested record)."""
    field = exc.field
    text = str(exc)
    if field is not None and text.startswith(field + ": "):
        text = text[len(field) + 2 :]
    return ProtocolError(text, field=prefix if not field else f"{prefix}.{field}")


def enum_value(cls: type[E], raw: int, field: str) -> E:
    """Decode an enum wire value; unknown values reject the frame ("Wire Encoding")."""
    member = cls._value2member_map_.get(raw)
    if member is None:
        fail(f"unknown {cls.__name__} value {raw}", field)
    return member  # type: ignore[return-value]


def check_enum(cls: type[E], value: object, field: str) -> None:
    """Refuse to encode a value that is not a member of the wire enum ``cls``."""
    if type(value) is not cls and (
        not isinstance(value, int) or isinstance(value, bool) or value not in cls._value2member_map_
    ):
        fail(f"not a {cls.__name__}: {value!r}", field)


# --- Fixed-width runs of integer fields ---------------------------------------------------------
_CODE_RANGE = {
    "B": (0, U8_MAX, "uint8"),
    "I": (0, U32_MAX, "uint32"),
    "i": (I32_MIN, I32_MAX, "int32"),
    "Q": (0, U64_MAX, "uint64"),
}
_CODE_SIZE = {"B": 1, "I": 4, "i": 4, "Q": 8}


class Layout:
    """A precompiled little-endian run of named integer fields.

    Packing is one ``struct`` call; only when it fails is the run walked again to name the field
    whose value is out of range, so the error path costs nothing on the hot path.
    """

    __slots__ = ("codes", "names", "offsets", "size", "struct")

    def __init__(self, fields: Iterable[tuple[str, str]]) -> None:
        pairs = tuple(fields)
        self.names = tuple(name for name, _ in pairs)
        self.codes = tuple(code for _, code in pairs)
        self.struct = struct.Struct("<" + "".join(self.codes))
        self.size = self.struct.size
        offsets = []
        at = 0
        for code in self.codes:
            offsets.append(at)
            at += _CODE_SIZE[code]
        self.offsets = tuple(offsets)

    def pack(self, values: tuple[int, ...], prefix: str = "") -> bytes:
        """Pack ``values`` (one per field); an out-of-range value raises naming its field."""
        try:
            return self.struct.pack(*values)
        except struct.error:
            self.diagnose(values, prefix)

    def diagnose(self, values: tuple[int, ...], prefix: str = "") -> NoReturn:
        """Name the first field whose value does not fit its wire width."""
        for name, code, value in zip(self.names, self.codes, values, strict=True):
            check_int(value, code, prefix + name)
        fail("value does not pack", prefix.rstrip(".") or "record")  # pragma: no cover - defensive

    def truncated(self, remaining: int, prefix: str = "") -> NoReturn:
        """Raise for a run that does not fit in ``remaining`` bytes, naming the first cut field."""
        for name, code, at in zip(self.names, self.codes, self.offsets, strict=True):
            if at + _CODE_SIZE[code] > remaining:
                fail(f"truncated: {remaining} byte(s) left, record needs {self.size}", prefix + name)
        fail("truncated", prefix.rstrip(".") or "record")  # pragma: no cover - defensive


def check_int(value: object, code: str, field: str) -> None:
    """Refuse a value that is not an int within the wire width ``code`` (B, I, i, Q)."""
    lo, hi, kind = _CODE_RANGE[code]
    if not isinstance(value, int):
        fail(f"expected an integer ({kind}), got {type(value).__name__}", field)
    if not lo <= value <= hi:
        fail(f"{value} is out of range for {kind}", field)


def check_bytes(value: object, field: str, *, exact: int | None = None, maximum: int | None = None) -> bytes:
    """Refuse a non-bytes value or one of the wrong length; return it as ``bytes``."""
    if not isinstance(value, bytes | bytearray | memoryview):
        fail(f"expected bytes, got {type(value).__name__}", field)
    data = bytes(value)
    if exact is not None and len(data) != exact:
        fail(f"must be exactly {exact} bytes, got {len(data)}", field)
    if maximum is not None and len(data) > maximum:
        fail(f"{len(data)} bytes exceeds maximum {maximum}", field)
    return data


_U32 = struct.Struct("<I")
pack_u32 = _U32.pack


def put_string(value: object, maximum: int, field: str) -> bytes:
    """``uint32 byte_len`` + UTF-8 bytes, refusing non-strings and oversize encodings."""
    if not isinstance(value, str):
        fail(f"expected str, got {type(value).__name__}", field)
    try:
        data = value.encode("utf-8")
    except UnicodeEncodeError:
        fail("not encodable as UTF-8", field)
    if len(data) > maximum:
        fail(f"{len(data)} UTF-8 bytes exceeds maximum {maximum}", field)
    return pack_u32(len(data)) + data


def put_blob(value: object, maximum: int, field: str) -> bytes:
    """``uint32 byte_len`` + raw bytes, refusing non-bytes and oversize blobs."""
    data = check_bytes(value, field, maximum=maximum)
    return pack_u32(len(data)) + data


# --- Bounded reader -----------------------------------------------------------------------------
class Reader:
    """Sequential bounded reads over ``data[pos:end]``.

    Every length or count is checked against its bound and against the bytes left before any slice
    or list is made, so a lying length can neither allocate nor read past the payload.
    """

    __slots__ = ("data", "end", "pos")

    def __init__(self, data: bytes, pos: int = 0, end: int | None = None) -> None:
        self.data = data
        self.pos = pos
        self.end = len(data) if end is None else end

    @property
    def remaining(self) -> int:
        """Bytes not yet consumed."""
        return self.end - self.pos

    def take(self, n: int, field: str) -> bytes:
        """The next ``n`` raw bytes."""
        if n > self.end - self.pos:
            fail(f"truncated: needs {n} byte(s), {self.end - self.pos} left", field)
        start = self.pos
        self.pos = start + n
        return self.data[start : self.pos]

    def run(self, layout: Layout, prefix: str = "") -> tuple[int, ...]:
        """Unpack one fixed run of fields."""
        if layout.size > self.end - self.pos:
            layout.truncated(self.end - self.pos, prefix)
        values = layout.struct.unpack_from(self.data, self.pos)
        self.pos += layout.size
        return values

    def u8(self, field: str) -> int:
        """One ``uint8``."""
        if self.pos >= self.end:
            fail("truncated: needs 1 byte, 0 left", field)
        value = self.data[self.pos]
        self.pos += 1
        return value

    def u32(self, field: str) -> int:
        """One ``uint32``."""
        if self.end - self.pos < 4:
            fail(f"truncated: needs 4 bytes, {self.end - self.pos} left", field)
        (value,) = _U32.unpack_from(self.data, self.pos)
        self.pos += 4
        return value

    def length(self, maximum: int, field: str) -> int:
        """A ``uint32`` byte length, checked against its bound and against the bytes left."""
        n = self.u32(field)
        if n > maximum:
            fail(f"length {n} exceeds maximum {maximum}", field)
        if n > self.end - self.pos:
            fail(f"length {n} exceeds the {self.end - self.pos} byte(s) left", field)
        return n

    def count(self, maximum: int, min_element_bytes: int, field: str) -> int:
        """A ``uint32`` element count, checked against its bound and the smallest possible elements."""
        n = self.u32(field)
        if n > maximum:
            fail(f"count {n} exceeds maximum {maximum}", field)
        if n * min_element_bytes > self.end - self.pos:
            fail(f"count {n} cannot fit in the {self.end - self.pos} byte(s) left", field)
        return n

    def string(self, maximum: int, field: str) -> str:
        """A bounded UTF-8 string."""
        n = self.length(maximum, field)
        start = self.pos
        self.pos = start + n
        try:
            return self.data[start : self.pos].decode("utf-8")
        except UnicodeDecodeError:
            fail("not valid UTF-8", field)

    def blob(self, maximum: int, field: str) -> bytes:
        """A bounded byte blob."""
        n = self.length(maximum, field)
        start = self.pos
        self.pos = start + n
        return self.data[start : self.pos]

    def reserved_u32(self, field: str) -> None:
        """A reserved ``uint32`` that must be zero."""
        if self.u32(field) != 0:
            fail("reserved field must be zero", field)

    def done(self, field: str) -> None:
        """Reject trailing bytes."""
        if self.pos != self.end:
            fail(f"{self.end - self.pos} trailing byte(s)", field)


def read_string(data: bytes, pos: int, end: int, maximum: int, field: str) -> tuple[str, int]:
    """Inline bounded string read for hot paths: returns (value, new position)."""
    if end - pos < 4:
        fail(f"truncated: needs 4 bytes, {end - pos} left", field)
    (n,) = _U32.unpack_from(data, pos)
    pos += 4
    if n > maximum:
        fail(f"length {n} exceeds maximum {maximum}", field)
    if n > end - pos:
        fail(f"length {n} exceeds the {end - pos} byte(s) left", field)
    try:
        return data[pos : pos + n].decode("utf-8"), pos + n
    except UnicodeDecodeError:
        fail("not valid UTF-8", field)
