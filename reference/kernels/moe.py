"""Mixture-of-experts: top-k gating, dispatch, the expert FFN and combine.

Upstream models expert parallelism in ``examples/workers/l3/ep_dispatch_combine``
(README "The dispatch protocol": a routing histogram, prefix sums that fix each
route's slot, the payload push, then ``combine`` scattering expert outputs back
by route id and reducing over TOPK) and runs the full DeepSeek-V4 MoE in
``examples/a2a3/tensormap_and_ringbuffer/deepseek_v4_flash_decode``
(``gate_*``, ``topk``, ``dispatch_*``, ``exp_*_mm``, ``combine``). These kernels
are the single-chip arithmetic of that pipeline; moving rows between chips is
the job of the collectives (``all_to_all``).

Conventions (T tokens, E experts, k choices per token, H hidden, F expert FFN
width; a *route* is one (token t, choice j) pair with flat id ``t * k + j``):

* ``moe_topk_gating(logits [T,E], weights [T,k] f32, indices [T,k] i32, k)``:
  the k largest logits per token in descending order (ties: lower expert id
  first), and their softmax over the k chosen — equal to the full softmax
  renormalised over the top k (Mixtral; DeepSeek/Qwen with ``norm_topk_prob``).
  Selecting on logits rather than probabilities keeps the choice exact for
  16-bit logits. The weights are computed in float32 (compensated sum over the
  k); each ``logit - top`` keeps the exact remainder of its float32 rounding,
  which would otherwise cost ``|logit - top| * 2**-24`` relative in the weight.
* ``moe_dispatch(x [T,H], indices [T,k], x_sorted [T*k,H], counts [E] i32,
  route_ids [T*k] i32)``: a counting sort of the routes by expert — expert e's
  rows are ``x_sorted[offset[e] : offset[e] + counts[e]]`` with ``offset`` the
  exclusive prefix sum of ``counts``, in route order within an expert;
  ``route_ids[r]`` is the route whose token sits in row r. No capacity limit
  (dropless). Pure data movement: exact for every dtype. Memory traffic: each
  token row read once per route and each sorted row written once, in the
  tensor's own dtype, plus indices, counts and route ids: exactly
  ``Cost.bytes_moved``.
* ``moe_expert_ffn(x_sorted [R,H], counts [E], w_gate [E,H,F], w_up [E,H,F],
  w_down [E,F,H], out [R,H])``: per expert,
  ``(silu(x @ w_gate[e]) * (x @ w_up[e])) @ w_down[e]`` on its rows.
* ``moe_combine(expert_out [T*k,H], route_ids [T*k] i32, weights [T,k] f32,
  out [T,H])``: ``out[t] = sum_j weights[t,j] * expert_out[row of route t*k+j]``
  — the weighted un-permute, accumulated in float32 (see ``_COMBINE_TOL``).
  Memory traffic: each expert row is read once and each output row written
  once, in their own dtype (a 16-bit output row is accumulated in a float32 row
  buffer in L1 and rounded as it is stored), plus an int64 inverse of
  ``route_ids`` (8 bytes a route, written then read): the minimum,
  ``Cost.bytes_moved``, plus 16 bytes a route.
"""

from __future__ import annotations

import numba
import numpy as np

from reference.kernel import Cost, Direction, Kernel, Param, nbytes_of
from reference.kernel_table import register_kernel
from reference.kernels._checks import (
    ALL_DTYPES,
    FLOAT_DTYPES,
    fail,
    require_dtype,
    require_int,
    require_ndim,
    require_same_dtype,
    require_shape,
    shape_of,
)
from reference.kernels._numerics import (
    FAST,
    JIT,
    add_compensated,
    as_numba,
    exp_fast_f32,
    f32_buffer,
    f32_out_row,
    lanes,
    lanes_out,
    lanes_store,
    narrow,
    store,
    to_f32,
    widen,
)
from reference.kernels.activations import _swiglu_flat

_P = Param
_IN, _OUT, _SCALAR = Direction.IN, Direction.OUT, Direction.SCALAR
_EXACT = {name: (0.0, 0.0) for name in ALL_DTYPES}


