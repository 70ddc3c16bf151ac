"""Typed errors at the public API ("Hardening"): wrong Python types and out-of-range values raise the
simulator's own errors (InvalidArgument naming the field, ResourceExhausted, the codec's ProtocolError)
instead of raw TypeError / AttributeError / KeyError / MemoryError, or being silently accepted.
"""

from __future__ import annotations

import pytest

import sim.remote as wire
from sim import CallConfig, SimConfig, TaskArgs, Worker
from sim.errors import ErrorClass, InvalidArgument, ProtocolError, ResourceExhausted
from sim.faultpoints import FaultPoint
from sim.remote.faults import ControlFault, FrameFault

# ------------------------------------------------------------------------------------------- SimConfig


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"jitter": "0.1"}, "jitter"),
    ({"jitter": float("nan")}, "jitter"),
    ({"jitter": True}, "jitter"),
    ({"backpressure_timeout_us": "10"}, "backpressure_timeout_us"),
    ({"backpressure_timeout_us": float("nan")}, "backpressure_timeout_us"),
    ({"backpressure_timeout_us": float("inf")}, "backpressure_timeout_us"),
    ({"trace": "no"}, "trace"),
    ({"trace": 1}, "trace"),
])
def test_simconfig_rejects_wrong_types_and_nan_naming_the_field(kwargs, field) -> None:
    with pytest.raises(InvalidArgument, match=f"SimConfig.{field}"):
        SimConfig(**kwargs)


def test_simconfig_still_accepts_ints_for_float_fields() -> None:
    SimConfig(jitter=0, backpressure_timeout_us=10, trace=False)


# ------------------------------------------------------------------------------------------ CallConfig


@pytest.mark.parametrize("field", ["aicpu_thread_num", "enable_chip_swimlane", "enable_pmu"])
def test_callconfig_validate_rejects_non_int_fields(field) -> None:
    with pytest.raises(InvalidArgument, match=f"CallConfig.{field} must be an int"):
        CallConfig(**{field: "2"}).validate()


def test_run_with_a_string_aicpu_thread_num_is_invalid_argument() -> None:
    w = Worker(level=3, num_sub_workers=1, sim=SimConfig(data_mode="timing"))
    w.init()
    try:
        with pytest.raises(InvalidArgument, match="aicpu_thread_num"):
            w.run(lambda o, a, c: None, config=CallConfig(aicpu_thread_num="2"))
    finally:
        w.close()


# -------------------------------------------------------------------------------------- Worker config


@pytest.mark.parametrize("bad", [-1, True, "0", 1.0])
def test_device_ids_entry_error_says_what_is_wrong(bad) -> None:
    with pytest.raises(InvalidArgument, match=r"a device id must be an int >= 0, got") as exc:
        Worker(3, device_ids=[0, bad])
    assert "wrong type" not in str(exc.value)


def test_device_ids_not_a_list() -> None:
    with pytest.raises(InvalidArgument, match="device_ids"):
        Worker(3, device_ids=3)


# ------------------------------------------------------------------------------------- create_buffer


def test_create_buffer_too_large_for_the_host_is_resource_exhausted() -> None:
    w = Worker(level=3, num_sub_workers=1)
    try:
        with pytest.raises(ResourceExhausted, match=r"buffer size 35184372088832 bytes") as exc:
            w.create_buffer(1 << 45)
        assert exc.value.error_class is ErrorClass.RESOURCE_EXHAUSTED
        assert w.create_buffer(16).nbytes == 16  # the worker is still usable
    finally:
        w.close()


def test_create_buffer_huge_in_timing_mode_allocates_nothing() -> None:
    w = Worker(level=3, num_sub_workers=1, sim=SimConfig(data_mode="timing"))
    try:
        assert w.create_buffer(1 << 45).nbytes == 1 << 45
    finally:
        w.close()


# ------------------------------------------------------------------------------------------- scalars


@pytest.mark.parametrize("value", [2**70, 2**64, -(2**63) - 1])
def test_scalar_wider_than_64_bits_is_rejected(value) -> None:
    with pytest.raises(InvalidArgument, match="scalar argument 0 does not fit in 64 bits"):
        TaskArgs().add_scalar(value)


