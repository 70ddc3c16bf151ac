"""Tests for ``sim.callable_identity``: canonical descriptors, hashids, Python callable targets.

Expected descriptor bytes are rebuilt here with explicit ``struct.pack`` calls straight from the
schemas in upstream ``docs/callable-identity-registration.md`` ("Canonical Descriptor") and
``docs/remote-l3-worker-design/protocol.md`` (``REMOTE_PYTHON_IMPORT``), never through the module
under test. The pinned hashids were also reproduced with upstream's own descriptor builders.
"""

from __future__ import annotations

import dataclasses
import hashlib
import struct
import threading

import cloudpickle
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.callable_identity import (
    CLOUDPICKLE,
    ArgDirection,
    CallableDescriptor,
    CallableKind,
    SerializerId,
    TargetNamespace,
    chip_callable_descriptor,
    chip_signature_schema_bytes,
    chip_signature_schema_hash,
    decode_descriptor,
    decode_spyc_envelope,
    describe_import_target,
    describe_python_callable,
    encode_spyc_envelope,
    format_hashid,
    parse_hashid,
    platform_target_arch,
    python_import_descriptor,
    python_serialized_descriptor,
    python_serialized_descriptor_from_envelope,
    serialize_python_callable,
    validate_import_target,
    verify_descriptor,
    verify_import_manifest,
    verify_import_target,
)
from sim.errors import ErrorClass, HashidMismatch, InvalidArgument, ProtocolError

# --------------------------------------------------------------------------------------------
# Independent encoders for the documented primitives
# --------------------------------------------------------------------------------------------


def u32(value: int) -> bytes:
    return struct.pack("<I", value)


def text(value: str) -> bytes:
    data = value.encode("utf-8")
    return struct.pack("<I", len(data)) + data


def byte_array(value: bytes) -> bytes:
    return struct.pack("<I", len(value)) + value