# --------------------------------------------------------------------------- top-k gating

@numba.njit(fastmath=False, **JIT)  # reassociation would cancel the remainder to 0
def _diff_exact(a, b):  # pragma: no cover - compiled
    """a - b as an unevaluated float32 pair (hi, lo): hi the rounded difference, lo its exact error."""
    hi = a - b
    bb = a - hi
    lo = (a - (hi + bb)) + (bb - b)  # Knuth's TwoSum on (a, -b)
    return hi, lo


@numba.njit(**JIT)
def _topk_gating(logits, weights, indices, k):  # pragma: no cover - compiled
    t_n, e_n = logits.shape
    taken = np.zeros(e_n, dtype=np.bool_)
    for t in range(t_n):
        taken[:] = False
        for j in range(k):
            best = -1
            for e in range(e_n):
                # Strict '>' keeps the lowest expert id among equal logits.
                if not taken[e] and (best < 0 or logits[t, e] > logits[t, best]):
                    best = e
            taken[best] = True
            indices[t, j] = best
        top = logits[t, indices[t, 0]]
        total = np.float32(0.0)
        comp = np.float32(0.0)
        for j in range(k):
            # l - top rounded to float32 would put |l - top| * 2**-24 of relative error into the
            # weight (1e-6 at a gap of 20); the exact remainder of the subtraction restores it.
            hi, lo = _diff_exact(logits[t, indices[t, j]], top)
            w = exp_fast_f32(hi)
            if w > 0.0:  # (an infinite gap has a NaN remainder, and a zero weight anyway)
                w = w * (np.float32(1.0) + lo)
            weights[t, j] = w
            total, comp = add_compensated(total, comp, w)
        total = total + comp
        for j in range(k):
            weights[t, j] = weights[t, j] / total


def _gating_check(logits, weights, indices, k) -> None:
    kn = "moe_topk_gating"
    require_dtype(kn, "logits", logits, FLOAT_DTYPES)
    require_ndim(kn, "logits", logits, 2, "[tokens, experts]")
    t, e = shape_of(logits)
    if e == 0:
        fail(kn, "logits", "has no experts (its last dim is 0)")
    kk = require_int(kn, "k", k, 1, e, "at most the number of experts")
    require_dtype(kn, "weights", weights, ("float32",))
    require_shape(kn, "weights", weights, (t, kk), "[tokens, k]")
    require_dtype(kn, "indices", indices, ("int32",))
    require_shape(kn, "indices", indices, (t, kk), "[tokens, k]")


def _gating_run(logits, weights, indices, k) -> None:
    if weights.size == 0:
        return
    wbuf = f32_buffer(weights)
    ibuf = indices if indices.flags.c_contiguous else np.empty(indices.shape, np.int32)
    _topk_gating(to_f32(logits), wbuf, ibuf, int(k))
    store(weights, wbuf)
    if ibuf is not indices:
        indices[...] = ibuf


def _gating_golden(logits, weights, indices, k) -> None:
    k = int(k)
    for t in range(logits.shape[0]):
        row = logits[t].astype(np.float64)
        chosen = np.argsort(-row, kind="stable")[:k]  # descending; stable keeps lower ids first on ties
        p = np.exp(row[chosen] - row[chosen[0]])
        weights[t] = (p / p.sum()).astype(np.float32)
        indices[t] = chosen.astype(np.int32)


def _gating_cost(logits, weights, indices, k) -> Cost:
    t, e = shape_of(logits)
    kk = int(k)
    # k selection passes over E logits (one compare each) + exp, add, divide per choice.
    return Cost(flops=float(t * kk * (e + 3)), bytes_read=nbytes_of(logits),
                bytes_written=nbytes_of(weights) + nbytes_of(indices))


MOE_TOPK_GATING = register_kernel(Kernel(
    name="moe_topk_gating",
    params=(_P("logits", _IN), _P("weights", _OUT), _P("indices", _OUT), _P("k", _SCALAR)),
    run_fn=_gating_run, golden_fn=_gating_golden, check_fn=_gating_check, cost_fn=_gating_cost,
    tolerances={"float32": (2e-6, 1e-30), "int32": (0.0, 0.0)}, dtypes=FLOAT_DTYPES,
    doc="top-k experts per token by logit, weights = softmax over the chosen k",
))


