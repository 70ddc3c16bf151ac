"""Python callable targets: the ``SPYC`` serialized envelope and ``module:qualname`` imports.

- Serialized callables follow upstream ``docs/python-callable-serialization.md`` ("Payload
  Envelope", "Hashid Descriptor"): the serializer output is ``cloudpickle.dumps(fn)``, shipped
  behind a 16-byte ``SPYC`` header, and the ``PYTHON_SERIALIZED`` identity hashes the serializer
  output only, never the header.
- Import targets follow upstream ``docs/remote-l3-worker-design/protocol.md`` (the
  ``PYTHON_IMPORT`` payload rules and the bootstrap manifest) and
  ``docs/remote-l3-worker-design.md`` (``RemoteCallable("module:qualname")``). Behaviour was
  checked against upstream ``python/simpler/callable_identity.py``
  (``parse_python_import_target``) and ``python/simpler/remote_l3_session.py``
  (``_install_manifest_dispatcher_registry``).
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import cloudpickle

from sim.errors import HashidMismatch, InvalidArgument, ProtocolError
from sim.identity.canonical import (
    PYTHON_PAYLOAD_FORMAT_VERSION,
    CallableDescriptor,
    SerializerId,
    TargetNamespace,
    check_import_module,
    check_import_qualname,
    format_hashid,
    parse_hashid,
    python_import_descriptor,
    python_serialized_descriptor,
)

SPYC_MAGIC = b"SPYC"
SPYC_HEADER = struct.Struct("<4sBBHQ")
"""magic, version (uint8), serializer (uint8), flags (uint16), payload_size (uint64): 16 bytes."""

_TRIM = " \t\r\n"


# --------------------------------------------------------------------------------------------
# SPYC envelope (python-callable-serialization.md, "Payload Envelope")
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SpycEnvelope:
    """A decoded ``SPYC`` envelope: its header fields and the serializer output it carries."""

    version: int
    serializer_id: SerializerId
    payload: bytes


def encode_spyc_envelope(payload: bytes) -> bytes:
    """Wrap cloudpickle output in a version-1, ``CLOUDPICKLE``, zero-flag ``SPYC`` header."""
    if not isinstance(payload, bytes | bytearray | memoryview):
        raise InvalidArgument(f"SPYC payload must be bytes, got {type(payload).__name__}")
    data = bytes(payload)
    header = SPYC_HEADER.pack(
        SPYC_MAGIC, PYTHON_PAYLOAD_FORMAT_VERSION, SerializerId.CLOUDPICKLE, 0, len(data)
    )
    return header + data


def decode_spyc_envelope(data: bytes) -> SpycEnvelope:
    """Validate a staged ``SPYC`` envelope before anything is unpickled.

    Magic, version, serializer and flags must be exactly the supported values and
    ``payload_size`` must fit in the staged bytes. Bytes past the payload are ignored: the staged
    region may be larger than the envelope, and upstream reads only ``payload_size`` bytes.
    Failures raise :class:`~sim.errors.ProtocolError` naming the header field.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise InvalidArgument(f"SPYC envelope must be bytes, got {type(data).__name__}")
    raw = bytes(data)
    if len(raw) < SPYC_HEADER.size:
        raise ProtocolError(
            f"{len(raw)} bytes is shorter than the {SPYC_HEADER.size}-byte header", field="SPYC"
        )
    magic, version, serializer, flags, payload_size = SPYC_HEADER.unpack_from(raw, 0)
    if magic != SPYC_MAGIC:
        raise ProtocolError(f"expected {SPYC_MAGIC!r}, got {magic!r}", field="SPYC.magic")
    if version != PYTHON_PAYLOAD_FORMAT_VERSION:
        raise ProtocolError(f"unsupported version {version}", field="SPYC.version")
    if serializer not in {member.value for member in SerializerId}:
        raise ProtocolError(f"unsupported serializer {serializer}", field="SPYC.serializer")
    if flags != 0:
        raise ProtocolError(f"unsupported flags {flags:#06x}", field="SPYC.flags")
    end = SPYC_HEADER.size + payload_size
    if end > len(raw):
        raise ProtocolError(
            f"header says {payload_size} bytes but only {len(raw) - SPYC_HEADER.size} follow",
            field="SPYC.payload_size",
        )
    return SpycEnvelope(
        version=version, serializer_id=SerializerId(serializer), payload=raw[SPYC_HEADER.size : end]
    )


def python_serialized_descriptor_from_envelope(envelope: bytes) -> CallableDescriptor:
    """The descriptor a target rebuilds from a staged envelope (header fields + payload digest)."""
    decoded = decode_spyc_envelope(envelope)
    return python_serialized_descriptor(
        decoded.payload, serializer_id=decoded.serializer_id, payload_format_version=decoded.version
    )


