"""Property tests of the SLR3 wire codec: round trips for every frame type and control kind, and
mutation fuzzing (protocol.md "Bounds and Fuzz Tests": only a clean decode or a ProtocolError).

The strategies generate only values the spec allows, so ``decode(encode(x)) == x`` must hold, the
re-encoding must be byte-identical, and any mutated byte string must either decode to something the
encoder reproduces or raise ``ProtocolError`` — never another exception type.
"""

from __future__ import annotations

import contextlib
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sim.errors import ProtocolError
from sim.remote import (
    AccessFlags,
    AccessMode,
    AdapterKind,
    AdapterProfile,
    AllocDomainCommand,
    AllocRemoteBufferCommand,
    AllocRemoteBufferResult,
    AttachmentRole,
    BufferAddressSpace,
    BufferDescriptorWire,
    CallableKind,
    CallConfigWire,
    ChipCallableBlobLocation,
    ChipCallablePayload,
    CommInitCommand,
    CommInitResult,
    CompletionPayload,
    ControlName,
    ControlPayload,
    ControlReplyPayload,
    CopyFromDomainCommand,
    CopyFromDomainResult,
    CopyFromRemoteCommand,
    CopyFromRemoteResult,
    CopyToDomainCommand,
    CopyToRemoteCommand,
    DataType,
    DigestCallableCommand,
    DomainAttachment,
    DomainBuffer,
    DomainDescriptor,
    DomainDescriptorTable,
    DomainMember,
    DomainPhase,
    DomainProfile,
    ExportBufferRequest,
    ExportBufferResult,
    Frame,
    FrameHeader,
    FrameType,
    FreeRemoteBufferCommand,
    HealthPayload,
    HelloPayload,
    ImportBufferRequest,
    ImportBufferResult,
    ReadyState,
    RegisterCallableCommand,
    ReleaseDomainCommand,
    ReleaseImportRequest,
    RemoteAddressSpace,
    RemoteRegistryTarget,
    RemoteTaskArgs,
    RemoteTensorDesc,
    ShutdownPayload,
    TaskPayload,
    TensorWire,
    decode_chip_callable_payload,
    decode_command,
    decode_frame,
    decode_result,
    dtype_size,
    encode_chip_callable_payload,
    encode_frame,
    result_type,
)

U32 = 0xFFFF_FFFF
U64 = 0xFFFF_FFFF_FFFF_FFFF
I32_MAX = 0x7FFF_FFFF
PROPS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])

u32 = st.integers(0, U32)
u64 = st.integers(0, U64)
i32 = st.integers(-(1 << 31), I32_MAX)
worker = st.integers(0, I32_MAX)
nonzero_u64 = st.integers(1, U64)
digest = st.binary(min_size=32, max_size=32)
small_text = st.text(max_size=12)
nonempty_text = st.text(min_size=1, max_size=12)
small_blob = st.binary(max_size=48)
access = st.sampled_from([AccessFlags.READ, AccessFlags.WRITE, AccessFlags.READ_WRITE])
WINDOW_SPACES = [RemoteAddressSpace.REMOTE_WINDOW, RemoteAddressSpace.UB_LDST]
window_space = st.sampled_from(WINDOW_SPACES)


# --- TASK ---------------------------------------------------------------------------------------
@st.composite
def tensors(draw: st.DrawFn) -> TensorWire:
    ndims = draw(st.integers(1, 5))
    shapes = tuple(draw(st.lists(st.integers(1, 9), min_size=ndims, max_size=ndims)))
    strides = tuple(draw(st.lists(st.integers(1, 70), min_size=ndims, max_size=ndims)))
    dtype = draw(st.sampled_from(DataType))
    extent = (sum((s - 1) * t for s, t in zip(shapes, strides, strict=True)) + 1) * dtype_size(dtype)
    buf = BufferDescriptorWire(
        owner_instance_id=draw(st.binary(min_size=8, max_size=8)),
        buffer_id=draw(u64),
        generation=draw(st.integers(1, U32)),
        address_space=draw(st.sampled_from(BufferAddressSpace)),
        access=draw(st.sampled_from(AccessMode)),
        nbytes=extent + draw(st.integers(0, 1 << 20)),
        owner_worker_path_id=draw(u32),
    )
    return TensorWire(buf, shapes, strides, dtype)


