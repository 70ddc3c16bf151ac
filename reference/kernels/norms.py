"""Normalisation kernels: RMSNorm, LayerNorm and the fused residual-add + RMSNorm.

RMSNorm is the normalisation of every upstream model example: in
``examples/a2a3/tensormap_and_ringbuffer/qwen3_14b_decode`` each layer opens
with an input RMSNorm and the residual add feeds a post-attention RMSNorm
(``kernels/aiv/residual_rms_cast.cpp``, ``post_rms_reduce.cpp``; README
"Dataflow per layer"); ``deepseek_v4_flash_decode`` has ``rms_norm``,
``ffn_norm`` and several ``*_rms_norm_*`` fusions. LayerNorm is included for
the non-LLaMA families.

All three normalise over the last axis of ``x [..., H]`` with a learned
``weight [H]`` (LayerNorm also a ``bias [H]``); ``eps`` is a SCALAR.

``residual_add_rmsnorm(x, residual, weight, out, eps)`` updates the residual
stream in place (``residual += x``, rounded to the residual's dtype) and writes
``rmsnorm(residual) * weight`` to ``out`` — exactly ``add`` followed by
``rmsnorm``, in one pass. The residual may be float32 while ``x``/``out`` are
16-bit (upstream's Qwen3 carries an FP32 residual between layers).

Row statistics (sum of squares, mean, variance) are accumulated in float32 on
the fast path, as float32 blocks of ``SUM_BLOCK`` elements that LLVM vectorises
with the block sums added under compensation (``_numerics``), so the error stays
a few ulps however long the row. Three things keep float32 sums honest:

* Range. Squares of |x| beyond ~1.8e19 overflow float32 (bfloat16 reaches
  3e38) and squares of rows below ~1e-15 underflow. A row whose sum of squares
  overflowed, or came out too small to trust, is summed again multiplied by a
  power of two (exact) that brings max|x| near 1; the scale comes off in the
  per-row float64 scalar arithmetic (mean, ``+ eps``, ``1/sqrt``), which is
  three operations per row, not an accumulation.
* LayerNorm's shift. Deviations d are taken from a shift near the mean, then
  their mean and mean square give the exact mean and the variance: the sums
  of ``x - shift`` stay of the size of the row's spread, so neither a large
  common offset nor one outlier (which a shift by ``x[0]`` would put into
  every term) costs accuracy, and ``E[d^2] - E[d]^2`` cannot cancel because
  ``E[d]`` is small. The shift is the mean of the row's first 256 elements,
  so the sums take one pass; they are kept only if that shift proves to be
  within a quarter standard deviation of the mean (``E[d]^2 <= var / 16``, so
  ``E[d^2] <= 17/16 var``). Otherwise (an outlying head) the row's plain
  float32 mean, a few ulps of max|x| off the true mean, is the shift and the
  sums are taken again from L1.
* Evaluation order. Only the reduction loops reassociate; ``(x - shift) - dm``
  and ``x * inv * w`` are computed as written (a reassociated ``x - (shift +
  dm)`` would round ``dm`` away against a large shift; ``inv * w`` can
  underflow).

Memory traffic: each row is read from memory once and its output written
once, in the tensors' own dtype: a 16-bit row is widened into a float32 row
buffer that stays in L1 (``_numerics.f32_row``), the statistics and the output
are computed from that buffer, and each output element is rounded to its dtype
as it is stored. So every kernel moves the minimum,
``Cost.bytes_moved`` (x, weight[, bias], out; residual read and written once).
Rows whose squares leave float32's range are summed a second time from L1.
RMSNorm and LayerNorm overlap the two: the pass that writes row r's output
also makes the pass of row r + 1 that reads memory (its sum of squares, its
shifted sums after a look at its head), so one loop reads one stream and
writes another, as a copy does (see "Software pipelining" in the code). The
output takes
ordinary stores, so memory also reads each destination line once before it is
written (read for ownership), and the output stays in cache for whatever reads
it next.

RMSNorm's output ``x * inv * w`` is two roundings with no cancellation, so it
keeps the float32 tolerance of 1e-5 relative. LayerNorm's ``x - mean`` carries
an absolute error of a few ulps of the row's spread, so where the normalised
value times ``weight`` cancels against ``bias`` the result is accurate to that
absolute level only: its tolerance has an atol, stated for unit-scale weight
and bias (see ``_LN_TOL``).
"""

