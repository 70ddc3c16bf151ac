"""The numeric plumbing under the fast paths: bfloat16 conversions and the vectorisable exp.

The bfloat16 converters must be bit-identical to ``ml_dtypes``' casts (round to
nearest, ties to even; NaN stays NaN; overflow rounds to inf), including the
exact ties that random data almost never hits. ``exp_f32`` must be accurate to
a few float32 ulps over the whole normal range and keep IEEE edge behaviour;
``exp_fast_f32`` likewise over its documented range, with its documented
saturation, and ``exp_short_f32`` (and ``exp2_short_f32``, its base-2 form)
with the same saturation to its own bound.
The helpers are called from loops compiled with the kernels' fast-math flags,
as the kernels call them, so that flags leaking into a helper (numba's default
for helpers that set none) would show up as lost accuracy.
"""

from __future__ import annotations

import math

import ml_dtypes
import numba
import numpy as np
import pytest

from reference.kernels._numerics import (
    FAST,
    add_compensated,
    exp2_short_f32,
    exp_f32,
    exp_fast_f32,
    exp_short_f32,
    exp_short_nonpos_f32,
    f32_buffer,
    max_f32,
    sigmoid_f32,
    store,
    to_f32,
)

BF16 = np.dtype(ml_dtypes.bfloat16)


def bits_f32(u: np.ndarray) -> np.ndarray:
    return np.asarray(u, dtype=np.uint32).view(np.float32)


def test_bfloat16_widening_is_exact_for_every_bit_pattern() -> None:
    every = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16).view(BF16)
    ours = to_f32(every)
    theirs = every.astype(np.float32)
    nan = np.isnan(theirs)
    assert np.array_equal(np.isnan(ours), nan)
    assert np.array_equal(ours[~nan].view(np.uint32), theirs[~nan].view(np.uint32))


def rounding_cases() -> np.ndarray:
    rng = np.random.default_rng(1)
    random_bits = rng.integers(0, 1 << 32, size=200_000, dtype=np.uint64).astype(np.uint32)
    upper = rng.integers(0, 1 << 16, size=2000, dtype=np.uint64).astype(np.uint32) << 16
    special = np.array([
        0x00000000, 0x80000000,              # +-0
        0x7F800000, 0xFF800000,              # +-inf
        0x7FC00000, 0x7F800001, 0xFF800001,  # quiet NaN, NaNs whose payload is only in the dropped bits
        0x7F7FFFFF, 0x7F7F8000, 0x7F7F7FFF,  # max float32 and the round-to-inf boundary
        0x00000001, 0x00008000, 0x00018000,  # subnormals, including ties
    ], dtype=np.uint32)
    ties = np.concatenate([upper | 0x8000, upper | 0x7FFF, upper | 0x8001])  # exact ties and their neighbours
    return bits_f32(np.concatenate([special, ties, random_bits]))


def test_bfloat16_rounding_matches_ml_dtypes_bit_for_bit() -> None:
    x = rounding_cases()
    ours = np.empty(x.shape, BF16)
    store(ours, x)
    with np.errstate(invalid="ignore"):
        theirs = x.astype(BF16)
    nan = np.isnan(theirs.astype(np.float32))
    assert np.array_equal(np.isnan(ours.astype(np.float32)), nan)
    assert np.array_equal(ours[~nan].view(np.uint16), theirs[~nan].view(np.uint16))


def test_store_handles_non_contiguous_16bit_outputs() -> None:
    x = rounding_cases()[:64].reshape(8, 8)
    x = np.where(np.isfinite(x), x, 0).astype(np.float32)
    for dtype in (BF16, np.dtype(np.float16)):
        target = np.zeros((8, 16), dtype)
        view = target[:, ::2]
        buf = f32_buffer(view)
        assert buf is not view
        buf[...] = x
        with np.errstate(over="ignore"):
            store(view, buf)
            expected = x.astype(dtype)
        assert np.array_equal(view.view(np.uint16), expected.view(np.uint16))
        assert not target[:, 1::2].view(np.uint16).any()