@st.composite
def descs(draw: st.DrawFn, arena: int) -> RemoteTensorDesc | None:
    kind = draw(st.integers(0, 2))
    if kind == 0:
        return None
    if kind == 1:
        offset = draw(st.integers(0, arena))
        length = draw(st.integers(0, arena - offset))
        return RemoteTensorDesc(
            RemoteAddressSpace.HOST_INLINE,
            offset=draw(st.integers(0, U64 - length)),
            nbytes=length,
            inline_payload_offset=offset,
            inline_payload_len=length,
        )
    offset = draw(u64)
    return RemoteTensorDesc(
        draw(st.sampled_from([RemoteAddressSpace.REMOTE_DEVICE, *WINDOW_SPACES])),
        owner_worker_id=draw(worker),
        buffer_id=draw(nonzero_u64),
        offset=offset,
        nbytes=draw(st.integers(0, U64 - offset)),
        remote_addr=draw(u64),
        rkey_or_token=draw(u64),
        generation=draw(nonzero_u64),
    )


@st.composite
def task_payloads(draw: st.DrawFn) -> TaskPayload:
    knobs = draw(st.lists(i32, min_size=6, max_size=6))
    diagnostics = any(knobs[1:])
    prefix = draw(st.text(min_size=1 if diagnostics else 0, max_size=20))
    inline = draw(st.binary(max_size=64))
    ts = draw(st.lists(tensors(), max_size=4))
    ds = tuple(draw(descs(len(inline))) for _ in ts)
    args = RemoteTaskArgs(tuple(ts), ds, tuple(draw(st.lists(u64, max_size=6))), inline)
    return TaskPayload(draw(digest), CallConfigWire(*knobs, prefix), args)


# --- Global CommDomain --------------------------------------------------------------------------
@st.composite
def members(draw: st.DrawFn) -> tuple[DomainMember, ...]:
    n = draw(st.integers(1, 4))
    devices = draw(
        st.lists(st.tuples(st.integers(0, 50), st.integers(0, 50)), min_size=n, max_size=n, unique=True)
    )
    ranks = draw(st.lists(st.integers(0, 1000), min_size=n, max_size=n, unique=True))
    return tuple(
        DomainMember(node, local, g, i)
        for i, ((node, local), g) in enumerate(zip(devices, ranks, strict=True))
    )


@st.composite
def descriptors(draw: st.DrawFn) -> DomainDescriptor:
    count = draw(st.integers(1, 64))
    return DomainDescriptor(
        draw(st.sampled_from(DomainProfile)),
        draw(st.integers(0, count - 1)),
        count,
        draw(nonzero_u64),
        draw(st.binary(min_size=1, max_size=256)),
    )


@st.composite
def attachment(draw: st.DrawFn, node: int) -> DomainAttachment:
    adapter = draw(st.booleans())
    return DomainAttachment(
        node,
        draw(st.sampled_from(BufferAddressSpace)),
        draw(st.sampled_from(AttachmentRole)),
        draw(st.sampled_from(AdapterKind)) if adapter else None,
        draw(st.sampled_from(AdapterProfile)) if adapter else None,
    )


@st.composite
def alloc_domains(draw: st.DrawFn) -> AllocDomainCommand:
    phase = draw(st.sampled_from(DomainPhase))
    ms = draw(members())
    profile = draw(st.sampled_from(DomainProfile))
    attachments: tuple[DomainAttachment, ...] = ()
    if phase == DomainPhase.PREPARE_EXPORT:
        nodes = draw(st.lists(st.integers(0, 40), max_size=3, unique=True))
        attachments = tuple(draw(attachment(node)) for node in nodes for _ in ms)
    names = draw(st.lists(nonempty_text, max_size=4, unique=True))
    buffers = tuple(DomainBuffer(name, draw(st.integers(1, 1 << 20))) for name in names)
    window = sum(b.nbytes for b in buffers) + draw(st.integers(1, 1 << 20))
    descs_: tuple[DomainDescriptor, ...] = ()
    if phase in (DomainPhase.IMPORT, DomainPhase.COMMIT):
        mapping = draw(nonzero_u64)
        descs_ = tuple(
            DomainDescriptor(profile, i, len(ms), mapping, draw(st.binary(min_size=1, max_size=16)))
            for i in range(len(ms))
        )
    return AllocDomainCommand(
        phase,
        draw(nonzero_u64),
        draw(nonzero_u64),
        draw(nonempty_text),
        profile,
        window,
        ms,
        buffers,
        descs_,
        attachments,
    )