def test_local_sub_task_runs_with_64_bit_edge_scalars_and_rejects_wider() -> None:
    seen: list[int] = []

    def sub(args) -> None:
        seen.extend(args.scalar(i) for i in range(args.scalar_count()))

    w = Worker(level=3, num_sub_workers=1)  # functional: the SUB callable runs and sees its scalars
    h = w.register(sub)
    w.init()
    try:
        def orch(o, a, c) -> None:
            ta = TaskArgs()
            for v in (2**64 - 1, -(2**63), 1.5):
                ta.add_scalar(v)
            o.submit_sub(h, ta)

        w.run(orch)
        assert seen == [2**64 - 1, -(2**63), 1.5]

        def too_wide(o, a, c) -> None:
            ta = TaskArgs()
            ta.add_scalar(2**70)
            o.submit_sub(h, ta)

        with pytest.raises(InvalidArgument, match="64 bits"):
            w.run(too_wide)
    finally:
        w.close()


# ------------------------------------------------------------------------------------------- faults


@pytest.mark.parametrize(("build", "field"), [
    (lambda: ControlFault(["x"], 1, ordinal=1), "ControlFault.control"),
    (lambda: ControlFault({"a": 1}, 1, ordinal=1), "ControlFault.control"),
    (lambda: FrameFault(1, ["TASK"], ordinal=1), "FrameFault.frame_type"),
    (lambda: FaultPoint(["slow_sub"]), "FaultPoint.name"),
])
def test_fault_records_with_unhashable_names_are_invalid_argument(build, field) -> None:
    with pytest.raises(InvalidArgument, match=field):
        build()


# -------------------------------------------------------------------------------------------- codec

_BAD = [None, "x", 1, 1.5, object(), [1, 2], {"a": 1}]
_ENTRIES = sorted(n for n in wire.__all__
                  if n.startswith(("encode_", "decode_")) and n not in ("encode_command", "decode_command",
                                                                       "encode_result", "decode_result",
                                                                       "encode_header"))


@pytest.mark.parametrize("name", _ENTRIES)
@pytest.mark.parametrize("bad", _BAD, ids=lambda b: type(b).__name__)
def test_codec_entry_points_refuse_wrong_python_types_with_protocol_error(name, bad) -> None:
    fn = getattr(wire, name)
    with pytest.raises(ProtocolError) as exc:
        fn(bad)
    assert exc.value.error_class is ErrorClass.PROTOCOL_ERROR
    if name.startswith("decode_") and not isinstance(bad, bytes | bytearray | memoryview):
        assert "expected bytes" in str(exc.value)


def test_codec_entry_points_with_a_name_argument() -> None:
    name = wire.ControlName.RELEASE_DOMAIN
    with pytest.raises(ProtocolError, match="data: expected bytes, got NoneType"):
        wire.decode_command(name, None)
    with pytest.raises(ProtocolError, match="name: expected a ControlName"):
        wire.decode_command(["x"], b"")
    with pytest.raises(ProtocolError, match="data: expected bytes, got int"):
        wire.decode_result(wire.ControlName.ALLOC_DOMAIN, 5)
    with pytest.raises(ProtocolError, match="command"):
        wire.encode_command(name, "x")
    with pytest.raises(ProtocolError, match="result"):
        wire.encode_result(wire.ControlName.ALLOC_DOMAIN, "x")


def test_frame_entry_points_name_what_was_wrong() -> None:
    with pytest.raises(ProtocolError, match="frame: expected a Frame, got str"):
        wire.encode_frame("x")
    with pytest.raises(ProtocolError, match="header: expected a FrameHeader, got str"):
        wire.encode_frame(wire.Frame("x", wire.HealthPayload()))
    with pytest.raises(ProtocolError, match="header: expected a FrameHeader, got NoneType"):
        wire.encode_header(None, 0)
    with pytest.raises(ProtocolError, match="data: expected bytes, got str"):
        wire.decode_frame("x" * 64)
    with pytest.raises(ProtocolError, match="data: expected bytes, got NoneType"):
        wire.decode_header(None)
    with pytest.raises(ProtocolError, match="data: expected bytes, got list"):
        wire.frame_size([0] * 40)


def test_codec_still_round_trips_bytes_like_input() -> None:
    header = wire.FrameHeader(wire.FrameType.HEALTH, 1, 1, 1)
    data = wire.encode_frame(wire.Frame(header, wire.HealthPayload()))
    for view in (data, bytearray(data), memoryview(data)):
        assert wire.encode_frame(wire.decode_frame(view)) == data