def _elementwise(fn):
    """A loop compiled with the kernels' fast-math flags that applies the helper ``fn`` to each element."""
    @numba.njit(cache=False, fastmath=FAST)
    def apply(x, out):  # pragma: no cover - compiled
        for i in range(x.size):
            out[i] = fn(x[i])

    return apply


_apply_exp = _elementwise(exp_f32)
_apply_exp_fast = _elementwise(exp_fast_f32)
_apply_exp_short = _elementwise(exp_short_f32)
_apply_exp_short_nonpos = _elementwise(exp_short_nonpos_f32)
_apply_exp2_short = _elementwise(exp2_short_f32)
_apply_sigmoid = _elementwise(sigmoid_f32)


@numba.njit(cache=False, fastmath=FAST)
def _compensated_sum(parts):  # pragma: no cover - compiled
    total = np.float32(0.0)
    comp = np.float32(0.0)
    for i in range(parts.size):
        total, comp = add_compensated(total, comp, parts[i])
    return total + comp


def test_exp_is_accurate_over_the_normal_range() -> None:
    x = np.linspace(-87.3, 88.7, 2_000_003, dtype=np.float32)
    got = np.empty_like(x)
    _apply_exp(x, got)
    want = np.exp(x.astype(np.float64))
    rel = np.abs(got.astype(np.float64) - want) / want
    # The polynomial is good to about 1e-7; libm's float32 exp is about 6e-8.
    assert rel.max() < 2.5e-7


@pytest.mark.parametrize("x", [0.0, -0.0, 1.0, -1.0, 10.5, -80.0, 88.72, -87.3])
def test_exp_near_the_range_ends(x: float) -> None:
    got = np.empty(1, np.float32)
    _apply_exp(np.array([x], np.float32), got)
    want = float(np.exp(np.float64(np.float32(x))))
    assert abs(float(got[0]) - want) <= 3e-7 * want


@pytest.mark.parametrize(("x", "want"), [
    (89.0, np.inf), (np.inf, np.inf), (1e30, np.inf),   # overflow
    (-87.4, 0.0), (-1e30, 0.0), (-np.inf, 0.0),         # below the normal range: flushed to zero
])
def test_exp_saturates(x: float, want: float) -> None:
    got = np.empty(1, np.float32)
    _apply_exp(np.array([x], np.float32), got)
    assert float(got[0]) == want


def test_exp_and_sigmoid_propagate_nan() -> None:
    got = np.empty(1, np.float32)
    _apply_exp(np.array([np.nan], np.float32), got)
    assert np.isnan(got[0])
    _apply_sigmoid(np.array([np.nan], np.float32), got)
    assert np.isnan(got[0])


def test_sigmoid_saturates_cleanly() -> None:
    x = np.array([-1e30, -200.0, -20.0, 0.0, 20.0, 200.0, 1e30], np.float32)
    got = np.empty_like(x)
    _apply_sigmoid(x, got)
    with np.errstate(over="ignore"):
        want = 1.0 / (1.0 + np.exp(-x.astype(np.float64)))
    np.testing.assert_allclose(got, want, rtol=3e-7, atol=1e-38)
    assert got[0] == 0.0 and got[-1] == 1.0


