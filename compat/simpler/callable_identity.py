"""``simpler.callable_identity`` on the simulator (upstream ``python/simpler/callable_identity.py``).

Upstream's descriptor builders return canonical descriptor bytes and the hashid helpers work on
``sha256:<hex>`` text; the simulator's identity module (:mod:`sim.callable_identity`) builds the
same descriptors as records, so these return their ``canonical`` bytes. A ``ChipCallable`` has no
contiguous device blob on the simulator: its identity is that of the reference kernel the kernel
map resolves it to, which is exactly what ``Worker.register`` hashes here, so a descriptor built
by :func:`build_chip_callable_descriptor` names the handle that registering the callable returns.
"""

from __future__ import annotations

from typing import Any, Literal

from compat.callables import ChipCallable
from compat.session import current_session
from sim.callable_identity import (
    DIGEST_BYTES,
    chip_signature_schema_bytes,
    decode_spyc_envelope,
    format_hashid,
    parse_hashid,
    python_import_descriptor,
    python_serialized_descriptor_from_envelope,
    validate_import_target,
)
from sim.identity.canonical import sha256
from sim.registry import CallableHandle, describe_target

__all__ = [
    "CALLABLE_HASH_DIGEST_BYTES",
    "CallableHandle",
    "CallableKindName",
    "TargetNamespaceName",
    "build_chip_callable_descriptor",
    "build_chip_signature_schema",
    "build_python_import_descriptor",
    "build_python_serialized_descriptor",
    "compute_callable_hashid",
    "hashid_to_digest",
    "parse_python_callable_payload",
    "parse_python_import_target",
    "validate_hashid",
]

CALLABLE_HASH_DIGEST_BYTES = DIGEST_BYTES
CallableKindName = Literal["CHIP_CALLABLE", "PYTHON_SERIALIZED", "PYTHON_IMPORT"]
TargetNamespaceName = Literal["LOCAL_CHIP", "LOCAL_PYTHON", "REMOTE_TASK_DISPATCHER"]


def _str(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a string, got {type(value).__name__}")
    return value


def build_chip_signature_schema(target: Any) -> bytes:
    """``CHIP_SIGNATURE_SCHEMA_V1`` bytes of a chip callable's signature (version, count, directions)."""
    return chip_signature_schema_bytes(int(d) for d in target.signature)


def build_chip_callable_descriptor(*, target: Any, platform: str = "", runtime: str = "") -> bytes:
    """The ``CHIP_CALLABLE`` canonical descriptor of ``target`` in a platform / runtime context
    (a ``ChipCallable`` is described by the reference kernel the kernel map gives it)."""
    kernel = current_session().kernel_map().resolve(target) if isinstance(target, ChipCallable) else target
    return describe_target(kernel, platform=platform, runtime=runtime)[0].canonical


def parse_python_callable_payload(payload: bytes) -> tuple[int, int, bytes]:
    """A ``SPYC`` envelope's ``(version, serializer, serializer payload)``; the header is checked."""
    envelope = decode_spyc_envelope(payload)
    return int(envelope.version), int(envelope.serializer_id), envelope.payload


def build_python_serialized_descriptor(payload: bytes) -> bytes:
    """The ``PYTHON_SERIALIZED`` canonical descriptor of a ``SPYC`` envelope."""
    return python_serialized_descriptor_from_envelope(payload).canonical


def parse_python_import_target(target: str) -> tuple[str, str]:
    """``"pkg.mod:Qual.name"`` as ``(module, qualname)`` (trimmed; absolute, dotted, no ``<locals>``)."""
    return validate_import_target(_str(target, "RemoteCallable target"))


def build_python_import_descriptor(module: str, qualname: str) -> bytes:
    """The ``PYTHON_IMPORT`` canonical descriptor of ``module`` / ``qualname``."""
    validate_import_target(f"{_str(module, 'module')}:{_str(qualname, 'qualname')}")
    return python_import_descriptor(module, qualname).canonical


def compute_callable_hashid(descriptor: bytes) -> str:
    """``sha256:<64 lowercase hex>`` of a canonical descriptor."""
    return format_hashid(sha256(bytes(descriptor)))


def hashid_to_digest(hashid: str) -> bytes:
    """The 32-byte digest a hashid spells (the hashid is validated first)."""
    return parse_hashid(_str(hashid, "CallableHandle hashid"))


def validate_hashid(hashid: str) -> None:
    """Raise ``ValueError`` (``HASHID_FORMAT_INVALID``) unless ``hashid`` is ``sha256:`` + 64 lowercase hex."""
    parse_hashid(_str(hashid, "CallableHandle hashid"))