from __future__ import annotations

import math

import numba
import numpy as np
from numba import types
from numba.extending import overload

from reference.kernel import Cost, Direction, Kernel, Param, nbytes_of
from reference.kernel_table import register_kernel
from reference.kernels._checks import (
    FLOAT_DTYPES,
    dtype_name,
    fail,
    numel,
    require_dtype,
    require_min_ndim,
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
    f32_out_row,
    f32_row,
    keep_wide,
    lanes,
    lanes_inout,
    lanes_out,
    lanes_store,
    narrow,
    prefetch_row_for_write,
    to_f32,
    widen,
)

_P = Param
_IN, _OUT, _INOUT, _SCALAR = Direction.IN, Direction.OUT, Direction.INOUT, Direction.SCALAR

_TOL = {"float32": (1e-5, 1e-30), "float16": (2e-3, 1e-7), "bfloat16": (1e-2, 1e-30)}
# LayerNorm's x - mean comes from float32 statistics, so it carries an absolute error of a few
# float32 ulps of the row's spread (up to about (SUM_BLOCK / 8 + 6) * 2**-24 of it): where
# (x - mean) / std * weight and bias cancel, the output is accurate to that absolute level, not
# relative to itself. Hence an atol, stated for unit-scale weight and bias: it scales with
# max|weight| * sqrt(H) + max|bias|, the largest magnitude the two terms can have.
_LN_TOL = {"float32": (1e-5, 2e-6), "float16": (2e-3, 2e-6), "bfloat16": (1e-2, 2e-6)}

# Flops per element and per row (divide and sqrt count as one each).
_RMS_FLOPS_ELEM, _LN_FLOPS_ELEM, _ROW_FLOPS = 4, 8, 3


# --------------------------------------------------------------------------- numba bodies (2-D, contiguous)

# Row statistics are float32 sums (see the module docstring). A sum of squares at or above this
# many times the row length has lost at most 2**-49 of itself to squares that underflowed.
_TINY_PER_ELEMENT = 2.0**-100


@numba.njit(fastmath=FAST, inline="always", **JIT)
def _sum_sq_block(a):  # pragma: no cover - compiled
    part = np.float32(0.0)
    for j in range(a.size):
        part += a[j] * a[j]
    return part


@numba.njit(fastmath=FAST, **JIT)
def _sum_sq(a):  # pragma: no cover - compiled
    """Sum of squares of a 1-D float32 array: float32 blocks, compensated across blocks."""
    total = np.float32(0.0)
    comp = np.float32(0.0)
    for j0 in range(0, a.size, SUM_BLOCK):
        total, comp = add_compensated(total, comp, _sum_sq_block(a[j0 : j0 + SUM_BLOCK]))
    return total + comp


# Explicitly no fast-math (a helper without the option inherits its caller's): reassociation would make
# this x - (k + dm), and k + dm can round dm away.
@numba.njit(fastmath=False, **JIT)
def _deviation(x, k, dm):  # pragma: no cover - compiled
    return (x - k) - dm


@numba.njit(fastmath=FAST, inline="always", **JIT)
def _sum_block(a):  # pragma: no cover - compiled
    part = np.float32(0.0)
    for j in range(a.size):
        part += a[j]
    return part


@numba.njit(fastmath=FAST, **JIT)
def _sums_block_shifted(a, k):  # pragma: no cover - compiled
    s1 = np.float32(0.0)
    s2 = np.float32(0.0)
    for j in range(a.size):
        d = _deviation(a[j], k, np.float32(0.0))
        s1 += d
        s2 += d * d
    return s1, s2


@numba.njit(inline="always", **JIT)
def _squares_in_range(ss, h):  # pragma: no cover - compiled
    """Whether a float32 sum of h squares neither overflowed nor lost anything noticeable to underflow."""
    return ss != ss or (ss < np.float32(np.inf) and np.float64(ss) >= h * _TINY_PER_ELEMENT)


