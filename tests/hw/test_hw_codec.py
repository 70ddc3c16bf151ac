"""``rt.codec`` on the hw backend: the real package's SLR3 frame codec behind tierbed's codec shape."""

from __future__ import annotations

import struct

import pytest

pytest.importorskip("simpler", reason="the real runtime (simpler) is not installed in this environment")

from simpler import remote_l3_protocol as real

from conformance.backends import NotSupportedByBackend, get_backend

HEADER = struct.Struct("<4sIIQiQII")  # magic, version, frame_type, session, worker, sequence, length, flags
TASK, CONTROL, COMPLETION, HEALTH = 2, 3, 5, 6


def frame(ftype: int, payload: bytes = b"", *, magic: bytes = b"SLR3", session: int = 7, worker: int = 1,
          sequence: int = 3) -> bytes:
    return HEADER.pack(magic, 3, ftype, session, worker, sequence, len(payload), 0) + payload


@pytest.fixture
def rt():
    api = get_backend("hw", 0)
    yield api
    api.close_all()


def real_message(decode, data: bytes) -> str:
    """What the real decoder itself says about ``data``."""
    with pytest.raises(ValueError) as info:
        decode(data)
    return str(info.value)


def test_codec_is_offered(rt):
    assert rt.supports("wire_codec")
    assert callable(rt.codec.decode_frame) and callable(rt.codec.encode_frame)


def test_health_round_trips(rt):
    data = frame(HEALTH, session=0x1122334455667788, worker=5, sequence=42)
    f = rt.codec.decode_frame(data)
    h = f.header
    assert (h.frame_type.name, h.session_id, h.worker_id, h.sequence) == ("HEALTH", 0x1122334455667788, 5, 42)
    assert rt.codec.encode_frame(f) == data


def test_truncated_digest_is_a_protocol_error_with_the_real_text(rt):
    payload = bytes(range(31))
    with pytest.raises(Exception) as info:
        rt.codec.decode_frame(frame(TASK, payload))
    assert rt.error_class(info.value) == "PROTOCOL_ERROR"
    assert str(info.value) == real_message(real.decode_task_payload, payload)


def test_bad_magic_is_a_protocol_error_with_the_real_text(rt):
    data = frame(HEALTH, magic=b"SLR2")
    with pytest.raises(Exception) as info:
        rt.codec.decode_frame(data)
    assert rt.error_class(info.value) == "PROTOCOL_ERROR"
    assert str(info.value) == real_message(real.decode_frame, data)


def test_unknown_control_name_is_a_protocol_error(rt):
    with pytest.raises(Exception) as info:
        rt.codec.decode_frame(frame(CONTROL, struct.pack("<III", 0x7FFF_FFFF, 1, 0)))
    assert rt.error_class(info.value) == "PROTOCOL_ERROR"


def test_control_command_is_decoded_by_the_real_command_decoder(rt):
    command = real.encode_digest_callable_command(real.RemoteRegistryTarget.REMOTE_TASK_DISPATCHER,
                                                  real.CallableKind.PYTHON_IMPORT, bytes(32))
    envelope = struct.pack("<III", int(real.ControlName.COMMIT_REGISTER_CALLABLE), 1, len(command))
    f = rt.codec.decode_frame(frame(CONTROL, envelope + command))
    assert f.command.digest == bytes(32)
    short = struct.pack("<III", int(real.ControlName.COMMIT_REGISTER_CALLABLE), 1, len(command) - 1)
    with pytest.raises(Exception) as info:
        rt.codec.decode_frame(frame(CONTROL, short + command[:-1]))
    assert rt.error_class(info.value) == "PROTOCOL_ERROR"


def test_payload_without_a_shipped_decoder_is_not_supported(rt):
    # COMPLETION payloads are decoded only by the parent's C++ codec, which Python cannot reach.
    with pytest.raises(NotSupportedByBackend, match="COMPLETION"):
        rt.codec.decode_frame(frame(COMPLETION, struct.pack("<QiI", 3, 0, 0)))
    # ALLOC_REMOTE_BUFFER command bytes are unpacked inline by the runner: no decoder to call.
    with pytest.raises(NotSupportedByBackend, match="ALLOC_REMOTE_BUFFER"):
        rt.codec.decode_frame(frame(CONTROL, struct.pack("<III", 6, 1, 8) + bytes(8)))


def test_header_defect_beats_missing_payload_decoder(rt):
    # The real header checks run first, so a COMPLETION with a bad length is still refused.
    data = frame(COMPLETION, struct.pack("<QiI", 3, 0, 0))[:-1]
    with pytest.raises(Exception) as info:
        rt.codec.decode_frame(data)
    assert rt.error_class(info.value) == "PROTOCOL_ERROR"


def test_health_payload_is_accepted_as_the_real_receivers_do(rt):
    # No HEALTH payload is defined upstream and no real receiver reads one (the WIRE-011 departure).
    f = rt.codec.decode_frame(frame(HEALTH, b"\0"))
    assert f.payload == b"\0"