@st.composite
def comm_inits(draw: st.DrawFn) -> CommInitCommand:
    count = draw(st.integers(1, 16))
    return CommInitCommand(
        draw(nonempty_text),
        draw(nonempty_text),
        draw(st.sampled_from(DomainProfile)),
        draw(st.integers(0, count - 1)),
        count,
        draw(members()),
    )


# --- Controls -----------------------------------------------------------------------------------
@st.composite
def export_results(draw: st.DrawFn) -> ExportBufferResult:
    return ExportBufferResult(
        draw(worker),
        draw(nonzero_u64),
        draw(nonzero_u64),
        draw(window_space),
        draw(u64),
        draw(nonzero_u64),
        draw(nonzero_u64),
        draw(access),
        draw(u64),
        draw(u64),
        draw(u64),
        draw(st.text(max_size=10)),
        draw(small_blob),
    )


@st.composite
def export_requests(draw: st.DrawFn) -> ExportBufferRequest:
    offset = draw(st.integers(0, U64 - 1))
    return ExportBufferRequest(
        draw(worker),
        draw(nonzero_u64),
        draw(nonzero_u64),
        offset,
        draw(st.integers(1, U64 - offset)),
        draw(access),
        draw(st.text(max_size=10)),
    )


@st.composite
def import_requests(draw: st.DrawFn) -> ImportBufferRequest:
    export = draw(export_results())
    requested = draw(st.sampled_from([f for f in AccessFlags if f and not f & ~export.access_flags]))
    return ImportBufferRequest(draw(worker), requested, export)


@st.composite
def import_results(draw: st.DrawFn) -> ImportBufferResult:
    return ImportBufferResult(
        draw(worker),
        draw(worker),
        draw(nonzero_u64),
        draw(nonzero_u64),
        draw(nonzero_u64),
        draw(window_space),
        draw(u64),
        draw(nonzero_u64),
        draw(access),
        draw(u64),
        draw(u64),
        draw(u64),
        draw(st.text(max_size=10)),
        draw(small_blob),
    )


