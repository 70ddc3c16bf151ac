"""Numeric plumbing shared by the fast (numba) kernels.

Five concerns live here:

* **16-bit storage.** numba cannot compile ``float16`` or ``bfloat16`` arrays,
  so every floating-point kernel computes on ``float32``. The memory-bound
  kernels do so in one pass: :func:`lanes` hands numba a 16-bit array as its raw
  bits (bfloat16 as ``uint16``, float16 as ``int16`` — the two integer types
  tell the formats apart at compile time), the loop widens each element in a
  register (:func:`widen`) and rounds each result on its way to memory
  (:func:`narrow`: round-to-nearest-even, NaN stays NaN, overflow to inf), so a
  16-bit tensor is read and written once, at two bytes an element. The results
  are bit-identical to widening the whole tensor first and rounding a float32
  result afterwards (both conversions are exact or correctly rounded either
  way). float16 uses the CPU's half-precision conversions (x86 F16C, which
  vectorise); without them :func:`lanes` widens float16 to a float32 copy
  instead, the old two-pass path. Kernels that are not memory-bound still use
  :func:`to_f32` / :func:`store` (separate widen and round passes).
* **A vectorisable exp.** numba lowers ``np.exp`` to a scalar libm call, which
  blocks SIMD and makes softmax/SiLU/GELU several times slower than they need
  to be. :func:`exp_f32` is a Cody–Waite range reduction plus a degree-6
  minimax polynomial (max relative error about 1e-7 over the normal range)
  built from plain arithmetic, so LLVM can vectorise loops that call it;
  :func:`exp_fast_f32` is the same without the edge fix-ups, for hot loops;
  :func:`exp_short_f32` a degree-5 version of that (5e-7) for kernels whose
  tolerances leave room (softmax, the activations), with two variants:
  :func:`exp_short_nonpos_f32` (the same bits for x <= 0, one clamp fewer)
  and :func:`exp2_short_f32` (2**y, for callers that fold log2(e) into their
  own constants: two multiply-adds fewer). Their clamps go through
  :func:`_clamp_f32`, which x86 turns into a max and a min.
* **A vectorisable row max.** :func:`max_f32` (see there) for the max-subtract
  of every softmax.
* **Float32 sums.** Reductions accumulate in float32: in blocks of
  :data:`SUM_BLOCK` that LLVM vectorises, the block sums added with
  compensation (:func:`add_compensated`), so the error does not grow with the
  row length.
* **Prefetch.** :func:`prefetch`, a cache hint for row-by-row kernels.

Fast-math: kernels pass ``fastmath`` explicitly, and so must every helper whose
arithmetic order matters. numba compiles a helper that sets no ``fastmath``
(or one it inlines itself) with the *caller's* flags, and reassociation undoes
compensated sums, two-part constants and shifted differences.

Note on numba's on-disk cache: it is keyed on the source file of the *calling*
function, so after editing a helper here delete the ``__pycache__`` ``*.nbi`` /
``*.nbc`` files of the kernel modules (numba does not track cross-module
dependencies; ``reference.kernels`` does this on import for its own cache).
"""

from __future__ import annotations

import ml_dtypes
import numba
import numpy as np
from llvmlite import binding as llvm_binding
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic, overload

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
    if a.dtype == np.float16 and F16_IN_REGISTER:  # the CPU's conversions: several times numpy's speed here
        out = np.empty(a.shape, FLOAT32)
        widen_row(np.ascontiguousarray(a).view(np.int16).reshape(-1), out.reshape(-1))
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


def store(out: np.ndarray, buf: np.ndarray) -> None:
    """Round ``buf`` (float32) into ``out`` unless it already is ``out``."""
    if buf is out:
        return
    if out.dtype == BFLOAT16 and out.flags.c_contiguous:
        _f32_bits_to_bf16_bits(np.ascontiguousarray(buf).view(np.uint32).reshape(-1), out.view(np.uint16).reshape(-1))
    elif out.dtype == np.float16 and out.flags.c_contiguous and F16_IN_REGISTER:
        narrow_flat(np.ascontiguousarray(buf).reshape(-1), out.view(np.int16).reshape(-1))
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


# --------------------------------------------------------------------------- fused 16-bit lanes