@numba.njit(fastmath=FAST, **JIT)
def _pow2_scale(a, scratch):  # pragma: no cover - compiled
    """scratch = a * 2**k with max|a * 2**k| near 1; returns 2**k (float64), or 0 when no scaling helps.

    For rows whose squares leave float32's range (|x| beyond ~1.8e19, or every |x| below ~1e-15):
    multiplying by a power of two is exact (up to results below 2**-126, which are then negligible).
    """
    amax = np.float32(0.0)
    for j in range(a.size):
        amax = max(amax, abs(a[j]))
    if not (amax > 0.0 and amax < np.float32(np.inf)):
        return 0.0  # zero, inf or NaN rows: the unscaled result is already what the formula gives
    k = min(max(-math.frexp(np.float64(amax))[1], -126), 126)
    s = math.ldexp(1.0, k)
    s32 = np.float32(s)
    for j in range(a.size):
        scratch[j] = a[j] * s32
    return s


@numba.njit(fastmath=FAST, **JIT)
def _mean_sq_of(ss, row, scratch):  # pragma: no cover - compiled
    """mean(row**2) as a float64 from ``ss``, the row's float32 :func:`_sum_sq`, or summed again rescaled
    when the squares left float32's range."""
    h = row.size
    if _squares_in_range(ss, h):
        return np.float64(ss) / h
    s = _pow2_scale(row, scratch)
    if s == 0.0:
        return np.float64(ss) / h
    return np.float64(_sum_sq(scratch[:h])) / (s * s) / h


@numba.njit(fastmath=FAST, **JIT)
def _mean_sq(row, scratch):  # pragma: no cover - compiled
    """mean(row**2) as a float64, summed in float32 (rescaled when the squares leave float32's range)."""
    return _mean_sq_of(_sum_sq(row), row, scratch)


# Elementwise loops set no reassociation: it could regroup x * inv * w as x * (inv * w), and inv * w can
# underflow where neither product in x * inv, then * w, does.
@numba.njit(fastmath={"contract"}, **JIT)
def _scale_row(xr, w, orow, inv):  # pragma: no cover - compiled
    """orow = xr * inv * w; float32 unless 1/rms itself is beyond float32 (subnormal rows, eps = 0).

    ``orow`` is the output row itself (a :func:`~reference.kernels._numerics.lanes` row): each float32
    result is rounded to its dtype as it is stored.
    """
    if inv < 3.0e38:
        # No cancellation downstream, so the scaling can run in float32 (two roundings).
        inv32 = np.float32(inv)
        for j in range(xr.size):
            orow[j] = narrow(_rms_value(xr[j], inv32, w[j]), orow)
    else:
        for j in range(xr.size):
            orow[j] = narrow(xr[j] * inv * w[j], orow)


@numba.njit(fastmath={"contract"}, **JIT)  # as _scale_row; LLVM inlines it and keeps these flags
def _rms_value(x, inv32, w):  # pragma: no cover - compiled
    return x * inv32 * w


@numba.njit(fastmath={"contract"}, **JIT)  # as _scale_row
def _ln_value(x, k, dm, inv32, w, b):  # pragma: no cover - compiled
    return _deviation(x, k, dm) * inv32 * w + b


# Software pipelining of the row kernels. A row kernel's statistics pass is the one that reads memory
# and its output pass the one that writes it; run one after the other, each row first waits for its
# reads with nothing to compute, then writes with nothing to read, and memory is half idle (RMSNorm
# measured at 50-75% of copy bandwidth). So the output pass of row r also makes the memory pass of
# row r + 1 (RMSNorm's sum of squares, LayerNorm's shifted sums; a 16-bit row is widened into its buffer
# on the way): one loop reads one stream and writes another, as a copy does (RMSNorm 54% -> 80%).
# The block sums are those of the separate passes (same blocks, same compensation; LayerNorm runs the
# very same loop for a row that starts a pipeline), and so are the outputs (the same expression, with
# the same flags).


@numba.njit(fastmath=FAST, inline="always", **JIT)
def _rms_out_next(xr, w, orow, inv32, nxt, nbuf):  # pragma: no cover - compiled
    """orow = xr * inv32 * w (rounded to orow's dtype); returns the sum of squares of the next row's
    block ``nxt`` (a 16-bit one widened into ``nbuf`` on the way)."""
    part = np.float32(0.0)
    for j in range(orow.size):
        orow[j] = narrow(_rms_value(xr[j], inv32, w[j]), orow)
        v = widen(nxt[j])
        keep_wide(nbuf, j, v, nxt)
        part += v * v
    return part


