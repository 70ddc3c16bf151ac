"""Elementwise vector kernels: add, add_scalar, mul, axpy and the fused add_mul.

These model the AIV vector tiles of upstream's smallest examples:
``examples/a2a3/tensormap_and_ringbuffer/vector_example`` builds
``f = (a+b+1)*(a+b+2) + (a+b)`` from ``kernel_add``, ``kernel_add_scalar`` and
``kernel_mul``; ``examples/workers/l2/vector_add`` is one ``add``; and
``benchmark_bgemm`` accumulates GEMM tiles with ``kernel_tile_add``.
``add_mul`` is the fused form of the add-then-mul chain (one pass over memory
instead of two), the kind of fusion the pypto code generator emits.

All operands have the same shape and dtype (no broadcasting). Floating-point
kernels compute in float32 and round once to the output dtype; integer add/mul
wrap around (two's complement), as the hardware's integer vector ops do.

Memory traffic: every kernel is one pass that reads each input element once and
writes each output element once, in the tensors' own dtype (16-bit values are
widened in registers and rounded on the way out, ``_numerics.lanes``), so it
moves exactly the minimum, ``Cost.bytes_moved``: the inputs' bytes plus the
output's (axpy: ``x`` and ``y`` read, ``y`` written). Only a non-contiguous
operand adds a copy.
"""

from __future__ import annotations

import numba
import numpy as np

from reference.kernel import Cost, Direction, Kernel, Param, nbytes_of
from reference.kernel_table import register_kernel
from reference.kernels._checks import (
    ALL_DTYPES,
    FLOAT_DTYPES,
    numel,
    require_dtype,
    require_real,
    require_same_dtype,
    require_shape,
    shape_of,
)
from reference.kernels._numerics import JIT, lanes, lanes_inout, lanes_out, lanes_store, narrow, widen

_P = Param
_IN, _OUT, _INOUT, _SCALAR = Direction.IN, Direction.OUT, Direction.INOUT, Direction.SCALAR

# One rounding of an exact (or nearly exact) result: 1 ulp of slack for the
# float32-vs-float64 double rounding, plus a tiny atol for subnormal results.
_TOL = {
    "float32": (2e-6, 1e-30),
    "float16": (2e-3, 1e-7),
    "bfloat16": (1e-2, 1e-30),
    "int32": (0.0, 0.0),
    "int8": (0.0, 0.0),
}
_FLOAT_TOL = {k: v for k, v in _TOL.items() if k in FLOAT_DTYPES}


# --------------------------------------------------------------------------- numba bodies (flat, contiguous)

@numba.njit(**JIT)
def _add_flat(a, b, out):  # pragma: no cover - compiled
    for i in range(out.size):
        out[i] = narrow(widen(a[i]) + widen(b[i]), out)


@numba.njit(**JIT)
def _mul_flat(a, b, out):  # pragma: no cover - compiled
    for i in range(out.size):
        out[i] = narrow(widen(a[i]) * widen(b[i]), out)


@numba.njit(**JIT)
def _add_scalar_flat(x, value, out):  # pragma: no cover - compiled
    for i in range(out.size):
        out[i] = narrow(widen(x[i]) + value, out)


@numba.njit(**JIT)
def _axpy_flat(x, y, alpha):  # pragma: no cover - compiled
    for i in range(y.size):
        y[i] = narrow(alpha * widen(x[i]) + widen(y[i]), y)


@numba.njit(**JIT)
def _add_mul_flat(a, b, c, out):  # pragma: no cover - compiled
    for i in range(out.size):
        out[i] = narrow(np.float32(widen(a[i]) + widen(b[i])) * widen(c[i]), out)


def _flat(a: np.ndarray) -> np.ndarray:
    return a.reshape(-1)