# --------------------------------------------------------------------------- dispatch

@numba.njit(**JIT)
def _copy_row(src, dst):  # pragma: no cover - compiled
    # An explicit loop: numba's slice assignment guards against overlap, which costs a vectorised copy.
    for c in range(src.size):
        dst[c] = src[c]


@numba.njit(**JIT)
def _dispatch(x, idx, x_sorted, counts, route_ids):  # pragma: no cover - compiled
    t_n, k = idx.shape
    e_n = counts.size
    counts[:] = 0
    for t in range(t_n):
        for j in range(k):
            counts[idx[t, j]] += 1
    fill = np.empty(e_n, dtype=np.int64)
    acc = 0
    for e in range(e_n):
        fill[e] = acc
        acc += counts[e]
    for t in range(t_n):
        for j in range(k):
            e = idx[t, j]
            r = fill[e]
            fill[e] = r + 1
            _copy_row(x[t], x_sorted[r])
            route_ids[r] = t * k + j


def _dispatch_check(x, indices, x_sorted, counts, route_ids) -> None:
    kn = "moe_dispatch"
    require_dtype(kn, "x", x, ALL_DTYPES)
    require_ndim(kn, "x", x, 2, "[tokens, hidden]")
    t, h = shape_of(x)
    require_dtype(kn, "indices", indices, ("int32",))
    require_ndim(kn, "indices", indices, 2, "[tokens, k]")
    if int(indices.shape[0]) != t:
        fail(kn, "indices", f"has shape {shape_of(indices)}; its first dim must be the {t} tokens of x")
    routes = t * int(indices.shape[1])
    require_same_dtype(kn, ("x", "x_sorted"), (x, x_sorted))
    require_shape(kn, "x_sorted", x_sorted, (routes, h), "[tokens * k, hidden]")
    require_dtype(kn, "counts", counts, ("int32",))
    require_ndim(kn, "counts", counts, 1, "[experts]")
    require_dtype(kn, "route_ids", route_ids, ("int32",))
    require_shape(kn, "route_ids", route_ids, (routes,), "[tokens * k]")


def _dispatch_data_check(x, indices, x_sorted, counts, route_ids) -> None:
    e = int(counts.shape[0])
    if indices.size and (indices.min() < 0 or indices.max() >= e):
        bad = int(indices.min() if indices.min() < 0 else indices.max())
        fail("moe_dispatch", "indices", f"holds expert {bad}; experts are 0..{e - 1} (the length of counts)")


def _dispatch_run(x, indices, x_sorted, counts, route_ids) -> None:
    xs = x_sorted if x_sorted.flags.c_contiguous else np.empty(x_sorted.shape, x_sorted.dtype)
    cnt = counts if counts.flags.c_contiguous else np.empty(counts.shape, np.int32)
    rid = route_ids if route_ids.flags.c_contiguous else np.empty(route_ids.shape, np.int32)
    _dispatch(as_numba(x), np.ascontiguousarray(indices), as_numba(xs), cnt, rid)
    for dst, src in ((x_sorted, xs), (counts, cnt), (route_ids, rid)):
        if dst is not src:
            dst[...] = src


