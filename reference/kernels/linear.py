"""Matrix multiply and linear (projection) kernels — the AIC cube work.

``matmul`` is upstream's tiled GEMM (``examples/a2a3/tensormap_and_ringbuffer/
benchmark_bgemm``, ``kernels/aic/kernel_gemm_tile.cpp``); ``linear`` is a
projection ``x @ weight.T`` with a PyTorch-layout weight ``[N, K]``, the form of
the Q/K/V/out and FFN projections in ``qwen3_14b_decode`` (``kernels/aic/
q_proj.cpp``, ``gate_proj.cpp``, ...) and of the local linear of
``examples/workers/l3/ffn_tp_parallel``.

The fast path is BLAS through numpy: float32 directly, 16-bit inputs widened to
float32 so the products accumulate in float32 (as the cube unit does) and the
result is rounded once. int8 operands give an int32 result (W8A8 style); they
go through float64 BLAS, which is exact while ``K * 128 * 128 < 2**53``.

Tolerances assume unit-scale data; the float32 accumulation error grows with
``K * max|a| * max|b|``.
"""

from __future__ import annotations

import numpy as np

from reference.kernel import Cost, Direction, Kernel, Param, nbytes_of
from reference.kernel_table import register_kernel
from reference.kernels._checks import (
    FLOAT_DTYPES,
    dtype_name,
    fail,
    numel,
    require_dtype,
    require_min_ndim,
    require_ndim,
    require_same_dtype,
    require_shape,
    shape_of,
)
from reference.kernels._numerics import f32_buffer, store, to_f32

_DTYPES = (*FLOAT_DTYPES, "int8")
_TOL = {"float32": (1e-4, 1e-4), "float16": (1e-2, 1e-2), "bfloat16": (5e-2, 5e-2), "int32": (0.0, 0.0)}
_P = Param
_IN, _OUT = Direction.IN, Direction.OUT


def _out_dtype(a) -> str:
    return "int32" if dtype_name(a) == "int8" else dtype_name(a)


def _require_out_dtype(kernel: str, a, out) -> None:
    want = _out_dtype(a)
    if dtype_name(out) != want:
        fail(kernel, "out", f"has dtype {dtype_name(out)}; expected {want} for {dtype_name(a)} inputs")


def _product(a: np.ndarray, b: np.ndarray, out: np.ndarray, *, b_transposed: bool = False) -> None:
    """out = a @ b (or a @ b.T) on the fast path; BLAS handles the transpose without a copy."""
    if a.dtype == np.int8:
        b64 = b.astype(np.float64)
        out[...] = np.matmul(a.astype(np.float64), b64.T if b_transposed else b64).astype(np.int32)
    elif a.dtype == np.float32 and out.flags.c_contiguous:
        np.matmul(a, b.T if b_transposed else b, out=out)
    else:
        buf = f32_buffer(out)
        b32 = to_f32(b)  # widen in storage order, then transpose the view
        np.matmul(to_f32(a), b32.T if b_transposed else b32, out=buf)
        store(out, buf)


def _golden_product(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if a.dtype == np.int8:
        return a.astype(np.int64) @ b.astype(np.int64)
    return a.astype(np.float64) @ b.astype(np.float64)


# --------------------------------------------------------------------------- matmul

def _matmul_check(a, b, out) -> None:
    require_dtype("matmul", "a", a, _DTYPES)
    require_same_dtype("matmul", ("a", "b"), (a, b))
    _require_out_dtype("matmul", a, out)
    require_ndim("matmul", "a", a, 2, "[M, K]")
    require_ndim("matmul", "b", b, 2, "[K, N]")
    if a.shape[1] != b.shape[0]:
        fail("matmul", "b", f"has shape {shape_of(b)}; its first dim must equal K={int(a.shape[1])} of a")
    require_shape("matmul", "out", out, (int(a.shape[0]), int(b.shape[1])), "[M, N]")


def _matmul_run(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> None:
    _product(a, b, out)


def _matmul_golden(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> None:
    out[...] = _golden_product(a, b).astype(out.dtype)


def _matmul_cost(a, b, out) -> Cost:
    m, k = (int(d) for d in a.shape)
    n = int(b.shape[1])
    return Cost(flops=2.0 * m * n * k, bytes_read=nbytes_of(a) + nbytes_of(b), bytes_written=nbytes_of(out))


MATMUL = register_kernel(Kernel(
    name="matmul",
    params=(_P("a", _IN), _P("b", _IN), _P("out", _OUT)),
    run_fn=_matmul_run, golden_fn=_matmul_golden, check_fn=_matmul_check, cost_fn=_matmul_cost,
    tolerances=_TOL, dtypes=_DTYPES,
    doc="out[M,N] = a[M,K] @ b[K,N]; int8 inputs give an int32 out",
))


# --------------------------------------------------------------------------- linear

def _linear_check(x, weight, out) -> None:
    require_dtype("linear", "x", x, _DTYPES)
    require_min_ndim("linear", "x", x, 1)
    require_same_dtype("linear", ("x", "weight"), (x, weight))
    _require_out_dtype("linear", x, out)
    require_ndim("linear", "weight", weight, 2, "[N, K]")
    k = int(x.shape[-1])
    if int(weight.shape[1]) != k:
        fail("linear", "weight", f"has shape {shape_of(weight)}; its second dim must equal K={k} (last dim of x)")
    require_shape("linear", "out", out, (*shape_of(x)[:-1], int(weight.shape[0])), "[..., N]")


def _linear_run(x: np.ndarray, weight: np.ndarray, out: np.ndarray) -> None:
    k, n = x.shape[-1], weight.shape[0]
    if out.size == 0:
        return
    if k == 0:  # an empty sum
        out[...] = 0
        return
    out2 = out.reshape(-1, n)  # a view whenever out is contiguous
    _product(x.reshape(-1, k), weight, out2, b_transposed=True)
    if not np.shares_memory(out2, out):
        out[...] = out2.reshape(out.shape)


def _linear_golden(x: np.ndarray, weight: np.ndarray, out: np.ndarray) -> None:
    out[...] = _golden_product(x, weight.T).astype(out.dtype)


def _linear_cost(x, weight, out) -> Cost:
    k = int(x.shape[-1])
    m = numel(shape_of(x)[:-1])
    n = int(weight.shape[0])
    return Cost(flops=2.0 * m * n * k, bytes_read=nbytes_of(x) + nbytes_of(weight), bytes_written=nbytes_of(out))


LINEAR = register_kernel(Kernel(
    name="linear",
    params=(_P("x", _IN), _P("weight", _IN), _P("out", _OUT)),
    run_fn=_linear_run, golden_fn=_linear_golden, check_fn=_linear_check, cost_fn=_linear_cost,
    tolerances=_TOL, dtypes=_DTYPES,
    doc="out[..., N] = x[..., K] @ weight[N, K].T",
))
