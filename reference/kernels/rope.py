"""Rotary position embedding (RoPE), rotate-half form.

Applied to queries and keys before attention. Upstream's Qwen3 decode folds it
into the attention extern (``examples/a2a3/tensormap_and_ringbuffer/
qwen3_14b_decode``, README "Dataflow per layer": per-head RMSNorm, RoPE, the
paged KV write, ...) and DeepSeek-V4 has standalone ``*_rope`` AIV kernels
(``deepseek_v4_flash_decode/kernels/aiv/qr_rope.cpp``, ``hca_rope.cpp``).

Layout: ``x [T, H, D]`` (tokens, heads, head dim; D even), per-token tables
``cos [T, D/2]`` and ``sin [T, D/2]`` already gathered for each token's
position, ``out [T, H, D]``. With ``x1 = x[..., :D/2]`` and ``x2 = x[..., D/2:]``:

    out[..., :D/2] = x1 * cos - x2 * sin
    out[..., D/2:] = x2 * cos + x1 * sin

(the "rotate half" / GPT-NeoX pairing used by LLaMA and Qwen; the interleaved
GPT-J pairing is a different layout and not modelled here). ``out`` may be
``x`` itself.

Arithmetic. Each output is ``RN32(x1*cos - x2*sin)``: the exact value rounded
once to float32 (then to the 16-bit dtype, for 16-bit tensors). float32 inputs
are rotated in float64, because ``x1*cos - x2*sin`` can cancel: both products
are exact there and their difference is rounded once or twice (float64, then
float32) to the same float32. 16-bit inputs are rotated in float32, which gives
the same bits at twice the SIMD width, as long as both products are exact in
float32. Then the float32 difference is ``RN32`` of the exact one; and the
float64 route gives that too: its difference is exact unless one product is
below 2**-31 of the other, and then both routes return the larger product.

* float16: always. Products of two float16 values have at most 22 significant
  bits and lie in [2**-48, 2**32): exact in float32.
* bfloat16: products have 16 significant bits but bfloat16 spans float32's
  exponent range, so a product can overflow or fall below float32's normal
  range. So a token's tables are checked (every ``|cos|, |sin| <= 1`` and
  none nonzero below 2**-60), and each row of ``x`` (none nonzero below
  2**-66: a 16-bit minimum over its bit patterns, a few percent of the row's
  cost). Then every product is 0 or in [2**-126, |x|]: normal and exact. A
  token or row that fails (tiny, huge or non-finite values) is rotated in
  float64, as float32 inputs are.

Memory traffic: one pass reading ``x``, ``cos`` and ``sin`` once and writing
``out`` once in their own dtype (16-bit values widened in registers, results
rounded as they are stored, ``_numerics.lanes``; the row check reads a row that
the rotation then finds in L1): exactly the minimum, ``Cost.bytes_moved``.
"""

from __future__ import annotations

import numba
import numpy as np

from reference.kernel import Cost, Direction, Kernel, Param, nbytes_of
from reference.kernel_table import register_kernel
from reference.kernels._checks import (
    FLOAT_DTYPES,
    fail,
    numel,
    require_dtype,
    require_ndim,
    require_same_dtype,
    require_shape,
    shape_of,
)
from reference.kernels._numerics import JIT, lanes, lanes_out, lanes_store, narrow, widen

_TOL = {"float32": (2e-6, 1e-30), "float16": (2e-3, 1e-7), "bfloat16": (1e-2, 1e-30)}

# Per rotated pair: 4 multiplies + 2 adds, i.e. 3 flops per element of x.
_FLOPS_PER_ELEMENT = 3


@numba.njit(**JIT)
def _rope_body(x, cos, sin, out):  # pragma: no cover - compiled
    """Rotation in float64: float32 tensors (and 16-bit ones, row by row, where float32 would not do)."""
    t_n, h_n, d = x.shape
    half = d // 2
    c = np.empty(half, dtype=np.float64)  # this token's tables, widened once for all its heads
    s = np.empty(half, dtype=np.float64)
    for t in range(t_n):
        ct, st = cos[t], sin[t]
        for i in range(half):
            c[i] = widen(ct[i])
            s[i] = widen(st[i])
        for h in range(h_n):
            xr, orow = x[t, h], out[t, h]  # 1-D rows: unit strides that LLVM vectorises
            for i in range(half):
                x1 = np.float64(widen(xr[i]))
                x2 = np.float64(widen(xr[i + half]))
                orow[i] = narrow(x1 * c[i] - x2 * s[i], orow)
                orow[i + half] = narrow(x2 * c[i] + x1 * s[i], orow)


# bfloat16 magnitudes as bit patterns (sign cleared): 1.0, 2**-60 (tables) and 2**-66 (rows).
_BF16_ONE = np.uint16(0x3F80)
_BF16_TABLE_MIN = np.uint16(67 << 7)
_BF16_ROW_MIN = np.uint16(61 << 7)
_U16 = np.uint16


