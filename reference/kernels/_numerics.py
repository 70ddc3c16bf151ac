"""Numeric plumbing shared by the fast (numba) kernels.

Three concerns live here:

* **16-bit storage.** numba cannot compile ``float16`` or ``bfloat16`` arrays,
  so the fast path of every floating-point kernel computes on ``float32``:
  16-bit inputs are widened before the numba call and outputs are rounded
  (round-to-nearest-even) once, after it. bfloat16 widening/rounding is done by
  small numba loops on the raw bits, which are several times faster than the
  generic ``astype`` casts; float16 uses numpy's casts.
* **A vectorisable exp.** numba lowers ``np.exp`` to a scalar libm call, which
  blocks SIMD and makes softmax/SiLU/GELU several times slower than they need
  to be. :func:`exp_f32` is a Cody–Waite range reduction plus the classic
  Cephes ``expf`` polynomial (max relative error about 1e-7 over the normal
  range) built from plain arithmetic, so LLVM can vectorise loops that call it.
* **A vectorisable row max.** :func:`max_f32` (see there) for the max-subtract
  of every softmax.

Note on numba's on-disk cache: it is keyed on the source file of the *calling*
function, so after editing a helper here delete the ``__pycache__`` ``*.nbi`` /
``*.nbc`` files of the kernel modules (numba does not track cross-module
dependencies).
"""

from __future__ import annotations

import ml_dtypes
import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

BFLOAT16 = np.dtype(ml_dtypes.bfloat16)
FLOAT32 = np.dtype(np.float32)

# Options of every numba kernel: cached on disk (the test suite must not
# recompile per run), GIL released (an executor may run kernels in threads),
# and IEEE division (x/0 -> inf/nan instead of raising; also lets LLVM drop
# the zero-divisor branches that would block vectorisation).
JIT = {"cache": True, "nogil": True, "error_model": "numpy"}

# Fast-math flags used by reductions: reassociation lets LLVM vectorise sums
# and contraction allows FMAs. No 'nnan'/'ninf': inputs may hold inf and the
# kernels must keep IEEE semantics for them.
FAST = {"reassoc", "contract", "nsz"}  # numba wants a set (not a frozenset)


# --------------------------------------------------------------------------- bfloat16 <-> float32

@numba.njit(**JIT)
def _bf16_bits_to_f32_bits(src, dst):  # pragma: no cover - compiled
    for i in range(src.size):
        dst[i] = np.uint32(src[i]) << np.uint32(16)


@numba.njit(**JIT)
def _f32_bits_to_bf16_bits(src, dst):  # pragma: no cover - compiled
    for i in range(src.size):
        b = src[i]
        if (b & np.uint32(0x7FFFFFFF)) > np.uint32(0x7F800000):
            # NaN: truncate and force the quiet bit so no payload becomes inf.
            dst[i] = np.uint16((b >> np.uint32(16)) | np.uint32(0x0040))
        else:
            # Round to nearest, ties to even, on the 16 dropped bits.
            bias = np.uint32(0x7FFF) + ((b >> np.uint32(16)) & np.uint32(1))
            dst[i] = np.uint16((b + bias) >> np.uint32(16))


def to_f32(a: np.ndarray) -> np.ndarray:
    """C-contiguous float32 version of ``a`` (no copy when it already is one)."""
    if a.dtype == FLOAT32:
        return np.ascontiguousarray(a)
    if a.dtype == BFLOAT16:
        out = np.empty(a.shape, FLOAT32)
        _bf16_bits_to_f32_bits(np.ascontiguousarray(a).view(np.uint16).reshape(-1), out.view(np.uint32).reshape(-1))
        return out
    return np.ascontiguousarray(a, dtype=FLOAT32)


def f32_buffer(out: np.ndarray) -> np.ndarray:
    """Where the fast path writes a float32 result destined for ``out``.

    ``out`` itself when it is a C-contiguous float32 array, otherwise a fresh
    buffer that :func:`store` copies (and rounds) into ``out``.
    """
    if out.dtype == FLOAT32 and out.flags.c_contiguous:
        return out
    return np.empty(out.shape, FLOAT32)


def f32_inout(a: np.ndarray) -> np.ndarray:
    """Like :func:`f32_buffer`, but the buffer starts with ``a``'s values (INOUT)."""
    if a.dtype == FLOAT32 and a.flags.c_contiguous:
        return a
    return to_f32(a)


def store(out: np.ndarray, buf: np.ndarray) -> None:
    """Round ``buf`` (float32) into ``out`` unless it already is ``out``."""
    if buf is out:
        return
    if out.dtype == BFLOAT16 and out.flags.c_contiguous:
        _f32_bits_to_bf16_bits(np.ascontiguousarray(buf).view(np.uint32).reshape(-1), out.view(np.uint16).reshape(-1))
    else:
        with np.errstate(over="ignore"):  # a value beyond the dtype's range rounds to inf, as IEEE says
            out[...] = buf


def native_buffer(out: np.ndarray) -> np.ndarray:
    """A C-contiguous array of ``out``'s own dtype to write into (``out`` if possible)."""
    return out if out.flags.c_contiguous else np.empty(out.shape, out.dtype)


def store_native(out: np.ndarray, buf: np.ndarray) -> None:
    if buf is not out:
        out[...] = buf


