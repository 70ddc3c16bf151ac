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
``x`` itself. The fast path does the rotation in float64 because ``x1*cos -
x2*sin`` can cancel; a float32 rotation would need an absolute tolerance
proportional to ``|x|``. Memory traffic: one pass reading ``x``, ``cos`` and
``sin`` once and writing ``out`` once in their own dtype (16-bit values widened
in registers, results rounded to float32 and then to the 16-bit dtype as they
are stored, ``_numerics.lanes``): exactly the minimum, ``Cost.bytes_moved``.
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
    _rope_body(lanes(x), lanes(cos), lanes(sin), buf)
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
