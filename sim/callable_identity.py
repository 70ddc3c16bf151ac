"""Canonical callable descriptors and hashids -- the simulator's callable identity surface.

A callable's identity is ``sha256`` over a versioned canonical descriptor, rendered as
``sha256:<64 lowercase hex>`` (upstream ``docs/callable-identity-registration.md``, "Canonical
Descriptor"); the namespace that resolves a handle travels beside it and is not hashed ("Target
Namespace"). Three descriptor kinds exist:

- ``CHIP_CALLABLE`` -- :func:`chip_callable_descriptor`, with :func:`chip_signature_schema_hash`;
- ``PYTHON_SERIALIZED`` -- :func:`python_serialized_descriptor` over ``cloudpickle`` output and
  :func:`describe_python_callable` (upstream ``docs/python-callable-serialization.md``);
- ``PYTHON_IMPORT`` -- :func:`describe_import_target` for ``module:qualname`` targets (upstream
  ``docs/remote-l3-worker-design/protocol.md``).

Targets re-derive identity rather than trust it: :func:`verify_descriptor`,
:func:`verify_import_target` and :func:`verify_import_manifest` raise
:class:`~sim.errors.HashidMismatch` when a hashid does not name what it claims to.

The implementation lives in :mod:`sim.identity`; this module is the stable import path.
"""

from __future__ import annotations

from sim.identity.canonical import (
    CHIP_MAX_SIGNATURE_ARGS,
    CHIP_SIGNATURE_SCHEMA_VERSION,
    CLOUDPICKLE,
    DEFAULT_NAMESPACE,
    DESCRIPTOR_SCHEMA_VERSION,
    DIGEST_BYTES,
    HASHID_PREFIX,
    NAMESPACES_BY_KIND,
    PYTHON_PAYLOAD_FORMAT_VERSION,
    ArgDirection,
    CallableDescriptor,
    CallableKind,
    ChipCallableFields,
    DescriptorFields,
    PythonImportFields,
    PythonSerializedFields,
    SerializerId,
    TargetNamespace,
    chip_callable_descriptor,
    chip_signature_schema_bytes,
    chip_signature_schema_hash,
    decode_descriptor,
    descriptor_from_fields,
    encode_descriptor,
    format_hashid,
    parse_hashid,
    platform_target_arch,
    python_import_descriptor,
    python_serialized_descriptor,
    verify_descriptor,
)
from sim.identity.python_targets import (
    SPYC_HEADER,
    SPYC_MAGIC,
    SpycEnvelope,
    decode_spyc_envelope,
    describe_import_target,
    describe_python_callable,
    encode_spyc_envelope,
    python_serialized_descriptor_from_envelope,
    serialize_python_callable,
    validate_import_target,
    verify_import_manifest,
    verify_import_target,
)

__all__ = [
    "CHIP_MAX_SIGNATURE_ARGS",
    "CHIP_SIGNATURE_SCHEMA_VERSION",
    "CLOUDPICKLE",
    "DEFAULT_NAMESPACE",
    "DESCRIPTOR_SCHEMA_VERSION",
    "DIGEST_BYTES",
    "HASHID_PREFIX",
    "NAMESPACES_BY_KIND",
    "PYTHON_PAYLOAD_FORMAT_VERSION",
    "SPYC_HEADER",
    "SPYC_MAGIC",
    "ArgDirection",
    "CallableDescriptor",
    "CallableKind",
    "ChipCallableFields",
    "DescriptorFields",
    "PythonImportFields",
    "PythonSerializedFields",
    "SerializerId",
    "SpycEnvelope",
    "TargetNamespace",
    "chip_callable_descriptor",
    "chip_signature_schema_bytes",
    "chip_signature_schema_hash",
    "decode_descriptor",
    "decode_spyc_envelope",
    "describe_import_target",
    "describe_python_callable",
    "descriptor_from_fields",
    "encode_descriptor",
    "encode_spyc_envelope",
    "format_hashid",
    "parse_hashid",
    "platform_target_arch",
    "python_import_descriptor",
    "python_serialized_descriptor",
    "python_serialized_descriptor_from_envelope",
    "serialize_python_callable",
    "validate_import_target",
    "verify_descriptor",
    "verify_import_manifest",
    "verify_import_target",
]
