"""Byte-level tests of the SLR3 wire codec: golden vectors and the "Bounds and Fuzz Tests" list.

Every expected byte string here is packed by hand from the documented field order and widths
(protocol.md "Frames", "Wire Encoding", "TASK Payload", "RemoteTensorDesc", "COMPLETION Payload",
"CONTROL Payload", "Remote Buffer Export and Import Controls", "CONTROL_REPLY Payload"), never by
calling the encoder, so the encoder and decoder are both checked against an independent layout.
"""

from __future__ import annotations

import dataclasses
import struct

import pytest

from sim.errors import ProtocolError
from sim.remote import (
    AccessFlags,
    AccessMode,
    AllocRemoteBufferResult,
    BufferAddressSpace,
    BufferDescriptorWire,
    CallConfigWire,
    CompletionPayload,
    ControlName,
    ControlPayload,
    ControlReplyPayload,
    DataType,
    ExportBufferRequest,
    Frame,
    FrameHeader,
    FrameType,
    HandleBounds,
    HealthPayload,
    HelloPayload,
    ImportBufferResult,
    ReadyState,
    RemoteAddressSpace,
    RemoteTaskArgs,
    RemoteTensorDesc,
    TaskPayload,
    TensorWire,
    check_task_against_handles,
    decode_chip_callable_payload,
    decode_frame,
    decode_task_payload,
    encode_frame,
    frame_size,
)

encode = encode_frame

# --- Hand packers of the documented layouts -----------------------------------------------------
HEADER = struct.Struct("<4sIIQiQII")  # magic, version, frame_type, session, worker, sequence, len, flags
MiB = 1024 * 1024


def frame(
    ftype: int,
    payload: bytes = b"",
    *,
    session: int = 7,
    worker: int = 1,
    seq: int = 3,
    flags: int = 0,
    magic: bytes = b"SLR3",
    version: int = 3,
    declared: int | None = None,
) -> bytes:
    size = len(payload) if declared is None else declared
    return HEADER.pack(magic, version, ftype, session, worker, seq, size, flags) + payload


def lp(data: bytes) -> bytes:
    """``uint32 byte_len`` + bytes: the wire form of strings and bounded blobs."""
    return struct.pack("<I", len(data)) + data


def config(knobs: tuple[int, ...] = (0, 0, 0, 0, 0, 0), prefix: bytes = b"") -> bytes:
    return struct.pack("<6i", *knobs) + lp(prefix)


def tensor(
    *,
    nonce: bytes = b"NONCE-01",
    buffer_id: int = 11,
    generation: int = 1,
    space: int = 1,
    access: int = 2,
    backend: int = 3,
    nbytes: int = 4096,
    path: int = 0,
    body: bytes = b"",
    byte_offset: int = 0,
    shapes: tuple[int, ...] = (32, 32),
    strides: tuple[int, ...] = (32, 1),
    dtype: int = 0,
) -> bytes:
    n = len(shapes)
    return (
        nonce
        + struct.pack("<QIBBBQI", buffer_id, generation, space, access, backend, nbytes, path)
        + lp(body)
        + struct.pack("<QI", byte_offset, n)
        + struct.pack(f"<{n}I", *shapes)
        + struct.pack(f"<{len(strides)}I", *strides)
        + struct.pack("<I", dtype)
    )


def desc(
    *,
    present: int = 1,
    space: int = 2,
    owner: int = 1,
    buffer_id: int = 11,
    offset: int = 0,
    nbytes: int = 4096,
    addr: int = 0,
    rkey: int = 0,
    generation: int = 1,
    ioff: int = 0,
    ilen: int = 0,
    flags: int = 0,
) -> bytes:
    return bytes([present]) + struct.pack(
        "<IiQQQQQQQQQ", space, owner, buffer_id, offset, nbytes, addr, rkey, generation, ioff, ilen, flags
    )


def inline_desc(*, ioff: int = 0, ilen: int = 4, nbytes: int | None = None, **kw: int) -> bytes:
    fields = {"space": 1, "owner": 0, "buffer_id": 0, "generation": 0, "ioff": ioff, "ilen": ilen}
    fields["nbytes"] = ilen if nbytes is None else nbytes
    fields.update(kw)
    return desc(**fields)