def _dispatch_golden(x, indices, x_sorted, counts, route_ids) -> None:
    k = indices.shape[1]
    flat = indices.reshape(-1)
    order = np.argsort(flat, kind="stable")  # routes grouped by expert, route order kept inside
    x_sorted[...] = x[order // k]
    counts[...] = np.bincount(flat, minlength=counts.shape[0]).astype(np.int32)
    route_ids[...] = order.astype(np.int32)


def _dispatch_cost(x, indices, x_sorted, counts, route_ids) -> Cost:
    # Pure data movement: each token row is read once per route.
    return Cost(flops=0.0, bytes_read=nbytes_of(x_sorted) + nbytes_of(indices),
                bytes_written=nbytes_of(x_sorted) + nbytes_of(counts) + nbytes_of(route_ids))


MOE_DISPATCH = register_kernel(Kernel(
    name="moe_dispatch",
    params=(_P("x", _IN), _P("indices", _IN), _P("x_sorted", _OUT), _P("counts", _OUT), _P("route_ids", _OUT)),
    run_fn=_dispatch_run, golden_fn=_dispatch_golden, check_fn=_dispatch_check, cost_fn=_dispatch_cost,
    tolerances=_EXACT, dtypes=ALL_DTYPES, data_check_fn=_dispatch_data_check,
    doc="group token rows by expert (stable counting sort), with per-expert counts and route ids",
))


# --------------------------------------------------------------------------- expert FFN

def _ffn_check(x_sorted, counts, w_gate, w_up, w_down, out) -> None:
    kn = "moe_expert_ffn"
    require_dtype(kn, "x_sorted", x_sorted, FLOAT_DTYPES)
    require_ndim(kn, "x_sorted", x_sorted, 2, "[rows, hidden]")
    require_same_dtype(kn, ("x_sorted", "w_gate", "w_up", "w_down", "out"), (x_sorted, w_gate, w_up, w_down, out))
    r, h = shape_of(x_sorted)
    require_dtype(kn, "counts", counts, ("int32",))
    require_ndim(kn, "counts", counts, 1, "[experts]")
    e = int(counts.shape[0])
    require_ndim(kn, "w_gate", w_gate, 3, "[experts, hidden, ffn]")
    f = int(w_gate.shape[2])
    require_shape(kn, "w_gate", w_gate, (e, h, f), "[experts, hidden, ffn]")
    require_shape(kn, "w_up", w_up, (e, h, f), "same as w_gate")
    require_shape(kn, "w_down", w_down, (e, f, h), "[experts, ffn, hidden]")
    require_shape(kn, "out", out, (r, h), "same as x_sorted")


def _ffn_data_check(x_sorted, counts, w_gate, w_up, w_down, out) -> None:
    rows = int(x_sorted.shape[0])
    if counts.size and counts.min() < 0:
        fail("moe_expert_ffn", "counts", f"has a negative count {int(counts.min())}")
    if int(counts.astype(np.int64).sum()) != rows:
        fail("moe_expert_ffn", "counts", f"sums to {int(counts.astype(np.int64).sum())}; expected {rows} "
             "(the rows of x_sorted)")


def _offsets(counts: np.ndarray) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(counts.astype(np.int64))])


def _ffn_run(x_sorted, counts, w_gate, w_up, w_down, out) -> None:
    if out.size == 0:
        return
    xs = to_f32(x_sorted)
    buf = f32_buffer(out)
    off = _offsets(counts)
    for e in range(counts.shape[0]):
        lo, hi = off[e], off[e + 1]
        if hi == lo:
            continue  # an idle expert: its weights are never touched (nor widened)
        gate = xs[lo:hi] @ to_f32(w_gate[e])
        up = xs[lo:hi] @ to_f32(w_up[e])
        _swiglu_flat(gate.reshape(-1), up.reshape(-1), gate.reshape(-1))  # in place: gate := silu(gate) * up
        np.matmul(gate, to_f32(w_down[e]), out=buf[lo:hi])
    store(out, buf)


def _ffn_golden(x_sorted, counts, w_gate, w_up, w_down, out) -> None:
    off = _offsets(counts)
    for e in range(counts.shape[0]):
        rows = slice(off[e], off[e + 1])
        x = x_sorted[rows].astype(np.float64)
        gate = x @ w_gate[e].astype(np.float64)
        up = x @ w_up[e].astype(np.float64)
        with np.errstate(over="ignore"):
            hidden = gate / (1.0 + np.exp(-gate)) * up
        out[rows] = (hidden @ w_down[e].astype(np.float64)).astype(out.dtype)


