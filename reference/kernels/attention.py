"""Attention: causal prefill and decode over a paged KV cache.

``paged_attention_decode`` models upstream's flagship example,
``examples/a2a3/tensormap_and_ringbuffer/paged_attention`` (README "The
four-task loop": QK, softmax-prepare, PV and the online-softmax update per KV
block), whose argument layout it follows: ``query [B, Hq, D]``, caches
``[num_blocks, block_size, Hkv, D]``, ``block_table [B, max_blocks]`` int32,
``context_lens [B]`` int32, ``out [B, Hq, D]``, and the softmax scale as a
SCALAR last. ``qwen3_14b_decode`` runs the same computation through its
fused attention extern. Upstream splits the work into four tasks per block;
here it is one kernel, so a graph can use either granularity.

``attention_prefill`` is the causal self-attention of a prompt:
``q [B, S, Hq, D]``, ``k``/``v [B, S, Hkv, D]``, ``out [B, S, Hq, D]``, query
``i`` attending keys ``0..i``.

Both support grouped-query attention (``Hq`` a multiple of ``Hkv``; query head
``h`` reads KV head ``h // (Hq // Hkv)``). ``out`` has the inputs' dtype or
float32 (upstream's paged attention writes float32 from bfloat16 inputs).
A sequence with ``context_len == 0`` attends to nothing and gets zeros.

Fast paths: prefill does QKᵀ and PV with float32 BLAS and the masked softmax
in numba. Decode is a numba loop that walks each sequence's block table and
reads the cache where it lies: the K rows of every position in context once
(QK), then the V rows once (PV), four positions at a time, so a sequence reads
its pages whole and in order (only its last page partly). Every K/V row loaded
feeds two query heads of its GQA group at a time (QK: two dot products per K
row, four per query row; PV: each V row updates two heads' accumulators), so
the loops are bound by multiply-adds rather than by loads and stores, with
every accumulator and weight in a vector register. 16-bit caches
are read as they are, two bytes an element, and widened in registers
(``_numerics.lanes``); the output is rounded as it is stored. Memory traffic:
``query``, the tables and ``out`` once, and each sequence's cached K/V rows
once — the minimum for the context lengths given (``Cost.bytes_moved`` charges
every sequence a full block table, an upper bound). Softmax sums are float32
(blocks over the vector lanes, compensated across blocks).
"""

from __future__ import annotations

import numba
import numpy as np

from reference.kernel import Cost, Direction, Kernel, Param, nbytes_of
from reference.kernel_table import register_kernel
from reference.kernels._checks import (
    FLOAT_DTYPES,
    dtype_name,
    fail,
    require_dtype,
    require_ndim,
    require_real,
    require_same_dtype,
    require_shape,
    shape_of,
)
from reference.kernels._numerics import (
    F16_IN_REGISTER,
    FAST,
    JIT,
    SUM_BLOCK,
    add_compensated,
    exp_fast_f32,
    f32_buffer,
    lanes,
    lanes_out,
    lanes_store,
    max_f32,
    narrow,
    prefetch,
    scale_f32,
    store,
    to_f32,
    widen,
)

_TOL = {"float32": (1e-4, 1e-4), "float16": (2e-3, 1e-3), "bfloat16": (1e-2, 1e-3)}
_P = Param
_IN, _OUT, _SCALAR = Direction.IN, Direction.OUT, Direction.SCALAR

# Flops per attended (query, key) pair besides the two D-long dot products:
# scale, max, subtract, exp, add = 5.
_SOFTMAX_FLOPS = 5


def _require_out_dtype(kernel: str, q, out, q_name: str) -> None:
    if dtype_name(out) not in (dtype_name(q), "float32"):
        fail(kernel, "out", f"has dtype {dtype_name(out)}; expected {dtype_name(q)} (as {q_name}) or float32")


def _require_gqa(kernel: str, hq: int, hkv: int, kv_name: str) -> None:
    if hkv == 0 or hq % hkv:
        fail(kernel, kv_name, f"has {hkv} KV heads; the {hq} query heads must be a whole multiple of it")


# --------------------------------------------------------------------------- shared