def args(
    tensors: list[bytes],
    descs: list[bytes],
    scalars: tuple[int, ...] = (),
    inline: bytes = b"",
    *,
    counts: tuple[int, int] | None = None,
) -> bytes:
    nt, ns = (len(tensors), len(scalars)) if counts is None else counts
    return (
        struct.pack("<II", nt, ns)
        + b"".join(tensors)
        + b"".join(descs)
        + struct.pack(f"<{len(scalars)}Q", *scalars)
        + lp(inline)
    )


DIGEST = bytes(range(32))


def task(args_bytes: bytes, cfg: bytes | None = None) -> bytes:
    return DIGEST + (config() if cfg is None else cfg) + args_bytes


def one_tensor_task(**tensor_kw: int) -> bytes:
    return task(args([tensor(**tensor_kw)], [desc()]))


def control(name: int, command: bytes, version: int = 1) -> bytes:
    return struct.pack("<III", name, version, len(command)) + command


def reply(
    seq: int, name: int, result: bytes = b"", *, code: int = 0, msg: bytes = b"", version: int = 1
) -> bytes:
    return struct.pack("<QIIi", seq, name, version, code) + lp(msg) + lp(result)


def export_request(
    *,
    owner: int = 1,
    buffer_id: int = 11,
    generation: int = 1,
    offset: int = 0,
    nbytes: int = 4096,
    access: int = 1,
    profile: bytes = b"host_tcp",
    reserved: int = 0,
) -> bytes:
    return (
        struct.pack("<iQQQQI", owner, buffer_id, generation, offset, nbytes, access)
        + lp(profile)
        + struct.pack("<I", reserved)
    )


def export_result(
    *,
    owner: int = 1,
    buffer_id: int = 11,
    generation: int = 1,
    space: int = 3,
    offset: int = 0,
    nbytes: int = 4096,
    export_id: int = 5,
    addr: int = 0x1000,
    rkey: int = 5,
    va: int = 0,
    access: int = 3,
    profile: bytes = b"host_tcp",
    descriptor: bytes = b"shm-x",
    reserved: int = 0,
) -> bytes:
    return (
        struct.pack(
            "<iQQIQQQQQQI",
            owner,
            buffer_id,
            generation,
            space,
            offset,
            nbytes,
            export_id,
            addr,
            rkey,
            va,
            access,
        )
        + lp(profile)
        + lp(descriptor)
        + struct.pack("<I", reserved)
    )


def raises(data: bytes, field: str, **kw: object) -> ProtocolError:
    with pytest.raises(ProtocolError) as info:
        decode_frame(data, **kw)  # type: ignore[arg-type]
    assert info.value.field == field, str(info.value)
    assert str(info.value).startswith(field + ": ")
    return info.value


# --- Golden vectors -----------------------------------------------------------------------------
def test_golden_health_header_bytes() -> None:
    expected = bytes.fromhex(
        "534c5233"  # magic "SLR3"
        "03000000"  # version 3
        "06000000"  # frame_type HEALTH
        "8877665544332211"  # session_id
        "05000000"  # worker_id
        "2a00000000000000"  # sequence 42
        "00000000"  # payload_bytes
        "00000000"  # flags
    )
    f = Frame(FrameHeader(FrameType.HEALTH, 0x1122334455667788, 5, 42), HealthPayload())
    assert len(expected) == 40
    assert encode(f) == expected
    assert decode_frame(expected) == f
    assert frame_size(expected) == 40


def test_golden_hello() -> None:
    payload = struct.pack("<QiI", 9, 2, 3) + lp(b"sim") + struct.pack("<QI", 0x5, 1)
    expected = frame(1, payload, session=9, worker=2, seq=0)
    f = Frame(FrameHeader(FrameType.HELLO, 9, 2, 0), HelloPayload(9, 2, "sim", 5, ReadyState.READY))
    assert encode(f) == expected
    assert decode_frame(expected) == f


