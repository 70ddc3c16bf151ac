"""Activation kernels: SiLU, GELU (tanh form) and SwiGLU.

These are the nonlinearities of the FFN blocks in upstream's model examples:
``examples/a2a3/tensormap_and_ringbuffer/qwen3_14b_decode`` runs a SwiGLU FFN
(``kernels/aiv/silu.cpp``; README "Dataflow per layer"), and
``deepseek_v4_flash_decode`` fuses the same gate/up activation into its expert
kernels (``exp_gate_up_act``, ``sh_gate_up_act_q``).

* ``silu(x) = x * sigmoid(x)``
* ``gelu(x) = 0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 x^3)))`` — the
  tanh approximation (GPT-2's and Gemma's ``gelu_pytorch_tanh``); the erf form
  would need a special-function library in the golden.
* ``swiglu(gate, up) = silu(gate) * up`` — gate and up are separate tensors of
  the same shape, as the two projections produce them.

Limits of float32 evaluation: where ``sigmoid(x)`` drops below float32's
normal range (x below about -88) it is flushed to 0, so ``silu`` returns 0
for such x (the true value is below 1e-36) — and ``swiglu`` returns 0 even if
``up`` is huge enough to make the exact product larger.

The fast path evaluates ``x * sigmoid(z)`` as ``x / (1 + exp(-z))`` (one
rounding less than a reciprocal and a multiply) with a vectorisable float32 exp
(``_numerics.exp_short_f32``: below 5e-7 relative error, which the 2e-5
tolerance has ample room for), so these run at SIMD speed rather than libm
speed. GELU computes ``0.5 * (1 + tanh(u))`` as ``sigmoid(2u)``, the same
function without the cancellation of ``1 + tanh(u)`` in the negative tail, and
its exp in base 2 (``_numerics.exp2_short_f32``, two multiply-adds fewer): the
argument ``-2u * log2(e) = x * (a + b * x^2)`` (c = sqrt(2/pi), a = -2c log2(e),
b = 0.044715 a; two multiplies and an FMA). Measured against the float64
golden over 3e7 float32 inputs (random bit patterns and a dense grid on [-15,
15]): at most about 1e-5 (9.1e-6) relative error where the result exceeds
1e-30, from the rounding of that argument (|2u| * 2**-24 relative, amplified
up to |2u| = 88 in the tail); about 1e-6 where |x| < 3. The loops
keep IEEE evaluation order (contraction only): reassociation buys no speed
here and could regroup the products.

Memory traffic: one pass that reads each input element once and writes each
output element once in the tensors' own dtype (16-bit values widened in
registers and rounded on the way out, ``_numerics.lanes``): exactly the
minimum, ``Cost.bytes_moved``. The float32 kernels are bound by the exp and the
divide per element rather than by memory on a core that copies at tens of GB/s,
hence the short exp.

bfloat16 SiLU and GELU look their results up. A bfloat16 input has 65,536 bit
patterns, so the fused kernel is run once over all of them (on first use, per
process) and each element becomes one load from that 128 KiB table: the same
bits by construction, and no float32 arithmetic or rounding to bfloat16 per
element (which on x86 without bfloat16 conversions cost more than the
arithmetic). Measured on 8M elements: 6.1 -> 4.0 ms for normal inputs, 11.8
-> 4.9 ms for uniformly random bit patterns (many NaNs and subnormals, and
the table read from L2). float16 keeps the arithmetic: its conversions are
single instructions, and the table gained little (GELU) or lost (SiLU).
SwiGLU has two inputs, too many pairs for a table.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from reference.kernel import Cost, Direction, Kernel, Param, nbytes_of
from reference.kernel_table import register_kernel
from reference.kernels._checks import FLOAT_DTYPES, numel, require_dtype, require_same_dtype, require_shape, shape_of
from reference.kernels._numerics import JIT, exp2_short_f32, exp_short_f32, lanes, lanes_out, lanes_store, narrow, widen

_P = Param
_IN, _OUT = Direction.IN, Direction.OUT

# float32: a few ulps from exp/divide, amplified by |2u| (up to 88) for GELU's far tail.
_TOL = {"float32": (2e-5, 1e-30), "float16": (2e-3, 1e-7), "bfloat16": (1e-2, 1e-30)}

# Flops per element, counting exp and divide as one each:
# silu: neg, exp, add, div, mul = 5; gelu: x^3 (2), fma-ish poly (3), exp, add, div, mul = 9;
# swiglu: silu (5) + mul = 6.
_SILU_FLOPS, _GELU_FLOPS, _SWIGLU_FLOPS = 5, 9, 6

_GELU_C = math.sqrt(2.0 / math.pi)
# -2u log2(e) = x * (a + b x^2), a = -2c log2(e), b = a * 0.044715: one multiply, one FMA and one multiply
# per element, and exp(-2u) = 2**(-2u log2(e)) (the sign and log2(e) in the constants).
_GELU_A = np.float32(-2.0 * _GELU_C * math.log2(math.e))
_GELU_B = np.float32(-2.0 * _GELU_C * 0.044715 * math.log2(math.e))


@numba.njit(fastmath={"contract"}, **JIT)
def _silu_flat(x, out):  # pragma: no cover - compiled
    for i in range(out.size):
        v = widen(x[i])
        out[i] = narrow(v / (np.float32(1.0) + exp_short_f32(-v)), out)


@numba.njit(fastmath={"contract"}, **JIT)
def _gelu_flat(x, out):  # pragma: no cover - compiled
    for i in range(out.size):
        v = widen(x[i])
        # 0.5 * (1 + tanh(u)) == sigmoid(2u) == 1 / (1 + exp(-2u)): no cancellation in the negative tail.
        out[i] = narrow(v / (np.float32(1.0) + exp2_short_f32(v * (_GELU_A + _GELU_B * (v * v)))), out)


@numba.njit(fastmath={"contract"}, **JIT)
def _swiglu_flat(gate, up, out):  # pragma: no cover - compiled
    for i in range(out.size):
        g = widen(gate[i])
        # (g / (1 + exp(-g))) * up: g * up first could overflow where the result does not.
        out[i] = narrow(g / (np.float32(1.0) + exp_short_f32(-g)) * widen(up[i]), out)


def _unary_check(kernel: str):
    def check(x, out) -> None:
        require_dtype(kernel, "x", x, FLOAT_DTYPES)
        require_same_dtype(kernel, ("x", "out"), (x, out))
        require_shape(kernel, "out", out, shape_of(x), "same as x")

    return check


@numba.njit(**JIT)
def _look_up(bits, table, out):  # pragma: no cover - compiled
    """out[i] = table[bits[i]]: bfloat16 bit patterns in and out (module docstring)."""
    for i in range(out.size):
        out[i] = table[bits[i]]


_TABLES: dict[str, np.ndarray] = {}


def _table(body) -> np.ndarray:
    """``body``'s result for every bfloat16 input, as bit patterns (built on first use, then kept)."""
    table = _TABLES.get(body.__name__)
    if table is None:
        every = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16)  # bfloat16 lanes are uint16
        table = np.empty_like(every)
        body(every, table)
        table = _TABLES.setdefault(body.__name__, table)  # a racing thread built the same bits
    return table