def h(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def expected_signature_bytes(directions: list[int]) -> bytes:
    return struct.pack("<II", 1, len(directions)) + struct.pack(f"<{len(directions)}I", *directions)


def expected_chip(arch: str, platform: str, runtime: str, blob: bytes, directions: list[int]) -> list[tuple]:
    return [
        ("descriptor_schema_version", u32(1)),
        ("callable_kind", u32(1)),
        ("target_arch", text(arch)),
        ("platform", text(platform)),
        ("runtime", text(runtime)),
        ("callable_blob_sha256", byte_array(h(blob))),
        ("signature_schema_hash", byte_array(h(expected_signature_bytes(directions)))),
    ]


def expected_serialized(version: int, serializer: int, payload: bytes) -> list[tuple]:
    return [
        ("descriptor_schema_version", u32(1)),
        ("callable_kind", u32(2)),
        ("payload_format_version", u32(version)),
        ("serializer_id", u32(serializer)),
        ("payload_sha256", byte_array(h(payload))),
    ]


def expected_import(module: str, qualname: str) -> list[tuple]:
    return [
        ("descriptor_schema_version", u32(1)),
        ("callable_kind", u32(3)),
        ("module", text(module)),
        ("qualname", text(qualname)),
    ]


def assert_fields(descriptor: CallableDescriptor, segments: list[tuple]) -> None:
    """Walk the canonical bytes segment by segment, then compare the whole and its digest."""
    offset = 0
    for name, expected in segments:
        got = descriptor.canonical[offset : offset + len(expected)]
        assert got == expected, f"field {name} at offset {offset}: {got.hex()} != {expected.hex()}"
        offset += len(expected)
    assert offset == len(descriptor.canonical), "descriptor has bytes beyond the documented fields"
    whole = b"".join(seg for _, seg in segments)
    assert descriptor.canonical == whole
    assert descriptor.digest == hashlib.sha256(whole).digest()
    assert descriptor.hashid == "sha256:" + hashlib.sha256(whole).hexdigest()


# --------------------------------------------------------------------------------------------
# Enum values
# --------------------------------------------------------------------------------------------


def test_enum_values_match_the_descriptor_schema():
    assert [(k.name, int(k)) for k in CallableKind] == [
        ("CHIP_CALLABLE", 1),
        ("PYTHON_SERIALIZED", 2),
        ("PYTHON_IMPORT", 3),
    ]
    assert [(n.name, int(n)) for n in TargetNamespace] == [
        ("LOCAL_CHIP", 1),
        ("LOCAL_PYTHON", 2),
        ("REMOTE_TASK_DISPATCHER", 3),
    ]
    assert [(d.name, int(d)) for d in ArgDirection] == [("SCALAR", 0), ("IN", 1), ("OUT", 2), ("INOUT", 3)]
    assert int(CLOUDPICKLE) == 1 and CLOUDPICKLE is SerializerId.CLOUDPICKLE


# --------------------------------------------------------------------------------------------
# Test vectors
# --------------------------------------------------------------------------------------------

CHIP_VECTOR_HASHID = "sha256:a21a8c914d94ce96cf8d256b86f6ca2ff35b3be334c3df466f58efdd028baca3"
SERIALIZED_VECTOR_HASHID = "sha256:94bc6694d1b84e4e911ed2a9dc89b4dabf492b333a99d83db2188e233e551ab1"
IMPORT_VECTOR_HASHID = "sha256:6086292cb02d057e8b0de3739e65ba81b361f93368d5ebc4d4fc21865dbee107"


def test_chip_callable_vector_field_by_field():
    blob = b"\x00chip-blob\xff"
    directions = [ArgDirection.IN, ArgDirection.OUT, ArgDirection.INOUT, ArgDirection.SCALAR]
    descriptor = chip_callable_descriptor(
        platform="a2a3sim", runtime="tensormap_and_ringbuffer", callable_blob=blob, signature=directions
    )
    assert_fields(
        descriptor, expected_chip("a2a3", "a2a3sim", "tensormap_and_ringbuffer", blob, [1, 2, 3, 0])
    )
    assert descriptor.hashid == CHIP_VECTOR_HASHID
    assert descriptor.kind is CallableKind.CHIP_CALLABLE
    assert descriptor.namespace is TargetNamespace.LOCAL_CHIP


@pytest.mark.parametrize(
    ("platform", "arch"), [("a2a3", "a2a3"), ("a2a3sim", "a2a3"), ("a5", "a5"), ("a5sim", "a5"), ("", "")]
)
def test_chip_target_arch_is_derived_from_platform(platform, arch):
    descriptor = chip_callable_descriptor(platform=platform, runtime="rt", callable_blob=b"", signature=[])
    assert_fields(descriptor, expected_chip(arch, platform, "rt", b"", []))
    assert platform_target_arch(platform) == arch


def test_chip_rejects_unknown_platform_and_inconsistent_arch():
    with pytest.raises(InvalidArgument, match="unknown platform 'a9'"):
        chip_callable_descriptor(platform="a9", runtime="rt", callable_blob=b"x", signature=[])
    with pytest.raises(InvalidArgument, match="target_arch 'a5' does not match platform 'a2a3sim'"):
        chip_callable_descriptor(
            target_arch="a5", platform="a2a3sim", runtime="rt", callable_blob=b"x", signature=[]
        )
    explicit = chip_callable_descriptor(
        target_arch="a5", platform="a5sim", runtime="rt", callable_blob=b"x", signature=[1]
    )
    assert explicit == chip_callable_descriptor(
        platform="a5sim", runtime="rt", callable_blob=b"x", signature=[1]
    )


def test_python_serialized_vector_field_by_field():
    payload = b"serializer-output"
    descriptor = python_serialized_descriptor(payload)
    assert_fields(descriptor, expected_serialized(1, 1, payload))
    assert descriptor.hashid == SERIALIZED_VECTOR_HASHID
    assert descriptor.namespace is TargetNamespace.LOCAL_PYTHON
    other = python_serialized_descriptor(payload, serializer_id=7, payload_format_version=9)
    assert_fields(other, expected_serialized(9, 7, payload))


def test_python_import_vector_field_by_field():
    descriptor = describe_import_target("pkg.mod:Class.method")
    assert_fields(descriptor, expected_import("pkg.mod", "Class.method"))
    assert descriptor.hashid == IMPORT_VECTOR_HASHID
    assert descriptor.namespace is TargetNamespace.REMOTE_TASK_DISPATCHER


def test_import_strings_are_length_prefixed_by_utf8_bytes_not_characters():
    descriptor = python_import_descriptor("paquete.módulo", "función")
    assert_fields(descriptor, expected_import("paquete.módulo", "función"))
    assert descriptor.canonical[8:12] == struct.pack("<I", len("paquete.módulo".encode()))
    assert len("paquete.módulo".encode()) != len("paquete.módulo")


def test_signature_schema_bytes_vector():
    assert chip_signature_schema_bytes([]) == struct.pack("<II", 1, 0)
    assert chip_signature_schema_bytes([3, 0, 1]) == struct.pack("<II", 1, 3) + struct.pack("<3I", 3, 0, 1)
    assert chip_signature_schema_hash([3, 0, 1]) == h(struct.pack("<5I", 1, 3, 3, 0, 1))


# --------------------------------------------------------------------------------------------
# Stability and sensitivity
# --------------------------------------------------------------------------------------------

PLATFORMS = ["", "a2a3", "a2a3sim", "a5", "a5sim"]
directions_st = st.lists(st.sampled_from(list(ArgDirection)), max_size=12)
chip_inputs = st.fixed_dictionaries(
    {
        "platform": st.sampled_from(PLATFORMS),
        "runtime": st.text(max_size=12),
        "callable_blob": st.binary(max_size=48),
        "signature": directions_st,
    }
)


def _utf8_ok(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


@settings(max_examples=60)
@given(chip_inputs, st.data())
def test_chip_hashid_is_stable_and_changes_with_every_field(inputs, data):
    inputs = {**inputs, "runtime": inputs["runtime"] if _utf8_ok(inputs["runtime"]) else "rt"}
    first = chip_callable_descriptor(**inputs)
    assert chip_callable_descriptor(**dict(inputs)) == first
    key = data.draw(st.sampled_from(sorted(inputs)))
    alternatives = {
        "platform": st.sampled_from(PLATFORMS),
        "runtime": st.text(max_size=12).filter(_utf8_ok),
        "callable_blob": st.binary(max_size=48),
        "signature": directions_st,
    }
    new_value = data.draw(alternatives[key].filter(lambda v: v != inputs[key]))
    changed = chip_callable_descriptor(**{**inputs, key: new_value})
    assert changed.hashid != first.hashid
    assert changed.digest != first.digest


@settings(max_examples=60)
@given(
    st.binary(max_size=64),
    st.integers(0, 2**32 - 1),
    st.integers(0, 2**32 - 1),
    st.data(),
)
def test_serialized_hashid_is_stable_and_changes_with_every_field(payload, serializer, version, data):
    first = python_serialized_descriptor(payload, serializer_id=serializer, payload_format_version=version)
    assert python_serialized_descriptor(payload, serializer, version).hashid == first.hashid
    which = data.draw(st.sampled_from(["payload", "serializer", "version"]))
    if which == "payload":
        new_payload = data.draw(st.binary(max_size=64).filter(lambda v: v != payload))
        changed = python_serialized_descriptor(new_payload, serializer, version)
    elif which == "serializer":
        new_serializer = data.draw(st.integers(0, 2**32 - 1).filter(lambda v: v != serializer))
        changed = python_serialized_descriptor(payload, new_serializer, version)
    else:
        new_version = data.draw(st.integers(0, 2**32 - 1).filter(lambda v: v != version))
        changed = python_serialized_descriptor(payload, serializer, new_version)
    assert changed.hashid != first.hashid


identifier = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,6}", fullmatch=True)
dotted = st.lists(identifier, min_size=1, max_size=3).map(".".join)


@settings(max_examples=60)
@given(dotted, dotted, dotted, dotted)
def test_import_hashid_is_equal_exactly_when_module_and_qualname_are(mod_a, qual_a, mod_b, qual_b):
    a = python_import_descriptor(mod_a, qual_a)
    b = python_import_descriptor(mod_b, qual_b)
    assert (a.hashid == b.hashid) == ((mod_a, qual_a) == (mod_b, qual_b))
    assert_fields(a, expected_import(mod_a, qual_a))


def test_import_split_point_is_part_of_the_identity():
    # "a.b:c" and "a:b.c" join to the same dotted text but name different objects.
    assert describe_import_target("a.b:c").hashid != describe_import_target("a:b.c").hashid


def test_namespace_is_not_hashed():
    remote = describe_import_target("pkg:fn")
    inner = describe_import_target("pkg:fn", namespace=TargetNamespace.LOCAL_PYTHON)
    assert remote.hashid == inner.hashid
    assert remote.namespace is not inner.namespace
    assert remote != inner


def test_kinds_never_share_a_hashid_for_look_alike_fields():
    chip = chip_callable_descriptor(platform="", runtime="", callable_blob=b"p", signature=[])
    serialized = python_serialized_descriptor(b"p")
    assert len({chip.hashid, serialized.hashid, describe_import_target("p:p").hashid}) == 3


# --------------------------------------------------------------------------------------------
# Signature schema hash scope
# --------------------------------------------------------------------------------------------


def test_signature_hash_depends_on_directions_count_and_order_only():
    base = chip_signature_schema_hash([ArgDirection.IN, ArgDirection.OUT])
    assert chip_signature_schema_hash([1, 2]) == base  # plain ints and enum members agree
    assert chip_signature_schema_hash(d for d in [1, 2]) == base
    assert chip_signature_schema_hash([2, 1]) != base
    assert chip_signature_schema_hash([1, 3]) != base
    # SCALAR is value 0, so only sig_count tells these apart.
    assert chip_signature_schema_hash([1, 2, 0]) != base


def test_chip_signature_hash_field_ignores_blob_and_context():
    first = chip_callable_descriptor(platform="a2a3", runtime="r1", callable_blob=b"one", signature=[1, 2])
    second = chip_callable_descriptor(platform="a5sim", runtime="r2", callable_blob=b"two", signature=[1, 2])
    assert first.fields.signature_schema_hash == second.fields.signature_schema_hash
    assert first.fields.signature_schema_hash == h(expected_signature_bytes([1, 2]))
    assert first.hashid != second.hashid
    third = chip_callable_descriptor(platform="a2a3", runtime="r1", callable_blob=b"one", signature=[1, 3])
    assert third.fields.callable_blob_sha256 == first.fields.callable_blob_sha256
    assert third.fields.signature_schema_hash != first.fields.signature_schema_hash
    assert third.hashid != first.hashid


@pytest.mark.parametrize(
    ("signature", "message"),
    [
        ([1, 4], r"signature\[1\] = 4 is not an ArgDirection"),
        ([-1], r"signature\[0\] = -1 is not an ArgDirection"),
        ([True], r"signature\[0\] must be an ArgDirection, got bool"),
        (["IN"], r"signature\[0\] must be an ArgDirection, got str"),
        ("IN", "must be a sequence of ArgDirection"),
        (5, "must be a sequence of ArgDirection"),
        ([0] * 257, "257 entries; a ChipCallable holds at most 256"),
    ],
)
def test_signature_rejects_bad_directions(signature, message):
    with pytest.raises(InvalidArgument, match=message):
        chip_signature_schema_hash(signature)


def test_signature_accepts_the_chip_maximum():
    assert chip_signature_schema_bytes([0] * 256)[:8] == struct.pack("<II", 1, 256)


# --------------------------------------------------------------------------------------------
# Hashid text form
# --------------------------------------------------------------------------------------------


@given(st.binary(min_size=32, max_size=32))
def test_hashid_format_parse_roundtrip(digest):
    rendered = format_hashid(digest)
    assert rendered == "sha256:" + digest.hex()
    assert parse_hashid(rendered) == digest
    assert parse_hashid(digest.hex(), allow_bare=True) == digest


GOOD_HEX = "0123456789abcdef" * 4


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "must start with 'sha256:'"),
        (GOOD_HEX, "must start with 'sha256:'"),
        ("SHA256:" + GOOD_HEX, "must start with 'sha256:'"),
        ("md5:" + GOOD_HEX, "must start with 'sha256:'"),
        ("sha256:" + GOOD_HEX[:63], "must be 64 hex characters, got 63"),
        ("sha256:" + GOOD_HEX + "0", "must be 64 hex characters, got 65"),
        ("sha256:", "must be 64 hex characters, got 0"),
        ("sha256:ABC", "must be 64 hex characters, got 3"),
        ("sha256:" + GOOD_HEX.upper(), "must use lowercase hex"),
        ("sha256:" + GOOD_HEX[:63] + "F", "must use lowercase hex"),
        ("sha256:" + GOOD_HEX[:63] + "g", "has non-hex characters"),
        ("sha256:" + GOOD_HEX[:62] + "  ", "has non-hex characters"),
        ("sha256:" + GOOD_HEX[:62] + " 0", "has non-hex characters"),
        ("sha256:" + GOOD_HEX[:63] + "\uff10", "has non-hex characters"),
        (" sha256:" + GOOD_HEX, "must start with 'sha256:'"),
    ],
)
def test_parse_hashid_rejects_noncanonical_text(value, message):
    with pytest.raises(InvalidArgument, match="HASHID_FORMAT_INVALID") as info:
        parse_hashid(value)
    assert message in str(info.value)
    assert info.value.error_class is ErrorClass.INVALID_ARGUMENT


