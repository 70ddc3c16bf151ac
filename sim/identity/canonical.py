"""Canonical callable descriptors and ``sha256:`` hashids.

Models upstream ``docs/callable-identity-registration.md``:

- "Canonical Descriptor": a callable's identity is the SHA-256 of a versioned byte string built
  from little-endian ``uint32`` integers, ``uint32``-length-prefixed UTF-8 strings and byte
  arrays, and fixed ``uint32`` enum values; every descriptor opens with
  ``descriptor_schema_version`` then ``callable_kind``.
- "Target Namespace": the resolver domain a handle belongs to. It is metadata carried next to the
  identity and is deliberately *not* hashed.

The ``PYTHON_IMPORT`` kind (value 3) and its ``module`` / ``qualname`` schema come from upstream
``docs/remote-l3-worker-design/protocol.md`` (the register-family control rules), and the numeric
namespace values from upstream ``src/common/hierarchical/types.h`` (``TargetNamespace``).

What upstream computes was checked against upstream ``python/simpler/callable_identity.py``
(``build_chip_callable_descriptor``, ``build_python_serialized_descriptor``,
``build_python_import_descriptor``). One detail the prose leaves open and the code settles: the
two 32-byte digests in a ``CHIP_CALLABLE`` descriptor and ``payload_sha256`` in a
``PYTHON_SERIALIZED`` descriptor are written as *byte arrays*, i.e. with a ``uint32`` length
prefix of 32 in front of the raw digest.
"""

from __future__ import annotations

import hashlib
import re
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import IntEnum
from typing import ClassVar

from sim.errors import HashidMismatch, InvalidArgument, ProtocolError

DESCRIPTOR_SCHEMA_VERSION = 1
"""``descriptor_schema_version`` written at the head of every descriptor ("Canonical Descriptor")."""

CHIP_SIGNATURE_SCHEMA_VERSION = 1
"""``signature_schema_version`` of ``CHIP_SIGNATURE_SCHEMA_V1`` ("Canonical Descriptor")."""

PYTHON_PAYLOAD_FORMAT_VERSION = 1
"""``payload_format_version`` of the current ``SPYC`` envelope (python-callable-serialization.md)."""

DIGEST_BYTES = 32
HASHID_PREFIX = "sha256:"

CHIP_MAX_SIGNATURE_ARGS = 256
"""A ``ChipCallable`` holds at most this many signature entries (upstream
``src/common/task_interface/arg_direction.h``, ``CHIP_MAX_TENSOR_ARGS``)."""

_U32_MAX = 0xFFFF_FFFF
_LOWER_HEX_64 = re.compile(r"[0-9a-f]{64}")


class CallableKind(IntEnum):
    """``callable_kind`` descriptor enum ("Canonical Descriptor"; protocol.md adds ``PYTHON_IMPORT``)."""

    CHIP_CALLABLE = 1
    PYTHON_SERIALIZED = 2
    PYTHON_IMPORT = 3


class TargetNamespace(IntEnum):
    """Resolver domain of a handle ("Target Namespace"); values as upstream's C++ ``TargetNamespace``."""

    LOCAL_CHIP = 1
    LOCAL_PYTHON = 2
    REMOTE_TASK_DISPATCHER = 3


class ArgDirection(IntEnum):
    """``arg_direction`` values hashed by ``CHIP_SIGNATURE_SCHEMA_V1`` ("Canonical Descriptor")."""

    SCALAR = 0
    IN = 1
    OUT = 2
    INOUT = 3


class SerializerId(IntEnum):
    """``serializer_id`` value space, shared with the ``SPYC`` header's ``serializer`` byte."""

    CLOUDPICKLE = 1


CLOUDPICKLE = SerializerId.CLOUDPICKLE