@numba.njit(fastmath=FAST, inline="always", **JIT)
def _ln_out_next(row, w, b, orow, k, dm, inv32, nxt, nbuf, kn):  # pragma: no cover - compiled
    """LayerNorm's output of a block (as :func:`_ln_write`); returns the sums of ``d`` and ``d**2``,
    ``d = x - kn``, over the next row's block ``nxt`` (a 16-bit one widened into ``nbuf`` on the way),
    as :func:`_sums_block_shifted` makes them."""
    s1 = np.float32(0.0)
    s2 = np.float32(0.0)
    for j in range(orow.size):
        orow[j] = narrow(_ln_value(row[j], k, dm, inv32, w[j], b[j]), orow)
        v = widen(nxt[j])
        keep_wide(nbuf, j, v, nxt)
        d = _deviation(v, kn, np.float32(0.0))
        s1 += d
        s2 += d * d
    return s1, s2


@numba.njit(fastmath=FAST, **JIT)
def _rmsnorm_rows(x, w, out, eps):  # pragma: no cover - compiled
    rows, h = x.shape
    scratch = np.empty(h, dtype=np.float32)
    bufs = np.empty((2, h), dtype=np.float32)  # 16-bit: this row and the next, widened (unused for float32)
    xr = f32_row(x[0], bufs[0])
    ss = _sum_sq(xr)
    for r in range(rows):
        inv = 1.0 / math.sqrt(_mean_sq_of(ss, xr, scratch) + eps)
        if r + 1 == rows or not inv < 3.0e38:
            _scale_row(xr, w, out[r], inv)
            if r + 1 < rows:
                xr = f32_row(x[r + 1], bufs[(r + 1) % 2])
                ss = _sum_sq(xr)
            continue
        # The output of row r and the sum of squares of row r + 1 in one pass (see above).
        inv32 = np.float32(inv)
        nxt = x[r + 1]
        nbuf = bufs[(r + 1) % 2]
        orow = out[r]
        total = np.float32(0.0)
        comp = np.float32(0.0)
        for j0 in range(0, h, SUM_BLOCK):
            j1 = min(j0 + SUM_BLOCK, h)
            part = _rms_out_next(xr[j0:j1], w[j0:j1], orow[j0:j1], inv32, nxt[j0:j1], nbuf[j0:j1])
            total, comp = add_compensated(total, comp, part)
        ss = total + comp
        xr = f32_out_row(nxt, nbuf)  # float32: the row itself; 16-bit: its widened values


@numba.njit(fastmath=FAST, **JIT)
def _row_sum(row):  # pragma: no cover - compiled
    """Plain float32 sum of a 1-D float32 row: blocks, compensated across blocks (LayerNorm's shift)."""
    total = np.float32(0.0)
    comp = np.float32(0.0)
    for j0 in range(0, row.size, SUM_BLOCK):
        total, comp = add_compensated(total, comp, _sum_block(row[j0 : j0 + SUM_BLOCK]))
    return total + comp


@numba.njit(fastmath=FAST, **JIT)
def _ln_stats(row):  # pragma: no cover - compiled
    """(shift k, mean of row - k, variance) of a 1-D float32 row, all sums in float32.

    The shift is the row's plain float32 mean, which is only a few ulps of the largest |x| off the
    true mean. Sums of d = x - k then stay small, so their rounding errors are relative to the
    row's spread (not to a large common offset, nor to one outlier that a shift by x[0] would put
    into every d), and the one-pass variance E[d^2] - E[d]^2 cannot cancel (E[d] is tiny).
    """
    h = row.size
    k = _row_sum(row) / np.float32(h)
    t1 = np.float32(0.0)
    c1 = np.float32(0.0)
    t2 = np.float32(0.0)
    c2 = np.float32(0.0)
    for j0 in range(0, h, SUM_BLOCK):
        s1, s2 = _sums_block_shifted(row[j0 : j0 + SUM_BLOCK], k)
        t1, c1 = add_compensated(t1, c1, s1)
        t2, c2 = add_compensated(t2, c2, s2)
    dm, var = _ln_moments(t1 + c1, t2 + c2, h)
    return k, dm, var