def test_parse_hashid_rejects_non_strings_and_bare_uppercase():
    with pytest.raises(InvalidArgument, match="must be a str, got bytes"):
        parse_hashid(b"sha256:" + GOOD_HEX.encode())  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match="lowercase"):
        parse_hashid(GOOD_HEX.upper(), allow_bare=True)
    with pytest.raises(InvalidArgument, match="got 71"):
        parse_hashid("md5:sha256" + GOOD_HEX[:61], allow_bare=True)


@pytest.mark.parametrize("digest", [b"", b"\x00" * 31, b"\x00" * 33, "00" * 32])
def test_format_hashid_requires_exactly_32_bytes(digest):
    with pytest.raises(InvalidArgument, match="hashid digest must be"):
        format_hashid(digest)


# --------------------------------------------------------------------------------------------
# Import targets
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "parts"),
    [
        ("pkg.mod:Class.method", ("pkg.mod", "Class.method")),
        ("m:f", ("m", "f")),
        ("_private._x:_y", ("_private._x", "_y")),
        ("  pkg:fn\r\n", ("pkg", "fn")),
        ("\tpkg.sub:Outer.Inner.call ", ("pkg.sub", "Outer.Inner.call")),
        ("módulo:función", ("módulo", "función")),
    ],
)
def test_validate_import_target_accepts(target, parts):
    assert validate_import_target(target) == parts
    assert describe_import_target(target).fields.target == ":".join(parts)


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("pkg.mod.fn", "exactly one ':' (found 0)"),
        ("pkg:mod:fn", "exactly one ':' (found 2)"),
        (":fn", "module must be non-empty"),
        ("pkg:", "qualname must be non-empty"),
        ("   :  ", "module must be non-empty"),
        (".pkg:fn", "is relative; it must be absolute"),
        ("..pkg.mod:fn", "is relative; it must be absolute"),
        ("pkg.mod:<locals>.fn", "function-local object (<locals>)"),
        ("pkg.mod:outer.<locals>.inner", "function-local object (<locals>)"),
        ("pkg.mod:bad-name", "qualname 'bad-name' has a component that is not an identifier: 'bad-name'"),
        ("pkg.bad-mod:fn", "module 'pkg.bad-mod' has a component that is not an identifier: 'bad-mod'"),
        ("pkg..mod:fn", "module 'pkg..mod' has an empty dotted component"),
        ("pkg.:fn", "module 'pkg.' has an empty dotted component"),
        ("pkg:fn.", "qualname 'fn.' has an empty dotted component"),
        ("1pkg:fn", "not an identifier: '1pkg'"),
        ("pkg :fn", "not an identifier: 'pkg '"),
        ("pkg:f n", "not an identifier: 'f n'"),
        ("\x0bpkg:fn", "not an identifier"),
    ],
)
def test_validate_import_target_rejects(target, message):
    with pytest.raises(InvalidArgument) as info:
        validate_import_target(target)
    assert message in str(info.value)