NAMESPACES_BY_KIND: dict[CallableKind, frozenset[TargetNamespace]] = {
    CallableKind.CHIP_CALLABLE: frozenset({TargetNamespace.LOCAL_CHIP}),
    CallableKind.PYTHON_SERIALIZED: frozenset({TargetNamespace.LOCAL_PYTHON}),
    # Parent-facing remote handles resolve in the session's dispatcher; an import installed on
    # a remote session's embedded inner Worker is an ordinary LOCAL_PYTHON identity there.
    CallableKind.PYTHON_IMPORT: frozenset(
        {TargetNamespace.REMOTE_TASK_DISPATCHER, TargetNamespace.LOCAL_PYTHON}
    ),
}
"""Which namespaces may resolve each kind (identity doc "Target Namespace"; remote design doc,
resolver locations; protocol v1 does not negotiate ``PYTHON_SERIALIZED`` remotely)."""

DEFAULT_NAMESPACE: dict[CallableKind, TargetNamespace] = {
    CallableKind.CHIP_CALLABLE: TargetNamespace.LOCAL_CHIP,
    CallableKind.PYTHON_SERIALIZED: TargetNamespace.LOCAL_PYTHON,
    CallableKind.PYTHON_IMPORT: TargetNamespace.REMOTE_TASK_DISPATCHER,
}
"""The namespace ``Worker.register`` derives from a target of each kind."""

_PLATFORM_ARCH = {"a2a3": "a2a3", "a2a3sim": "a2a3", "a5": "a5", "a5sim": "a5", "": ""}


def platform_target_arch(platform: str) -> str:
    """Return the ``target_arch`` that upstream derives from a platform id.

    ``a2a3``/``a2a3sim`` map to ``a2a3``, ``a5``/``a5sim`` to ``a5``, and the empty platform (a
    Worker with no chip context) to ``""``; any other platform is rejected, as upstream does.
    """
    if not isinstance(platform, str):
        raise InvalidArgument(f"platform must be a str, got {type(platform).__name__}")
    try:
        return _PLATFORM_ARCH[platform]
    except KeyError:
        raise InvalidArgument(
            f"unknown platform {platform!r} for a CHIP_CALLABLE descriptor; "
            f"expected one of {sorted(p for p in _PLATFORM_ARCH if p)} or ''"
        ) from None


# --------------------------------------------------------------------------------------------
# Canonical primitives ("Canonical Descriptor": integers, strings, byte arrays)
# --------------------------------------------------------------------------------------------


def _u32(value: int, what: str) -> bytes:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgument(f"{what} must be an integer, got {type(value).__name__}")
    if not 0 <= value <= _U32_MAX:
        raise InvalidArgument(f"{what} must fit in uint32, got {value}")
    return struct.pack("<I", int(value))


def _as_bytes(value: object, what: str) -> bytes:
    if not isinstance(value, bytes | bytearray | memoryview):
        raise InvalidArgument(f"{what} must be bytes, got {type(value).__name__}")
    return bytes(value)


def _byte_array(data: bytes, what: str) -> bytes:
    return _u32(len(data), f"{what} length") + data


def _string(value: str, what: str) -> bytes:
    if not isinstance(value, str):
        raise InvalidArgument(f"{what} must be a str, got {type(value).__name__}")
    try:
        data = value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidArgument(f"{what} is not encodable as UTF-8: {exc.reason}") from exc
    return _byte_array(data, what)


def _digest(value: object, what: str) -> bytes:
    data = _as_bytes(value, what)
    if len(data) != DIGEST_BYTES:
        raise InvalidArgument(f"{what} must be {DIGEST_BYTES} bytes, got {len(data)}")
    return data


def sha256(data: bytes) -> bytes:
    """Raw 32-byte SHA-256 digest."""
    return hashlib.sha256(data).digest()


# --------------------------------------------------------------------------------------------
# Hashid text form ("Canonical Descriptor": ``hashid = sha256:<64 lowercase hex characters>``)
# --------------------------------------------------------------------------------------------


