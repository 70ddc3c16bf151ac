"""Numerically stable row softmax over the last axis.

Softmax is the middle of every attention block; upstream splits it out as its
own AIV task in ``examples/a2a3/tensormap_and_ringbuffer/paged_attention``
(``aiv_softmax_prepare``; README "The four-task loop"), and routers apply it to
expert logits (``deepseek_v4_flash_decode``'s ``scatter_softmax_pool``).

``out = exp(x - max(x)) / sum(exp(x - max(x)))`` row by row, so inputs such as
1e4 do not overflow. ``-inf`` entries (masked positions) get probability 0; a
row that is entirely ``-inf`` has no defined softmax and yields NaN, in the
golden and the fast path alike.

The fast path makes three passes over each row — max, exp (storing it and
summing it), scale by 1/sum — of which only the max reads memory. The next
row's max pass is made inside this row's scale pass (one loop that writes this
row and reads the next, the way a copy does), and the next row is prefetched
during the exp pass, so its reads meet this row's arithmetic and writes rather
than waiting alone. A 16-bit row is widened into a float32 row buffer (in L1)
by its max pass, its exps go to another, and the scale pass rounds them into
``out``: so every dtype reads ``x`` once and writes ``out`` once, in its own
width — exactly the minimum, ``Cost.bytes_moved`` (stores to ``out`` are
ordinary, so memory also reads each destination line once before it is
written). The exp pass is the kernel's arithmetic: it uses
``_numerics.exp_short_nonpos_f32`` (``exp_short_f32`` without the upper clamp,
which ``x - max <= 0`` never needs: about 16 vector instructions per 8
elements, below 5e-7 relative error: the 1e-5 tolerance is mostly for the
rounding of ``x - max``, up to 87 * 2**-24). On a core that copies at ~15
GB/s that pass alone takes about as long as copying the row, so softmax is
bound by it.

The sum is float32: blocks of ``SUM_BLOCK`` terms summed over the vector lanes,
block sums added with compensation, so its relative error stays about 1e-6
whatever the row length (all terms are positive: no cancellation).
"""

from __future__ import annotations

import numba
import numpy as np

from reference.kernel import Cost, Direction, Kernel, Param, nbytes_of
from reference.kernel_table import register_kernel
from reference.kernels._checks import (
    FLOAT_DTYPES,
    numel,
    require_dtype,
    require_min_ndim,
    require_same_dtype,
    require_shape,
    shape_of,
)
from reference.kernels._numerics import (
    FAST,
    JIT,
    SUM_BLOCK,
    _f32_as_i32,
    _i32_as_f32,
    add_compensated,
    exp_short_nonpos_f32,
    f32_out_row,
    f32_row_max,
    keep_wide,
    lanes,
    lanes_out,
    lanes_store,
    narrow,
    prefetch,
    scale_into,
    widen,
)

# float32: x - max is rounded once (|error| <= |x - max| * 2**-24) before exp; exp and the sum add ~1e-6.
_TOL = {"float32": (1e-5, 1e-30), "float16": (2e-3, 1e-7), "bfloat16": (1e-2, 1e-30)}

# Per element: max compare, subtract, exp, add, multiply = 5 (exp counted as one).
_FLOPS_PER_ELEMENT = 5


@numba.njit(fastmath=FAST, inline="always", **JIT)
def _exp_block(x, out, m):  # pragma: no cover - compiled
    """out = exp(x - m) over 1-D slices; returns their float32 sum."""
    part = np.float32(0.0)
    for j in range(x.size):
        e = exp_short_nonpos_f32(x[j] - m)  # x - m <= 0 (or NaN): see the helper
        out[j] = e
        part += e
    return part