def test_validate_import_target_rejects_non_strings():
    with pytest.raises(InvalidArgument, match="must be a str, got bytes"):
        validate_import_target(b"pkg:fn")  # type: ignore[arg-type]


def test_import_descriptor_checks_parts_without_trimming():
    with pytest.raises(InvalidArgument, match="not an identifier: ' pkg'"):
        python_import_descriptor(" pkg", "fn")
    with pytest.raises(InvalidArgument, match="<locals>"):
        python_import_descriptor("pkg", "f.<locals>.g")


def test_import_descriptor_namespace_must_resolve_python_imports():
    with pytest.raises(InvalidArgument, match="PYTHON_IMPORT cannot be resolved in namespace LOCAL_CHIP"):
        describe_import_target("pkg:fn", namespace=TargetNamespace.LOCAL_CHIP)


# --------------------------------------------------------------------------------------------
# Python callables and the SPYC envelope
# --------------------------------------------------------------------------------------------


def module_level_function(x):
    return x + 1


module_level_lambda = lambda x: x * 2  # noqa: E731


def make_closure(offset):
    def inner(x):
        return x + offset

    return inner


class CallableObject:
    def __init__(self, scale):
        self.scale = scale

    def __call__(self, x):
        return x * self.scale


@pytest.mark.parametrize(
    "fn", [module_level_function, module_level_lambda, make_closure(5), CallableObject(3), len]
)
def test_python_payload_digest_is_sha256_of_cloudpickle_output(fn):
    descriptor = describe_python_callable(fn)
    payload = cloudpickle.dumps(fn)
    assert descriptor.fields.payload_sha256 == hashlib.sha256(payload).digest()
    assert_fields(descriptor, expected_serialized(1, 1, payload))
    assert descriptor.kind is CallableKind.PYTHON_SERIALIZED