def format_hashid(digest: bytes) -> str:
    """Render a 32-byte digest as ``sha256:<64 lowercase hex>``."""
    return HASHID_PREFIX + _digest(digest, "hashid digest").hex()


def _show(text: str) -> str:
    return repr(text if len(text) <= 80 else text[:77] + "...")


def parse_hashid(text: str, *, allow_bare: bool = False) -> bytes:
    """Parse a hashid into its raw 32-byte digest, accepting only the canonical spelling.

    The text must be ``sha256:`` followed by exactly 64 characters from ``[0-9a-f]``; uppercase
    hex, other prefixes, wrong lengths, whitespace and non-ASCII digits are rejected with
    :class:`~sim.errors.InvalidArgument` (upstream error code ``HASHID_FORMAT_INVALID``).

    ``allow_bare=True`` also accepts the 64 hex digits without the prefix -- the bootstrap manifest
    form (protocol.md, manifest ``hashid``: "with or without ``sha256:`` prefix"). Public handles
    and control payloads always use the prefixed form.

    Stricter than upstream ``validate_hashid`` on one input: upstream checks the length and the
    case and then calls ``bytes.fromhex``, which skips ASCII whitespace, so 62 hex digits plus two
    spaces pass there and yield a 31-byte digest. Here that is a format error.
    """
    if not isinstance(text, str):
        raise InvalidArgument(f"HASHID_FORMAT_INVALID: hashid must be a str, got {type(text).__name__}")
    if text.startswith(HASHID_PREFIX):
        hex_part = text[len(HASHID_PREFIX) :]
    elif allow_bare:
        hex_part = text
    else:
        raise InvalidArgument(
            f"HASHID_FORMAT_INVALID: hashid must start with {HASHID_PREFIX!r}: {_show(text)}"
        )
    if len(hex_part) != 2 * DIGEST_BYTES:
        raise InvalidArgument(
            f"HASHID_FORMAT_INVALID: sha256 digest must be {2 * DIGEST_BYTES} hex characters, "
            f"got {len(hex_part)}: {_show(text)}"
        )
    if _LOWER_HEX_64.fullmatch(hex_part) is None:
        problem = (
            "must use lowercase hex"
            if _LOWER_HEX_64.fullmatch(hex_part.lower())
            else "has non-hex characters"
        )
        raise InvalidArgument(f"HASHID_FORMAT_INVALID: sha256 digest {problem}: {_show(text)}")
    return bytes.fromhex(hex_part)


# --------------------------------------------------------------------------------------------
# Import target components (protocol.md, ``PYTHON_IMPORT`` payload rules)
# --------------------------------------------------------------------------------------------


def _check_dotted(value: str, what: str) -> None:
    parts = value.split(".")
    if any(not part for part in parts):
        raise InvalidArgument(f"{what} {value!r} has an empty dotted component")
    for part in parts:
        if not part.isidentifier():
            raise InvalidArgument(f"{what} {value!r} has a component that is not an identifier: {part!r}")


def check_import_module(module: str) -> None:
    """Reject anything but an absolute dotted module path of identifiers."""
    if not isinstance(module, str):
        raise InvalidArgument(f"import target module must be a str, got {type(module).__name__}")
    if not module:
        raise InvalidArgument("import target module must be non-empty")
    if module.startswith("."):
        raise InvalidArgument(f"import target module {module!r} is relative; it must be absolute")
    _check_dotted(module, "import target module")


def check_import_qualname(qualname: str) -> None:
    """Reject anything but a dotted qualname of identifiers with no ``<locals>`` step."""
    if not isinstance(qualname, str):
        raise InvalidArgument(f"import target qualname must be a str, got {type(qualname).__name__}")
    if not qualname:
        raise InvalidArgument("import target qualname must be non-empty")
    if "<locals>" in qualname.split("."):
        raise InvalidArgument(
            f"import target qualname {qualname!r} names a function-local object (<locals>); "
            "it cannot be imported"
        )
    _check_dotted(qualname, "import target qualname")