digest_commands = st.builds(
    DigestCallableCommand, st.sampled_from(RemoteRegistryTarget), st.sampled_from(CallableKind), digest
)
COMMANDS: dict[ControlName, st.SearchStrategy] = {
    ControlName.UNREGISTER_CALLABLE: digest_commands,
    ControlName.PREPARE_REGISTER_CALLABLE: st.builds(
        RegisterCallableCommand,
        st.sampled_from(RemoteRegistryTarget),
        st.sampled_from(CallableKind),
        digest,
        small_blob,
        st.integers(1, U32),
    ),
    ControlName.COMMIT_REGISTER_CALLABLE: digest_commands,
    ControlName.ABORT_REGISTER_CALLABLE: digest_commands,
    ControlName.PREPARE_CALLABLE: digest_commands,
    ControlName.ALLOC_REMOTE_BUFFER: st.builds(AllocRemoteBufferCommand, nonzero_u64),
    ControlName.FREE_REMOTE_BUFFER: st.builds(FreeRemoteBufferCommand, i32, u64, u64),
    ControlName.COPY_TO_REMOTE: st.builds(CopyToRemoteCommand, i32, u64, u64, u64, small_blob),
    ControlName.COPY_FROM_REMOTE: st.builds(CopyFromRemoteCommand, i32, u64, u64, u64, u64),
    ControlName.EXPORT_BUFFER: export_requests(),
    ControlName.IMPORT_BUFFER: import_requests(),
    ControlName.RELEASE_IMPORT: st.builds(
        ReleaseImportRequest, worker, worker, nonzero_u64, nonzero_u64, nonzero_u64
    ),
    ControlName.COMM_INIT: comm_inits(),
    ControlName.ALLOC_DOMAIN: alloc_domains(),
    ControlName.RELEASE_DOMAIN: st.builds(ReleaseDomainCommand, nonzero_u64, nonzero_u64),
    ControlName.COPY_TO_DOMAIN: st.builds(
        CopyToDomainCommand, nonzero_u64, nonzero_u64, u32, u64, st.binary(min_size=1, max_size=48)
    ),
    ControlName.COPY_FROM_DOMAIN: st.builds(
        CopyFromDomainCommand, nonzero_u64, nonzero_u64, u32, u64, st.integers(1, 8 * 1024 * 1024)
    ),
}
RESULTS: dict[ControlName, st.SearchStrategy] = {
    ControlName.ALLOC_REMOTE_BUFFER: st.builds(
        AllocRemoteBufferResult, worker, nonzero_u64, nonzero_u64, nonzero_u64, u64, u64, u64
    ),
    ControlName.COPY_FROM_REMOTE: st.builds(CopyFromRemoteResult, small_blob),
    ControlName.EXPORT_BUFFER: export_results(),
    ControlName.IMPORT_BUFFER: import_results(),
    ControlName.COMM_INIT: st.builds(CommInitResult, st.sampled_from(DomainProfile), u32, u32, u32),
    ControlName.ALLOC_DOMAIN: st.one_of(
        st.none(), st.builds(DomainDescriptorTable, st.lists(descriptors(), max_size=3).map(tuple))
    ),
    ControlName.COPY_FROM_DOMAIN: st.builds(CopyFromDomainResult, small_blob),
}
assert set(COMMANDS) == set(ControlName)
assert {n for n in ControlName if result_type(n) is not None} == set(RESULTS)


@st.composite
def replies(draw: st.DrawFn, name: ControlName, sequence: int) -> ControlReplyPayload:
    if draw(st.booleans()):
        return ControlReplyPayload(sequence, name, draw(i32.filter(bool)), draw(st.text(max_size=40)))
    result = draw(RESULTS[name]) if name in RESULTS else None
    return ControlReplyPayload(sequence, name, 0, draw(small_text), result)


# --- Frames -------------------------------------------------------------------------------------
@st.composite
def frames(draw: st.DrawFn, frame_type: FrameType | None = None, name: ControlName | None = None) -> Frame:
    ftype = draw(st.sampled_from(FrameType)) if frame_type is None else frame_type
    session, worker_id, sequence = draw(u64), draw(i32), draw(u64)
    flags = draw(st.sampled_from([0, 1]))
    if ftype is FrameType.HELLO:
        session = draw(nonzero_u64)
        worker_id = draw(worker)
        payload = HelloPayload(
            session, worker_id, draw(small_text), draw(u64), draw(st.sampled_from(ReadyState))
        )
    elif ftype is FrameType.TASK:
        payload = draw(task_payloads())
    elif ftype in (FrameType.CONTROL, FrameType.CONTROL_REPLY):
        cname = draw(st.sampled_from(ControlName)) if name is None else name
        if ftype is FrameType.CONTROL:
            payload = ControlPayload(cname, draw(COMMANDS[cname]))
        else:
            payload = draw(replies(cname, sequence))
    elif ftype is FrameType.COMPLETION:
        payload = CompletionPayload(sequence, draw(i32), draw(st.text(max_size=40)))
    elif ftype is FrameType.HEALTH:
        payload = HealthPayload()
    else:
        payload = ShutdownPayload()
    return Frame(FrameHeader(ftype, session, worker_id, sequence, flags), payload)


def _round_trip(frame: Frame) -> None:
    data = encode_frame(frame)
    decoded = decode_frame(data)
    assert decoded == frame
    assert decoded.header.payload_bytes == len(data) - 40
    assert encode_frame(decoded) == data