def test_golden_task_with_device_and_inline_args() -> None:
    inline = b"\x01\x02\x03\x04"
    expected_payload = task(
        args(
            [
                tensor(
                    nonce=b"\x01" * 8, buffer_id=11, nbytes=4096, shapes=(32, 32), strides=(32, 1), dtype=0
                ),
                tensor(nonce=b"\x00" * 8, buffer_id=0, space=0, nbytes=4, shapes=(4,), strides=(1,), dtype=5),
            ],
            [desc(owner=1, buffer_id=11, nbytes=4096, generation=1), inline_desc(ioff=0, ilen=4)],
            scalars=(7, 2**64 - 1),
            inline=inline,
        ),
        cfg=config((4, 0, 0, 1, 0, 0), b"out/run"),
    )
    expected = frame(2, expected_payload, flags=1)
    device = BufferDescriptorWire(b"\x01" * 8, 11, 1, BufferAddressSpace.DEVICE, AccessMode.READWRITE, 4096)
    host = BufferDescriptorWire(b"\x00" * 8, 0, 1, BufferAddressSpace.HOST, AccessMode.READWRITE, 4)
    f = Frame(
        FrameHeader(FrameType.TASK, 7, 1, 3, flags=1),
        TaskPayload(
            DIGEST,
            CallConfigWire(aicpu_thread_num=4, enable_pmu=1, output_prefix="out/run"),
            RemoteTaskArgs(
                (
                    TensorWire(device, (32, 32), (32, 1), DataType.FLOAT32),
                    TensorWire(host, (4,), (1,), DataType.UINT8),
                ),
                (
                    RemoteTensorDesc(RemoteAddressSpace.REMOTE_DEVICE, 1, 11, nbytes=4096, generation=1),
                    RemoteTensorDesc(RemoteAddressSpace.HOST_INLINE, nbytes=4, inline_payload_len=4),
                ),
                (7, 2**64 - 1),
                inline,
            ),
        ),
    )
    assert encode(f) == expected
    assert decode_frame(expected) == f


def test_golden_export_buffer_control() -> None:
    expected = frame(
        3, control(10, export_request(owner=1, buffer_id=11, generation=2, offset=64, nbytes=128))
    )
    f = Frame(
        FrameHeader(FrameType.CONTROL, 7, 1, 3),
        ControlPayload(
            ControlName.EXPORT_BUFFER, ExportBufferRequest(1, 11, 2, 64, 128, AccessFlags.READ, "host_tcp")
        ),
    )
    assert encode(f) == expected
    assert decode_frame(expected) == f


def test_golden_import_buffer_reply() -> None:
    result = (
        struct.pack("<iiQQQIQQQQQI", 2, 1, 11, 1, 9, 3, 0, 4096, 0x2000, 9, 0, 1)
        + lp(b"host_tcp")
        + lp(b"")
        + struct.pack("<I", 0)
    )
    expected = frame(4, reply(3, 11, result))
    f = Frame(
        FrameHeader(FrameType.CONTROL_REPLY, 7, 1, 3),
        ControlReplyPayload(
            3,
            ControlName.IMPORT_BUFFER,
            result=ImportBufferResult(
                2,
                1,
                11,
                1,
                9,
                RemoteAddressSpace.REMOTE_WINDOW,
                0,
                4096,
                AccessFlags.READ,
                0x2000,
                9,
                0,
                "host_tcp",
            ),
        ),
    )
    assert encode(f) == expected
    assert decode_frame(expected) == f


def test_golden_alloc_remote_buffer_reply_uses_signed_address_space() -> None:
    result = struct.pack("<iQQiQQQQ", 1, 4, 1, 2, 4096, 0x7F00, 0, 0)
    expected = frame(4, reply(3, 6, result))
    f = Frame(
        FrameHeader(FrameType.CONTROL_REPLY, 7, 1, 3),
        ControlReplyPayload(
            3, ControlName.ALLOC_REMOTE_BUFFER, result=AllocRemoteBufferResult(1, 4, 1, 4096, 0x7F00)
        ),
    )
    assert encode(f) == expected
    assert decode_frame(expected) == f


def test_golden_failed_completion() -> None:
    msg = "remote worker_id=1 sequence=3: boom ✗".encode()
    expected = frame(5, struct.pack("<Qi", 3, -2) + lp(msg))
    f = Frame(FrameHeader(FrameType.COMPLETION, 7, 1, 3), CompletionPayload(3, -2, msg.decode()))
    assert encode(f) == expected
    assert decode_frame(expected) == f


# --- Bounds and Fuzz Tests: the frame header ----------------------------------------------------
def test_bad_magic() -> None:
    raises(frame(6, magic=b"SLR2"), "header.magic")


@pytest.mark.parametrize("version", [0, 1, 2, 4])
def test_unsupported_version(version: int) -> None:
    # protocol.md "Frames" says version 1; the shipped wire is 3, and 1 is rejected like any other.
    raises(frame(6, version=version), "header.version")