def _ffn_cost(x_sorted, counts, w_gate, w_up, w_down, out) -> Cost:
    r, h = shape_of(x_sorted)
    f = int(w_gate.shape[2])
    # Three R x H x F GEMMs (2 flops per MAC) + SwiGLU on R x F.
    return Cost(flops=float(6 * r * h * f + 6 * r * f),
                bytes_read=nbytes_of(x_sorted) + nbytes_of(counts) + nbytes_of(w_gate) + nbytes_of(w_up)
                + nbytes_of(w_down),
                bytes_written=nbytes_of(out))


MOE_EXPERT_FFN = register_kernel(Kernel(
    name="moe_expert_ffn",
    params=(_P("x_sorted", _IN), _P("counts", _IN), _P("w_gate", _IN), _P("w_up", _IN), _P("w_down", _IN),
            _P("out", _OUT)),
    run_fn=_ffn_run, golden_fn=_ffn_golden, check_fn=_ffn_check, cost_fn=_ffn_cost,
    tolerances={"float32": (1e-4, 1e-4), "float16": (1e-2, 1e-2), "bfloat16": (5e-2, 5e-2)},
    dtypes=FLOAT_DTYPES, data_check_fn=_ffn_data_check,
    doc="grouped SwiGLU FFN over expert-sorted rows",
))


# --------------------------------------------------------------------------- combine

@numba.njit(fastmath=FAST, **JIT)
def _combine(y, route_ids, weights, out):  # pragma: no cover - compiled
    t_n, k = weights.shape
    h = y.shape[1]
    row_of = np.empty(route_ids.size, dtype=np.int64)
    for r in range(route_ids.size):
        row_of[route_ids[r]] = r
    os = np.empty(h, dtype=np.float32)  # a 16-bit output row's partial sums (unused for float32)
    for t in range(t_n):
        base = t * k
        dst = f32_out_row(out[t], os)  # 1-D row slices: unit strides that LLVM vectorises
        # Accumulated in float32, four routes per pass over the row, so the row is loaded and stored
        # k/4 times rather than k times; the first pass starts the sums (no zeroing pass), and for a
        # 16-bit output the last pass rounds them straight into it.
        j = 0
        first = True
        while j < k:
            m = min(4, k - j)
            w0 = weights[t, j]
            w1 = weights[t, j + 1] if m > 1 else np.float32(0.0)
            w2 = weights[t, j + 2] if m > 2 else np.float32(0.0)
            w3 = weights[t, j + 3] if m > 3 else np.float32(0.0)
            r0 = y[row_of[base + j]]
            r1 = y[row_of[base + j + 1]] if m > 1 else r0
            r2 = y[row_of[base + j + 2]] if m > 2 else r0
            r3 = y[row_of[base + j + 3]] if m > 3 else r0
            _combine_pass(dst, out[t], m, first, j + m == k, w0, w1, w2, w3, r0, r1, r2, r3)
            first = False
            j += m


@numba.njit(fastmath=FAST, **JIT)
def _combine_pass(dst, orow, m, first, last, w0, w1, w2, w3, r0, r1, r2, r3):  # pragma: no cover - compiled
    """dst (+)= the weighted sum of the m <= 4 rows r0..r(m-1); ``last``: round the result into ``orow``."""
    direct = last and orow.itemsize == 2  # 16-bit output: write the final sums rounded, skip dst
    h = dst.size
    if m == 4:
        if first and direct:
            for c in range(h):
                orow[c] = narrow((w0 * widen(r0[c]) + w1 * widen(r1[c])) + (w2 * widen(r2[c]) + w3 * widen(r3[c])),
                                 orow)
        elif first:
            for c in range(h):
                dst[c] = (w0 * widen(r0[c]) + w1 * widen(r1[c])) + (w2 * widen(r2[c]) + w3 * widen(r3[c]))
        elif direct:
            for c in range(h):
                v = dst[c]
                v += (w0 * widen(r0[c]) + w1 * widen(r1[c])) + (w2 * widen(r2[c]) + w3 * widen(r3[c]))
                orow[c] = narrow(v, orow)
        else:
            for c in range(h):
                dst[c] += (w0 * widen(r0[c]) + w1 * widen(r1[c])) + (w2 * widen(r2[c]) + w3 * widen(r3[c]))
        return
    # The last k % 4 routes, one pass each (as the sums were always taken).
    rows = (r0, r1, r2)
    ws = (w0, w1, w2)
    for u in range(m):
        r = rows[u]
        w = ws[u]
        if first and u == 0:
            for c in range(h):
                dst[c] = w * widen(r[c])
        else:
            for c in range(h):
                dst[c] += w * widen(r[c])
    if direct:
        for c in range(h):
            orow[c] = narrow(dst[c], orow)