@intrinsic
def _f32_as_u32(typingctx, x):  # pragma: no cover - compiled
    """Reinterpret the bits of a float32 as a uint32 (LLVM bitcast)."""
    if x != types.float32:
        return None

    def codegen(context, builder, sig, args):
        return builder.bitcast(args[0], ir.IntType(32))

    return types.uint32(types.float32), codegen


@intrinsic
def _u32_as_f32(typingctx, x):  # pragma: no cover - compiled
    """Reinterpret the bits of a uint32 as a float32 (LLVM bitcast)."""
    if x != types.uint32:
        return None

    def codegen(context, builder, sig, args):
        return builder.bitcast(args[0], ir.FloatType())

    return types.float32(types.uint32), codegen


@intrinsic
def _f16_bits_to_f32(typingctx, x):  # pragma: no cover - compiled
    """The float32 value of IEEE half-precision bits held in an int16 (exact; LLVM fpext)."""
    if x != types.int16:
        return None

    def codegen(context, builder, sig, args):
        return builder.fpext(builder.bitcast(args[0], ir.HalfType()), ir.FloatType())

    return types.float32(types.int16), codegen


@intrinsic
def _f32_to_f16_bits(typingctx, x):  # pragma: no cover - compiled
    """A float32 rounded to half precision (nearest, ties to even; LLVM fptrunc), as int16 bits."""
    if x != types.float32:
        return None

    def codegen(context, builder, sig, args):
        return builder.bitcast(builder.fptrunc(args[0], ir.HalfType()), ir.IntType(16))

    return types.int16(types.float32), codegen


def _host_converts_half() -> bool:
    """Whether this CPU converts half precision in hardware (else LLVM would call a runtime helper)."""
    triple = llvm_binding.get_process_triple()
    if triple.startswith(("x86_64", "i386", "i686")):
        return bool(llvm_binding.get_host_cpu_features().get("f16c", False))
    return triple.startswith(("aarch64", "arm64"))


F16_IN_REGISTER = _host_converts_half()


# The overloads below are compiled as ordinary functions that LLVM inlines (and vectorises through).
# Not numba's IR-level inline="always": with it, a caller's loop (paged decode's QK) lost its stores.


def widen(x):  # pragma: no cover - replaced by the overload inside numba
    """float32 value of one element of a :func:`lanes` array (other numbers unchanged)."""
    raise NotImplementedError("widen is only callable from numba-compiled code")


@overload(widen)
def _widen_overload(x):  # pragma: no cover - compiled
    if x == types.uint16:  # bfloat16 bits: the upper half of a float32
        return lambda x: _u32_as_f32(np.uint32(np.uint32(x) << np.uint32(16)))
    if x == types.int16:  # float16 bits
        return lambda x: _f16_bits_to_f32(x)
    return lambda x: x


def narrow(v, out):  # pragma: no cover - replaced by the overload inside numba
    """``v`` as an element of the :func:`lanes` array ``out``: rounded once to its 16-bit format, if any."""
    raise NotImplementedError("narrow is only callable from numba-compiled code")


@overload(narrow)
def _narrow_overload(v, out):  # pragma: no cover - compiled
    dtype = out.dtype if isinstance(out, types.Array) else None
    if dtype == types.uint16:
        def to_bf16(v, out):
            # numba widens uint32 arithmetic to 64 bits; the casts keep the vector lanes 32-bit.
            f = np.float32(v)
            b = _f32_as_u32(f)
            # Round to nearest, ties to even, on the 16 dropped bits; a NaN is truncated with the quiet
            # bit forced (bit 22, bit 6 once shifted) so no payload becomes inf. Both choices are made on
            # the 32-bit pattern and shifted once, and NaN is told by a float compare: one select, one
            # shift and one pack per vector (selecting between two packed results took twice that).
            bias = np.uint32(np.uint32(0x7FFF) + np.uint32(np.uint32(b >> np.uint32(16)) & np.uint32(1)))
            t = np.uint32(b | np.uint32(0x00400000)) if f != f else np.uint32(b + bias)
            return np.uint16(t >> np.uint32(16))
        return to_bf16
    if dtype == types.int16:
        return lambda v, out: _f32_to_f16_bits(np.float32(v))
    if dtype == types.float32:
        return lambda v, out: np.float32(v)
    return lambda v, out: v


@numba.njit(nogil=True, error_model="numpy", fastmath=False)
def widen_row(src, dst):  # pragma: no cover - compiled
    """dst = the float32 values of a 1-D :func:`lanes` row (dst is at least as long)."""
    for j in range(src.size):
        dst[j] = widen(src[j])


