"""WIRE: the remote-L3 frame codec rejects malformed bytes (PROTOCOL_ERROR), and decodes good ones.

Spec: upstream ``docs/remote-l3-worker-design/protocol.md`` "Bounds and Fuzz Tests" (and the layouts
of "Frames", "Wire Encoding", "TASK Payload", "COMPLETION Payload", "CONTROL Payload"). Every byte
string is packed here by hand from the documented field order and widths. Naming the offending
field in the error is checked as a SHOULD. Backends without a codec report NOT_SUPPORTED.
"""

from __future__ import annotations

import struct

from conformance.catalog import case

PROTO = "docs/remote-l3-worker-design/protocol.md"
FUZZ = (PROTO, "Bounds and Fuzz Tests")
HEADER = struct.Struct("<4sIIQiQII")  # magic, version, frame_type, session, worker, sequence, len, flags
MIB = 1024 * 1024
DIGEST = bytes(range(32))
TASK, CONTROL, COMPLETION, HEALTH, SHUTDOWN = 2, 3, 5, 6, 7


def frame(ftype: int, payload: bytes = b"", *, magic: bytes = b"SLR3", version: int = 3, flags: int = 0,
          declared: int | None = None) -> bytes:
    size = len(payload) if declared is None else declared
    return HEADER.pack(magic, version, ftype, 7, 1, 3, size, flags) + payload


def lp(data: bytes) -> bytes:
    return struct.pack("<I", len(data)) + data


def task_payload(counts: tuple[int, int]) -> bytes:
    config = struct.pack("<6i", 0, 0, 0, 0, 0, 0) + lp(b"")
    return DIGEST + config + struct.pack("<II", *counts) + lp(b"")


def _reject(rt, ctx, data: bytes, field: str, label: str) -> None:
    codec = rt.codec
    with ctx.expect_error(label, "PROTOCOL_ERROR") as exp:
        codec.decode_frame(data)
    ctx.check(f"{label}: error names field {field!r}", True, field in exp.extra.get("message", ""), should=True)


@case("WIRE-001", "A frame with a bad magic is rejected", spec=FUZZ)
def bad_magic(rt, ctx):
    _reject(rt, ctx, frame(HEALTH, magic=b"SLR2"), "header.magic", "magic SLR2")


@case("WIRE-002", "A frame of an older protocol version is rejected", spec=FUZZ)
def old_version(rt, ctx):
    _reject(rt, ctx, frame(HEALTH, version=2), "header.version", "version 2")


@case("WIRE-003", "A frame of a newer protocol version is rejected", spec=FUZZ)
def new_version(rt, ctx):
    _reject(rt, ctx, frame(HEALTH, version=4), "header.version", "version 4")


@case("WIRE-004", "Frame type 0 is rejected", spec=FUZZ)
def type_zero(rt, ctx):
    _reject(rt, ctx, frame(0), "header.frame_type", "frame type 0")


@case("WIRE-005", "An unknown frame type past the last one is rejected", spec=FUZZ)
def type_unknown(rt, ctx):
    _reject(rt, ctx, frame(8), "header.frame_type", "frame type 8")


@case("WIRE-006", "Unknown header flag bits are rejected", spec=FUZZ)
def flags(rt, ctx):
    _reject(rt, ctx, frame(HEALTH, flags=0x2), "header.flags", "flags 0x2")


@case("WIRE-007", "A declared payload above the protocol maximum is rejected from the header alone", spec=FUZZ)
def too_large(rt, ctx):
    _reject(rt, ctx, frame(TASK, declared=16 * MIB + 1), "header.payload_bytes", "16 MiB + 1")


@case("WIRE-008", "A truncated header is rejected", spec=FUZZ)
def short_header(rt, ctx):
    _reject(rt, ctx, frame(HEALTH)[:39], "header", "39-byte header")


@case("WIRE-009", "A payload shorter than its declared length is rejected", spec=FUZZ)
def short_payload(rt, ctx):
    _reject(rt, ctx, frame(COMPLETION, struct.pack("<Qi", 3, 0) + lp(b"x"))[:-1], "header.payload_bytes",
            "payload one byte short")


@case("WIRE-010", "Trailing bytes after the declared payload are rejected", spec=FUZZ)
def trailing(rt, ctx):
    _reject(rt, ctx, frame(COMPLETION, struct.pack("<Qi", 3, 0) + lp(b"x")) + b"\0", "header.payload_bytes",
            "one trailing byte")


@case("WIRE-011", "A HEALTH frame carrying a payload is rejected", spec=FUZZ)
def health_payload(rt, ctx):
    _reject(rt, ctx, frame(HEALTH, b"\0"), "health.payload", "HEALTH with 1 byte")


@case("WIRE-012", "A SHUTDOWN frame carrying a payload is rejected", spec=FUZZ)
def shutdown_payload(rt, ctx):
    _reject(rt, ctx, frame(SHUTDOWN, b"\0\0"), "shutdown.payload", "SHUTDOWN with 2 bytes")


@case("WIRE-013", "A TASK with more tensors than the bound is rejected", spec=FUZZ)
def tensor_count(rt, ctx):
    _reject(rt, ctx, frame(TASK, task_payload((4097, 0))), "task.args.tensor_count", "4097 tensors")


@case("WIRE-014", "A TASK with more scalars than the bound is rejected", spec=FUZZ)
def scalar_count(rt, ctx):
    _reject(rt, ctx, frame(TASK, task_payload((0, 4097))), "task.args.scalar_count", "4097 scalars")


@case("WIRE-015", "A count in bound that the remaining bytes cannot hold is rejected before allocating",
      spec=FUZZ)
def lying_count(rt, ctx):
    _reject(rt, ctx, frame(TASK, task_payload((3, 0))), "task.args.tensor_count", "3 tensors, no records")


@case("WIRE-016", "A string whose length prefix runs past the payload is rejected", spec=FUZZ)
def lying_string(rt, ctx):
    _reject(rt, ctx, frame(COMPLETION, struct.pack("<Qi", 3, 0) + struct.pack("<I", 5) + b"ab"),
            "completion.error_message", "5-byte string with 2 bytes")


@case("WIRE-017", "A TASK whose callable digest is truncated is rejected", spec=FUZZ)
def short_digest(rt, ctx):
    _reject(rt, ctx, frame(TASK, DIGEST[:31]), "task.callable_digest", "31-byte digest")


@case("WIRE-018", "A CONTROL with an unknown control name is rejected", spec=FUZZ)
def unknown_control(rt, ctx):
    _reject(rt, ctx, frame(CONTROL, struct.pack("<III", 0x7FFF_FFFF, 1, 0)), "control", "control name 0x7fffffff")


@case("WIRE-019", "A well-formed HEALTH frame decodes to its header fields", spec=(PROTO, "Frames"))
def good_health(rt, ctx):
    data = HEADER.pack(b"SLR3", 3, HEALTH, 0x1122334455667788, 5, 42, 0, 0)
    with ctx.expect_ok("decode"):
        f = rt.codec.decode_frame(data)
        h = f.header
        ctx.check("(frame_type, session, worker, sequence)", ("HEALTH", 0x1122334455667788, 5, 42),
                  (h.frame_type.name, h.session_id, h.worker_id, h.sequence))
        ctx.check("re-encoding gives the same bytes", data, rt.codec.encode_frame(f))