def test_serialize_python_callable_envelope_and_descriptor_agree():
    envelope, descriptor = serialize_python_callable(make_closure(7))
    magic, version, serializer, flags, size = struct.unpack_from("<4sBBHQ", envelope, 0)
    assert (magic, version, serializer, flags) == (b"SPYC", 1, 1, 0)
    assert size == len(envelope) - 16
    payload = envelope[16:]
    assert cloudpickle.loads(payload)(1) == 8
    assert descriptor.fields.payload_sha256 == h(payload)
    assert python_serialized_descriptor_from_envelope(envelope) == descriptor


def test_closures_over_different_values_get_different_hashids():
    assert (
        describe_python_callable(make_closure(1)).hashid != describe_python_callable(make_closure(2)).hashid
    )


def test_describe_python_callable_rejects_non_callables_and_unpicklable_targets():
    with pytest.raises(InvalidArgument, match="must be callable, got int"):
        describe_python_callable(42)  # type: ignore[arg-type]
    holder = CallableObject(threading.Lock())
    with pytest.raises(InvalidArgument, match="cannot serialize python callable"):
        describe_python_callable(holder)


def spyc(payload: bytes, *, magic=b"SPYC", version=1, serializer=1, flags=0, size=None) -> bytes:
    return (
        struct.pack("<4sBBHQ", magic, version, serializer, flags, len(payload) if size is None else size)
        + payload
    )