@pytest.mark.parametrize("ftype", [0, 8, 0xFFFF_FFFF])
def test_unknown_frame_type(ftype: int) -> None:
    raises(frame(ftype), "header.frame_type")


def test_unknown_flags() -> None:
    raises(frame(6, flags=0x2), "header.flags")


def test_payload_larger_than_protocol_maximum() -> None:
    # Rejected from the header alone, before the (absent) payload is looked at.
    raises(frame(2, declared=16 * MiB + 1), "header.payload_bytes")


def test_payload_larger_than_configured_maximum() -> None:
    data = frame(2, one_tensor_task())
    raises(data, "header.payload_bytes", max_payload_bytes=64)
    assert decode_frame(data, max_payload_bytes=len(data) - 40).header.frame_type is FrameType.TASK


@pytest.mark.parametrize("cut", [0, 1, 4, 39])
def test_truncated_header(cut: int) -> None:
    raises(frame(6)[:cut], "header")


def test_truncated_payload_against_declared_length() -> None:
    raises(frame(5, struct.pack("<Qi", 3, 0) + lp(b"x"))[:-1], "header.payload_bytes")


def test_trailing_bytes_after_declared_payload() -> None:
    raises(frame(5, struct.pack("<Qi", 3, 0) + lp(b"x")) + b"\x00", "header.payload_bytes")


def test_truncated_payload_inside_records() -> None:
    raises(frame(5, struct.pack("<Qi", 3, 0) + struct.pack("<I", 5) + b"ab"), "completion.error_message")
    raises(frame(2, one_tensor_task()[:-30]), "task.args.remote_desc[0].generation")
    raises(frame(2, DIGEST[:31]), "task.callable_digest")


def test_health_and_shutdown_carry_no_payload() -> None:
    raises(frame(6, b"\x00"), "health.payload")
    raises(frame(7, b"\x00\x00"), "shutdown.payload")


# --- Bounds and Fuzz Tests: TASK ----------------------------------------------------------------
@pytest.mark.parametrize(
    ("counts", "field"),
    [((4097, 0), "task.args.tensor_count"), ((0, 4097), "task.args.scalar_count")],
)
def test_counts_over_bound(counts: tuple[int, int], field: str) -> None:
    raises(frame(2, task(args([], [], counts=counts))), field)


@pytest.mark.parametrize(
    ("counts", "field"),
    [
        ((4096, 0), "task.args.tensor_count"),
        ((1, 4096), "task.args.scalar_count"),
        ((3, 0), "task.args.tensor_count"),
    ],
)
def test_counts_that_overflow_the_payload(counts: tuple[int, int], field: str) -> None:
    # In bound, but the bytes left cannot hold that many records: rejected before any list is built.
    raises(frame(2, task(args([tensor()], [desc()], counts=counts))), field)


def test_descriptor_range_overflowing_64_bits() -> None:
    data = frame(2, task(args([tensor()], [desc(offset=2**64 - 1, nbytes=2)])))
    raises(data, "task.args.remote_desc[0].offset")


def test_descriptor_outside_the_referenced_handle() -> None:
    payload = decode_task_payload(task(args([tensor(nbytes=4096)], [desc(offset=1024, nbytes=4096)])))
    handles = {(1, 11): HandleBounds(1, 11, 1, 0, 4096)}
    with pytest.raises(ProtocolError) as info:
        check_task_against_handles(payload.args, handles)
    assert info.value.field == "remote_desc[0].offset"
    inside = decode_task_payload(task(args([tensor(nbytes=4096)], [desc(offset=0, nbytes=4096)])))
    check_task_against_handles(inside.args, handles)


def test_stale_generation_against_the_live_handle() -> None:
    payload = decode_task_payload(task(args([tensor()], [desc(generation=1)])))
    with pytest.raises(ProtocolError) as info:
        check_task_against_handles(payload.args, {(1, 11): HandleBounds(1, 11, 2, 0, 4096)})
    assert info.value.field == "remote_desc[0].generation"


@pytest.mark.parametrize(
    ("data", "field"),
    [
        (frame(2, task(args([tensor()], [desc(generation=0)]))), "task.args.remote_desc[0].generation"),
        (frame(2, one_tensor_task(generation=0)), "task.args.tensors[0].buffer.generation"),
        (
            frame(3, control(12, struct.pack("<iiQQQI", 2, 1, 11, 0, 9, 0))),
            "control.RELEASE_IMPORT.generation",
        ),
        (frame(3, control(10, export_request(generation=0))), "control.EXPORT_BUFFER.generation"),
    ],
    ids=["desc", "tensor", "release_import", "export_buffer"],
)
def test_stale_generation_zero_is_never_live(data: bytes, field: str) -> None:
    raises(data, field)


