"""The SLR3 encoder refuses, naming the field, every value its decoder would reject.

protocol.md "Wire Encoding" (fixed-width fields, bounded strings/blobs/counts, reserved zero),
"RemoteTensorDesc", "TASK Payload" (no local backing, no byte_offset) and "Remote Buffer Export and
Import Controls"; the encoder raises ``ProtocolError`` (a ``ValueError``) instead of producing bytes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import struct
from typing import Any

import pytest

from sim.errors import ProtocolError
from sim.remote import (
    AccessFlags,
    AccessMode,
    AllocDomainCommand,
    AllocRemoteBufferCommand,
    AttachmentRole,
    BackendKind,
    BufferAddressSpace,
    BufferDescriptorWire,
    CallableKind,
    CallConfigWire,
    ChipCallableBlobLocation,
    ChipCallablePayload,
    CompletionPayload,
    ControlName,
    ControlPayload,
    ControlReplyPayload,
    CopyToDomainCommand,
    DataType,
    DomainAttachment,
    DomainMember,
    DomainPhase,
    DomainProfile,
    ExportBufferRequest,
    ExportBufferResult,
    Frame,
    FrameHeader,
    FrameType,
    HealthPayload,
    HelloPayload,
    ImportBufferRequest,
    ReleaseImportRequest,
    RemoteAddressSpace,
    RemoteTaskArgs,
    RemoteTensorDesc,
    TaskPayload,
    TensorWire,
    decode_frame,
    encode_chip_callable_payload,
    encode_frame,
    parse_python_import_target,
    python_import_descriptor,
    python_import_digest,
)

replace = dataclasses.replace
BUF = BufferDescriptorWire(b"N" * 8, 11, 1, BufferAddressSpace.DEVICE, AccessMode.READWRITE, 4096)
TENSOR = TensorWire(BUF, (32, 32), (32, 1), DataType.FLOAT32)
DESC = RemoteTensorDesc(RemoteAddressSpace.REMOTE_DEVICE, 1, 11, nbytes=4096, generation=1)
ARGS = RemoteTaskArgs((TENSOR,), (DESC,), (1, 2), b"")
TASK = TaskPayload(b"\x00" * 32, CallConfigWire(), ARGS)
EXPORT = ExportBufferResult(1, 11, 1, RemoteAddressSpace.REMOTE_WINDOW, 0, 4096, 5, AccessFlags.READ, 0x1000)


def task_frame(payload: TaskPayload = TASK, **header: Any) -> Frame:
    return Frame(FrameHeader(FrameType.TASK, header.pop("session", 7), 1, 3, **header), payload)


def control_frame(name: ControlName, command: Any, version: int = 1) -> Frame:
    return Frame(FrameHeader(FrameType.CONTROL, 7, 1, 3), ControlPayload(name, command, version))


def reply_frame(payload: ControlReplyPayload) -> Frame:
    return Frame(FrameHeader(FrameType.CONTROL_REPLY, 7, 1, payload.sequence), payload)


def refuses(frame: Frame, field: str) -> None:
    with pytest.raises(ProtocolError) as info:
        encode_frame(frame)
    assert isinstance(info.value, ValueError)
    assert info.value.field == field, str(info.value)


def with_tensor(**changes: Any) -> Frame:
    buf_changes = {k[4:]: changes.pop(k) for k in list(changes) if k.startswith("buf_")}
    t = replace(TENSOR, buffer=replace(BUF, **buf_changes), **changes)
    return task_frame(replace(TASK, args=replace(ARGS, tensors=(t,))))


def with_args(**changes: Any) -> Frame:
    return task_frame(replace(TASK, args=replace(ARGS, **changes)))


def test_valid_samples_encode() -> None:
    for frame in (task_frame(), control_frame(ControlName.ALLOC_REMOTE_BUFFER, AllocRemoteBufferCommand(8))):
        assert decode_frame(encode_frame(frame)) == frame


@pytest.mark.parametrize(
    ("header", "field"),
    [
        ({"session": -1}, "header.session_id"),
        ({"session": 2**64}, "header.session_id"),
        ({"flags": 2}, "header.flags"),
    ],
)
def test_header_values_out_of_range(header: dict[str, int], field: str) -> None:
    refuses(task_frame(**header), field)


def test_header_worker_sequence_and_type() -> None:
    refuses(Frame(FrameHeader(FrameType.HEALTH, 1, 2**31, 0), HealthPayload()), "header.worker_id")
    refuses(Frame(FrameHeader(FrameType.HEALTH, 1, 0, -1), HealthPayload()), "header.sequence")
    refuses(Frame(FrameHeader(9, 1, 0, 0), HealthPayload()), "header.frame_type")  # type: ignore[arg-type]
    refuses(Frame(FrameHeader(FrameType.TASK, 1, 0, 0), HealthPayload()), "payload")


def test_reply_and_hello_cross_checks() -> None:
    refuses(Frame(FrameHeader(FrameType.COMPLETION, 1, 0, 4), CompletionPayload(5)), "completion.sequence")
    refuses(
        Frame(
            FrameHeader(FrameType.CONTROL_REPLY, 1, 0, 4),
            ControlReplyPayload(5, ControlName.FREE_REMOTE_BUFFER),
        ),
        "control_reply.sequence",
    )
    refuses(Frame(FrameHeader(FrameType.HELLO, 1, 0, 0), HelloPayload(2, 0)), "hello.session_id")
    refuses(
        Frame(FrameHeader(FrameType.HELLO, 1, 0, 0), HelloPayload(1, 0, protocol_version=1)),
        "hello.protocol_version",
    )
    refuses(Frame(FrameHeader(FrameType.HELLO, 0, 0, 0), HelloPayload(0, 0)), "hello.session_id")
    refuses(
        Frame(FrameHeader(FrameType.HELLO, 1, 0, 0), HelloPayload(1, 0, ready_state=3)), "hello.ready_state"
    )  # type: ignore[arg-type]


def test_oversize_utf8_error_message_counts_bytes_not_characters() -> None:
    message = "€" * 1366  # 4098 UTF-8 bytes, 1366 characters
    refuses(
        Frame(FrameHeader(FrameType.COMPLETION, 1, 0, 4), CompletionPayload(4, 1, message)),
        "completion.error_message",
    )
    refuses(
        Frame(FrameHeader(FrameType.COMPLETION, 1, 0, 4), CompletionPayload(4, 1, "\ud800")),
        "completion.error_message",
    )


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"buf_backend_kind": BackendKind.POSIX_SHM}, "buffer.backend_kind"),
        ({"byte_offset": 4}, "byte_offset"),
        ({"shapes": (0, 32)}, "shapes[0]"),
        ({"shapes": (-1, 32)}, "shapes[0]"),
        ({"strides": (32,)}, "strides"),
        ({"strides": (32, 0)}, "strides[1]"),
        ({"shapes": (1,) * 6, "strides": (1,) * 6}, "shapes"),
        ({"shapes": (), "strides": ()}, "shapes"),
        ({"dtype": 99}, "dtype"),
        ({"buf_owner_instance_id": b"short"}, "buffer.owner_instance_id"),
        ({"buf_owner_instance_id": "NNNNNNNN"}, "buffer.owner_instance_id"),
        ({"buf_generation": 0}, "buffer.generation"),
        ({"buf_generation": 2**32}, "buffer.generation"),
        ({"buf_body": b"shm-name"}, "buffer.body"),
        ({"buf_nbytes": 4095}, "buffer.nbytes"),
        ({"buf_address_space": 2}, "buffer.address_space"),
        ({"buf_access": 7}, "buffer.access"),
    ],
)
def test_task_tensor_refusals(changes: dict[str, Any], field: str) -> None:
    refuses(with_tensor(**changes), f"task.args.tensors[0].{field}")


@pytest.mark.parametrize(
    ("desc", "arena", "field"),
    [
        (replace(DESC, generation=0), b"", "generation"),
        (replace(DESC, owner_worker_id=2**31), b"", "owner_worker_id"),
        (replace(DESC, owner_worker_id=-1), b"", "owner_worker_id"),
        (replace(DESC, flags=1), b"", "flags"),
        (replace(DESC, inline_payload_len=4), b"abcd", "inline_payload_len"),
        (replace(DESC, offset=2**64 - 1, nbytes=2), b"", "offset"),
        (replace(DESC, address_space=9), b"", "address_space"),
        (
            RemoteTensorDesc(RemoteAddressSpace.HOST_INLINE, nbytes=8, inline_payload_len=8),
            b"abcd",
            "inline_payload_len",
        ),
        (
            RemoteTensorDesc(RemoteAddressSpace.HOST_INLINE, nbytes=0, inline_payload_offset=5),
            b"abcd",
            "inline_payload_offset",
        ),
        (RemoteTensorDesc(RemoteAddressSpace.HOST_INLINE, buffer_id=1), b"", "buffer_id"),
    ],
)
def test_task_descriptor_refusals(desc: RemoteTensorDesc, arena: bytes, field: str) -> None:
    refuses(with_args(remote_desc=(desc,), inline_payload=arena), f"task.args.remote_desc[0].{field}")


def test_task_args_refusals() -> None:
    refuses(with_args(scalars=(2**64,)), "task.args.scalars[0]")
    refuses(with_args(scalars=(0, -1)), "task.args.scalars[1]")
    refuses(with_args(remote_desc=()), "task.args.remote_desc")
    refuses(with_args(tensors=(TENSOR,) * 4097, remote_desc=(None,) * 4097), "task.args.tensor_count")
    refuses(with_args(scalars=(0,) * 4097), "task.args.scalar_count")
    refuses(with_args(inline_payload=bytes(1024 * 1024 + 1)), "task.args.inline_payload")
    refuses(with_args(inline_payload="text"), "task.args.inline_payload")
    refuses(task_frame(replace(TASK, callable_digest=b"\x00" * 31)), "task.callable_digest")
    refuses(
        task_frame(replace(TASK, config=CallConfigWire(output_prefix="p" * 1024))),
        "task.config.output_prefix",
    )
    refuses(task_frame(replace(TASK, config=CallConfigWire(enable_dump_args=1))), "task.config.output_prefix")
    refuses(
        task_frame(replace(TASK, config=CallConfigWire(aicpu_thread_num=2**31))),
        "task.config.aicpu_thread_num",
    )


@pytest.mark.parametrize(
    ("name", "command", "field"),
    [
        (ControlName.ALLOC_REMOTE_BUFFER, AllocRemoteBufferCommand(0), "nbytes"),
        (ControlName.EXPORT_BUFFER, AllocRemoteBufferCommand(8), "command"),
        (ControlName.EXPORT_BUFFER, ExportBufferRequest(1, 11, 1, 0, 64, 4), "access_flags"),  # type: ignore[arg-type]
        (ControlName.EXPORT_BUFFER, ExportBufferRequest(1, 11, 1, 0, 64, 0), "access_flags"),  # type: ignore[arg-type]
        (
            ControlName.EXPORT_BUFFER,
            ExportBufferRequest(-1, 11, 1, 0, 64, AccessFlags.READ),
            "owner_worker_id",
        ),
        (
            ControlName.EXPORT_BUFFER,
            ExportBufferRequest(1, 11, 1, 0, 64, AccessFlags.READ, "x" * 129),
            "transport_profile",
        ),
        (ControlName.EXPORT_BUFFER, ExportBufferRequest(1, 11, 1, 2**64 - 1, 2, AccessFlags.READ), "offset"),
        (
            ControlName.IMPORT_BUFFER,
            ImportBufferRequest(2, AccessFlags.READ_WRITE, EXPORT),
            "requested_access_flags",
        ),
        (
            ControlName.IMPORT_BUFFER,
            ImportBufferRequest(
                2, AccessFlags.READ, replace(EXPORT, address_space=RemoteAddressSpace.REMOTE_DEVICE)
            ),
            "export_desc.address_space",
        ),
        (
            ControlName.IMPORT_BUFFER,
            ImportBufferRequest(2, AccessFlags.READ, replace(EXPORT, export_id=0)),
            "export_desc.export_id",
        ),
        (ControlName.RELEASE_IMPORT, ReleaseImportRequest(2, 1, 11, 1, 0), "import_id"),
        (ControlName.RELEASE_IMPORT, ReleaseImportRequest(2, 1, 11, 0, 9), "generation"),
        (ControlName.COPY_TO_DOMAIN, CopyToDomainCommand(1, 1, 0, 0, b""), "nbytes"),
        (ControlName.COPY_TO_DOMAIN, CopyToDomainCommand(0, 1, 0, 0, b"x"), "domain_id"),
    ],
)
def test_control_command_refusals(name: ControlName, command: Any, field: str) -> None:
    refuses(control_frame(name, command), f"control.{name.name}.{field}")


def domain(**changes: Any) -> AllocDomainCommand:
    members = (DomainMember(1, 0, 0, 0), DomainMember(2, 0, 1, 1))
    base = AllocDomainCommand(DomainPhase.PREPARE_EXPORT, 1, 1, "d", DomainProfile.SIM, 4096, members)
    return replace(base, **changes)


@pytest.mark.parametrize(
    ("command", "field"),
    [
        (domain(members=(DomainMember(1, 0, 0, 1),)), "members[0]"),
        (domain(members=()), "members"),
        (domain(phase=DomainPhase.IMPORT), "descriptors"),
        (
            domain(
                phase=DomainPhase.COMMIT,
                attachments=(DomainAttachment(1, BufferAddressSpace.HOST, AttachmentRole.PROVIDER),) * 2,
            ),
            "attachments",
        ),
        (
            domain(attachments=(DomainAttachment(1, BufferAddressSpace.HOST, AttachmentRole.PROVIDER),)),
            "attachments",
        ),
        (domain(name=""), "name"),
        (domain(window_size=0), "window_size"),
        (domain(profile="roce"), "profile"),
    ],
)
def test_domain_command_refusals(command: AllocDomainCommand, field: str) -> None:
    refuses(control_frame(ControlName.ALLOC_DOMAIN, command), f"control.ALLOC_DOMAIN.{field}")


def test_control_envelope_refusals() -> None:
    refuses(
        control_frame(ControlName.ALLOC_REMOTE_BUFFER, AllocRemoteBufferCommand(8), version=2),
        "control.control_version",
    )
    refuses(control_frame(99, AllocRemoteBufferCommand(8)), "control.control_name")  # type: ignore[arg-type]


def test_control_reply_refusals() -> None:
    def reply(**kw: Any) -> Frame:
        return reply_frame(ControlReplyPayload(3, **kw))

    refuses(
        reply(control_name=ControlName.EXPORT_BUFFER, error_code=1, result=EXPORT), "control_reply.result"
    )
    refuses(reply(control_name=ControlName.EXPORT_BUFFER), "control_reply.EXPORT_BUFFER.result")
    refuses(
        reply(control_name=ControlName.EXPORT_BUFFER, result=AllocRemoteBufferCommand(8)),
        "control_reply.EXPORT_BUFFER.result",
    )
    refuses(
        reply(control_name=ControlName.FREE_REMOTE_BUFFER, result=EXPORT),
        "control_reply.FREE_REMOTE_BUFFER.result",
    )
    refuses(
        reply(
            control_name=ControlName.EXPORT_BUFFER, result=replace(EXPORT, transport_descriptor=bytes(4097))
        ),
        "control_reply.EXPORT_BUFFER.transport_descriptor",
    )
    refuses(
        reply(control_name=ControlName.FREE_REMOTE_BUFFER, error_message="x" * 4097),
        "control_reply.error_message",
    )


def test_chip_callable_payload_refusals() -> None:
    base = ChipCallablePayload(b"desc", ChipCallableBlobLocation.INLINE_BLOB, 2, b"\x11" * 32, b"ab")
    expected = (
        struct.pack("<I", 4)
        + b"desc"
        + struct.pack("<IQ", 1, 2)
        + b"\x11" * 32
        + struct.pack("<I", 2)
        + b"ab"
    )
    assert encode_chip_callable_payload(base) == expected + struct.pack("<II", 0, 0)
    for changes, field in [
        ({"inline_blob": b"abc"}, "inline_blob"),
        ({"staged_blob_token": b"t"}, "staged_blob_token"),
        ({"blob_size": 0}, "blob_size"),
        ({"blob_sha256": b"\x11" * 31}, "blob_sha256"),
        ({"blob_location": ChipCallableBlobLocation.STAGED_BLOB}, "inline_blob"),
        ({"descriptor_bytes": bytes(4097)}, "descriptor_bytes"),
    ]:
        with pytest.raises(ProtocolError) as info:
            encode_chip_callable_payload(replace(base, **changes))
        assert info.value.field == field


def test_python_import_descriptor_and_digest() -> None:
    module, qualname = parse_python_import_target(b"  pkg.mod:Outer.entry\n")
    assert (module, qualname) == ("pkg.mod", "Outer.entry")
    expected = (
        struct.pack("<II", 1, 3) + struct.pack("<I", 7) + b"pkg.mod" + struct.pack("<I", 11) + b"Outer.entry"
    )
    assert python_import_descriptor(module, qualname) == expected
    assert python_import_digest(module, qualname) == hashlib.sha256(expected).digest()
    assert CallableKind.PYTHON_IMPORT == 3
    for bad in ["pkg", "a:b:c", ":f", "m:", ".rel:f", "m:f.<locals>.g", "m-x:f", b"\xff:f"]:
        with pytest.raises(ProtocolError):
            parse_python_import_target(bad)