@numba.njit(**JIT)
def _least_nonzero(bits):  # pragma: no cover - compiled
    """Least nonzero magnitude among bfloat16 bit patterns, less one (0xFFFF if all are zero).

    In 16-bit lanes (zero wraps to the top), so LLVM vectorises it sixteen to a register.
    """
    m = _U16(0xFFFF)
    for i in range(bits.size):
        m = min(m, _U16(_U16(bits[i] & _U16(0x7FFF)) - _U16(1)))
    return m


@numba.njit(**JIT)
def _largest(bits):  # pragma: no cover - compiled
    """Largest magnitude among bfloat16 bit patterns (as bits, sign cleared)."""
    m = _U16(0)
    for i in range(bits.size):
        m = max(m, _U16(bits[i] & _U16(0x7FFF)))
    return m


@numba.njit(**JIT)
def _rope_body_16(x, cos, sin, out, checked):  # pragma: no cover - compiled
    """16-bit lanes: rotation in float32, except (``checked``: bfloat16) tokens or rows whose products
    could be inexact there, which :func:`_rope_body` rotates in float64."""
    t_n, h_n, d = x.shape
    half = d // 2
    c = np.empty(half, dtype=np.float32)
    s = np.empty(half, dtype=np.float32)
    for t in range(t_n):
        ct, st = cos[t], sin[t]
        for i in range(half):
            c[i] = widen(ct[i])
            s[i] = widen(st[i])
        table_ok = True
        if checked:
            table_ok = (max(_largest(ct), _largest(st)) <= _BF16_ONE
                        and min(_least_nonzero(ct), _least_nonzero(st)) >= _BF16_TABLE_MIN - _U16(1))
        for h in range(h_n):
            xr, orow = x[t, h], out[t, h]
            if not (table_ok and (not checked or _least_nonzero(xr) >= _BF16_ROW_MIN - _U16(1))):
                _rope_body(x[t:t + 1, h:h + 1], cos[t:t + 1], sin[t:t + 1], out[t:t + 1, h:h + 1])
                continue
            for i in range(half):
                x1 = widen(xr[i])
                x2 = widen(xr[i + half])
                orow[i] = narrow(x1 * c[i] - x2 * s[i], orow)
                orow[i + half] = narrow(x2 * c[i] + x1 * s[i], orow)


def _check(x, cos, sin, out) -> None:
    require_dtype("rope", "x", x, FLOAT_DTYPES)
    require_ndim("rope", "x", x, 3, "[tokens, heads, head_dim]")
    t, _, d = shape_of(x)
    if d % 2:
        fail("rope", "x", f"has head_dim {d}; RoPE rotates pairs, so it must be even")
    require_same_dtype("rope", ("x", "cos", "sin", "out"), (x, cos, sin, out))
    require_shape("rope", "cos", cos, (t, d // 2), "[tokens, head_dim/2]")
    require_shape("rope", "sin", sin, (t, d // 2), "[tokens, head_dim/2]")
    require_shape("rope", "out", out, shape_of(x), "same as x")


def _run(x: np.ndarray, cos: np.ndarray, sin: np.ndarray, out: np.ndarray) -> None:
    if x.size == 0:
        return
    buf = lanes_out(out)
    lx = lanes(x)
    if lx.dtype == np.float32:
        _rope_body(lx, lanes(cos), lanes(sin), buf)
    else:  # bfloat16 lanes are uint16, float16 ones int16: only bfloat16 needs the exactness checks
        _rope_body_16(lx, lanes(cos), lanes(sin), buf, lx.dtype == np.uint16)
    lanes_store(out, buf)


def _golden(x: np.ndarray, cos: np.ndarray, sin: np.ndarray, out: np.ndarray) -> None:
    half = x.shape[-1] // 2
    xd = x.astype(np.float64)
    x1, x2 = xd[..., :half], xd[..., half:]
    c = cos.astype(np.float64)[:, None, :]  # broadcast over heads
    s = sin.astype(np.float64)[:, None, :]
    rotated = np.concatenate([x1 * c - x2 * s, x2 * c + x1 * s], axis=-1)
    out[...] = rotated.astype(out.dtype)


def _cost(x, cos, sin, out) -> Cost:
    return Cost(flops=float(_FLOPS_PER_ELEMENT * numel(shape_of(x))),
                bytes_read=nbytes_of(x) + nbytes_of(cos) + nbytes_of(sin), bytes_written=nbytes_of(out))


ROPE = register_kernel(Kernel(
    name="rope",
    params=(Param("x", Direction.IN), Param("cos", Direction.IN), Param("sin", Direction.IN),
            Param("out", Direction.OUT)),
    run_fn=_run, golden_fn=_golden, check_fn=_check, cost_fn=_cost,
    tolerances=_TOL, dtypes=FLOAT_DTYPES,
    doc="rotary embedding, rotate-half pairing; x/out [T, H, D], cos/sin [T, D/2]",
))