def test_row_max_matches_numpy_including_infinities_and_signed_zeros() -> None:
    rng = np.random.default_rng(5)
    for n in (0, 1, 2, 7, 16, 33, 1000):
        for fill in (None, -np.inf, np.inf, -0.0, 0.0, -3.0):
            row = (rng.standard_normal(n) * 1e3).astype(np.float32)
            if fill is not None and n:
                row[rng.integers(0, n, size=max(1, n // 3))] = fill
            want = row.max() if n else -np.inf
            got = max_f32(row)
            assert got == want, (n, fill, got, want)
    all_masked = np.full(5, -np.inf, np.float32)
    assert max_f32(all_masked) == -np.inf
    assert max_f32(np.array([-1e-45, -0.0], np.float32)) == 0.0  # -0 ranks above every negative
    assert np.isnan(max_f32(np.array([1.0, np.nan, 3.0], np.float32)))


def test_fast_exp_is_accurate_where_its_result_is_a_normal_float() -> None:
    x = np.linspace(-87.3, 88.3, 2_000_003, dtype=np.float32)
    got = np.empty_like(x)
    _apply_exp_fast(x, got)
    want = np.exp(x.astype(np.float64))
    assert (np.abs(got.astype(np.float64) - want) / want).max() < 2.5e-7


@pytest.mark.parametrize(("x", "want"), [
    (88.4, np.inf), (np.inf, np.inf), (1e30, np.inf),   # overflows a little early, by design
    (-87.7, 0.0), (-1e30, 0.0), (-np.inf, 0.0),         # below ~8.6e-39: exactly zero
])
def test_fast_exp_saturates(x: float, want: float) -> None:
    got = np.empty(1, np.float32)
    _apply_exp_fast(np.array([x], np.float32), got)
    assert float(got[0]) == want


@pytest.mark.parametrize("apply", [_apply_exp_fast, _apply_exp_short, _apply_exp_short_nonpos, _apply_exp2_short],
                         ids=["exp_fast", "exp_short", "exp_short_nonpos", "exp2_short"])
def test_fast_exps_propagate_nan(apply) -> None:
    """NaN passes through every vectorised exp's clamps (their compares are false) to the output."""
    got = np.empty(2, np.float32)
    apply(np.array([np.nan, -np.nan], np.float32), got)
    assert np.isnan(got).all()


def test_compensated_sum_keeps_what_plain_float32_rounds_away() -> None:
    # 2**24 followed by ones: a plain float32 running sum never moves (each 1 is half an ulp, rounded to even).
    parts = np.concatenate([[2.0**24], np.ones(1000)]).astype(np.float32)
    assert _compensated_sum(parts) == 2.0**24 + 1000
    rng = np.random.default_rng(2)
    parts = (rng.standard_normal(100_000) * 10.0 ** rng.integers(-3, 4, 100_000)).astype(np.float32)
    exact = math.fsum(parts.astype(np.float64))
    assert abs(float(_compensated_sum(parts)) - exact) <= 2 * 2**-24 * abs(exact) + 1e-30


def test_compensated_sum_of_infinities_stays_infinite() -> None:
    assert _compensated_sum(np.array([1.0, np.inf, 2.0], np.float32)) == np.inf
    assert _compensated_sum(np.array([np.inf, np.inf], np.float32)) == np.inf


def test_short_exp_is_within_its_bound_where_its_result_is_a_normal_float() -> None:
    # Dense over the range and around the reduction's breakpoints (r = +-ln2/2), where the polynomial's
    # error peaks, and at the largest |n| (the one-constant reduction's error grows with it).
    x = np.linspace(-87.3, 88.3, 4_000_003, dtype=np.float32)
    got = np.empty_like(x)
    _apply_exp_short(x, got)
    want = np.exp(x.astype(np.float64))
    rel = np.abs(got.astype(np.float64) - want) / want
    assert rel.max() < 5e-7


def test_short_exp_of_subnormal_and_tiny_inputs_is_one() -> None:
    x = np.array([0.0, -0.0, 1e-45, -1e-45, 1e-38, -1e-38, 1e-10, -1e-10], np.float32)
    got = np.empty_like(x)
    _apply_exp_short(x, got)
    np.testing.assert_allclose(got, np.exp(x.astype(np.float64)), rtol=1.2e-7)
    assert got[0] == 1.0 and got[1] == 1.0


@pytest.mark.parametrize(("x", "want"), [
    (88.4, np.inf), (np.inf, np.inf), (1e30, np.inf), (3.4e38, np.inf),   # as exp_fast_f32
    (-87.7, 0.0), (-1e30, 0.0), (-3.4e38, 0.0), (-np.inf, 0.0),
])
def test_short_exp_saturates_as_the_fast_one(x: float, want: float) -> None:
    got = np.empty(1, np.float32)
    _apply_exp_short(np.array([x], np.float32), got)
    assert float(got[0]) == want


def test_short_exp_for_nonpositive_inputs_is_the_short_exp_bit_for_bit() -> None:
    rng = np.random.default_rng(7)
    negative = (rng.integers(0, 1 << 31, size=2_000_000, dtype=np.uint64).astype(np.uint32) | np.uint32(1 << 31))
    x = np.concatenate([negative.view(np.float32), -np.linspace(0.0, 100.0, 2_000_003, dtype=np.float32),
                        np.array([0.0, -0.0, -np.inf, np.nan, -np.nan, -87.68, -88.0, -88.1], np.float32)])
    got, want = np.empty_like(x), np.empty_like(x)
    _apply_exp_short_nonpos(x, got)
    _apply_exp_short(x, want)
    nan = np.isnan(want)
    assert np.array_equal(np.isnan(got), nan)
    assert np.array_equal(got[~nan].view(np.uint32), want[~nan].view(np.uint32))


def test_short_exp2_is_within_its_bound_where_its_result_is_a_normal_float() -> None:
    # Dense over the range, so around every reduction breakpoint (f = +-1/2) where the error peaks.
    y = np.concatenate([np.linspace(-126.0, 127.4, 4_000_003, dtype=np.float32),
                        (np.arange(-126, 128) + np.float32(0.5)).astype(np.float32),
                        np.array([0.0, -0.0, 1e-45, -1e-45, 1e-20, -1e-20], np.float32)])
    got = np.empty_like(y)
    _apply_exp2_short(y, got)
    want = np.exp2(y.astype(np.float64))
    rel = np.abs(got.astype(np.float64) - want) / want
    assert rel.max() < 2e-7
    assert got[-6] == 1.0 and got[-5] == 1.0


@pytest.mark.parametrize(("y", "want"), [
    (127.51, np.inf), (128.0, np.inf), (np.inf, np.inf), (3.4e38, np.inf),
    (-126.5, 0.0), (-127.0, 0.0), (-3.4e38, 0.0), (-np.inf, 0.0),
])
def test_short_exp2_saturates(y: float, want: float) -> None:
    got = np.empty(1, np.float32)
    _apply_exp2_short(np.array([y], np.float32), got)
    assert float(got[0]) == want


def test_add_scalar_float32_route_is_bit_identical_to_float64() -> None:
    """add_scalar adds a scalar that is exactly a float32 in float32: the bits of the float64 add, rounded.

    Double rounding through float64 is innocuous for a sum of two float32 values (53 >= 2 * 24 + 2), so
    the cheaper route must agree everywhere: random bit patterns (NaN, inf, subnormals included) and
    scalars at the edges of the range.
    """
    from reference.kernels.elementwise import _add_scalar_flat, _scalar_for_sum

    rng = np.random.default_rng(11)
    x = rng.integers(0, 1 << 32, size=200_000, dtype=np.uint64).astype(np.uint32).view(np.float32)
    finite = x[np.isfinite(x)]
    scalars = [1.5, -3.0, 0.0, -0.0, 2.0**-149, -(2.0**-149), 2.0**-126, float(np.finfo(np.float32).max),
               -float(np.finfo(np.float32).max), *(float(v) for v in finite[:48])]
    for v in scalars:
        assert isinstance(_scalar_for_sum(v), np.float32)
        wide, narrow32 = np.empty_like(x), np.empty_like(x)
        _add_scalar_flat(x, v, wide)
        _add_scalar_flat(x, np.float32(v), narrow32)
        assert np.array_equal(wide.view(np.uint32), narrow32.view(np.uint32)), v
    assert not isinstance(_scalar_for_sum(0.1), np.float32)  # not a float32: stays float64
    assert not isinstance(_scalar_for_sum(3.4e38), np.float32)