@numba.njit(fastmath=FAST, **JIT)
def _ln_moments(sum1, sum2, h):  # pragma: no cover - compiled
    """(mean of d, variance) from the float32 sums of d = x - k and of d**2 over a row of h."""
    dm = sum1 / np.float32(h)
    return dm, np.float32(max(sum2 / np.float32(h) - dm * dm, np.float32(0.0)))


# LayerNorm's shift in one pass: the mean of the row's first _HEAD elements, read just before the pass
# (see the module docstring). Taken from a float32 row (a 16-bit head widened first), so every path
# that meets the row computes the same shift.
_HEAD = 256


@numba.njit(fastmath=FAST, **JIT)
def _head_mean(row):  # pragma: no cover - compiled
    """Mean of the first ``_HEAD`` elements of a 1-D float32 row (all of them if fewer), in float32."""
    c = min(row.size, _HEAD)
    part = np.float32(0.0)
    for j in range(c):
        part += row[j]
    return part / np.float32(c)


@numba.njit(fastmath=FAST, **JIT)
def _ln_stats_given(k, t1, c1, t2, c2, row):  # pragma: no cover - compiled
    """(k, mean of row - k, variance) from the compensated sums of d = row - k and d**2, if k was close
    enough to the row's mean for them; otherwise :func:`_ln_stats` of the row (two more passes over it).

    Accepted when the shift is within a quarter of a standard deviation of the mean (dm**2 <= var / 16)
    and the variance is finite and in float32's comfortable range: then E[d**2] <= 17/16 var, so the
    one-pass E[d**2] - dm**2 loses no more than with the plain mean as the shift, and the sums' rounding
    errors are relative to the row's spread. Anything else (an offset row after a shifted head, rows
    whose squares leave float32's range, NaN, inf) takes the plain-mean route and its usual checks.
    """
    dm, var = _ln_moments(t1 + c1, t2 + c2, row.size)
    if abs(k) < np.float32(np.inf) and var < np.float32(np.inf) and np.float64(var) >= _TINY_PER_ELEMENT \
            and dm * dm <= var * np.float32(0.0625):
        return k, dm, var
    return _ln_stats(row)


@numba.njit(fastmath=FAST, **JIT)
def _ln_sums_pass(row, w, b, orow, k, dm, inv32, nxt, nbuf):  # pragma: no cover - compiled
    """One pass of the pipelined loop: orow = LayerNorm's output of ``row`` (as :func:`_ln_write`) and
    the statistics of the next row ``nxt`` (widened into ``nbuf``) by :func:`_ln_stats_given`, shifted
    by the mean of its head. Returns the statistics."""
    h = nxt.size
    kn = _head_mean(f32_row(nxt[:_HEAD], nbuf))  # a 16-bit head is widened into nbuf (rewritten below)
    t1 = np.float32(0.0)
    c1 = np.float32(0.0)
    t2 = np.float32(0.0)
    c2 = np.float32(0.0)
    for j0 in range(0, h, SUM_BLOCK):
        j1 = min(j0 + SUM_BLOCK, h)
        s1, s2 = _ln_out_next(row[j0:j1], w[j0:j1], b[j0:j1], orow[j0:j1], k, dm, inv32, nxt[j0:j1],
                              nbuf[j0:j1], kn)
        t1, c1 = add_compensated(t1, c1, s1)
        t2, c2 = add_compensated(t2, c2, s2)
    return _ln_stats_given(kn, t1, c1, t2, c2, f32_out_row(nxt, nbuf))


@numba.njit(fastmath={"contract"}, **JIT)  # no reassociation: see _scale_row
def _ln_write(row, w, b, orow, k, dm, inv):  # pragma: no cover - compiled
    if inv < 3.0e38:
        inv32 = np.float32(inv)
        for j in range(row.size):
            orow[j] = narrow(_ln_value(row[j], k, dm, inv32, w[j], b[j]), orow)
    else:  # var + eps below float32's range (a constant row with a tiny eps): 1/std is beyond float32
        for j in range(row.size):
            orow[j] = narrow(_deviation(row[j], k, dm) * inv * w[j] + b[j], orow)