def as_numba(a: np.ndarray) -> np.ndarray:
    """A view numba can compile for pure data movement: 16-bit floats as uint16 bits."""
    a = np.ascontiguousarray(a)
    if a.dtype == BFLOAT16 or a.dtype == np.float16:
        return a.view(np.uint16)
    return a


# --------------------------------------------------------------------------- fast exp

@intrinsic
def _i32_as_f32(typingctx, x):  # pragma: no cover - compiled
    """Reinterpret the bits of an int32 as a float32 (LLVM bitcast)."""
    if x != types.int32:
        return None

    def codegen(context, builder, sig, args):
        return builder.bitcast(args[0], ir.FloatType())

    return types.float32(types.int32), codegen


_EXP_HI = np.float32(88.72283)     # above: exp overflows float32
_EXP_LO = np.float32(-87.33654)    # below: result would be subnormal; flushed to 0
_LOG2E = np.float32(1.4426950408889634)
_LN2_HI = np.float32(0.693359375)  # ln2 split so that n * _LN2_HI is exact
_LN2_LO = np.float32(-2.12194440e-4)


@numba.njit(inline="always", nogil=True, error_model="numpy", fastmath={"contract"})
def _exp_reduced(r):  # pragma: no cover - compiled
    """exp(r) for the reduced argument |r| <= ln2/2: a degree-6 minimax polynomial."""
    p = np.float32(1.9875691500e-4)
    p = p * r + np.float32(1.3981999507e-3)
    p = p * r + np.float32(8.3334519073e-3)
    p = p * r + np.float32(4.1665795894e-2)
    p = p * r + np.float32(1.6666665459e-1)
    p = p * r + np.float32(5.0000001201e-1)
    return p * (r * r) + r + np.float32(1.0)


@numba.njit(inline="always", nogil=True, error_model="numpy", fastmath={"contract"})
def exp_f32(x):  # pragma: no cover - compiled
    """float32 exp built from arithmetic only, so loops calling it vectorise.

    exp(x) = 2**n * exp(r) with n = round(x / ln2) and |r| <= ln2 / 2; exp(r)
    by a minimax polynomial. 2**n is assembled from exponent bits in two halves
    so that n = 128 (x close to the overflow threshold) stays finite.
    Results below ~1.2e-38 are flushed to zero (avoids slow subnormals).
    """
    x = np.float32(x)
    xc = min(max(x, _EXP_LO), _EXP_HI)
    n = np.floor(xc * _LOG2E + np.float32(0.5))
    r = xc - n * _LN2_HI
    r = r - n * _LN2_LO
    y = _exp_reduced(r)
    ni = np.int32(n)
    n1 = ni >> np.int32(1)
    n2 = ni - n1
    y = y * _i32_as_f32(np.int32((n1 + np.int32(127)) << np.int32(23)))
    y = y * _i32_as_f32(np.int32((n2 + np.int32(127)) << np.int32(23)))
    if x > _EXP_HI:
        y = np.float32(np.inf)
    if x < _EXP_LO:
        y = np.float32(0.0)
    if x != x:  # NaN in, NaN out (the clamps above would have hidden it)
        y = x
    return y


@numba.njit(inline="always", nogil=True, error_model="numpy", fastmath={"contract"})
def exp_nonpos_f32(x):  # pragma: no cover - compiled
    """:func:`exp_f32` for ``x <= 0`` (or NaN), as after a softmax's max-subtract; cheaper.

    With no overflow side, 2**n (n >= -126) is one normal float32 built in one step and the
    upper clamp goes. Results agree bit for bit with :func:`exp_f32` for every x <= 0.
    """
    x = np.float32(x)
    xc = max(x, _EXP_LO)
    n = np.floor(xc * _LOG2E + np.float32(0.5))
    r = xc - n * _LN2_HI
    r = r - n * _LN2_LO
    y = _exp_reduced(r)
    y = y * _i32_as_f32(np.int32((np.int32(n) + np.int32(127)) << np.int32(23)))
    if x < _EXP_LO:
        y = np.float32(0.0)
    if x != x:
        y = x
    return y


@numba.njit(nogil=True, error_model="numpy")
def max_f32(row):  # pragma: no cover - compiled
    """Maximum of a contiguous 1-D float32 array (-inf when empty; NaN if it holds a positive NaN).

    numba's float ``max`` keeps Python's NaN rules, which stops LLVM from
    vectorising the reduction (about 8x slower than memory speed). The IEEE
    bit pattern of a float, with the magnitude bits flipped for negative
    values, orders like a signed integer — and integer max reductions vectorise.
    """
    bits = row.view(np.int32)
    m = np.int32(-2147483648)
    for j in range(bits.size):
        b = bits[j]
        m = max(m, b ^ ((b >> np.int32(31)) & np.int32(0x7FFFFFFF)))
    if bits.size == 0:
        return np.float32(-np.inf)
    return _i32_as_f32(np.int32(m ^ ((m >> np.int32(31)) & np.int32(0x7FFFFFFF))))


@numba.njit(inline="always", nogil=True, error_model="numpy")
def sigmoid_f32(x):  # pragma: no cover - compiled
    """1 / (1 + exp(-x)) in float32; saturates cleanly to 0 and 1."""
    return np.float32(1.0) / (np.float32(1.0) + exp_f32(-x))
