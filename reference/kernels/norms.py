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

Row statistics (sum of squares, mean, variance) are accumulated in float64 on
the fast path: on a CPU that costs little in a memory-bound kernel, the sum of
squares cannot overflow for bfloat16 inputs (|x| up to 3e38), and LayerNorm's
``x - mean`` does not cancel catastrophically for rows with a large common
offset. RMSNorm then scales in float32 (two roundings, no cancellation
possible); LayerNorm stays in float64 to the end because its bias add can
cancel. Either way the fast path agrees with the golden to a couple of ulps.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from reference.kernel import Cost, Direction, Kernel, Param, nbytes_of
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
from reference.kernels._numerics import FAST, JIT, f32_buffer, f32_inout, store, to_f32
from reference.registry import register_kernel

_P = Param
_IN, _OUT, _INOUT, _SCALAR = Direction.IN, Direction.OUT, Direction.INOUT, Direction.SCALAR

_TOL = {"float32": (1e-5, 1e-30), "float16": (2e-3, 1e-7), "bfloat16": (1e-2, 1e-30)}

# Flops per element and per row (divide and sqrt count as one each).
_RMS_FLOPS_ELEM, _LN_FLOPS_ELEM, _ROW_FLOPS = 4, 8, 3


# --------------------------------------------------------------------------- numba bodies (2-D, contiguous)

@numba.njit(fastmath=FAST, **JIT)
def _rmsnorm_rows(x, w, out, eps):  # pragma: no cover - compiled
    rows, h = x.shape
    for r in range(rows):
        ss = 0.0
        for j in range(h):
            v = np.float64(x[r, j])
            ss += v * v
        inv = 1.0 / math.sqrt(ss / h + eps)
        if inv < 3.0e38:
            # No cancellation downstream, so the scaling can run in float32 (two roundings).
            inv32 = np.float32(inv)
            for j in range(h):
                out[r, j] = x[r, j] * inv32 * w[j]
        else:  # a (nearly) all-subnormal row with eps = 0: 1/rms is beyond float32
            for j in range(h):
                out[r, j] = x[r, j] * inv * w[j]


@numba.njit(fastmath=FAST, **JIT)
def _layernorm_rows(x, w, b, out, eps):  # pragma: no cover - compiled
    rows, h = x.shape
    for r in range(rows):
        # One pass over x - x[r, 0]: with a shift taken from the row itself the
        # float64 "E[d^2] - E[d]^2" cannot cancel badly (|mean - shift|^2 <= h * var).
        k = np.float64(x[r, 0])
        s1 = 0.0
        s2 = 0.0
        for j in range(h):
            d = x[r, j] - k
            s1 += d
            s2 += d * d
        dm = s1 / h
        mean = k + dm
        inv = 1.0 / math.sqrt(max(s2 / h - dm * dm, 0.0) + eps)
        for j in range(h):
            # float64 to the end: the bias add may cancel, and it must round only once.
            out[r, j] = (x[r, j] - mean) * inv * w[j] + b[j]


@numba.njit(fastmath=FAST, **JIT)
def _residual_rmsnorm_rows(x, res, w, out, eps):  # pragma: no cover - compiled
    # res is float32 here, so the value stored is the value normalised.
    rows, h = x.shape
    for r in range(rows):
        ss = 0.0
        for j in range(h):
            v = res[r, j] + x[r, j]
            res[r, j] = v
            vd = np.float64(v)
            ss += vd * vd
        inv = 1.0 / math.sqrt(ss / h + eps)
        for j in range(h):
            out[r, j] = res[r, j] * inv * w[j]


@numba.njit(**JIT)
def _add_inplace(x, res):  # pragma: no cover - compiled
    for i in range(res.size):
        res[i] = res[i] + x[i]


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
    buf = f32_buffer(out)
    _rmsnorm_rows(_rows(to_f32(x), h), to_f32(weight), _rows(buf, h), float(eps))
    store(out, buf)


def _layernorm_run(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, out: np.ndarray, eps: float) -> None:
    if x.size == 0:
        return
    h = x.shape[-1]
    buf = f32_buffer(out)
    _layernorm_rows(_rows(to_f32(x), h), to_f32(weight), to_f32(bias), _rows(buf, h), float(eps))
    store(out, buf)


def _residual_run(x: np.ndarray, residual: np.ndarray, weight: np.ndarray, out: np.ndarray, eps: float) -> None:
    if x.size == 0:
        return
    h = x.shape[-1]
    res = f32_inout(residual)
    if residual.dtype == np.float32:
        buf = f32_buffer(out)
        _residual_rmsnorm_rows(_rows(to_f32(x), h), _rows(res, h), to_f32(weight), _rows(buf, h), float(eps))
        store(residual, res)
        store(out, buf)
    else:
        # 16-bit residual: the sum must be rounded to its dtype before it is
        # normalised, so add, round, then normalise the rounded values.
        _add_inplace(to_f32(x).reshape(-1), res.reshape(-1))
        store(residual, res)
        _rmsnorm_run(residual, weight, out, eps)


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
    tolerances=_TOL, dtypes=FLOAT_DTYPES,
    doc="out = (x - mean) / sqrt(var + eps) * weight + bias, over the last axis",
))

RESIDUAL_ADD_RMSNORM = register_kernel(Kernel(
    name="residual_add_rmsnorm",
    params=(_P("x", _IN), _P("residual", _INOUT), _P("weight", _IN), _P("out", _OUT), _P("eps", _SCALAR)),
    run_fn=_residual_run, golden_fn=_residual_golden, check_fn=_residual_check, cost_fn=_residual_cost,
    tolerances=_TOL, dtypes=FLOAT_DTYPES,
    doc="residual += x; out = rmsnorm(residual) * weight (fused)",
))