def test_spyc_encode_matches_documented_header():
    assert encode_spyc_envelope(b"abc") == spyc(b"abc")
    decoded = decode_spyc_envelope(spyc(b"abc"))
    assert (decoded.version, decoded.serializer_id, decoded.payload) == (1, SerializerId.CLOUDPICKLE, b"abc")


def test_spyc_trailing_bytes_are_not_part_of_the_payload():
    envelope = spyc(b"abc") + b"\x00" * 13
    assert decode_spyc_envelope(envelope).payload == b"abc"
    assert python_serialized_descriptor_from_envelope(envelope) == python_serialized_descriptor(b"abc")
    # The header is never hashed: the identity is that of the bare payload.
    assert python_serialized_descriptor_from_envelope(envelope).fields.payload_sha256 == h(b"abc")


@pytest.mark.parametrize(
    ("envelope", "field"),
    [
        (spyc(b"")[:15], "SPYC"),
        (spyc(b"x", magic=b"SPYX"), "SPYC.magic"),
        (spyc(b"x", version=2), "SPYC.version"),
        (spyc(b"x", version=0), "SPYC.version"),
        (spyc(b"x", serializer=2), "SPYC.serializer"),
        (spyc(b"x", flags=1), "SPYC.flags"),
        (spyc(b"x", size=2), "SPYC.payload_size"),
    ],
)
def test_spyc_decode_rejects_bad_headers(envelope, field):
    with pytest.raises(ProtocolError) as info:
        decode_spyc_envelope(envelope)
    assert info.value.field == field