@numba.njit(fastmath=FAST, **JIT)
def _layernorm_rows(x, w, b, out, eps):  # pragma: no cover - compiled
    rows, h = x.shape
    scratch = np.empty(h, dtype=np.float32)
    bufs = np.empty((2, h), dtype=np.float32)  # as in _rmsnorm_rows
    # A row that starts a pipeline (the first, or one after a row that took another path) gets its
    # statistics from the same loop, same argument types, with a throwaway output: so they are the bits
    # the pipelined pass would give (a separately compiled sum could be vectorised in another order).
    junk = np.empty(h, dtype=out.dtype)
    zeros = np.zeros(h, dtype=np.float32)
    zero = np.float32(0.0)
    k, dm, var = _ln_sums_pass(zeros, w, b, junk, zero, zero, zero, x[0], bufs[0])
    xr = f32_out_row(x[0], bufs[0])
    for r in range(rows):
        row = xr
        s = 1.0
        if not (abs(k) < np.float32(np.inf) and _squares_in_range(var, 1)):
            # Deviations or their squares beyond float32's range: redo the row scaled by a power of
            # two (exact); variance and eps then scale by s**2, and the normalised row is unchanged.
            s = _pow2_scale(row, scratch)
            if s != 0.0:
                row = scratch
                k, dm, var = _ln_stats(row)
            else:
                s = 1.0
        inv = 1.0 / math.sqrt(np.float64(var) + eps * (s * s))
        if r + 1 == rows:
            _ln_write(row, w, b, out[r], k, dm, inv)
        elif not inv < 3.0e38:
            _ln_write(row, w, b, out[r], k, dm, inv)
            nbuf = bufs[(r + 1) % 2]
            k, dm, var = _ln_sums_pass(zeros, w, b, junk, zero, zero, zero, x[r + 1], nbuf)
            xr = f32_out_row(x[r + 1], nbuf)
        else:
            # The output of row r and the statistics of row r + 1 in one pass (see above _rms_out_next).
            nbuf = bufs[(r + 1) % 2]
            k, dm, var = _ln_sums_pass(row, w, b, out[r], k, dm, np.float32(inv), x[r + 1], nbuf)
            xr = f32_out_row(x[r + 1], nbuf)


@numba.njit(fastmath=FAST, **JIT)
def _add_sum_sq_block_f32(x, res):  # pragma: no cover - compiled
    """res += x for a float32 res (the stored sum is the value normalised); the sums' sum of squares."""
    part = np.float32(0.0)
    for j in range(res.size):
        v = res[j] + widen(x[j])
        res[j] = v
        part += v * v
    return part


@numba.njit(fastmath=FAST, **JIT)
def _add_sum_sq_block_16(x, res, rf):  # pragma: no cover - compiled
    """res += x rounded to a 16-bit res; rf = the rounded sums as float32; their sum of squares."""
    part = np.float32(0.0)
    for j in range(res.size):
        q = narrow(widen(res[j]) + widen(x[j]), res)
        res[j] = q
        v = widen(q)
        rf[j] = v
        part += v * v
    return part


def _add_sum_sq_block(x, res, rf):  # pragma: no cover - replaced by the overload inside numba
    raise NotImplementedError("only callable from numba-compiled code")


@overload(_add_sum_sq_block)
def _add_sum_sq_block_overload(x, res, rf):  # pragma: no cover - compiled
    # A float32 res is its own float32 copy (rf is res): one store per element, or the two stores to
    # the same address would defeat vectorisation (measured: 3x slower).
    if res.dtype == types.float32:
        return lambda x, res, rf: _add_sum_sq_block_f32(x, res)
    return lambda x, res, rf: _add_sum_sq_block_16(x, res, rf)


@numba.njit(fastmath=FAST, **JIT)
def _residual_rmsnorm_rows(x, res, w, out, eps):  # pragma: no cover - compiled
    # The sum is rounded to res's dtype and stored; the stored value (as float32 in rr) is normalised.
    rows, h = x.shape
    scratch = np.empty(h, dtype=np.float32)
    rs = np.empty(h, dtype=np.float32)  # a 16-bit residual row's new values (unused for float32)
    for r in range(rows):
        # Fetching the next output row ready for writing lets its misses overlap this row's (97% -> 123%).
        prefetch_row_for_write(out[min(r + 1, rows - 1)])
        xr = x[r]
        rr = f32_out_row(res[r], rs)
        total = np.float32(0.0)
        comp = np.float32(0.0)
        for j0 in range(0, h, SUM_BLOCK):
            j1 = j0 + SUM_BLOCK
            part = _add_sum_sq_block(xr[j0:j1], res[r, j0:j1], rr[j0:j1])
            total, comp = add_compensated(total, comp, part)
        ss = total + comp
        ms = np.float64(ss) / h if _squares_in_range(ss, h) else _mean_sq(rr, scratch)
        _scale_row(rr, w, out[r], 1.0 / math.sqrt(ms + eps))