@pytest.mark.parametrize(
    ("inline_kw", "field"),
    [
        ({"ioff": 5, "ilen": 0}, "inline_payload_offset"),
        ({"ioff": 2, "ilen": 4}, "inline_payload_len"),
        ({"ioff": 0, "ilen": 8}, "inline_payload_len"),
        ({"ioff": 0, "ilen": 4, "nbytes": 3}, "inline_payload_len"),
        ({"buffer_id": 1}, "buffer_id"),
        ({"generation": 1}, "generation"),
        ({"owner": 1}, "owner_worker_id"),
        ({"addr": 1}, "remote_addr"),
        ({"rkey": 1}, "rkey_or_token"),
    ],
)
def test_host_inline_descriptor_outside_arena_or_with_handle_fields(
    inline_kw: dict[str, int], field: str
) -> None:
    t = tensor(space=0, nbytes=4, shapes=(4,), strides=(1,), dtype=5)
    data = frame(2, task(args([t], [inline_desc(**inline_kw)], inline=b"abcd")))
    raises(data, f"task.args.remote_desc[0].{field}")


@pytest.mark.parametrize("kw", [{"ilen": 4}, {"ioff": 4}], ids=["len", "offset"])
def test_non_host_inline_descriptor_with_inline_fields(kw: dict[str, int]) -> None:
    data = frame(2, task(args([tensor()], [desc(**kw)], inline=b"abcdefgh")))
    raises(data, f"task.args.remote_desc[0].inline_payload_{'len' if 'ilen' in kw else 'offset'}")


@pytest.mark.parametrize("backend", [0, 1, 2, 4, 5])
def test_task_argument_with_a_local_backing(backend: int) -> None:
    raises(frame(2, one_tensor_task(backend=backend)), "task.args.tensors[0].buffer.backend_kind")


def test_task_argument_with_a_byte_offset() -> None:
    raises(frame(2, one_tensor_task(byte_offset=4)), "task.args.tensors[0].byte_offset")


@pytest.mark.parametrize(
    ("kw", "field"),
    [
        ({"backend": 6}, "buffer.backend_kind"),
        ({"space": 2}, "buffer.address_space"),
        ({"access": 3}, "buffer.access"),
        ({"body": b"x" * 33}, "buffer.body"),
        ({"body": b"shm"}, "buffer.body"),
        ({"dtype": 15}, "dtype"),
        ({"shapes": (), "strides": ()}, "ndims"),
        ({"shapes": (1,) * 6, "strides": (1,) * 6}, "ndims"),
        ({"shapes": (0, 4), "strides": (4, 1)}, "shapes[0]"),
        ({"shapes": (4, 4), "strides": (4, 0)}, "strides[1]"),
        ({"nbytes": 4095}, "buffer.nbytes"),
        ({"shapes": (2**32 - 1,) * 5, "strides": (2**32 - 1,) * 5, "dtype": 7}, "shapes"),
    ],
)
def test_invalid_tensor_records(kw: dict[str, object], field: str) -> None:
    raises(frame(2, one_tensor_task(**kw)), f"task.args.tensors[0].{field}")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("sidecar", "field"),
    [
        (desc(present=2), "task.args.remote_desc[0]"),
        (desc(space=0), "task.args.remote_desc[0].address_space"),
        (desc(space=5), "task.args.remote_desc[0].address_space"),
        (desc(flags=1), "task.args.remote_desc[0].flags"),
        (desc(owner=-1), "task.args.remote_desc[0].owner_worker_id"),
        (desc(buffer_id=0), "task.args.remote_desc[0].buffer_id"),
    ],
)
def test_invalid_sidecar_descriptors(sidecar: bytes, field: str) -> None:
    raises(frame(2, task(args([tensor()], [sidecar]))), field)


def test_absent_sidecar_decodes_but_fails_the_session_check() -> None:
    payload = decode_task_payload(task(args([tensor()], [b"\x00"])))
    assert payload.args.remote_desc == (None,)
    with pytest.raises(ProtocolError) as info:
        check_task_against_handles(payload.args, {})
    assert info.value.field == "remote_desc[0]"