# --------------------------------------------------------------------------------------------
# Descriptor decode / verify
# --------------------------------------------------------------------------------------------

SAMPLE_DESCRIPTORS = [
    chip_callable_descriptor(platform="a5", runtime="rt", callable_blob=b"blob", signature=[1, 0]),
    python_serialized_descriptor(b"payload"),
    describe_import_target("pkg.mod:fn"),
]


@pytest.mark.parametrize("descriptor", SAMPLE_DESCRIPTORS, ids=lambda d: d.kind.name)
def test_verify_descriptor_accepts_and_decodes(descriptor):
    assert verify_descriptor(descriptor.canonical, descriptor.hashid) == descriptor
    assert decode_descriptor(descriptor.canonical) == descriptor


@pytest.mark.parametrize("descriptor", SAMPLE_DESCRIPTORS, ids=lambda d: d.kind.name)
def test_verify_descriptor_rejects_any_flipped_byte(descriptor):
    for index in range(len(descriptor.canonical)):
        tampered = bytearray(descriptor.canonical)
        tampered[index] ^= 0x01
        with pytest.raises(HashidMismatch, match="HASHID_DESCRIPTOR_MISMATCH") as info:
            verify_descriptor(bytes(tampered), descriptor.hashid)
        assert info.value.error_class is ErrorClass.HASHID_MISMATCH


def test_verify_descriptor_rejects_a_malformed_claim_before_hashing():
    descriptor = SAMPLE_DESCRIPTORS[0]
    with pytest.raises(InvalidArgument, match="HASHID_FORMAT_INVALID"):
        verify_descriptor(descriptor.canonical, descriptor.hashid.upper())


def _with_own_hashid(data: bytes) -> tuple[bytes, str]:
    return data, "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        (b"", "descriptor_schema_version", "truncated"),
        (u32(2) + u32(3) + text("m") + text("f"), "descriptor_schema_version", "unsupported version 2"),
        (u32(1) + u32(4), "callable_kind", "CALLABLE_KIND_UNSUPPORTED: 4"),
        (u32(1) + u32(0), "callable_kind", "CALLABLE_KIND_UNSUPPORTED: 0"),
        (u32(1) + u32(3) + text("m") + text("f") + b"\x00", "descriptor", "1 trailing bytes"),
        (u32(1) + u32(3) + text("m") + u32(5) + b"f", "qualname", "truncated"),
        (u32(1) + u32(2) + u32(1) + u32(1) + byte_array(b"\x00" * 31), "payload_sha256", "got 31"),
        (u32(1) + u32(3) + text("m") + byte_array(b"\xff"), "qualname", "not valid UTF-8"),
        (u32(1) + u32(3) + text(".m") + text("f"), "PYTHON_IMPORT", "relative"),
        (
            u32(1) + u32(1) + text("a5") + text("a2a3") + text("") + byte_array(h(b"")) + byte_array(h(b"")),
            "CHIP_CALLABLE",
            "does not match platform",
        ),
    ],
)
def test_verify_descriptor_rejects_malformed_bytes_that_hash_correctly(data, field, message):
    data, hashid = _with_own_hashid(data)
    with pytest.raises(ProtocolError) as info:
        verify_descriptor(data, hashid)
    assert info.value.field == field
    assert message in str(info.value)


@settings(max_examples=40)
@given(chip_inputs.filter(lambda d: _utf8_ok(d["runtime"])))
def test_decode_roundtrips_generated_chip_descriptors(inputs):
    descriptor = chip_callable_descriptor(**inputs)
    assert decode_descriptor(descriptor.canonical) == descriptor