# --------------------------------------------------------------------------------------------
# Descriptor schemas ("Canonical Descriptor", "Canonical descriptor schemas")
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChipCallableFields:
    """The ``CHIP_CALLABLE`` schema body after the two header words."""

    kind: ClassVar[CallableKind] = CallableKind.CHIP_CALLABLE
    target_arch: str
    platform: str
    runtime: str
    callable_blob_sha256: bytes = field(repr=False)
    signature_schema_hash: bytes = field(repr=False)

    def __post_init__(self) -> None:
        expected_arch = platform_target_arch(self.platform)
        if not isinstance(self.target_arch, str):
            raise InvalidArgument(f"target_arch must be a str, got {type(self.target_arch).__name__}")
        if self.target_arch != expected_arch:
            raise InvalidArgument(
                f"target_arch {self.target_arch!r} does not match platform {self.platform!r} "
                f"(which selects {expected_arch!r})"
            )
        if not isinstance(self.runtime, str):
            raise InvalidArgument(f"runtime must be a str, got {type(self.runtime).__name__}")
        object.__setattr__(
            self, "callable_blob_sha256", _digest(self.callable_blob_sha256, "callable_blob_sha256")
        )
        object.__setattr__(
            self, "signature_schema_hash", _digest(self.signature_schema_hash, "signature_schema_hash")
        )

    def body(self) -> bytes:
        """Encoded fields in schema order."""
        return (
            _string(self.target_arch, "target_arch")
            + _string(self.platform, "platform")
            + _string(self.runtime, "runtime")
            + _byte_array(self.callable_blob_sha256, "callable_blob_sha256")
            + _byte_array(self.signature_schema_hash, "signature_schema_hash")
        )


@dataclass(frozen=True)
class PythonSerializedFields:
    """The ``PYTHON_SERIALIZED`` schema body after the two header words."""

    kind: ClassVar[CallableKind] = CallableKind.PYTHON_SERIALIZED
    payload_format_version: int
    serializer_id: int
    payload_sha256: bytes = field(repr=False)

    def __post_init__(self) -> None:
        _u32(self.payload_format_version, "payload_format_version")
        _u32(self.serializer_id, "serializer_id")
        object.__setattr__(self, "payload_format_version", int(self.payload_format_version))
        object.__setattr__(self, "serializer_id", int(self.serializer_id))
        object.__setattr__(self, "payload_sha256", _digest(self.payload_sha256, "payload_sha256"))

    def body(self) -> bytes:
        """Encoded fields in schema order."""
        return (
            _u32(self.payload_format_version, "payload_format_version")
            + _u32(self.serializer_id, "serializer_id")
            + _byte_array(self.payload_sha256, "payload_sha256")
        )


@dataclass(frozen=True)
class PythonImportFields:
    """The ``PYTHON_IMPORT`` schema body (protocol.md ``REMOTE_PYTHON_IMPORT``)."""

    kind: ClassVar[CallableKind] = CallableKind.PYTHON_IMPORT
    module: str
    qualname: str

    def __post_init__(self) -> None:
        check_import_module(self.module)
        check_import_qualname(self.qualname)

    @property
    def target(self) -> str:
        """The ``module:qualname`` text this descriptor names."""
        return f"{self.module}:{self.qualname}"

    def body(self) -> bytes:
        """Encoded fields in schema order."""
        return _string(self.module, "module") + _string(self.qualname, "qualname")


DescriptorFields = ChipCallableFields | PythonSerializedFields | PythonImportFields