@numba.njit(fastmath={"contract"}, inline="always", **JIT)  # no reassociation: see _numerics.scale_f32
def _scale_next_max(src, s, dst, nxt, nbuf):  # pragma: no cover - compiled
    """dst = src * s (rounded to dst's dtype) and the max of the next row ``nxt`` (a 16-bit one widened
    into ``nbuf`` on the way), in one pass; the max as :func:`~reference.kernels._numerics.max_f32`."""
    hi = np.int32(-2147483648)
    lo = np.int32(2147483647)
    for j in range(dst.size):
        dst[j] = narrow(src[j] * s, dst)
        v = widen(nxt[j])
        keep_wide(nbuf, j, v, nxt)
        b = _f32_as_i32(v)
        hi = b if b > hi else hi
        lo = b if b < lo else lo
    return _i32_as_f32(hi if hi >= 0 else lo)


@numba.njit(fastmath=FAST, **JIT)
def softmax_rows(x, out):  # pragma: no cover - compiled
    """Row softmax of a 2-D :func:`~reference.kernels._numerics.lanes` array into ``out`` (may alias ``x``)."""
    rows, n = x.shape
    bufs = np.empty((2, n), dtype=np.float32)  # 16-bit: this row and the next, widened (unused for float32)
    os = np.empty(n, dtype=np.float32)  # a 16-bit output row before rounding (unused for float32)
    line = 64 // x.itemsize  # elements per cache line
    xr, m = f32_row_max(x[0], bufs[0])  # 1-D row slices: unit strides that LLVM vectorises
    for r in range(rows):
        orow = f32_out_row(out[r], os)
        nxt = x[min(r + 1, rows - 1)]
        total = np.float32(0.0)
        comp = np.float32(0.0)
        for j0 in range(0, n, SUM_BLOCK):
            for j in range(j0, min(j0 + SUM_BLOCK, n), line):
                prefetch(nxt, j)  # the next row's max pass then reads from cache
            part = _exp_block(xr[j0 : j0 + SUM_BLOCK], orow[j0 : j0 + SUM_BLOCK], m)
            total, comp = add_compensated(total, comp, part)
        inv = np.float32(1.0) / (total + comp)
        if r + 1 == rows:
            scale_into(orow, inv, out[r])  # 16-bit: rounded as it is stored
        else:
            # The scale pass of this row also makes the max pass of the next (a 16-bit row is widened on
            # the way): one pass less per row, and the next row's reads meet this row's writes.
            nbuf = bufs[(r + 1) % 2]
            m = _scale_next_max(orow, inv, out[r], nxt, nbuf)
            xr = f32_out_row(nxt, nbuf)


def _check(x, out) -> None:
    require_dtype("softmax", "x", x, FLOAT_DTYPES)
    require_min_ndim("softmax", "x", x, 1)
    require_same_dtype("softmax", ("x", "out"), (x, out))
    require_shape("softmax", "out", out, shape_of(x), "same as x")


def _run(x: np.ndarray, out: np.ndarray) -> None:
    if x.size == 0:
        return
    n = x.shape[-1]
    buf = lanes_out(out)
    softmax_rows(lanes(x).reshape(-1, n), buf.reshape(-1, n))
    lanes_store(out, buf)


def _golden(x: np.ndarray, out: np.ndarray) -> None:
    if x.size == 0:
        return
    xd = x.astype(np.float64)
    with np.errstate(invalid="ignore"):  # an all -inf row: -inf - (-inf) = nan, by definition here
        e = np.exp(xd - xd.max(axis=-1, keepdims=True))
        out[...] = (e / e.sum(axis=-1, keepdims=True)).astype(out.dtype)


def _cost(x, out) -> Cost:
    return Cost(flops=float(_FLOPS_PER_ELEMENT * numel(shape_of(x))), bytes_read=nbytes_of(x),
                bytes_written=nbytes_of(out))


SOFTMAX = register_kernel(Kernel(
    name="softmax",
    params=(Param("x", Direction.IN), Param("out", Direction.OUT)),
    run_fn=_run, golden_fn=_golden, check_fn=_check, cost_fn=_cost,
    tolerances=_TOL, dtypes=FLOAT_DTYPES,
    doc="row softmax over the last axis, max-subtracted",
))