# Float32 accumulation: the error of sum_j w_j * y_j is within (k + 1) * 2**-24 * sum_j |w_j * y_j|,
# relative to the terms rather than to the result, which routes of opposite sign can cancel.
# Hence an atol, stated for unit-scale terms (sum_j |w_j| * max|y| = 1), valid up to k of about 15.
_COMBINE_TOL = {"float32": (2e-6, 1e-6), "float16": (2e-3, 1e-6), "bfloat16": (1e-2, 1e-6)}


def _combine_check(expert_out, route_ids, weights, out) -> None:
    kn = "moe_combine"
    require_dtype(kn, "expert_out", expert_out, FLOAT_DTYPES)
    require_ndim(kn, "expert_out", expert_out, 2, "[tokens * k, hidden]")
    require_same_dtype(kn, ("expert_out", "out"), (expert_out, out))
    require_dtype(kn, "weights", weights, ("float32",))
    require_ndim(kn, "weights", weights, 2, "[tokens, k]")
    t, k = shape_of(weights)
    routes, h = shape_of(expert_out)
    if routes != t * k:
        fail(kn, "expert_out", f"has {routes} rows; expected tokens * k = {t * k} (from weights {t}x{k})")
    require_dtype(kn, "route_ids", route_ids, ("int32",))
    require_shape(kn, "route_ids", route_ids, (routes,), "[tokens * k]")
    require_shape(kn, "out", out, (t, h), "[tokens, hidden]")


def _combine_data_check(expert_out, route_ids, weights, out) -> None:
    n = route_ids.size
    # n values in 0..n-1 with none repeated: a counting pass, not a sort (np.unique), which on
    # realistic sizes cost a quarter of the kernel's own time.
    if n and (route_ids.min() < 0 or route_ids.max() >= n or np.bincount(route_ids, minlength=n).max() != 1):
        fail("moe_combine", "route_ids", f"must be a permutation of 0..{n - 1}")


def _combine_run(expert_out, route_ids, weights, out) -> None:
    if out.size == 0:
        return
    buf = lanes_out(out)
    _combine(lanes(expert_out), np.ascontiguousarray(route_ids), np.ascontiguousarray(weights), buf)
    lanes_store(out, buf)


def _combine_golden(expert_out, route_ids, weights, out) -> None:
    t, k = weights.shape
    h = expert_out.shape[1]
    by_route = np.empty((t * k, h), dtype=np.float64)
    by_route[route_ids] = expert_out.astype(np.float64)  # un-permute: row r holds route route_ids[r]
    weighted = by_route.reshape(t, k, h) * weights.astype(np.float64)[:, :, None]
    out[...] = weighted.sum(axis=1).astype(out.dtype)


def _combine_cost(expert_out, route_ids, weights, out) -> Cost:
    routes, h = shape_of(expert_out)
    return Cost(flops=2.0 * routes * h,
                bytes_read=nbytes_of(expert_out) + nbytes_of(route_ids) + nbytes_of(weights),
                bytes_written=nbytes_of(out))


MOE_COMBINE = register_kernel(Kernel(
    name="moe_combine",
    params=(_P("expert_out", _IN), _P("route_ids", _IN), _P("weights", _IN), _P("out", _OUT)),
    run_fn=_combine_run, golden_fn=_combine_golden, check_fn=_combine_check, cost_fn=_combine_cost,
    tolerances=_COMBINE_TOL, dtypes=FLOAT_DTYPES, data_check_fn=_combine_data_check,
    doc="weighted un-permute of expert outputs back to token order",
))