def _unary_runner(body):
    def run(x: np.ndarray, out: np.ndarray) -> None:
        buf = lanes_out(out)
        xl = lanes(x).reshape(-1)
        if xl.dtype == np.uint16:  # bfloat16 has 65,536 values: look the result up (module docstring)
            _look_up(xl, _table(body), buf.reshape(-1))
        else:
            body(xl, buf.reshape(-1))
        lanes_store(out, buf)

    return run


def _unary_cost(flops_per_element: int):
    def cost(x, out) -> Cost:
        return Cost(flops=float(flops_per_element * numel(shape_of(x))), bytes_read=nbytes_of(x),
                    bytes_written=nbytes_of(out))

    return cost


def _logistic64(z: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):  # exp(-z) -> inf for very negative z gives the right limit 0
        return 1.0 / (1.0 + np.exp(-z))


def _silu_golden(x: np.ndarray, out: np.ndarray) -> None:
    xd = x.astype(np.float64)
    out[...] = (xd * _logistic64(xd)).astype(out.dtype)


def _gelu_golden(x: np.ndarray, out: np.ndarray) -> None:
    xd = x.astype(np.float64)
    u = _GELU_C * (xd + 0.044715 * xd**3)
    # 0.5 * (1 + tanh(u)) written as the logistic of 2u: the same function, but
    # float64 tanh saturates to -1 for u < -19 and would lose every digit there.
    out[...] = (xd * _logistic64(2.0 * u)).astype(out.dtype)


SILU = register_kernel(Kernel(
    name="silu",
    params=(_P("x", _IN), _P("out", _OUT)),
    run_fn=_unary_runner(_silu_flat), golden_fn=_silu_golden, check_fn=_unary_check("silu"),
    cost_fn=_unary_cost(_SILU_FLOPS), tolerances=_TOL, dtypes=FLOAT_DTYPES,
    doc="out = x * sigmoid(x)",
))

GELU = register_kernel(Kernel(
    name="gelu",
    params=(_P("x", _IN), _P("out", _OUT)),
    run_fn=_unary_runner(_gelu_flat), golden_fn=_gelu_golden, check_fn=_unary_check("gelu"),
    cost_fn=_unary_cost(_GELU_FLOPS), tolerances=_TOL, dtypes=FLOAT_DTYPES,
    doc="out = gelu(x), tanh approximation",
))


def _swiglu_check(gate, up, out) -> None:
    require_dtype("swiglu", "gate", gate, FLOAT_DTYPES)
    require_same_dtype("swiglu", ("gate", "up", "out"), (gate, up, out))
    require_shape("swiglu", "up", up, shape_of(gate), "same as gate")
    require_shape("swiglu", "out", out, shape_of(gate), "same as gate")


def _swiglu_run(gate: np.ndarray, up: np.ndarray, out: np.ndarray) -> None:
    buf = lanes_out(out)
    _swiglu_flat(lanes(gate).reshape(-1), lanes(up).reshape(-1), buf.reshape(-1))
    lanes_store(out, buf)


def _swiglu_golden(gate: np.ndarray, up: np.ndarray, out: np.ndarray) -> None:
    g = gate.astype(np.float64)
    out[...] = (g * _logistic64(g) * up.astype(np.float64)).astype(out.dtype)


def _swiglu_cost(gate, up, out) -> Cost:
    return Cost(flops=float(_SWIGLU_FLOPS * numel(shape_of(gate))), bytes_read=nbytes_of(gate) + nbytes_of(up),
                bytes_written=nbytes_of(out))


SWIGLU = register_kernel(Kernel(
    name="swiglu",
    params=(_P("gate", _IN), _P("up", _IN), _P("out", _OUT)),
    run_fn=_swiglu_run, golden_fn=_swiglu_golden, check_fn=_swiglu_check, cost_fn=_swiglu_cost,
    tolerances=_TOL, dtypes=FLOAT_DTYPES,
    doc="out = silu(gate) * up",
))