def _binary_runner(body):
    def run(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> None:
        buf = lanes_out(out)
        body(_flat(lanes(a)), _flat(lanes(b)), _flat(buf))
        lanes_store(out, buf)

    return run


def _golden_wide(a: np.ndarray) -> np.ndarray:
    """The golden's working precision: float64 for floats, int64 for ints (wrap on the way out)."""
    return a.astype(np.int64 if a.dtype.kind == "i" else np.float64)


# --------------------------------------------------------------------------- add / mul

def _binary_check(kernel: str, dtypes: tuple[str, ...]):
    def check(a, b, out) -> None:
        require_dtype(kernel, "a", a, dtypes)
        require_same_dtype(kernel, ("a", "b", "out"), (a, b, out))
        require_shape(kernel, "b", b, shape_of(a), "same as a")
        require_shape(kernel, "out", out, shape_of(a), "same as a")

    return check


def _binary_cost(a, b, out) -> Cost:
    return Cost(flops=float(numel(shape_of(out))), bytes_read=nbytes_of(a) + nbytes_of(b),
                bytes_written=nbytes_of(out))


def _add_golden(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> None:
    out[...] = (_golden_wide(a) + _golden_wide(b)).astype(out.dtype)


def _mul_golden(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> None:
    out[...] = (_golden_wide(a) * _golden_wide(b)).astype(out.dtype)


ADD = register_kernel(Kernel(
    name="add",
    params=(_P("a", _IN), _P("b", _IN), _P("out", _OUT)),
    run_fn=_binary_runner(_add_flat), golden_fn=_add_golden, check_fn=_binary_check("add", ALL_DTYPES),
    cost_fn=_binary_cost, tolerances=_TOL, dtypes=ALL_DTYPES,
    doc="out = a + b, elementwise; same shape and dtype; integers wrap",
))

MUL = register_kernel(Kernel(
    name="mul",
    params=(_P("a", _IN), _P("b", _IN), _P("out", _OUT)),
    run_fn=_binary_runner(_mul_flat), golden_fn=_mul_golden, check_fn=_binary_check("mul", ALL_DTYPES),
    cost_fn=_binary_cost, tolerances=_TOL, dtypes=ALL_DTYPES,
    doc="out = a * b, elementwise; same shape and dtype; integers wrap",
))


# --------------------------------------------------------------------------- add_scalar

def _add_scalar_check(x, out, value) -> None:
    require_dtype("add_scalar", "x", x, FLOAT_DTYPES)
    require_same_dtype("add_scalar", ("x", "out"), (x, out))
    require_shape("add_scalar", "out", out, shape_of(x), "same as x")
    require_real("add_scalar", "value", value)


def _add_scalar_run(x: np.ndarray, out: np.ndarray, value: float) -> None:
    buf = lanes_out(out)
    _add_scalar_flat(_flat(lanes(x)), _scalar_for_sum(float(value)), _flat(buf))
    lanes_store(out, buf)


def _scalar_for_sum(value: float) -> float | np.float32:
    """The scalar as the loop should add it to float32 values: float32 when that is exact, else float64.

    The kernel's sum is x + value rounded to float32 (then to out's dtype). A float64 scalar makes that a
    float64 add and a rounding, with conversions to and from float64 around it: twice the vector
    instructions. When ``value`` is a float32, a float32 add gives the same bits: x + value rounded to
    float64 and then to float32 equals x + value rounded once to float32, since double rounding through a
    format of 53 >= 2 * 24 + 2 bits is innocuous for a sum of two float32 values (Figueroa, 1995).
    """
    with np.errstate(over="ignore"):
        narrow32 = np.float32(value)
    return narrow32 if float(narrow32) == value else value  # compared as float64 (numpy would compare in float32)


def _add_scalar_golden(x: np.ndarray, out: np.ndarray, value: float) -> None:
    out[...] = (x.astype(np.float64) + float(value)).astype(out.dtype)


def _add_scalar_cost(x, out, value) -> Cost:
    return Cost(flops=float(numel(shape_of(x))), bytes_read=nbytes_of(x), bytes_written=nbytes_of(out))


ADD_SCALAR = register_kernel(Kernel(
    name="add_scalar",
    params=(_P("x", _IN), _P("out", _OUT), _P("value", _SCALAR)),
    run_fn=_add_scalar_run, golden_fn=_add_scalar_golden, check_fn=_add_scalar_check,
    cost_fn=_add_scalar_cost, tolerances=_FLOAT_TOL, dtypes=FLOAT_DTYPES,
    doc="out = x + value (a scalar), elementwise",
))


# --------------------------------------------------------------------------- axpy

def _axpy_check(x, y, alpha) -> None:
    require_dtype("axpy", "x", x, FLOAT_DTYPES)
    require_same_dtype("axpy", ("x", "y"), (x, y))
    require_shape("axpy", "y", y, shape_of(x), "same as x")
    require_real("axpy", "alpha", alpha)


def _axpy_run(x: np.ndarray, y: np.ndarray, alpha: float) -> None:
    buf = lanes_inout(y)
    _axpy_flat(_flat(lanes(x)), _flat(buf), float(alpha))
    lanes_store(y, buf)


def _axpy_golden(x: np.ndarray, y: np.ndarray, alpha: float) -> None:
    y[...] = (float(alpha) * x.astype(np.float64) + y.astype(np.float64)).astype(y.dtype)


def _axpy_cost(x, y, alpha) -> Cost:
    return Cost(flops=2.0 * numel(shape_of(x)), bytes_read=nbytes_of(x) + nbytes_of(y), bytes_written=nbytes_of(y))


AXPY = register_kernel(Kernel(
    name="axpy",
    params=(_P("x", _IN), _P("y", _INOUT), _P("alpha", _SCALAR)),
    run_fn=_axpy_run, golden_fn=_axpy_golden, check_fn=_axpy_check, cost_fn=_axpy_cost,
    tolerances=_FLOAT_TOL, dtypes=FLOAT_DTYPES,
    doc="y = alpha * x + y in place (BLAS axpy; the scalar comes last, as every scalar here)",
))


# --------------------------------------------------------------------------- add_mul (fused)

def _add_mul_check(a, b, c, out) -> None:
    require_dtype("add_mul", "a", a, FLOAT_DTYPES)
    require_same_dtype("add_mul", ("a", "b", "c", "out"), (a, b, c, out))
    for name, v in (("b", b), ("c", c), ("out", out)):
        require_shape("add_mul", name, v, shape_of(a), "same as a")


def _add_mul_run(a: np.ndarray, b: np.ndarray, c: np.ndarray, out: np.ndarray) -> None:
    buf = lanes_out(out)
    _add_mul_flat(_flat(lanes(a)), _flat(lanes(b)), _flat(lanes(c)), _flat(buf))
    lanes_store(out, buf)


def _add_mul_golden(a: np.ndarray, b: np.ndarray, c: np.ndarray, out: np.ndarray) -> None:
    total = a.astype(np.float64) + b.astype(np.float64)
    out[...] = (total * c.astype(np.float64)).astype(out.dtype)


def _add_mul_cost(a, b, c, out) -> Cost:
    return Cost(flops=2.0 * numel(shape_of(a)), bytes_read=nbytes_of(a) + nbytes_of(b) + nbytes_of(c),
                bytes_written=nbytes_of(out))


# The intermediate a + b is rounded to float32 on the fast path: two roundings.
_ADD_MUL_TOL = {"float32": (5e-6, 1e-30), "float16": (2e-3, 1e-7), "bfloat16": (1e-2, 1e-30)}

ADD_MUL = register_kernel(Kernel(
    name="add_mul",
    params=(_P("a", _IN), _P("b", _IN), _P("c", _IN), _P("out", _OUT)),
    run_fn=_add_mul_run, golden_fn=_add_mul_golden, check_fn=_add_mul_check, cost_fn=_add_mul_cost,
    tolerances=_ADD_MUL_TOL, dtypes=FLOAT_DTYPES,
    doc="out = (a + b) * c in one pass (fused add then mul)",
))
