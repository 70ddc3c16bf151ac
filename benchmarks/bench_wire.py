"""SLR3 wire codec throughput: TASK frames per second against bare ``struct`` packing of the same fields.

The workload is a realistic remote-L3 TASK frame (upstream ``docs/remote-l3-worker-design/protocol.md``,
"TASK Payload"): 8 argument tensors with their sidecar descriptors (7 remote device buffers and one
``HOST_INLINE`` argument), 8 scalars and 256 inline payload bytes. In the same run, interleaved
round by round, we time the codec (``encode_frame`` / ``decode_frame``: validation plus typed
frozen records) and a bare baseline that packs and unpacks exactly the same fields with precompiled
``struct`` formats into plain tuples, with no validation and no objects. The bare encoder must
produce the codec's bytes, which the script checks before timing. Reported: frames/s, MB/s and the
codec/bare time ratio (how many times slower the full codec is than the packing floor).

Run: ``python benchmarks/bench_wire.py [--quick] [--rounds N] [--batch N]``.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import struct
import time
from collections.abc import Callable

from sim.remote import (
    AccessMode,
    BufferAddressSpace,
    BufferDescriptorWire,
    CallConfigWire,
    DataType,
    Frame,
    FrameHeader,
    FrameType,
    RemoteAddressSpace,
    RemoteTaskArgs,
    RemoteTensorDesc,
    TaskPayload,
    TensorWire,
    decode_frame,
    encode_frame,
)

N_TENSORS = 8
N_SCALARS = 8
INLINE_BYTES = 256


def build_frame() -> Frame:
    """The benchmark TASK frame."""
    tensors = []
    descs = []
    for i in range(N_TENSORS - 1):
        buf = BufferDescriptorWire(
            (0x5EED0000 + i).to_bytes(8, "little"),
            100 + i,
            1,
            BufferAddressSpace.DEVICE,
            AccessMode.READWRITE,
            128 * 128 * 4,
            owner_worker_path_id=3,
        )
        tensors.append(TensorWire(buf, (128, 128), (128, 1), DataType.FLOAT32))
        descs.append(
            RemoteTensorDesc(
                RemoteAddressSpace.REMOTE_DEVICE,
                owner_worker_id=1,
                buffer_id=100 + i,
                nbytes=128 * 128 * 4,
                remote_addr=0x7F00_0000_0000 + i * 0x10000,
                generation=1,
            )
        )
    inline_buf = BufferDescriptorWire(
        b"\x00" * 8, 0, 1, BufferAddressSpace.HOST, AccessMode.READ, INLINE_BYTES
    )
    tensors.append(TensorWire(inline_buf, (INLINE_BYTES // 4,), (1,), DataType.FLOAT32))
    descs.append(
        RemoteTensorDesc(RemoteAddressSpace.HOST_INLINE, nbytes=INLINE_BYTES, inline_payload_len=INLINE_BYTES)
    )
    args = RemoteTaskArgs(
        tuple(tensors),
        tuple(descs),
        tuple(range(1, N_SCALARS + 1)),
        bytes(range(256)) * (INLINE_BYTES // 256),
    )
    config = CallConfigWire(aicpu_thread_num=4, enable_scope_stats=1, output_prefix="runs/bench")
    payload = TaskPayload(bytes(range(32)), config, args)
    return Frame(FrameHeader(FrameType.TASK, 0xC0FFEE, 1, 42), payload)


# --- Bare baseline: the same fields, precompiled structs, plain tuples --------------------------
HEADER = struct.Struct("<4sIIQiQII")
CONFIG = struct.Struct("<6iI")
COUNTS = struct.Struct("<II")
TENSOR_HEAD = struct.Struct("<8sQIBBBQIIQI")
DIMS = [struct.Struct(f"<{2 * n + 1}I") for n in range(6)]
DESC = struct.Struct("<BIiQQQQQQQQQ")
U32 = struct.Struct("<I")


def flatten(frame: Frame) -> tuple:
    """The frame's field values as plain tuples (what the bare baseline packs)."""
    h = frame.header
    p = frame.payload
    a = p.args
    c = p.config
    prefix = c.output_prefix.encode()
    tensors = tuple(
        (
            (
                t.buffer.owner_instance_id,
                t.buffer.buffer_id,
                t.buffer.generation,
                int(t.buffer.address_space),
                int(t.buffer.access),
                int(t.buffer.backend_kind),
                t.buffer.nbytes,
                t.buffer.owner_worker_path_id,
                0,
                t.byte_offset,
                len(t.shapes),
            ),
            (*t.shapes, *t.strides, int(t.dtype)),
        )
        for t in a.tensors
    )
    descs = tuple(
        (
            1,
            int(d.address_space),
            d.owner_worker_id,
            d.buffer_id,
            d.offset,
            d.nbytes,
            d.remote_addr,
            d.rkey_or_token,
            d.generation,
            d.inline_payload_offset,
            d.inline_payload_len,
            d.flags,
        )
        for d in a.remote_desc
    )
    header = (h.session_id, h.worker_id, h.sequence, h.flags)
    knobs = (
        c.aicpu_thread_num,
        c.enable_chip_swimlane,
        c.enable_dump_args,
        c.enable_pmu,
        c.enable_dep_gen,
        c.enable_scope_stats,
    )
    return header, p.callable_digest, knobs, prefix, tensors, descs, a.scalars, a.inline_payload