@numba.njit(nogil=True, error_model="numpy", fastmath=False)
def narrow_flat(src, dst):  # pragma: no cover - compiled
    """dst = the float32 array ``src`` rounded into the 1-D :func:`lanes` array ``dst``."""
    for j in range(dst.size):
        dst[j] = narrow(src[j], dst)


def f32_row(row, scratch):  # pragma: no cover - replaced by the overload inside numba
    """A float32 view of a 1-D :func:`lanes` row: the row itself, or its values widened into ``scratch``."""
    raise NotImplementedError("f32_row is only callable from numba-compiled code")


@overload(f32_row)
def _f32_row_overload(row, scratch):  # pragma: no cover - compiled
    if row.dtype == types.float32:
        return lambda row, scratch: row

    def widened(row, scratch):
        widen_row(row, scratch)
        return scratch[: row.size]

    return widened


def f32_out_row(row, scratch):  # pragma: no cover - replaced by the overload inside numba
    """Where to compute a float32 result for the 1-D :func:`lanes` row ``row``: itself or ``scratch``.

    A scratch result must then be rounded into ``row`` by the caller (see :func:`scale_into`).
    """
    raise NotImplementedError("f32_out_row is only callable from numba-compiled code")


@overload(f32_out_row)
def _f32_out_row_overload(row, scratch):  # pragma: no cover - compiled
    if row.dtype == types.float32:
        return lambda row, scratch: row
    return lambda row, scratch: scratch[: row.size]


@numba.njit(nogil=True, error_model="numpy", fastmath=False)
def _widen_max(src, dst):  # pragma: no cover - compiled
    """dst = the float32 values of the 16-bit row ``src``; returns their :func:`max_f32`, in the same pass."""
    hi = np.int32(-2147483648)
    lo = np.int32(2147483647)
    for j in range(src.size):
        v = widen(src[j])
        dst[j] = v
        b = _f32_as_i32(v)
        hi = b if b > hi else hi
        lo = b if b < lo else lo
    if src.size == 0:
        return np.float32(-np.inf)
    return _i32_as_f32(hi if hi >= 0 else lo)


def f32_row_max(row, scratch):  # pragma: no cover - replaced by the overload inside numba
    """(:func:`f32_row` of ``row``, :func:`max_f32` of it): a 16-bit row is widened and maxed in one pass."""
    raise NotImplementedError("f32_row_max is only callable from numba-compiled code")


@overload(f32_row_max)
def _f32_row_max_overload(row, scratch):  # pragma: no cover - compiled
    if row.dtype == types.float32:
        return lambda row, scratch: (row, max_f32(row))

    def widened(row, scratch):
        out = scratch[: row.size]
        return out, _widen_max(row, out)

    return widened


def scale_into(src, s, row):  # pragma: no cover - replaced by the overload inside numba
    """row = src * s, rounded to ``row``'s dtype; for a float32 ``row``, ``src`` must be ``row`` (in place)."""
    raise NotImplementedError("scale_into is only callable from numba-compiled code")


@overload(scale_into)
def _scale_into_overload(src, s, row):  # pragma: no cover - compiled
    if row.dtype == types.float32:
        return lambda src, s, row: scale_f32(row, s)

    def rounded(src, s, row):
        for j in range(row.size):
            row[j] = narrow(src[j] * s, row)

    return rounded


def keep_wide(buf, j, v, row):  # pragma: no cover - replaced by the overload inside numba
    """buf[j] = v, the widened element j of the :func:`lanes` row ``row``, if ``row`` is 16-bit; nothing
    for a float32 row, which is its own float32 copy (see :func:`f32_out_row`)."""
    raise NotImplementedError("keep_wide is only callable from numba-compiled code")


@overload(keep_wide)
def _keep_wide_overload(buf, j, v, row):  # pragma: no cover - compiled
    if row.dtype == types.float32:
        return lambda buf, j, v, row: None

    def keep(buf, j, v, row):
        buf[j] = v

    return keep