def encode_descriptor(fields: DescriptorFields) -> bytes:
    """Canonical bytes: ``descriptor_schema_version``, ``callable_kind``, then the schema body."""
    if not isinstance(fields, ChipCallableFields | PythonSerializedFields | PythonImportFields):
        raise InvalidArgument(f"not a descriptor schema: {type(fields).__name__}")
    return (
        _u32(DESCRIPTOR_SCHEMA_VERSION, "descriptor_schema_version")
        + _u32(int(fields.kind), "callable_kind")
        + fields.body()
    )


@dataclass(frozen=True)
class CallableDescriptor:
    """A canonical descriptor with its identity and the namespace that will resolve it.

    ``canonical`` is what gets hashed, ``digest`` is its raw SHA-256 (what local task frames
    carry), ``hashid`` the public text form. ``namespace`` is not part of the hash ("Target
    Namespace"). Construction re-checks that all of these agree.
    """

    kind: CallableKind
    namespace: TargetNamespace
    canonical: bytes = field(repr=False)
    digest: bytes = field(repr=False)
    hashid: str
    fields: DescriptorFields

    def __post_init__(self) -> None:
        if not isinstance(self.kind, CallableKind):
            raise InvalidArgument(f"CALLABLE_KIND_UNSUPPORTED: {self.kind!r}")
        if not isinstance(self.namespace, TargetNamespace):
            raise InvalidArgument(f"unsupported callable target namespace: {self.namespace!r}")
        if self.namespace not in NAMESPACES_BY_KIND[self.kind]:
            raise InvalidArgument(
                f"{self.kind.name} cannot be resolved in namespace {self.namespace.name}; allowed: "
                f"{sorted(ns.name for ns in NAMESPACES_BY_KIND[self.kind])}"
            )
        if getattr(self.fields, "kind", None) is not self.kind:
            raise InvalidArgument(
                f"descriptor fields {type(self.fields).__name__} do not describe a {self.kind.name}"
            )
        if encode_descriptor(self.fields) != self.canonical:
            raise InvalidArgument("canonical bytes do not encode the descriptor fields")
        if self.digest != sha256(self.canonical):
            raise HashidMismatch("digest is not the SHA-256 of the canonical descriptor bytes")
        if self.hashid != format_hashid(self.digest):
            raise HashidMismatch(f"hashid {self.hashid!r} does not render digest {self.digest.hex()}")


def descriptor_from_fields(
    fields: DescriptorFields, namespace: TargetNamespace | None = None
) -> CallableDescriptor:
    """Encode ``fields`` and hash them; ``namespace`` defaults to what ``Worker.register`` derives."""
    canonical = encode_descriptor(fields)
    digest = sha256(canonical)
    return CallableDescriptor(
        kind=fields.kind,
        namespace=DEFAULT_NAMESPACE[fields.kind] if namespace is None else namespace,
        canonical=canonical,
        digest=digest,
        hashid=format_hashid(digest),
        fields=fields,
    )


# --------------------------------------------------------------------------------------------
# Builders
# --------------------------------------------------------------------------------------------


def _directions(directions: Iterable[ArgDirection | int]) -> list[ArgDirection]:
    if isinstance(directions, str | bytes | bytearray):
        raise InvalidArgument(
            f"signature must be a sequence of ArgDirection, got {type(directions).__name__}"
        )
    try:
        items = list(directions)
    except TypeError:
        raise InvalidArgument(
            f"signature must be a sequence of ArgDirection, got {type(directions).__name__}"
        ) from None
    if len(items) > CHIP_MAX_SIGNATURE_ARGS:
        raise InvalidArgument(
            f"signature has {len(items)} entries; a ChipCallable holds at most {CHIP_MAX_SIGNATURE_ARGS}"
        )
    out: list[ArgDirection] = []
    for index, item in enumerate(items):
        if isinstance(item, bool) or not isinstance(item, int):
            raise InvalidArgument(f"signature[{index}] must be an ArgDirection, got {type(item).__name__}")
        try:
            out.append(ArgDirection(item))
        except ValueError:
            raise InvalidArgument(
                f"signature[{index}] = {int(item)} is not an ArgDirection value (0..3)"
            ) from None
    return out