def _rows(a: np.ndarray, h: int) -> np.ndarray:
    return a.reshape(-1, h)


# --------------------------------------------------------------------------- checks and costs

def _check_row_param(kernel: str, name: str, v, x) -> None:
    h = int(x.shape[-1])
    require_shape(kernel, name, v, (h,), "the last dim of x")


def _rmsnorm_check(x, weight, out, eps) -> None:
    require_dtype("rmsnorm", "x", x, FLOAT_DTYPES)
    require_min_ndim("rmsnorm", "x", x, 1)
    require_same_dtype("rmsnorm", ("x", "weight", "out"), (x, weight, out))
    _check_row_param("rmsnorm", "weight", weight, x)
    require_shape("rmsnorm", "out", out, shape_of(x), "same as x")
    require_real("rmsnorm", "eps", eps, min_value=0.0)


def _rows_and_h(x) -> tuple[int, int]:
    h = int(x.shape[-1])
    return (numel(shape_of(x)) // h if h else 0), h


def _rmsnorm_cost(x, weight, out, eps) -> Cost:
    rows, h = _rows_and_h(x)
    return Cost(flops=float(_RMS_FLOPS_ELEM * rows * h + _ROW_FLOPS * rows),
                bytes_read=nbytes_of(x) + nbytes_of(weight), bytes_written=nbytes_of(out))


def _layernorm_check(x, weight, bias, out, eps) -> None:
    require_dtype("layernorm", "x", x, FLOAT_DTYPES)
    require_min_ndim("layernorm", "x", x, 1)
    require_same_dtype("layernorm", ("x", "weight", "bias", "out"), (x, weight, bias, out))
    _check_row_param("layernorm", "weight", weight, x)
    _check_row_param("layernorm", "bias", bias, x)
    require_shape("layernorm", "out", out, shape_of(x), "same as x")
    require_real("layernorm", "eps", eps, min_value=0.0)


def _layernorm_cost(x, weight, bias, out, eps) -> Cost:
    rows, h = _rows_and_h(x)
    return Cost(flops=float(_LN_FLOPS_ELEM * rows * h + _ROW_FLOPS * rows),
                bytes_read=nbytes_of(x) + nbytes_of(weight) + nbytes_of(bias), bytes_written=nbytes_of(out))


def _residual_check(x, residual, weight, out, eps) -> None:
    k = "residual_add_rmsnorm"
    require_dtype(k, "x", x, FLOAT_DTYPES)
    require_min_ndim(k, "x", x, 1)
    require_same_dtype(k, ("x", "weight", "out"), (x, weight, out))
    if dtype_name(residual) not in (dtype_name(x), "float32"):
        fail(k, "residual", f"has dtype {dtype_name(residual)}; expected {dtype_name(x)} (as x) or float32")
    require_shape(k, "residual", residual, shape_of(x), "same as x")
    _check_row_param(k, "weight", weight, x)
    require_shape(k, "out", out, shape_of(x), "same as x")
    require_real(k, "eps", eps, min_value=0.0)


def _residual_cost(x, residual, weight, out, eps) -> Cost:
    rows, h = _rows_and_h(x)
    return Cost(flops=float((_RMS_FLOPS_ELEM + 1) * rows * h + _ROW_FLOPS * rows),
                bytes_read=nbytes_of(x) + nbytes_of(residual) + nbytes_of(weight),
                bytes_written=nbytes_of(residual) + nbytes_of(out))


# --------------------------------------------------------------------------- run

def _rmsnorm_run(x: np.ndarray, weight: np.ndarray, out: np.ndarray, eps: float) -> None:
    if x.size == 0:
        return
    h = x.shape[-1]
    buf = lanes_out(out)
    _rmsnorm_rows(_rows(lanes(x), h), to_f32(weight), _rows(buf, h), float(eps))
    lanes_store(out, buf)


def _layernorm_run(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, out: np.ndarray, eps: float) -> None:
    if x.size == 0:
        return
    h = x.shape[-1]
    buf = lanes_out(out)
    _layernorm_rows(_rows(lanes(x), h), to_f32(weight), to_f32(bias), _rows(buf, h), float(eps))
    lanes_store(out, buf)


def _residual_run(x: np.ndarray, residual: np.ndarray, weight: np.ndarray, out: np.ndarray, eps: float) -> None:
    if x.size == 0:
        return
    h = x.shape[-1]
    if residual.dtype == np.float16 and not F16_IN_REGISTER:
        # No in-register half conversions: add and round in numpy, then normalise the rounded sums.
        residual[...] = (residual.astype(np.float32) + x.astype(np.float32)).astype(np.float16)
        _rmsnorm_run(residual, weight, out, eps)
        return
    res = lanes_inout(residual)
    buf = lanes_out(out)
    # A 16-bit residual's sum is rounded to its dtype before it is normalised (inside the kernel).
    _residual_rmsnorm_rows(_rows(lanes(x), h), _rows(res, h), to_f32(weight), _rows(buf, h), float(eps))
    lanes_store(residual, res)
    lanes_store(out, buf)


# --------------------------------------------------------------------------- goldens (float64, obvious)

def _rmsnorm64(x: np.ndarray, weight: np.ndarray, eps: float) -> np.ndarray:
    xd = x.astype(np.float64)
    mean_sq = np.mean(xd * xd, axis=-1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):  # an all-zero row with eps=0 is 0/0 = nan
        return xd / np.sqrt(mean_sq + eps) * weight.astype(np.float64)


def _rmsnorm_golden(x: np.ndarray, weight: np.ndarray, out: np.ndarray, eps: float) -> None:
    if x.size == 0:
        return
    out[...] = _rmsnorm64(x, weight, float(eps)).astype(out.dtype)


def _layernorm_golden(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, out: np.ndarray, eps: float) -> None:
    if x.size == 0:
        return
    xd = x.astype(np.float64)
    mean = np.mean(xd, axis=-1, keepdims=True)
    var = np.mean((xd - mean) ** 2, axis=-1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):  # a constant row with eps=0 is 0/0 = nan
        y = (xd - mean) / np.sqrt(var + float(eps)) * weight.astype(np.float64) + bias.astype(np.float64)
    out[...] = y.astype(out.dtype)


def _residual_golden(x: np.ndarray, residual: np.ndarray, weight: np.ndarray, out: np.ndarray, eps: float) -> None:
    if x.size == 0:
        return
    residual[...] = (residual.astype(np.float64) + x.astype(np.float64)).astype(residual.dtype)
    out[...] = _rmsnorm64(residual, weight, float(eps)).astype(out.dtype)


# --------------------------------------------------------------------------- registration

RMSNORM = register_kernel(Kernel(
    name="rmsnorm",
    params=(_P("x", _IN), _P("weight", _IN), _P("out", _OUT), _P("eps", _SCALAR)),
    run_fn=_rmsnorm_run, golden_fn=_rmsnorm_golden, check_fn=_rmsnorm_check, cost_fn=_rmsnorm_cost,
    tolerances=_TOL, dtypes=FLOAT_DTYPES,
    doc="out = x / sqrt(mean(x^2, last axis) + eps) * weight",
))

LAYERNORM = register_kernel(Kernel(
    name="layernorm",
    params=(_P("x", _IN), _P("weight", _IN), _P("bias", _IN), _P("out", _OUT), _P("eps", _SCALAR)),
    run_fn=_layernorm_run, golden_fn=_layernorm_golden, check_fn=_layernorm_check, cost_fn=_layernorm_cost,
    tolerances=_LN_TOL, dtypes=FLOAT_DTYPES,
    doc="out = (x - mean) / sqrt(var + eps) * weight + bias, over the last axis",
))

RESIDUAL_ADD_RMSNORM = register_kernel(Kernel(
    name="residual_add_rmsnorm",
    params=(_P("x", _IN), _P("residual", _INOUT), _P("weight", _IN), _P("out", _OUT), _P("eps", _SCALAR)),
    run_fn=_residual_run, golden_fn=_residual_golden, check_fn=_residual_check, cost_fn=_residual_cost,
    tolerances=_TOL, dtypes=FLOAT_DTYPES,
    doc="residual += x; out = rmsnorm(residual) * weight (fused)",
))