def test_inline_payload_over_bound_and_config_bounds() -> None:
    data = frame(2, task(args([], [])[:-4] + struct.pack("<I", MiB + 1)))
    raises(data, "task.args.inline_payload")
    raises(frame(2, task(args([], []), cfg=config(prefix=b"p" * 1024))), "task.config.output_prefix")
    raises(frame(2, task(args([], []), cfg=config((0, 1, 0, 0, 0, 0)))), "task.config.output_prefix")
    raises(frame(2, task(args([], []) + b"\x00")), "task.args.inline_payload")


# --- Bounds and Fuzz Tests: CONTROL / CONTROL_REPLY / COMPLETION --------------------------------
@pytest.mark.parametrize("name", [0, 18, 0x7FFF_FFFF])
def test_unknown_control_name(name: int) -> None:
    raises(frame(3, control(name, b"")), "control.control_name")


@pytest.mark.parametrize("version", [0, 2])
def test_unknown_control_version(version: int) -> None:
    raises(frame(3, control(6, struct.pack("<Q", 64), version=version)), "control.control_version")
    raises(frame(4, reply(3, 6, version=version, code=1)), "control_reply.control_version")


def test_completion_sequence_mismatch() -> None:
    payload = struct.pack("<Qi", 3, 0) + lp(b"")
    raises(frame(5, payload, seq=3), "completion.sequence", expected_sequence=4)
    raises(frame(5, payload, seq=4), "completion.sequence")
    assert decode_frame(frame(5, payload, seq=3), expected_sequence=3).payload == CompletionPayload(3)


def test_control_reply_sequence_mismatch() -> None:
    data = frame(4, reply(3, 7), seq=3)
    raises(data, "control_reply.sequence", expected_sequence=2)
    raises(frame(4, reply(3, 7), seq=2), "control_reply.sequence")


def test_control_reply_name_mismatch() -> None:
    data = frame(4, reply(3, 7))
    raises(data, "control_reply.control_name", expected_control=ControlName.RELEASE_IMPORT)
    assert decode_frame(data, expected_control=ControlName.FREE_REMOTE_BUFFER).payload.control_name == 7


@pytest.mark.parametrize(
    ("data", "field"),
    [
        (frame(3, control(10, export_request(reserved=1))), "control.EXPORT_BUFFER.reserved"),
        (frame(4, reply(3, 10, export_result(reserved=2))), "control_reply.EXPORT_BUFFER.reserved"),
        (
            frame(3, control(12, struct.pack("<iiQQQI", 2, 1, 11, 1, 9, 7))),
            "control.RELEASE_IMPORT.reserved",
        ),
        (
            frame(3, control(11, struct.pack("<iI", 2, 1) + export_result() + struct.pack("<I", 1))),
            "control.IMPORT_BUFFER.reserved",
        ),
    ],
    ids=["export_request", "export_result", "release_import", "import_request"],
)
def test_nonzero_reserved_fields(data: bytes, field: str) -> None:
    raises(data, field)


def test_chip_callable_payload_reserved_must_be_zero() -> None:
    body = lp(b"desc") + struct.pack("<IQ", 1, 2) + b"\x11" * 32 + lp(b"ab") + lp(b"")
    assert decode_chip_callable_payload(body + struct.pack("<I", 0)).inline_blob == b"ab"
    with pytest.raises(ProtocolError) as info:
        decode_chip_callable_payload(body + struct.pack("<I", 1))
    assert info.value.field == "reserved"


@pytest.mark.parametrize(
    ("data", "field"),
    [
        (frame(5, struct.pack("<Qi", 3, 1) + lp(b"e" * 4097)), "completion.error_message"),
        (frame(4, reply(3, 7, msg=b"e" * 4097, code=1)), "control_reply.error_message"),
        (
            frame(3, control(10, export_request(profile=b"p" * 129))),
            "control.EXPORT_BUFFER.transport_profile",
        ),
        (
            frame(4, reply(3, 10, export_result(descriptor=b"d" * 4097))),
            "control_reply.EXPORT_BUFFER.transport_descriptor",
        ),
        (
            frame(1, struct.pack("<QiI", 7, 1, 3) + lp(b"c" * 1025) + struct.pack("<QI", 0, 1)),
            "hello.comm_profile",
        ),
        (frame(3, struct.pack("<III", 6, 1, 0xFFFF_FFFF)), "control.command_bytes"),
        (
            frame(4, struct.pack("<QIIi", 3, 6, 1, 0) + lp(b"") + struct.pack("<I", 16 * MiB + 1)),
            "control_reply.result",
        ),
    ],
    ids=["completion", "reply_message", "profile", "descriptor", "hello", "command_len", "result_len"],
)
def test_oversize_strings_and_blobs(data: bytes, field: str) -> None:
    raises(data, field)