def lanes(a: np.ndarray) -> np.ndarray:
    """``a`` as a C-contiguous array that fused kernels read with :func:`widen` (no copy when possible).

    float32 as is; bfloat16 as its ``uint16`` bits; float16 as its ``int16`` bits (a float32 copy if
    this CPU has no half-precision conversions); other dtypes as is. A non-contiguous ``a`` is copied.
    """
    a = np.ascontiguousarray(a)
    if a.dtype == BFLOAT16:
        return a.view(np.uint16)
    if a.dtype == np.float16:
        return a.view(np.int16) if F16_IN_REGISTER else a.astype(FLOAT32)
    return a


def lanes_out(out: np.ndarray) -> np.ndarray:
    """Where a fused kernel writes (with :func:`narrow`) the result destined for ``out``.

    ``out``'s own memory, as :func:`lanes` would view it, when ``out`` is C-contiguous; otherwise a
    scratch array that :func:`lanes_store` copies into ``out``.
    """
    if out.flags.c_contiguous and (out.dtype != np.float16 or F16_IN_REGISTER):
        return lanes(out)
    if out.dtype == np.float16 and not F16_IN_REGISTER:
        return np.empty(out.shape, FLOAT32)
    return lanes(np.empty(out.shape, out.dtype))


def lanes_inout(a: np.ndarray) -> np.ndarray:
    """Like :func:`lanes_out`, but starting with ``a``'s values (INOUT)."""
    buf = lanes_out(a)
    if not np.may_share_memory(buf, a):
        buf[...] = lanes(a)
    return buf


def lanes_store(out: np.ndarray, buf: np.ndarray) -> None:
    """Copy a :func:`lanes_out` scratch into ``out`` (nothing to do when ``buf`` is ``out``'s memory)."""
    if np.may_share_memory(buf, out):
        return
    if buf.dtype == FLOAT32 and out.dtype != FLOAT32:
        store(out, buf)
    else:
        out[...] = buf.view(out.dtype)


# --------------------------------------------------------------------------- fast exp

@intrinsic
def _i32_as_f32(typingctx, x):  # pragma: no cover - compiled
    """Reinterpret the bits of an int32 as a float32 (LLVM bitcast)."""
    if x != types.int32:
        return None

    def codegen(context, builder, sig, args):
        return builder.bitcast(args[0], ir.FloatType())

    return types.float32(types.int32), codegen


@intrinsic
def _f32_as_i32(typingctx, x):  # pragma: no cover - compiled
    """Reinterpret the bits of a float32 as an int32 (LLVM bitcast)."""
    if x != types.float32:
        return None

    def codegen(context, builder, sig, args):
        return builder.bitcast(args[0], ir.IntType(32))

    return types.int32(types.float32), codegen


@intrinsic
def _clamp_f32(typingctx, x, lo, hi):  # pragma: no cover - compiled
    """``lo if x < lo else (hi if x > hi else x)`` on float32s: NaN passes through (its compares are false).

    Emitted as two compare-and-selects in LLVM IR, which x86 turns into one ``max`` and one ``min``
    (their operand order keeps a NaN ``x``). numba's own lowering of the same expressions leaves the
    compare masks in a form LLVM legalises with packs and sign extensions: 18 instructions per 16 lanes.
    """
    if x != types.float32 or lo != types.float32 or hi != types.float32:
        return None

    def codegen(context, builder, sig, args):
        v, a, b = args
        v = builder.select(builder.fcmp_ordered("<", v, a), a, v)
        return builder.select(builder.fcmp_ordered(">", v, b), b, v)

    return types.float32(types.float32, types.float32, types.float32), codegen


_EXP_HI = np.float32(88.72283)     # above: exp overflows float32
_EXP_LO = np.float32(-87.33654)    # below: result would be subnormal; flushed to 0
_LOG2E = np.float32(1.4426950408889634)
_LN2_HI = np.float32(0.693359375)  # ln2 split so that n * _LN2_HI is exact
_LN2_LO = np.float32(-2.12194440e-4)

# exp(r) on |r| <= ln2/2 as 1 + r + c2 r^2 + ... + c6 r^6: a minimax fit of the relative error
# (3e-9, far below float32 rounding) with c0 = c1 = 1 kept exact so that exp(tiny) is exact.
_C2 = np.float32(0.4999999403953552)
_C3 = np.float32(0.1666652113199234)
_C4 = np.float32(0.04166838899254799)
_C5 = np.float32(0.008368710055947304)
_C6 = np.float32(0.0013814615085721016)