@pytest.mark.parametrize(
    "frame_type",
    [t for t in FrameType if t not in (FrameType.CONTROL, FrameType.CONTROL_REPLY)],
    ids=lambda t: t.name,
)
@PROPS
@given(data=st.data())
def test_round_trip_every_frame_type(frame_type: FrameType, data: st.DataObject) -> None:
    _round_trip(data.draw(frames(frame_type)))


@pytest.mark.parametrize("name", list(ControlName), ids=lambda n: n.name)
@settings(PROPS, max_examples=15)
@given(data=st.data())
def test_round_trip_every_control_kind(name: ControlName, data: st.DataObject) -> None:
    _round_trip(data.draw(frames(FrameType.CONTROL, name)))
    _round_trip(data.draw(frames(FrameType.CONTROL_REPLY, name)))


@PROPS
@given(
    st.builds(
        ChipCallablePayload,
        st.binary(max_size=64),
        st.just(ChipCallableBlobLocation.STAGED_BLOB),
        nonzero_u64,
        digest,
        st.just(b""),
        st.binary(min_size=1, max_size=32),
    )
    | st.binary(min_size=1, max_size=64).flatmap(
        lambda blob: st.builds(
            ChipCallablePayload,
            small_blob,
            st.just(ChipCallableBlobLocation.INLINE_BLOB),
            st.just(len(blob)),
            digest,
            st.just(blob),
        )
    )
)
def test_round_trip_chip_callable_payload(payload: ChipCallablePayload) -> None:
    assert decode_chip_callable_payload(encode_chip_callable_payload(payload)) == payload


# --- Mutation fuzzing ---------------------------------------------------------------------------
MUTATIONS = ["truncate", "cut_payload", "flip", "extend", "lie_u32", "lie_header_length"]


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(encode_frame(draw(frames())))
    for _ in range(draw(st.integers(1, 3))):
        op = draw(st.sampled_from(MUTATIONS))
        if op == "truncate" and data:
            del data[draw(st.integers(0, len(data) - 1)) :]
        elif op == "cut_payload" and len(data) > 40:
            del data[draw(st.integers(40, len(data) - 1)) :]
        elif op == "flip" and data:
            at = draw(st.integers(0, len(data) - 1))
            data[at] ^= draw(st.integers(1, 255))
        elif op == "extend":
            data += draw(st.binary(min_size=1, max_size=16))
        elif op == "lie_u32" and len(data) >= 4:
            # Length and count fields are uint32: overwrite one with a boundary-ish lie.
            at = draw(st.integers(0, len(data) - 4))
            lie = draw(st.sampled_from([0, 1, 2, 7, 64, 4096, 4097, 1 << 20, (1 << 24) + 1, U32]) | u32)
            struct.pack_into("<I", data, at, lie)
        elif op == "lie_header_length" and len(data) >= 40:
            struct.pack_into("<I", data, 32, draw(st.integers(0, U32)))
    if len(data) >= 40 and draw(st.booleans()):
        # Re-declare the true payload length so the mutation reaches the payload decoders.
        struct.pack_into("<I", data, 32, len(data) - 40)
    return bytes(data)


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutated_frames_decode_or_raise_protocol_error(data: bytes) -> None:
    try:
        frame = decode_frame(data)
    except ProtocolError:
        return
    # Whatever the decoder accepts, the encoder must be able to produce again.
    assert decode_frame(encode_frame(frame)) == frame


@pytest.mark.parametrize("name", list(ControlName), ids=lambda n: n.name)
@settings(max_examples=40, deadline=None)
@given(blob=st.binary(max_size=96))
def test_random_control_bytes_decode_or_raise_protocol_error(name: ControlName, blob: bytes) -> None:
    for decode in (decode_command, decode_result):
        with contextlib.suppress(ProtocolError):
            decode(name, blob)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=200), st.sampled_from(FrameType), st.sampled_from([0, 1]))
def test_random_payloads_under_a_valid_header_decode_or_raise(
    payload: bytes, ftype: FrameType, flags: int
) -> None:
    data = struct.pack("<4sIIQiQII", b"SLR3", 3, ftype, 1, 0, 1, len(payload), flags) + payload
    with contextlib.suppress(ProtocolError):
        decode_frame(data)