def test_invalid_utf8_string() -> None:
    raises(frame(5, struct.pack("<Qi", 3, 1) + lp(b"\xff\xfe")), "completion.error_message")


@pytest.mark.parametrize(
    ("data", "field"),
    [
        (frame(1, struct.pack("<QiI", 7, 1, 3) + lp(b"") + struct.pack("<QI", 0, 2)), "hello.ready_state"),
        (
            frame(1, struct.pack("<QiI", 0, 1, 3) + lp(b"") + struct.pack("<QI", 0, 1), session=0),
            "hello.session_id",
        ),
        (
            frame(1, struct.pack("<QiI", 7, 1, 1) + lp(b"") + struct.pack("<QI", 0, 1)),
            "hello.protocol_version",
        ),
        (frame(1, struct.pack("<QiI", 8, 1, 3) + lp(b"") + struct.pack("<QI", 0, 1)), "hello.session_id"),
        (frame(3, control(10, export_request(access=0))), "control.EXPORT_BUFFER.access_flags"),
        (frame(3, control(10, export_request(access=4))), "control.EXPORT_BUFFER.access_flags"),
        (frame(3, control(10, export_request(nbytes=0))), "control.EXPORT_BUFFER.nbytes"),
        (frame(4, reply(3, 10, export_result(space=2))), "control_reply.EXPORT_BUFFER.address_space"),
        (frame(4, reply(3, 10, export_result(space=9))), "control_reply.EXPORT_BUFFER.address_space"),
        (frame(4, reply(3, 10, export_result(export_id=0))), "control_reply.EXPORT_BUFFER.export_id"),
        (
            frame(3, control(11, struct.pack("<iI", 2, 3) + export_result(access=1) + struct.pack("<I", 0))),
            "control.IMPORT_BUFFER.requested_access_flags",
        ),
        (
            frame(
                3, control(11, struct.pack("<iI", 2, 1) + export_result(export_id=0) + struct.pack("<I", 0))
            ),
            "control.IMPORT_BUFFER.export_desc.export_id",
        ),
        (
            frame(4, reply(3, 6, struct.pack("<iQQiQQQQ", 1, 4, 1, 3, 64, 0, 0, 0))),
            "control_reply.ALLOC_REMOTE_BUFFER.address_space",
        ),
        (frame(3, control(6, struct.pack("<Q", 0))), "control.ALLOC_REMOTE_BUFFER.nbytes"),
        (frame(3, control(6, struct.pack("<QB", 1, 0))), "control.ALLOC_REMOTE_BUFFER.nbytes"),
        (
            frame(3, control(8, struct.pack("<iQQQQ", 1, 11, 1, 0, 4) + b"abc")),
            "control.COPY_TO_REMOTE.nbytes",
        ),
        (
            frame(3, control(2, struct.pack("<II", 1, 3) + DIGEST + struct.pack("<I", 0) + lp(b"m:f"))),
            "control.PREPARE_REGISTER_CALLABLE.payload_version",
        ),
        (
            frame(3, control(3, struct.pack("<II", 3, 3) + DIGEST)),
            "control.COMMIT_REGISTER_CALLABLE.target_registry",
        ),
        (
            frame(3, control(3, struct.pack("<II", 1, 4) + DIGEST)),
            "control.COMMIT_REGISTER_CALLABLE.callable_kind",
        ),
        (
            frame(3, control(5, struct.pack("<II", 1, 3) + DIGEST[:31])),
            "control.PREPARE_CALLABLE.callable_digest",
        ),
        (frame(4, reply(3, 7, b"\x00")), "control_reply.FREE_REMOTE_BUFFER.result"),
        (frame(4, reply(3, 10, export_result(), code=1)), "control_reply.result"),
    ],
)
def test_invalid_control_fields(data: bytes, field: str) -> None:
    raises(data, field)