# The helpers below are ordinary (not numba-inlined) functions with their own explicit
# ``fastmath``: numba's inlining, or a helper that sets no ``fastmath`` at all, takes the
# *caller's* flags, and reassociation undoes the two-part ln2 reduction (measured: 3e-7
# instead of 8e-8 relative error) or a compensated sum. LLVM still inlines them into the
# callers' loops, keeping each instruction's own flags, so they vectorise all the same.


@numba.njit(nogil=True, error_model="numpy", fastmath={"contract"})
def _exp_reduced(r):  # pragma: no cover - compiled
    """exp(r) for the reduced argument |r| <= ln2/2: a degree-6 polynomial (Horner form)."""
    p = _C6 * r + _C5
    p = p * r + _C4
    p = p * r + _C3
    p = p * r + _C2
    p = p * r + np.float32(1.0)
    return p * r + np.float32(1.0)


@numba.njit(nogil=True, error_model="numpy", fastmath={"contract"})
def exp_f32(x):  # pragma: no cover - compiled
    """float32 exp over the whole range, built from arithmetic only so loops calling it vectorise.

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


_FAST_LO = np.float32(-88.0)  # clamps that keep n = round(x / ln2) in [-127, 128]: exponent bits 0 and 255
_FAST_HI = np.float32(89.0)
# Adding 1.5 * 2**23 rounds x / ln2 to an integer held in the low mantissa bits; the extra 127 is
# the exponent bias, so shifting those bits into place builds 2**n without a float-to-int conversion.
_ROUND_MAGIC = np.float32(12583039.0)  # 1.5 * 2**23 + 127


@numba.njit(nogil=True, error_model="numpy", fastmath={"contract"})
def exp_fast_f32(x):  # pragma: no cover - compiled
    """:func:`exp_f32` without its edge fix-ups, for the hot loops of softmax and the activations.

    Same reduction and polynomial (so the same accuracy, about 1e-7 relative, where the result is a
    normal float32), but 2**n is built in one step and n is clamped to [-127, 128], whose exponent
    bits are those of 0 and of inf. So results below ~8.6e-39 (x < -87.68) are exactly 0, results
    above ~2.4e38 (x > 88.37) are inf (slightly early: float32 reaches 3.4e38), -inf gives 0, +inf
    gives inf, and NaN passes through the clamps (written to let it) into the polynomial: NaN out.
    """
    xc = _clamp_f32(np.float32(x), _FAST_LO, _FAST_HI)  # NaN compares false: it stays
    j = xc * _LOG2E + _ROUND_MAGIC
    # j is a whole number in [2**23, 2**24), so this subtraction is exact: n = round(x / ln2), one
    # instruction (the same n from j's bit pattern needs an integer subtract and a conversion).
    n = j - _ROUND_MAGIC
    r = xc - n * _LN2_HI
    r = r - n * _LN2_LO
    return _exp_reduced(r) * _i32_as_f32(np.int32(_f32_as_i32(j) << np.int32(23)))


# exp(r) on |r| <= ln2/2 as 1 + r + d2 r^2 + ... + d5 r^5: a minimax fit of the relative error (1.1e-7;
# 1.8e-7 with float32 Horner evaluation), c0 = c1 = 1 kept exact.
_D2 = np.float32(0.499992311000824)
_D3 = np.float32(0.16667114198207855)
_D4 = np.float32(0.041890114545822144)
_D5 = np.float32(0.008312525227665901)
_LN2 = np.float32(0.6931471805599453)  # float32 ln2: 1.9e-9 below ln2


@numba.njit(nogil=True, error_model="numpy", fastmath={"contract"})
def exp_short_f32(x):  # pragma: no cover - compiled
    """:func:`exp_fast_f32` in fewer instructions, for kernels whose tolerance has room for 5e-7.

    Same range handling (flushes below ~8.6e-39, inf above ~2.4e38, NaN in gives NaN out) but a
    degree-5 polynomial and a one-constant reduction ``r = x - n * ln2`` (one FMA: the product is
    exact inside it, so the only error is float32 ln2's 1.9e-9 times |n| <= 128): at most 2.4e-7
    from the reduction plus 1.8e-7 from the polynomial, under 5e-7 relative where the result is a
    normal float32 (see the test). Two fewer multiply-adds than :func:`exp_fast_f32`, which
    softmax and the activations are bound by.
    """
    return _exp_short_of_clamped(_clamp_f32(np.float32(x), _FAST_LO, _FAST_HI))


@numba.njit(nogil=True, error_model="numpy", fastmath={"contract"})
def _exp_short_of_clamped(xc):  # pragma: no cover - compiled
    """The body of :func:`exp_short_f32` once its argument is clamped (or NaN)."""
    j = xc * _LOG2E + _ROUND_MAGIC
    n = j - _ROUND_MAGIC  # exact, as in exp_fast_f32
    r = xc - n * _LN2
    p = _D5 * r + _D4
    p = p * r + _D3
    p = p * r + _D2
    p = p * r + np.float32(1.0)
    p = p * r + np.float32(1.0)
    return p * _i32_as_f32(np.int32(_f32_as_i32(j) << np.int32(23)))


@numba.njit(nogil=True, error_model="numpy", fastmath={"contract"})
def exp_short_nonpos_f32(x):  # pragma: no cover - compiled
    """:func:`exp_short_f32` for x <= 0 (or NaN), such as softmax's ``x - max``: bit for bit the same
    there, without the upper clamp (one instruction of about sixteen per vector). Wrong above x = 89."""
    return _exp_short_of_clamped(_clamp_f32(np.float32(x), _FAST_LO, np.float32(np.inf)))


# 2**f on |f| <= 1/2 as 1 + e1 f + ... + e5 f^5: exp_short_f32's polynomial with r = f ln2 (the same
# relative error; 1.7e-7 with float32 Horner evaluation), each coefficient d_k ln2^k rounded once.
_E1 = np.float32(0.6931471824645996)
_E2 = np.float32(0.24022281169891357)
_E3 = np.float32(0.055505599826574326)
_E4 = np.float32(0.009669709019362926)
_E5 = np.float32(0.001330026425421238)
_EXP2_LO = np.float32(-127.0)  # n = round(y) in [-127, 128], as in exp_fast_f32
_EXP2_HI = np.float32(128.0)


@numba.njit(nogil=True, error_model="numpy", fastmath={"contract"})
def exp2_short_f32(y):  # pragma: no cover - compiled
    """2**y in float32: :func:`exp_short_f32` for callers that can fold log2(e) into their own constants.

    The reduction ``f = y - round(y)`` is exact (no ln2 to round), so the only error is the
    polynomial's, under 2e-7 relative where the result is a normal float32 (see the test); a caller
    that computes ``y = x * log2(e)`` adds that product's rounding, ``|x| * 2**-24`` relative. Two
    multiply-adds fewer than :func:`exp_short_f32` (the rounding and the reduction become plain adds,
    which x86 issues on other ports than the multiply-adds). Saturates as that one: 0 for y <= -126.5,
    inf above y = 127.5 (early: float32 reaches 2**128), NaN in gives NaN out.
    """
    yc = _clamp_f32(np.float32(y), _EXP2_LO, _EXP2_HI)
    j = yc + _ROUND_MAGIC
    n = j - _ROUND_MAGIC  # round(y), exactly: j is a whole number in [2**23, 2**24)
    f = yc - n  # exact: |f| <= 1/2 and f is a multiple of yc's ulp
    p = _E5 * f + _E4
    p = p * f + _E3
    p = p * f + _E2
    p = p * f + _E1
    p = p * f + np.float32(1.0)
    return p * _i32_as_f32(np.int32(_f32_as_i32(j) << np.int32(23)))


@numba.njit(nogil=True, error_model="numpy", fastmath=False)
def max_f32(row):  # pragma: no cover - compiled
    """Maximum of a contiguous 1-D float32 array (-inf when empty; NaN if it holds a positive NaN).

    numba's float ``max`` keeps Python's NaN rules, which stops LLVM from
    vectorising the reduction (about 8x slower than memory speed). Integer max
    and min reductions vectorise, and the IEEE bit patterns order like signed
    integers except that negative floats come out reversed: so the largest
    float is the largest signed pattern if that one is non-negative (a positive
    NaN beats +inf, as wanted), and otherwise — every entry negative — the
    smallest signed pattern. Casts keep the lanes int32 (numba would widen them).
    """
    bits = row.view(np.int32)
    hi = np.int32(-2147483648)
    lo = np.int32(2147483647)
    for j in range(bits.size):
        b = bits[j]
        hi = b if b > hi else hi
        lo = b if b < lo else lo
    if bits.size == 0:
        return np.float32(-np.inf)
    return _i32_as_f32(hi if hi >= 0 else lo)


@numba.njit(nogil=True, error_model="numpy", fastmath={"contract"})
def sigmoid_f32(x):  # pragma: no cover - compiled
    """1 / (1 + exp(-x)) in float32; exactly 0 (not a subnormal) for x < -88.37; NaN stays NaN."""
    return np.float32(1.0) / (np.float32(1.0) + exp_fast_f32(-x))


# --------------------------------------------------------------------------- float32 sums

# Long float32 sums run in blocks of this many elements: inside a block LLVM splits the sum
# over its vector lanes (fast, and each partial sum has at most SUM_BLOCK / 8 terms), and the
# block sums are added with compensation (:func:`add_compensated`), so the rounding error does
# not grow with the length of the row: at most about (SUM_BLOCK / 8 + 2) * 2**-24 relative for
# sums of same-sign terms.
SUM_BLOCK = 512


@numba.njit(nogil=True, error_model="numpy", fastmath=False)  # reassociation would cancel the compensation
def add_compensated(total, comp, x):  # pragma: no cover - compiled
    """Neumaier's compensated step: returns (total + x, updated compensation); the sum is total + comp."""
    t = total + x
    if abs(t) < np.inf:  # an infinite sum stays infinite (inf - inf in the compensation would make it NaN)
        if abs(total) >= abs(x):
            comp += (total - t) + x
        else:
            comp += (x - t) + total
    return t, comp


# No reassociation: LLVM would turn x * (1 / t) back into a (slower) x / t.
@numba.njit(nogil=True, error_model="numpy", fastmath={"contract"})
def scale_f32(a, s):  # pragma: no cover - compiled
    """a *= s over a contiguous 1-D float32 array (a multiply per element, never a divide)."""
    for j in range(a.size):
        a[j] = a[j] * s


def _prefetch_typer(arr, idx, rw: int):
    """Signature and codegen of an LLVM prefetch of element ``idx`` (flat) of a C-contiguous array."""
    if not isinstance(arr, types.Array) or arr.layout != "C" or not isinstance(idx, types.Integer):
        return None

    def codegen(context, builder, sig, args):
        ary = context.make_array(sig.args[0])(context, builder, args[0])
        offset = context.cast(builder, args[1], sig.args[1], types.intp)
        ptr = builder.gep(ary.data, [offset])
        i8p = ir.IntType(8).as_pointer()
        i32 = ir.IntType(32)
        fn = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32]), "llvm.prefetch.p0i8")
        builder.call(fn, [builder.bitcast(ptr, i8p), i32(rw), i32(3), i32(1)])  # keep in all levels, data
        return context.get_dummy_value()

    return types.none(arr, idx), codegen