def serialize_python_callable(fn: Callable[..., Any]) -> tuple[bytes, CallableDescriptor]:
    """Serialize ``fn`` once and return ``(SPYC envelope, PYTHON_SERIALIZED descriptor)``.

    Both come from the same ``cloudpickle.dumps`` call, so the descriptor always names the bytes
    that will be shipped. Identity is of the serialized bytes, not of the Python code: an
    equivalent closure serialized again may get a different hashid ("Hashid Descriptor").
    """
    if not callable(fn):
        raise InvalidArgument(f"a PYTHON_SERIALIZED target must be callable, got {type(fn).__name__}")
    try:
        payload = cloudpickle.dumps(fn)
    except Exception as exc:
        raise InvalidArgument(
            f"cannot serialize python callable {fn!r}: {type(exc).__name__}: {exc}"
        ) from exc
    return encode_spyc_envelope(payload), python_serialized_descriptor(payload)


def describe_python_callable(fn: Callable[..., Any]) -> CallableDescriptor:
    """``PYTHON_SERIALIZED`` descriptor of ``fn`` as ``Worker.register`` would compute it."""
    return serialize_python_callable(fn)[1]


# --------------------------------------------------------------------------------------------
# Import targets (protocol.md, ``PYTHON_IMPORT`` payloads; remote design doc, ``RemoteCallable``)
# --------------------------------------------------------------------------------------------


def validate_import_target(text: str) -> tuple[str, str]:
    """Parse ``"pkg.mod:Qual.name"`` into ``(module, qualname)``.

    Surrounding spaces, tabs, CRs and LFs are trimmed (as upstream does); then the text must hold
    exactly one ``:``, a non-empty absolute module path and a non-empty qualname, both dotted
    Python identifiers, and the qualname must not pass through ``<locals>``. Each failure raises
    :class:`~sim.errors.InvalidArgument` saying which rule broke.
    """
    if not isinstance(text, str):
        raise InvalidArgument(f"import target must be a str, got {type(text).__name__}")
    normalized = text.strip(_TRIM)
    colons = normalized.count(":")
    if colons != 1:
        raise InvalidArgument(f"import target {text!r} must contain exactly one ':' (found {colons})")
    module, qualname = normalized.split(":", 1)
    check_import_module(module)
    check_import_qualname(qualname)
    return module, qualname


def describe_import_target(
    text: str, *, namespace: TargetNamespace = TargetNamespace.REMOTE_TASK_DISPATCHER
) -> CallableDescriptor:
    """``PYTHON_IMPORT`` descriptor of a ``module:qualname`` target.

    ``REMOTE_TASK_DISPATCHER`` is the parent-facing ``RemoteCallable`` namespace; pass
    ``LOCAL_PYTHON`` for an import installed on a remote session's inner Worker.
    """
    module, qualname = validate_import_target(text)
    return python_import_descriptor(module, qualname, namespace=namespace)


def verify_import_target(
    claimed_hashid: str,
    target: str,
    *,
    namespace: TargetNamespace = TargetNamespace.REMOTE_TASK_DISPATCHER,
    allow_bare: bool = False,
) -> CallableDescriptor:
    """Recompute the import descriptor for ``target`` and require it to hash to ``claimed_hashid``.

    This is the check a session applies to a ``PREPARE_REGISTER_CALLABLE`` import payload and,
    per the remote review (bootstrap manifest re-validation), to every manifest entry; manifests
    may spell the hashid without its prefix (``allow_bare=True``).
    """
    claimed = parse_hashid(claimed_hashid, allow_bare=allow_bare)
    descriptor = describe_import_target(target, namespace=namespace)
    if descriptor.digest != claimed:
        raise HashidMismatch(
            f"HASHID_DESCRIPTOR_MISMATCH: hashid {format_hashid(claimed)} does not name import target "
            f"{descriptor.fields.target!r} (its descriptor hashes to {descriptor.hashid})"
        )
    return descriptor


def verify_import_manifest(
    entries: Iterable[tuple[str, str]],
    *,
    namespace: TargetNamespace = TargetNamespace.REMOTE_TASK_DISPATCHER,
) -> dict[bytes, CallableDescriptor]:
    """Validate ``(hashid, target)`` manifest entries the same way as dynamic registration.

    Every entry is re-verified with :func:`verify_import_target`, so a hashid bound to a target
    it does not name fails with :class:`~sim.errors.HashidMismatch` -- in particular one hashid
    cannot be bound to two different targets. A digest that appears twice is rejected with
    :class:`~sim.errors.InvalidArgument` even when both entries agree, as upstream's session does.
    Returns digest -> descriptor in entry order.
    """
    installed: dict[bytes, CallableDescriptor] = {}
    for index, entry in enumerate(entries):
        if not isinstance(entry, tuple) or len(entry) != 2:
            raise InvalidArgument(f"manifest entry {index} must be a (hashid, target) pair, got {entry!r}")
        hashid, target = entry
        descriptor = verify_import_target(hashid, target, namespace=namespace, allow_bare=True)
        if descriptor.digest in installed:
            raise InvalidArgument(f"manifest entry {index} repeats hashid {descriptor.hashid}")
        installed[descriptor.digest] = descriptor
    return installed