# --- Global CommDomain controls -----------------------------------------------------------------
def comm_init(
    *,
    version: int = 2,
    node_rank: int = 0,
    node_count: int = 1,
    profile: bytes = b"sim",
    members: list[tuple[int, int, int, int]] | None = None,
) -> bytes:
    ms = [(1, 0, 0, 0), (1, 1, 1, 1)] if members is None else members
    return (
        struct.pack("<III", version, node_rank, node_count)
        + lp(b"cluster")
        + lp(b"topo")
        + lp(profile)
        + struct.pack("<I", len(ms))
        + b"".join(struct.pack("<iIII", *m) for m in ms)
    )


def test_domain_commands_golden_and_bounds() -> None:
    decoded = decode_frame(frame(3, control(13, comm_init())))
    assert decoded.payload.command.members[1].domain_rank == 1
    raises(frame(3, control(13, comm_init(version=1))), "control.COMM_INIT.command_version")
    raises(frame(3, control(13, comm_init(profile=b"roce"))), "control.COMM_INIT.profile")
    raises(frame(3, control(13, comm_init(node_rank=1))), "control.COMM_INIT.node_rank")
    raises(frame(3, control(13, comm_init(members=[(1, 0, 0, 1)]))), "control.COMM_INIT.members[0]")
    raises(frame(3, control(13, comm_init(members=[]))), "control.COMM_INIT.members")
    dup = [(1, 0, 0, 0), (1, 0, 1, 1)]
    raises(frame(3, control(13, comm_init(members=dup))), "control.COMM_INIT.members[1]")
    too_many = struct.pack("<III", 2, 0, 1) + lp(b"c") + lp(b"t") + lp(b"sim") + struct.pack("<I", 65)
    raises(frame(3, control(13, too_many)), "control.COMM_INIT.members")
    release = struct.pack("<IQQ", 2, 5, 1)
    assert decode_frame(frame(3, control(15, release))).payload.command.domain_id == 5
    raises(frame(3, control(15, struct.pack("<IQQ", 2, 0, 1))), "control.RELEASE_DOMAIN.domain_id")
    copy_head = struct.pack("<IQQIQQ", 2, 5, 1, 0, 0, 4)
    assert decode_frame(frame(3, control(16, copy_head + b"abcd"))).payload.command.data == b"abcd"
    raises(frame(3, control(16, copy_head + b"abc")), "control.COPY_TO_DOMAIN.nbytes")
    raises(frame(3, control(17, copy_head + b"a")), "control.COPY_FROM_DOMAIN.nbytes")
    descriptor = struct.pack("<IIIIQII", 2, 1, 0, 1, 4096, 3, 1) + b"abc".ljust(256, b"\x00")
    raises(
        frame(4, reply(3, 14, struct.pack("<I", 1) + descriptor)),
        "control_reply.ALLOC_DOMAIN.descriptors[0].reserved",
    )


# --- Decoder never trusts a length before checking it -------------------------------------------
@pytest.mark.parametrize(
    "data",
    [
        frame(2, task(struct.pack("<II", 4096, 4096) + b"\x00" * 8)),
        frame(3, control(10, export_request(profile=b"")[:-8] + struct.pack("<II", 0xFFFF_FFF0, 0))),
        frame(4, reply(3, 9, b"")[:-4] + struct.pack("<I", 0xFFFF_FFFF)),
        frame(3, control(13, comm_init()[:-36] + struct.pack("<I", 64))),
    ],
    ids=["task_counts", "string_len", "result_len", "member_count"],
)
def test_lying_lengths_fail_fast(data: bytes) -> None:
    with pytest.raises(ProtocolError):
        decode_frame(data)


def test_decoded_records_are_ordinary_frozen_instances() -> None:
    decoded = decode_frame(frame(2, one_tensor_task()))
    desc_ = decoded.payload.args.remote_desc[0]
    expected = RemoteTensorDesc(RemoteAddressSpace.REMOTE_DEVICE, 1, 11, 0, 4096, 0, 0, 1)
    assert type(desc_) is RemoteTensorDesc
    assert desc_ == expected
    assert hash(desc_) == hash(expected)
    with pytest.raises(dataclasses.FrozenInstanceError):
        desc_.flags = 1  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        decoded.header.sequence = 0  # type: ignore[misc]
    # payload_bytes is filled in on decode but takes no part in equality.
    assert decoded.header.payload_bytes == len(one_tensor_task())
    assert decoded.header == FrameHeader(FrameType.TASK, 7, 1, 3)