def chip_signature_schema_bytes(directions: Iterable[ArgDirection | int]) -> bytes:
    """``CHIP_SIGNATURE_SCHEMA_V1`` input: version, ``sig_count``, one ``uint32`` per direction."""
    items = _directions(directions)
    return (
        _u32(CHIP_SIGNATURE_SCHEMA_VERSION, "signature_schema_version")
        + _u32(len(items), "sig_count")
        + b"".join(_u32(int(d), "arg_direction") for d in items)
    )


def chip_signature_schema_hash(directions: Iterable[ArgDirection | int]) -> bytes:
    """Raw 32-byte ``signature_schema_hash`` over the directions and their count only."""
    return sha256(chip_signature_schema_bytes(directions))


def chip_callable_descriptor(
    *,
    target_arch: str | None = None,
    platform: str,
    runtime: str,
    callable_blob: bytes,
    signature: Iterable[ArgDirection | int],
) -> CallableDescriptor:
    """``CHIP_CALLABLE`` descriptor for a chip callable blob in a platform/runtime context.

    ``callable_blob`` stands for the exact contiguous ``ChipCallable`` bytes; ``signature`` for
    its ``signature_[0:sig_count_]``. ``target_arch`` is derived from ``platform`` as upstream does
    (:func:`platform_target_arch`); passing it explicitly only adds a consistency check.
    """
    blob = _as_bytes(callable_blob, "callable_blob")
    arch = platform_target_arch(platform) if target_arch is None else target_arch
    return descriptor_from_fields(
        ChipCallableFields(
            target_arch=arch,
            platform=platform,
            runtime=runtime,
            callable_blob_sha256=sha256(blob),
            signature_schema_hash=chip_signature_schema_hash(signature),
        ),
        TargetNamespace.LOCAL_CHIP,
    )


def python_serialized_descriptor(
    payload: bytes,
    serializer_id: int = CLOUDPICKLE,
    payload_format_version: int = PYTHON_PAYLOAD_FORMAT_VERSION,
) -> CallableDescriptor:
    """``PYTHON_SERIALIZED`` descriptor over the serializer output bytes (not the ``SPYC`` header).

    This is the schema-level encoder: any ``uint32`` version / serializer id encodes. Whether a
    target supports them is the envelope's check (``decode_spyc_envelope``).
    """
    data = _as_bytes(payload, "payload")
    return descriptor_from_fields(
        PythonSerializedFields(
            payload_format_version=payload_format_version,
            serializer_id=serializer_id,
            payload_sha256=sha256(data),
        ),
        TargetNamespace.LOCAL_PYTHON,
    )


def python_import_descriptor(
    module: str, qualname: str, *, namespace: TargetNamespace = TargetNamespace.REMOTE_TASK_DISPATCHER
) -> CallableDescriptor:
    """``PYTHON_IMPORT`` descriptor for ``module`` / ``qualname`` (each validated, never trimmed).

    Upstream validates the pair by re-parsing ``f"{module}:{qualname}"``, which trims surrounding
    whitespace of the joined text before checking; here each part is checked as given, so a part
    with stray whitespace is rejected instead of being hashed with it.
    """
    return descriptor_from_fields(PythonImportFields(module=module, qualname=qualname), namespace)


# --------------------------------------------------------------------------------------------
# Decoding and verification ("Registry Contract"/"Local Control Contract": targets recompute)
# --------------------------------------------------------------------------------------------