@numba.njit(fastmath=FAST, inline="always", **JIT)
def _exp_block(row, m):  # pragma: no cover - compiled
    part = np.float32(0.0)
    for j in range(row.size):
        e = exp_fast_f32(row[j] - m)  # <= 0: exp_fast's flush and early overflow never apply
        row[j] = e
        part += e
    return part


@numba.njit(fastmath=FAST, **JIT)
def _softmax_inplace(row):  # pragma: no cover - compiled
    """Softmax of a 1-D float32 row in place: float32 block sums, compensated across blocks."""
    m = max_f32(row)
    total = np.float32(0.0)
    comp = np.float32(0.0)
    for j0 in range(0, row.size, SUM_BLOCK):
        total, comp = add_compensated(total, comp, _exp_block(row[j0 : j0 + SUM_BLOCK], m))
    scale_f32(row, np.float32(1.0) / (total + comp))


# --------------------------------------------------------------------------- prefill

@numba.njit(fastmath=FAST, **JIT)
def _causal_softmax(scores, scale):  # pragma: no cover - compiled
    """In place over scores [G, S, S]: row i keeps keys 0..i, softmax of scale*s, zeros after."""
    g_n, s_n, _ = scores.shape
    for g in range(g_n):
        for i in range(s_n):
            row = scores[g, i]
            for j in range(i + 1):
                row[j] = row[j] * scale
            _softmax_inplace(row[: i + 1])
            for j in range(i + 1, s_n):
                row[j] = 0.0


def _prefill_check(q, k, v, out, scale) -> None:
    kn = "attention_prefill"
    require_dtype(kn, "q", q, FLOAT_DTYPES)
    require_same_dtype(kn, ("q", "k", "v"), (q, k, v))
    _require_out_dtype(kn, q, out, "q")
    require_ndim(kn, "q", q, 4, "[batch, seq, q_heads, head_dim]")
    require_ndim(kn, "k", k, 4, "[batch, seq, kv_heads, head_dim]")
    b, s, hq, d = shape_of(q)
    hkv = int(k.shape[2])
    require_shape(kn, "k", k, (b, s, hkv, d), "[batch, seq, kv_heads, head_dim] matching q")
    _require_gqa(kn, hq, hkv, "k")
    require_shape(kn, "v", v, (b, s, hkv, d), "same as k")
    require_shape(kn, "out", out, shape_of(q), "same as q")
    require_real(kn, "scale", scale)


def _prefill_run(q: np.ndarray, k: np.ndarray, v: np.ndarray, out: np.ndarray, scale: float) -> None:
    if out.size == 0:
        return
    b_n, _, hq, _ = q.shape
    hkv = k.shape[2]
    g = hq // hkv
    qf, kf, vf = to_f32(q), to_f32(k), to_f32(v)
    buf = f32_buffer(out)
    for b in range(b_n):
        for kvh in range(hkv):
            heads = slice(kvh * g, (kvh + 1) * g)
            qg = qf[b, :, heads, :].transpose(1, 0, 2)           # [G, S, D]
            scores = np.matmul(qg, kf[b, :, kvh, :].T)           # [G, S, S], float32 BLAS
            _causal_softmax(scores, np.float32(scale))
            buf[b, :, heads, :] = np.matmul(scores, vf[b, :, kvh, :]).transpose(1, 0, 2)
    store(out, buf)