def test_callable_descriptor_rejects_inconsistent_construction():
    chip, serialized, imported = SAMPLE_DESCRIPTORS
    with pytest.raises(InvalidArgument, match="cannot be resolved in namespace LOCAL_PYTHON"):
        dataclasses.replace(chip, namespace=TargetNamespace.LOCAL_PYTHON)
    with pytest.raises(InvalidArgument, match="cannot be resolved in namespace REMOTE_TASK_DISPATCHER"):
        dataclasses.replace(serialized, namespace=TargetNamespace.REMOTE_TASK_DISPATCHER)
    with pytest.raises(HashidMismatch):
        dataclasses.replace(imported, hashid=serialized.hashid)
    with pytest.raises(HashidMismatch):
        dataclasses.replace(imported, digest=serialized.digest)
    with pytest.raises(InvalidArgument, match="do not encode the descriptor fields"):
        dataclasses.replace(imported, canonical=serialized.canonical)
    with pytest.raises(InvalidArgument, match="do not describe a PYTHON_IMPORT"):
        dataclasses.replace(imported, fields=serialized.fields)
    with pytest.raises(dataclasses.FrozenInstanceError):
        imported.hashid = serialized.hashid  # type: ignore[misc]


# --------------------------------------------------------------------------------------------
# Import target verification and the bootstrap manifest
# --------------------------------------------------------------------------------------------


def test_verify_import_target_accepts_the_matching_hashid():
    assert verify_import_target(IMPORT_VECTOR_HASHID, "pkg.mod:Class.method").hashid == IMPORT_VECTOR_HASHID
    bare = IMPORT_VECTOR_HASHID.removeprefix("sha256:")
    assert verify_import_target(bare, "pkg.mod:Class.method", allow_bare=True).hashid == IMPORT_VECTOR_HASHID
    with pytest.raises(InvalidArgument, match="must start with 'sha256:'"):
        verify_import_target(bare, "pkg.mod:Class.method")


def test_verify_import_target_rejects_a_hashid_naming_another_target():
    with pytest.raises(HashidMismatch, match=r"does not name import target 'pkg\.mod:other'"):
        verify_import_target(IMPORT_VECTOR_HASHID, "pkg.mod:other")
    with pytest.raises(HashidMismatch):
        verify_import_target("sha256:" + "0" * 64, "pkg.mod:Class.method")


def test_verify_import_manifest_installs_verified_entries_in_order():
    other = describe_import_target("pkg:other")
    installed = verify_import_manifest(
        [
            (IMPORT_VECTOR_HASHID, "pkg.mod:Class.method"),
            (other.hashid.removeprefix("sha256:"), " pkg:other "),
        ]
    )
    assert list(installed) == [parse_hashid(IMPORT_VECTOR_HASHID), other.digest]
    assert installed[other.digest] == other


def test_verify_import_manifest_rejects_one_hashid_bound_to_two_targets():
    with pytest.raises(HashidMismatch, match="does not name import target 'pkg:second'"):
        verify_import_manifest(
            [(IMPORT_VECTOR_HASHID, "pkg.mod:Class.method"), (IMPORT_VECTOR_HASHID, "pkg:second")]
        )


def test_verify_import_manifest_rejects_duplicates_and_malformed_entries():
    entry = (IMPORT_VECTOR_HASHID, "pkg.mod:Class.method")
    with pytest.raises(InvalidArgument, match="manifest entry 1 repeats hashid"):
        verify_import_manifest([entry, entry])
    with pytest.raises(InvalidArgument, match="HASHID_FORMAT_INVALID"):
        verify_import_manifest([("sha256:ABC", "pkg.mod:Class.method")])
    with pytest.raises(InvalidArgument, match="<locals>"):
        verify_import_manifest([(IMPORT_VECTOR_HASHID, "pkg.mod:f.<locals>.g")])
    with pytest.raises(InvalidArgument, match=r"must be a \(hashid, target\) pair"):
        verify_import_manifest([[IMPORT_VECTOR_HASHID, "pkg.mod:Class.method"]])  # type: ignore[list-item]