class _Reader:
    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0

    def u32(self, name: str) -> int:
        return struct.unpack("<I", self.raw(4, name))[0]

    def raw(self, size: int, name: str) -> bytes:
        end = self._pos + size
        if end > len(self._data):
            raise ProtocolError(
                f"truncated: need {size} bytes at offset {self._pos}, have {len(self._data) - self._pos}",
                field=name,
            )
        chunk = self._data[self._pos : end]
        self._pos = end
        return chunk

    def byte_array(self, name: str) -> bytes:
        return self.raw(self.u32(f"{name}.length"), name)

    def string(self, name: str) -> str:
        try:
            return self.byte_array(name).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ProtocolError(f"not valid UTF-8: {exc.reason}", field=name) from exc

    def digest(self, name: str) -> bytes:
        value = self.byte_array(name)
        if len(value) != DIGEST_BYTES:
            raise ProtocolError(f"must be {DIGEST_BYTES} bytes, got {len(value)}", field=name)
        return value

    def done(self) -> None:
        if self._pos != len(self._data):
            raise ProtocolError(f"{len(self._data) - self._pos} trailing bytes", field="descriptor")


def _decode_fields(data: bytes) -> DescriptorFields:
    reader = _Reader(data)
    version = reader.u32("descriptor_schema_version")
    if version != DESCRIPTOR_SCHEMA_VERSION:
        raise ProtocolError(
            f"unsupported version {version} (expected {DESCRIPTOR_SCHEMA_VERSION})",
            field="descriptor_schema_version",
        )
    raw_kind = reader.u32("callable_kind")
    try:
        kind = CallableKind(raw_kind)
    except ValueError:
        raise ProtocolError(f"CALLABLE_KIND_UNSUPPORTED: {raw_kind}", field="callable_kind") from None
    fields: DescriptorFields
    try:
        if kind is CallableKind.CHIP_CALLABLE:
            fields = ChipCallableFields(
                target_arch=reader.string("target_arch"),
                platform=reader.string("platform"),
                runtime=reader.string("runtime"),
                callable_blob_sha256=reader.digest("callable_blob_sha256"),
                signature_schema_hash=reader.digest("signature_schema_hash"),
            )
        elif kind is CallableKind.PYTHON_SERIALIZED:
            fields = PythonSerializedFields(
                payload_format_version=reader.u32("payload_format_version"),
                serializer_id=reader.u32("serializer_id"),
                payload_sha256=reader.digest("payload_sha256"),
            )
        else:
            fields = PythonImportFields(module=reader.string("module"), qualname=reader.string("qualname"))
    except InvalidArgument as exc:
        raise ProtocolError(str(exc), field=kind.name) from exc
    reader.done()
    return fields


def decode_descriptor(data: bytes, *, namespace: TargetNamespace | None = None) -> CallableDescriptor:
    """Decode canonical descriptor bytes strictly (known version and kind, 32-byte digests, valid
    UTF-8, consistent fields, no trailing bytes); failures raise :class:`~sim.errors.ProtocolError`
    naming the field."""
    raw = _as_bytes(data, "descriptor bytes")
    return descriptor_from_fields(_decode_fields(raw), namespace)


def verify_descriptor(
    descriptor_bytes: bytes, claimed_hashid: str, *, namespace: TargetNamespace | None = None
) -> CallableDescriptor:
    """Check that ``descriptor_bytes`` is the descriptor ``claimed_hashid`` names, and decode it.

    Order: a malformed hashid raises :class:`~sim.errors.InvalidArgument`
    (``HASHID_FORMAT_INVALID``); a hash that differs raises :class:`~sim.errors.HashidMismatch`
    (``HASHID_DESCRIPTOR_MISMATCH``); bytes that hash correctly but do not decode raise
    :class:`~sim.errors.ProtocolError`.
    """
    claimed = parse_hashid(claimed_hashid)
    raw = _as_bytes(descriptor_bytes, "descriptor bytes")
    actual = sha256(raw)
    if actual != claimed:
        raise HashidMismatch(
            f"HASHID_DESCRIPTOR_MISMATCH: claimed {format_hashid(claimed)} but the descriptor "
            f"hashes to {format_hashid(actual)}"
        )
    return decode_descriptor(raw, namespace=namespace)