def _prefill_golden(q: np.ndarray, k: np.ndarray, v: np.ndarray, out: np.ndarray, scale: float) -> None:
    if out.size == 0:
        return
    b_n, s_n, hq, _ = q.shape
    group = hq // k.shape[2]
    future = np.triu(np.ones((s_n, s_n), dtype=bool), k=1)  # key j > query i
    result = np.zeros(q.shape, dtype=np.float64)
    for b in range(b_n):
        for h in range(hq):
            qh = q[b, :, h, :].astype(np.float64)
            kh = k[b, :, h // group, :].astype(np.float64)
            vh = v[b, :, h // group, :].astype(np.float64)
            s = qh @ kh.T * float(scale)
            s[future] = -np.inf
            p = np.exp(s - s.max(axis=1, keepdims=True))
            p /= p.sum(axis=1, keepdims=True)
            result[b, :, h, :] = p @ vh
    out[...] = result.astype(out.dtype)


def _prefill_cost(q, k, v, out, scale) -> Cost:
    b, s, hq, d = shape_of(q)
    pairs = b * hq * s * (s + 1) // 2  # causal (query, key) pairs
    return Cost(flops=float(pairs * (4 * d + _SOFTMAX_FLOPS)),
                bytes_read=nbytes_of(q) + nbytes_of(k) + nbytes_of(v), bytes_written=nbytes_of(out))


ATTENTION_PREFILL = register_kernel(Kernel(
    name="attention_prefill",
    params=(_P("q", _IN), _P("k", _IN), _P("v", _IN), _P("out", _OUT), _P("scale", _SCALAR)),
    run_fn=_prefill_run, golden_fn=_prefill_golden, check_fn=_prefill_check, cost_fn=_prefill_cost,
    tolerances=_TOL, dtypes=FLOAT_DTYPES,
    doc="causal self-attention, q [B,S,Hq,D], k/v [B,S,Hkv,D] (GQA), out [B,S,Hq,D]",
))


# --------------------------------------------------------------------------- paged decode

# Cache hints for 16-bit caches, this many positions (two quads) ahead. Each position's slab of a cache
# (every KV head of one slot: hkv * d elements, 2 KiB at the benchmark's shape) is reached through the
# block table, and the hardware prefetcher, which follows streams within 4 KiB regions, meets each
# new slab late. Hinting the slabs two quads ahead made QK 15-20% and PV 15-25% faster for float16 and
# bfloat16 caches (same process, caches cold). float32 caches take no hints: there they cost 10-15%, at
# every locality (to L1, L2, L3 or non-temporal) and distance (one row to eight quads ahead) tried. float32
# decode is bound by its arithmetic as much as by memory: from cache, QK reads about 23 GB/s and PV about
# 20, near a single core's read rate, and the two overlap only partly. Explicit eight-lane vector code
# (LLVM <8 x float> through numba intrinsics: no run-time alias check in PV, one transposed reduction
# of the eight dot products per QK pass) made PV 1.4x and QK 1.1x faster from L2, and the whole kernel
# no faster from memory (float32 0.97-1.04x its time, 16-bit 1.06-1.15x), so it was not kept.
_AHEAD = 8


@numba.njit(fastmath=FAST, inline="always", **JIT)
def _slab_start(cache, trow, pos):  # pragma: no cover - compiled
    """Flat index of the first element of position ``pos``'s slab in a [blocks, bs, hkv, d] cache."""
    bs = cache.shape[1]
    return (trow[pos // bs] * bs + pos % bs) * cache.shape[2] * cache.shape[3]


@numba.njit(fastmath=FAST, inline="always", **JIT)
def _hint_rows(cache, b0, b1, b2, b3, start, d):  # pragma: no cover - compiled
    """Cache hints for elements start..start+d of four slabs (one KV head's row of four positions)."""
    for e in range(start, start + d, 64 // cache.itemsize):
        prefetch(cache, b0 + e)
        prefetch(cache, b1 + e)
        prefetch(cache, b2 + e)
        prefetch(cache, b3 + e)


@numba.njit(fastmath=FAST, inline="always", **JIT)
def _quad_ahead(cache, trow, p, n):  # pragma: no cover - compiled
    """Slab starts of the four positions _AHEAD after ``p`` (the last four, near the end)."""
    nq = min(p + _AHEAD, n - 4)
    return (_slab_start(cache, trow, nq), _slab_start(cache, trow, nq + 1), _slab_start(cache, trow, nq + 2),
            _slab_start(cache, trow, nq + 3))


@numba.njit(fastmath=FAST, **JIT)
def _decode_qk(qb, kc, trow, n, scores, scale):  # pragma: no cover - compiled
    """scores[h, p] = scale * q[h] . K[p, h // G] for p < n, reading each cached K row once.

    Four positions at a time, and per KV head two of the query heads that share it: each K row
    loaded feeds two dot products and each q row four, with eight accumulators, which fit the
    vector registers (four by four spilled them to the stack: measured 20-25% slower).
    """
    hq, d = qb.shape
    bs = kc.shape[1]
    hkv = kc.shape[2]
    g_n = hq // hkv
    hints = kc.itemsize == 2  # see _AHEAD
    p = 0
    while p + 4 <= n:
        s0, s1 = kc[trow[p // bs], p % bs], kc[trow[(p + 1) // bs], (p + 1) % bs]
        s2, s3 = kc[trow[(p + 2) // bs], (p + 2) % bs], kc[trow[(p + 3) // bs], (p + 3) % bs]
        b0, b1, b2, b3 = _quad_ahead(kc, trow, p, n) if hints else (0, 0, 0, 0)
        for j in range(hkv):
            if hints:
                _hint_rows(kc, b0, b1, b2, b3, j * d, d)
            k0, k1, k2, k3 = s0[j], s1[j], s2[j], s3[j]
            h = j * g_n
            end = h + g_n
            while h + 2 <= end:
                q0, q1 = qb[h], qb[h + 1]
                a00 = a01 = a02 = a03 = np.float32(0.0)
                a10 = a11 = a12 = a13 = np.float32(0.0)
                for e in range(d):
                    x0, x1, x2, x3 = widen(k0[e]), widen(k1[e]), widen(k2[e]), widen(k3[e])
                    y0, y1 = q0[e], q1[e]
                    a00 += y0 * x0
                    a01 += y0 * x1
                    a02 += y0 * x2
                    a03 += y0 * x3
                    a10 += y1 * x0
                    a11 += y1 * x1
                    a12 += y1 * x2
                    a13 += y1 * x3
                r0, r1 = scores[h], scores[h + 1]
                r0[p], r0[p + 1], r0[p + 2], r0[p + 3] = a00 * scale, a01 * scale, a02 * scale, a03 * scale
                r1[p], r1[p + 1], r1[p + 2], r1[p + 3] = a10 * scale, a11 * scale, a12 * scale, a13 * scale
                h += 2
            while h < end:
                qr = qb[h]
                a0 = a1 = a2 = a3 = np.float32(0.0)
                for e in range(d):
                    y = qr[e]
                    a0 += y * widen(k0[e])
                    a1 += y * widen(k1[e])
                    a2 += y * widen(k2[e])
                    a3 += y * widen(k3[e])
                row = scores[h]
                row[p], row[p + 1], row[p + 2], row[p + 3] = a0 * scale, a1 * scale, a2 * scale, a3 * scale
                h += 1
        p += 4
    while p < n:
        slab = kc[trow[p // bs], p % bs]
        for h in range(hq):
            qr = qb[h]
            kr = slab[h // g_n]
            a = np.float32(0.0)
            for e in range(d):
                a += qr[e] * widen(kr[e])
            scores[h, p] = a * scale
        p += 1


@numba.njit(fastmath=FAST, **JIT)
def _decode_pv(vc, trow, n, scores, acc):  # pragma: no cover - compiled
    """acc[h] = sum over p < n of scores[h, p] * V[p, h // G], four positions per pass over acc[h].

    Each V row (one position, one KV head) is loaded once per two query heads of its group: a pass
    updates two accumulator rows from four V rows, eight weights held in registers (four heads'
    sixteen spilled them: measured 1.6x slower from cache).
    """
    hq, d = acc.shape
    bs = vc.shape[1]
    hkv = vc.shape[2]
    g_n = hq // hkv
    acc[:, :] = 0.0
    hints = vc.itemsize == 2  # see _AHEAD
    p = 0
    while p + 4 <= n:
        s0, s1 = vc[trow[p // bs], p % bs], vc[trow[(p + 1) // bs], (p + 1) % bs]
        s2, s3 = vc[trow[(p + 2) // bs], (p + 2) % bs], vc[trow[(p + 3) // bs], (p + 3) % bs]
        b0, b1, b2, b3 = _quad_ahead(vc, trow, p, n) if hints else (0, 0, 0, 0)
        for j in range(hkv):
            if hints:
                _hint_rows(vc, b0, b1, b2, b3, j * d, d)
            r0, r1, r2, r3 = s0[j], s1[j], s2[j], s3[j]
            h = j * g_n
            end = h + g_n
            while h + 2 <= end:
                sa, sb = scores[h], scores[h + 1]
                w00, w01, w02, w03 = sa[p], sa[p + 1], sa[p + 2], sa[p + 3]
                w10, w11, w12, w13 = sb[p], sb[p + 1], sb[p + 2], sb[p + 3]
                a0, a1 = acc[h], acc[h + 1]
                for e in range(d):
                    v0, v1, v2, v3 = widen(r0[e]), widen(r1[e]), widen(r2[e]), widen(r3[e])
                    a0[e] += (w00 * v0 + w01 * v1) + (w02 * v2 + w03 * v3)
                    a1[e] += (w10 * v0 + w11 * v1) + (w12 * v2 + w13 * v3)
                h += 2
            while h < end:
                sr = scores[h]
                w0, w1, w2, w3 = sr[p], sr[p + 1], sr[p + 2], sr[p + 3]
                ar = acc[h]
                for e in range(d):
                    ar[e] += (w0 * widen(r0[e]) + w1 * widen(r1[e])) + (w2 * widen(r2[e]) + w3 * widen(r3[e]))
                h += 1
        p += 4
    while p < n:
        slab = vc[trow[p // bs], p % bs]
        for h in range(hq):
            w0 = scores[h, p]
            vr = slab[h // g_n]
            ar = acc[h]
            for e in range(d):
                ar[e] += w0 * widen(vr[e])
        p += 1


@numba.njit(fastmath=FAST, **JIT)
def _paged_decode(q, kc, vc, table, lens, out, scale):  # pragma: no cover - compiled
    b_n, hq, d = q.shape
    max_len = table.shape[1] * kc.shape[1]
    scores = np.empty((hq, max_len), dtype=np.float32)
    acc = np.empty((hq, d), dtype=np.float32)
    for b in range(b_n):
        n = lens[b]
        if n == 0:
            out[b, :, :] = 0.0
            continue
        # QK over every cached position, softmax per head, then PV: K and V each stream once.
        _decode_qk(q[b], kc, table[b], n, scores, scale)
        for h in range(hq):
            _softmax_inplace(scores[h, :n])
        _decode_pv(vc, table[b], n, scores, acc)
        ob = out[b]
        for h in range(hq):
            orow = ob[h]
            for e in range(d):
                orow[e] = narrow(acc[h, e], ob)


def _decode_check(q, key_cache, value_cache, block_table, context_lens, out, scale) -> None:
    kn = "paged_attention_decode"
    require_dtype(kn, "query", q, FLOAT_DTYPES)
    require_same_dtype(kn, ("query", "key_cache", "value_cache"), (q, key_cache, value_cache))
    _require_out_dtype(kn, q, out, "query")
    require_ndim(kn, "query", q, 3, "[batch, q_heads, head_dim]")
    require_ndim(kn, "key_cache", key_cache, 4, "[num_blocks, block_size, kv_heads, head_dim]")
    b, hq, d = shape_of(q)
    nb, bs, hkv, dk = shape_of(key_cache)
    if dk != d:
        fail(kn, "key_cache", f"has head_dim {dk}; expected {d} (as query)")
    if bs == 0:
        fail(kn, "key_cache", "has block_size 0")
    _require_gqa(kn, hq, hkv, "key_cache")
    require_shape(kn, "value_cache", value_cache, (nb, bs, hkv, d), "same as key_cache")
    require_dtype(kn, "block_table", block_table, ("int32",))
    require_ndim(kn, "block_table", block_table, 2, "[batch, max_blocks_per_seq]")
    if int(block_table.shape[0]) != b:
        fail(kn, "block_table", f"has shape {shape_of(block_table)}; its first dim must be the batch {b}")
    require_dtype(kn, "context_lens", context_lens, ("int32",))
    require_shape(kn, "context_lens", context_lens, (b,), "[batch]")
    require_shape(kn, "out", out, (b, hq, d), "same as query")
    require_real(kn, "scale", scale)


def _blocks_used(block_table: np.ndarray, context_lens: np.ndarray, block_size: int) -> list[np.ndarray]:
    counts = (context_lens.astype(np.int64) + block_size - 1) // block_size
    return [block_table[b, : counts[b]] for b in range(len(counts))]


def _decode_data_check(q, key_cache, value_cache, block_table, context_lens, out, scale) -> None:
    kn = "paged_attention_decode"
    nb, bs = key_cache.shape[0], key_cache.shape[1]
    capacity = block_table.shape[1] * bs
    if context_lens.size and (context_lens.min() < 0 or context_lens.max() > capacity):
        fail(kn, "context_lens", f"must lie in [0, {capacity}] (max_blocks_per_seq * block_size), "
             f"got [{int(context_lens.min())}, {int(context_lens.max())}]")
    for b, ids in enumerate(_blocks_used(block_table, context_lens, bs)):
        if ids.size and (ids.min() < 0 or ids.max() >= nb):
            fail(kn, "block_table", f"row {b} references block {int(ids.min() if ids.min() < 0 else ids.max())}; "
                 f"the cache has blocks 0..{nb - 1}")


def _decode_run(q, key_cache, value_cache, block_table, context_lens, out, scale) -> None:
    if out.size == 0:
        return
    table = np.ascontiguousarray(block_table)
    if key_cache.dtype == np.float16 and not F16_IN_REGISTER:
        # No half conversions in hardware: widen only the referenced blocks (not the whole cache) and
        # renumber the table to the compacted copy.
        used = _blocks_used(table, context_lens, key_cache.shape[1])
        ids = np.concatenate(used) if used else np.zeros(0, np.int32)
        uniq, compact = np.unique(ids, return_inverse=True)
        kc, vc = to_f32(key_cache[uniq]), to_f32(value_cache[uniq])
        table = np.zeros_like(table)
        start = 0
        for b, row in enumerate(used):
            table[b, : row.size] = compact[start : start + row.size]
            start += row.size
    else:
        # The caches are read where they lie (16-bit ones as raw bits, widened in registers).
        kc, vc = lanes(key_cache), lanes(value_cache)
    buf = lanes_out(out)
    _paged_decode(to_f32(q), kc, vc, table, np.ascontiguousarray(context_lens), buf, np.float32(scale))
    lanes_store(out, buf)


def _decode_golden(q, key_cache, value_cache, block_table, context_lens, out, scale) -> None:
    b_n, hq, d = q.shape
    bs, hkv = key_cache.shape[1], key_cache.shape[2]
    group = hq // hkv
    result = np.zeros((b_n, hq, d), dtype=np.float64)
    for b in range(b_n):
        n = int(context_lens[b])
        if n == 0:
            continue
        pos = np.arange(n)
        blocks = block_table[b, pos // bs]
        keys = key_cache[blocks, pos % bs].astype(np.float64)     # [n, Hkv, D]
        values = value_cache[blocks, pos % bs].astype(np.float64)
        for h in range(hq):
            s = keys[:, h // group, :] @ q[b, h].astype(np.float64) * float(scale)
            p = np.exp(s - s.max())
            p /= p.sum()
            result[b, h] = p @ values[:, h // group, :]
    out[...] = result.astype(out.dtype)


def _decode_cost(q, key_cache, value_cache, block_table, context_lens, out, scale) -> Cost:
    # Shape-only: assume every sequence fills its block table (an upper bound).
    b, hq, d = shape_of(q)
    _, bs, hkv, _ = shape_of(key_cache)
    length = int(block_table.shape[1]) * bs
    kv_row_bytes = hkv * d * np.dtype(key_cache.dtype).itemsize
    return Cost(flops=float(b * hq * length * (4 * d + _SOFTMAX_FLOPS)),
                bytes_read=nbytes_of(q) + nbytes_of(block_table) + nbytes_of(context_lens)
                + 2 * b * length * kv_row_bytes,
                bytes_written=nbytes_of(out))


PAGED_ATTENTION_DECODE = register_kernel(Kernel(
    name="paged_attention_decode",
    params=(_P("query", _IN), _P("key_cache", _IN), _P("value_cache", _IN), _P("block_table", _IN),
            _P("context_lens", _IN), _P("out", _OUT), _P("scale", _SCALAR)),
    run_fn=_decode_run, golden_fn=_decode_golden, check_fn=_decode_check, cost_fn=_decode_cost,
    tolerances=_TOL, dtypes=FLOAT_DTYPES, data_check_fn=_decode_data_check,
    doc="one decode step over a paged KV cache with block tables (GQA)",
))