# Cache hints: start loading element ``idx`` (flat) of a C-contiguous array, to read it or to write
# it (the latter fetches the line ready to be modified). No effect on results. For kernels that work
# block by block from L1, where the pass that meets memory has little work to hide the wait behind.
# Which hint helps was measured per kernel with caches cold: softmax (heavy exp pass) gains from
# prefetching its next input row, the norms (light passes) from prefetching their next output row
# for writing, and each loses with the other's; the summing collectives gain from both; streaming
# elementwise kernels gain from neither (the hardware prefetcher already keeps up). Paged decode
# gains from read hints for 16-bit caches only (``attention._AHEAD``: slabs reached through a block table).
# (Since then RMSNorm, LayerNorm and softmax read the next row in the pass that writes this one,
# which overlaps reads and writes better than any hint did; residual_add_rmsnorm still uses one.)
# (LLVM renames the intrinsic for opaque pointers.)
@intrinsic
def prefetch(typingctx, arr, idx):  # pragma: no cover - compiled
    return _prefetch_typer(arr, idx, 0)


@intrinsic
def prefetch_for_write(typingctx, arr, idx):  # pragma: no cover - compiled
    return _prefetch_typer(arr, idx, 1)


@numba.njit(nogil=True, error_model="numpy", fastmath=False)
def prefetch_row_for_write(row):  # pragma: no cover - compiled
    """:func:`prefetch_for_write` every cache line of a C-contiguous 1-D row (any element size)."""
    for j in range(0, row.size, 64 // row.itemsize):
        prefetch_for_write(row, j)