def bare_encode(fields: tuple) -> bytes:
    """Pack the flattened fields; no validation."""
    header, digest, knobs, prefix, tensors, descs, scalars, inline = fields
    parts = [b"", digest, CONFIG.pack(*knobs, len(prefix)), prefix, COUNTS.pack(len(tensors), len(scalars))]
    for head, dims in tensors:
        parts.append(TENSOR_HEAD.pack(*head))
        parts.append(DIMS[head[-1]].pack(*dims))
    for d in descs:
        parts.append(DESC.pack(*d))
    parts.append(struct.pack(f"<{len(scalars)}Q", *scalars))
    parts.append(U32.pack(len(inline)))
    parts.append(inline)
    size = sum(map(len, parts))
    session, worker, sequence, flags = header
    parts[0] = HEADER.pack(b"SLR3", 3, 2, session, worker, sequence, size, flags)
    return b"".join(parts)


def bare_decode(data: bytes) -> tuple:
    """Unpack the same fields into tuples; no validation, no records."""
    header = HEADER.unpack_from(data, 0)
    pos = 40
    digest = data[pos : pos + 32]
    pos += 32
    config = CONFIG.unpack_from(data, pos)
    pos += CONFIG.size
    prefix = data[pos : pos + config[-1]].decode()
    pos += config[-1]
    nt, ns = COUNTS.unpack_from(data, pos)
    pos += 8
    tensors = []
    for _ in range(nt):
        head = TENSOR_HEAD.unpack_from(data, pos)
        pos += TENSOR_HEAD.size
        dims_s = DIMS[head[-1]]
        tensors.append((head, dims_s.unpack_from(data, pos)))
        pos += dims_s.size
    descs = []
    for _ in range(nt):
        descs.append(DESC.unpack_from(data, pos))
        pos += DESC.size
    scalars = struct.unpack_from(f"<{ns}Q", data, pos)
    pos += 8 * ns
    (n,) = U32.unpack_from(data, pos)
    inline = data[pos + 4 : pos + 4 + n]
    return header, digest, config, prefix, tensors, descs, scalars, inline


# --- Timing -------------------------------------------------------------------------------------
def per_op_seconds(fn: Callable[[object], object], arg: object, batch: int) -> float:
    """Wall seconds per call over one batch, with the collector paused so it cannot land mid-batch."""
    gc.disable()
    try:
        t0 = time.perf_counter_ns()
        for _ in range(batch):
            fn(arg)
        return (time.perf_counter_ns() - t0) / batch / 1e9
    finally:
        gc.enable()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="few short rounds (a smoke run, noisier)")
    ap.add_argument("--rounds", type=int, default=None, help="interleaved rounds (default 15, quick 5)")
    ap.add_argument("--batch", type=int, default=None, help="calls per timed batch (default 2000, quick 300)")
    ns = ap.parse_args()
    rounds = ns.rounds or (5 if ns.quick else 15)
    batch = ns.batch or (300 if ns.quick else 2000)

    frame = build_frame()
    wire = encode_frame(frame)
    fields = flatten(frame)
    # The baseline is only a fair floor if it writes the very bytes the codec writes.
    assert bare_encode(fields) == wire, "bare baseline does not reproduce the codec's bytes"
    assert decode_frame(wire) == frame
    assert bare_decode(wire)[4][0][0] == fields[4][0][0]

    cases: dict[str, tuple[Callable[[object], object], object]] = {
        "codec encode": (encode_frame, frame),
        "bare  encode": (bare_encode, fields),
        "codec decode": (decode_frame, wire),
        "bare  decode": (bare_decode, wire),
    }
    samples: dict[str, list[float]] = {name: [] for name in cases}
    names = list(cases)
    for name in names:  # warm-up
        fn, arg = cases[name]
        per_op_seconds(fn, arg, max(10, batch // 10))
    for r in range(rounds):
        # Rotate the order every round so drift on a shared machine hits every case alike.
        for name in names[r % len(names) :] + names[: r % len(names)]:
            fn, arg = cases[name]
            samples[name].append(per_op_seconds(fn, arg, batch))
    med = {name: statistics.median(v) for name, v in samples.items()}
    med["codec encode+decode"] = med["codec encode"] + med["codec decode"]
    med["bare  encode+decode"] = med["bare  encode"] + med["bare  decode"]

    size = len(wire)
    print(
        f"SLR3 TASK frame: {N_TENSORS} tensors, {N_SCALARS} scalars, {INLINE_BYTES} inline bytes "
        f"-> {size:,} bytes on the wire"
    )
    print(f"{rounds} interleaved rounds x {batch} calls; median per call\n")
    print(f"{'':22}{'frames/s':>12}{'MB/s':>10}{'us/frame':>11}")
    for name in (
        "codec encode",
        "bare  encode",
        "codec decode",
        "bare  decode",
        "codec encode+decode",
        "bare  encode+decode",
    ):
        t = med[name]
        print(f"{name:22}{1 / t:12,.0f}{size / t / 1e6:10.1f}{t * 1e6:11.2f}")
    print()
    for label, codec, bare in (
        ("encode", "codec encode", "bare  encode"),
        ("decode", "codec decode", "bare  decode"),
        ("encode+decode", "codec encode+decode", "bare  encode+decode"),
    ):
        print(f"ratio codec/bare time, {label:14} {med[codec] / med[bare]:6.2f}x")


if __name__ == "__main__":
    main()
