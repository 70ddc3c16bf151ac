"""Every reference kernel's fast (numba) path against its float64 numpy golden.

For each kernel and each dtype it supports, hypothesis generates shapes —
empty, size 1, odd sizes — and values up to large magnitudes, runs ``run`` and
``golden`` on separate copies of the same arguments, and compares every OUT and
INOUT parameter with the kernel's own ``tolerance(dtype)``. Outputs start out
as NaN (or a sentinel for integers), so an element the fast path forgets to
write fails the comparison; IN parameters must come back bit-identical.

Value ranges are chosen per kernel so that the *true* result stays finite in
the output dtype; kernels whose rounding error grows with an accumulation
(matmul, attention, expert FFN) get unit-scale data, and large magnitudes are
reached by power-of-two scaling with the absolute tolerance scaled alike.
Kernels that sum terms of either sign in float32 (LayerNorm's bias add after
float32 statistics, MoE combine, the summing collectives) are accurate relative
to the terms, not to a result the terms cancel: their atol is stated for
unit-scale terms and the case scales it by the magnitude of the terms drawn.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import ml_dtypes
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from reference import Direction, get_kernel, kernel_names

BF16 = np.dtype(ml_dtypes.bfloat16)
FLOATS = ("float32", "float16", "bfloat16")
INTS = ("int32", "int8")

EXAMPLES = settings(max_examples=30, deadline=None,  # deadline off: the first call may load or JIT
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def dt(name: str) -> np.dtype:
    return BF16 if name == "bfloat16" else np.dtype(name)


def big(dtype: str, wide: float, half: float) -> float:
    """A large magnitude bound: ``wide`` for float32/bfloat16 (same exponent range), ``half`` for float16."""
    return half if dtype == "float16" else wide


# --------------------------------------------------------------------------- array strategies

def side(max_side: int = 9) -> st.SearchStrategy[int]:
    return st.integers(0, max_side)


def float_array(draw, dtype: str, shape: tuple[int, ...], bound: float) -> np.ndarray:
    bound = float(np.float32(bound))  # hypothesis wants bounds exactly representable at width 32
    elements = st.floats(-bound, bound, width=32, allow_nan=False, allow_infinity=False)
    a = draw(hnp.arrays(np.float32, shape, elements=elements))
    return a.astype(dt(dtype))


def int_array(draw, dtype: str, shape: tuple[int, ...], lo: int | None = None, hi: int | None = None) -> np.ndarray:
    info = np.iinfo(dtype)
    lo = info.min if lo is None else lo
    hi = info.max if hi is None else hi
    return draw(hnp.arrays(np.dtype(dtype), shape, elements=st.integers(lo, hi)))


def any_array(draw, dtype: str, shape: tuple[int, ...], bound: float) -> np.ndarray:
    if dtype in INTS:
        return int_array(draw, dtype, shape)
    return float_array(draw, dtype, shape, bound)


def garbage(dtype: str, shape: tuple[int, ...]) -> np.ndarray:
    """An output buffer whose every element is wrong unless the kernel writes it."""
    if dtype in ("int32", "int8"):
        return np.full(shape, -77, dtype=dtype)
    return np.full(shape, np.nan, dtype=dt(dtype))


def pow2(draw, lo: int, hi: int) -> float:
    return 2.0 ** draw(st.integers(lo, hi))


# --------------------------------------------------------------------------- per-kernel cases
# Each case builder returns (positional values, atol scale).

Case = tuple[list, float]


def elementwise_shape(draw) -> tuple[int, ...]:
    return draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=9))


def case_add(draw, dtype: str) -> Case:
    shape = elementwise_shape(draw)
    bound = big(dtype, 1e38, 3e4)
    return [any_array(draw, dtype, shape, bound), any_array(draw, dtype, shape, bound), garbage(dtype, shape)], 1.0


def case_mul(draw, dtype: str) -> Case:
    shape = elementwise_shape(draw)
    bound = big(dtype, 1e19, 250.0)
    return [any_array(draw, dtype, shape, bound), any_array(draw, dtype, shape, bound), garbage(dtype, shape)], 1.0


def case_add_scalar(draw, dtype: str) -> Case:
    shape = elementwise_shape(draw)
    value = draw(st.floats(-1e4, 1e4))
    return [float_array(draw, dtype, shape, big(dtype, 1e38, 3e4)), garbage(dtype, shape), value], 1.0


def case_axpy(draw, dtype: str) -> Case:
    shape = elementwise_shape(draw)
    bound = big(dtype, 1e15, 100.0)
    alpha = draw(st.floats(-100, 100))
    return [float_array(draw, dtype, shape, bound), float_array(draw, dtype, shape, bound), alpha], 1.0


def case_add_mul(draw, dtype: str) -> Case:
    shape = elementwise_shape(draw)
    bound = big(dtype, 1e18, 100.0)
    a, b, c = (float_array(draw, dtype, shape, bound) for _ in range(3))
    return [a, b, c, garbage(dtype, shape)], 1.0


def unary_case(bound_wide: float, bound_half: float):
    def case(draw, dtype: str) -> Case:
        shape = elementwise_shape(draw)
        return [float_array(draw, dtype, shape, big(dtype, bound_wide, bound_half)), garbage(dtype, shape)], 1.0

    return case


def case_swiglu(draw, dtype: str) -> Case:
    shape = elementwise_shape(draw)
    bound = big(dtype, 1e15, 200.0)
    # The gate stays above -80: below about -87 silu(gate) is under float32's normal range, where the fast
    # path (like any float32 implementation) flushes it to 0, and a huge `up` would scale that lost value
    # back above the absolute tolerance. Large positive gates are fine.
    gate = draw(hnp.arrays(np.float32, shape, elements=st.floats(-80.0, float(np.float32(bound)), width=32)))
    return [gate.astype(dt(dtype)), float_array(draw, dtype, shape, bound), garbage(dtype, shape)], 1.0


def rows_shape(draw, max_h: int = 40) -> tuple[int, ...]:
    lead = draw(hnp.array_shapes(min_dims=0, max_dims=2, min_side=0, max_side=5))
    return (*lead, draw(st.integers(0, max_h)))


EPS = st.sampled_from([0.0, 1e-6, 1e-5, 0.5])


def case_rmsnorm(draw, dtype: str) -> Case:
    shape = rows_shape(draw)
    x = float_array(draw, dtype, shape, big(dtype, 1e15, 1e4))
    w = float_array(draw, dtype, shape[-1:], 10.0)
    return [x, w, garbage(dtype, shape), draw(EPS)], 1.0


def max_abs(a: np.ndarray) -> float:
    return float(np.abs(a.astype(np.float64)).max()) if a.size else 0.0


# Terms that underflow are off by a subnormal step whatever their scale: the scaled atol never drops below
# what the fixed-atol kernels allow for subnormal results (1e-30 in float32/bfloat16, 1e-7 in float16).
TERMS_FLOOR = {"float32": 1e-24, "bfloat16": 1e-24, "float16": 0.1}


def terms_scale(dtype: str, scale: float) -> float:
    return max(scale, TERMS_FLOOR[dtype])


def case_layernorm(draw, dtype: str) -> Case:
    shape = rows_shape(draw)
    x = float_array(draw, dtype, shape, big(dtype, 1e15, 1e4))
    w = float_array(draw, dtype, shape[-1:], 10.0)
    b = float_array(draw, dtype, shape[-1:], 10.0)
    # |(x - mean) / std| <= sqrt(H): the largest the weighted term can be, next to the bias.
    scale = max_abs(w) * math.sqrt(shape[-1]) + max_abs(b)
    return [x, w, b, garbage(dtype, shape), draw(EPS)], terms_scale(dtype, scale)


def case_residual_add_rmsnorm(draw, dtype: str) -> Case:
    shape = rows_shape(draw)
    res_dtype = draw(st.sampled_from([dtype, "float32"]))
    bound = big(dtype, 1e15, 1e4)
    x = float_array(draw, dtype, shape, bound)
    res = float_array(draw, res_dtype, shape, bound)
    w = float_array(draw, dtype, shape[-1:], 10.0)
    return [x, res, w, garbage(dtype, shape), draw(EPS)], 1.0


def case_softmax(draw, dtype: str) -> Case:
    shape = rows_shape(draw)
    x = float_array(draw, dtype, shape, big(dtype, 1e30, 6e4))
    if draw(st.booleans()):  # masked positions, as attention applies them
        mask = draw(hnp.arrays(np.bool_, shape))
        x[mask] = -np.inf
    return [x, garbage(dtype, shape)], 1.0


def case_rope(draw, dtype: str) -> Case:
    t, h, half = draw(side(5)), draw(side(4)), draw(side(6))
    x = float_array(draw, dtype, (t, h, 2 * half), big(dtype, 1e30, 1e4))
    theta = draw(hnp.arrays(np.float64, (t, half), elements=st.floats(-50, 50)))
    cos, sin = np.cos(theta).astype(dt(dtype)), np.sin(theta).astype(dt(dtype))
    return [x, cos, sin, garbage(dtype, x.shape)], 1.0


def gemm_operand(draw, dtype: str, shape: tuple[int, ...]) -> tuple[np.ndarray, float]:
    if dtype == "int8":
        return int_array(draw, "int8", shape), 1.0
    scale = pow2(draw, -4, 4) if dtype == "float16" else pow2(draw, -30, 30)
    base = draw(hnp.arrays(np.float32, shape, elements=st.floats(-2, 2, width=32)))
    return (base * np.float32(scale)).astype(dt(dtype)), scale


def gemm_out_dtype(dtype: str) -> str:
    return "int32" if dtype == "int8" else dtype


def case_matmul(draw, dtype: str) -> Case:
    m, k, n = draw(side(12)), draw(side(16)), draw(side(12))
    a, sa = gemm_operand(draw, dtype, (m, k))
    b, sb = gemm_operand(draw, dtype, (k, n))
    return [a, b, garbage(gemm_out_dtype(dtype), (m, n))], sa * sb


def case_linear(draw, dtype: str) -> Case:
    lead = draw(hnp.array_shapes(min_dims=0, max_dims=2, min_side=0, max_side=5))
    k, n = draw(side(16)), draw(side(12))
    x, sx = gemm_operand(draw, dtype, (*lead, k))
    w, sw = gemm_operand(draw, dtype, (n, k))
    return [x, w, garbage(gemm_out_dtype(dtype), (*lead, n))], sx * sw


def unit(draw, dtype: str, shape: tuple[int, ...], bound: float = 2.0) -> np.ndarray:
    return float_array(draw, dtype, shape, bound)


def scaled_values(draw, dtype: str, shape: tuple[int, ...]) -> tuple[np.ndarray, float]:
    """Unit-scale values times a power of two (outputs that average them scale alike)."""
    scale = pow2(draw, -8, 8) if dtype == "float16" else pow2(draw, -60, 60)
    base = draw(hnp.arrays(np.float32, shape, elements=st.floats(-2, 2, width=32)))
    return (base * np.float32(scale)).astype(dt(dtype)), scale


def attention_out_dtype(draw, dtype: str) -> str:
    return draw(st.sampled_from([dtype, "float32"]))


def case_attention_prefill(draw, dtype: str) -> Case:
    b, s, hkv, g, d = draw(side(2)), draw(side(6)), draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(side(8))
    q = unit(draw, dtype, (b, s, hkv * g, d))
    k = unit(draw, dtype, (b, s, hkv, d))
    v, scale = scaled_values(draw, dtype, (b, s, hkv, d))
    out = garbage(attention_out_dtype(draw, dtype), q.shape)
    return [q, k, v, out, draw(st.floats(0.01, 2.0))], scale


def case_paged_attention_decode(draw, dtype: str) -> Case:
    # Groups of up to 6 query heads: the fast path takes a group's heads four at a time, then one by one.
    b, hkv, g, d = draw(side(3)), draw(st.integers(1, 2)), draw(st.integers(1, 6)), draw(side(8))
    block_size, max_blocks, num_blocks = draw(st.integers(1, 4)), draw(st.integers(1, 4)), draw(st.integers(1, 8))
    q = unit(draw, dtype, (b, hkv * g, d))
    kc = unit(draw, dtype, (num_blocks, block_size, hkv, d))
    vc, scale = scaled_values(draw, dtype, (num_blocks, block_size, hkv, d))
    lens = draw(hnp.arrays(np.int32, (b,), elements=st.integers(0, max_blocks * block_size)))
    table = draw(hnp.arrays(np.int32, (b, max_blocks), elements=st.integers(0, num_blocks - 1)))
    # Entries past a sequence's last block are never read: poison them.
    for i in range(b):
        table[i, (int(lens[i]) + block_size - 1) // block_size :] = -999
    out = garbage(attention_out_dtype(draw, dtype), q.shape)
    return [q, kc, vc, table, lens, out, draw(st.floats(0.01, 2.0))], scale


def case_moe_topk_gating(draw, dtype: str) -> Case:
    t, e = draw(side(6)), draw(st.integers(1, 10))
    k = draw(st.integers(1, e))
    # A small pool of repeated values makes ties (and their tie-break) common.
    pool = st.sampled_from([0.0, 1.0, -1.0, 2.5])
    bound = float(np.float32(big(dtype, 1e30, 6e4)))
    wide = st.floats(-bound, bound, width=32)
    logits = draw(hnp.arrays(np.float32, (t, e), elements=st.one_of(pool, wide))).astype(dt(dtype))
    return [logits, garbage("float32", (t, k)), garbage("int32", (t, k)), k], 1.0


def case_moe_dispatch(draw, dtype: str) -> Case:
    t, h, k, e = draw(side(6)), draw(side(5)), draw(st.integers(0, 6)), draw(st.integers(1, 6))
    x = any_array(draw, dtype, (t, h), big(dtype, 1e38, 6e4))
    idx = int_array(draw, "int32", (t, k), 0, e - 1)
    return [x, idx, garbage(dtype, (t * k, h)), garbage("int32", (e,)), garbage("int32", (t * k,))], 1.0


def case_moe_expert_ffn(draw, dtype: str) -> Case:
    e, h, f = draw(st.integers(1, 3)), draw(side(6)), draw(side(6))
    counts = np.array(draw(st.lists(st.integers(0, 4), min_size=e, max_size=e)), dtype=np.int32)
    rows = int(counts.sum())
    x = unit(draw, dtype, (rows, h), 1.0)
    wg, wu = unit(draw, dtype, (e, h, f), 1.0), unit(draw, dtype, (e, h, f), 1.0)
    wd = unit(draw, dtype, (e, f, h), 1.0)
    return [x, counts, wg, wu, wd, garbage(dtype, (rows, h))], 1.0


def case_moe_combine(draw, dtype: str) -> Case:
    t, k, h = draw(side(5)), draw(st.integers(1, 9)), draw(side(8))  # k > 4 reaches the 4-routes-per-pass loop
    y = float_array(draw, dtype, (t * k, h), big(dtype, 1e37, 6e3))  # k <= 9 terms, weights <= 1
    route_ids = np.array(draw(st.permutations(range(t * k))), dtype=np.int32)
    weights = draw(hnp.arrays(np.float32, (t, k), elements=st.floats(0, 1, width=32)))
    terms = float(weights.astype(np.float64).sum(axis=1).max()) * max_abs(y) if weights.size else 0.0
    return [y, route_ids, weights, garbage(dtype, (t, h))], terms_scale(dtype, terms)


def rank_shape(draw) -> tuple[int, int, tuple[int, ...]]:
    """(ranks N, chunk rows C, trailing shape) for the stacked-by-rank collectives."""
    n = draw(st.integers(1, 4))
    c = draw(side(3))
    rest = draw(hnp.array_shapes(min_dims=0, max_dims=2, min_side=0, max_side=3))
    return n, c, rest


def rank_terms(x: np.ndarray) -> float:
    """The largest sum over ranks of |x|: the scale of a float32 rank sum's rounding error."""
    if x.dtype.kind == "i":
        return 1.0  # integer sums are compared exactly
    return terms_scale(x.dtype.name, float(np.abs(x.astype(np.float64)).sum(axis=0).max()) if x.size else 0.0)


def case_all_reduce(draw, dtype: str) -> Case:
    n, c, rest = rank_shape(draw)
    x = any_array(draw, dtype, (n, c, *rest), big(dtype, 1e37, 1.5e4))
    return [x, garbage(dtype, x.shape)], rank_terms(x)


def case_all_gather(draw, dtype: str) -> Case:
    n, c, rest = rank_shape(draw)
    x = any_array(draw, dtype, (n, c, *rest), big(dtype, 1e38, 6e4))
    return [x, garbage(dtype, (n, n * c, *rest))], 1.0


def case_reduce_scatter(draw, dtype: str) -> Case:
    n, c, rest = rank_shape(draw)
    x = any_array(draw, dtype, (n, n * c, *rest), big(dtype, 1e37, 1.5e4))
    return [x, garbage(dtype, (n, c, *rest))], rank_terms(x)


def case_all_to_all(draw, dtype: str) -> Case:
    n, c, rest = rank_shape(draw)
    x = any_array(draw, dtype, (n, n * c, *rest), big(dtype, 1e38, 6e4))
    return [x, garbage(dtype, x.shape)], 1.0


CaseFn = Callable[..., Case]

CASES: dict[str, tuple[CaseFn, tuple[str, ...]]] = {
    "add": (case_add, FLOATS + INTS),
    "mul": (case_mul, FLOATS + INTS),
    "add_scalar": (case_add_scalar, FLOATS),
    "axpy": (case_axpy, FLOATS),
    "add_mul": (case_add_mul, FLOATS),
    "silu": (unary_case(1e30, 6e4), FLOATS),
    "gelu": (unary_case(1e30, 6e4), FLOATS),
    "swiglu": (case_swiglu, FLOATS),
    "rmsnorm": (case_rmsnorm, FLOATS),
    "layernorm": (case_layernorm, FLOATS),
    "residual_add_rmsnorm": (case_residual_add_rmsnorm, FLOATS),
    "softmax": (case_softmax, FLOATS),
    "rope": (case_rope, FLOATS),
    "matmul": (case_matmul, (*FLOATS, "int8")),
    "linear": (case_linear, (*FLOATS, "int8")),
    "attention_prefill": (case_attention_prefill, FLOATS),
    "paged_attention_decode": (case_paged_attention_decode, FLOATS),
    "moe_topk_gating": (case_moe_topk_gating, FLOATS),
    "moe_dispatch": (case_moe_dispatch, FLOATS + INTS),
    "moe_expert_ffn": (case_moe_expert_ffn, FLOATS),
    "moe_combine": (case_moe_combine, FLOATS),
    "all_reduce": (case_all_reduce, (*FLOATS, "int32")),
    "all_gather": (case_all_gather, FLOATS + INTS),
    "reduce_scatter": (case_reduce_scatter, (*FLOATS, "int32")),
    "all_to_all": (case_all_to_all, FLOATS + INTS),
}

PAIRS = [(name, dtype) for name, (_, dtypes) in CASES.items() for dtype in dtypes]


# --------------------------------------------------------------------------- comparison

def copy_args(values: list) -> list:
    return [v.copy() if isinstance(v, np.ndarray) else v for v in values]


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and a.dtype == b.dtype and a.tobytes() == b.tobytes()


def assert_fast_matches_golden(name: str, values: list, atol_scale: float) -> None:
    kernel = get_kernel(name)
    fast, gold = copy_args(values), copy_args(values)
    kernel.run(fast)
    kernel.golden(gold)
    for p, orig, f, g in zip(kernel.params, values, fast, gold, strict=True):
        if p.direction is Direction.IN:
            assert same_bits(f, orig), f"{name}: run modified its input {p.name!r}"
            assert same_bits(g, orig), f"{name}: golden modified its input {p.name!r}"
        elif p.direction.writes:
            rtol, atol = kernel.tolerance(f.dtype)
            msg = f"{name}: parameter {p.name!r} ({f.dtype}, shape {f.shape})"
            if f.dtype.kind == "i":
                np.testing.assert_array_equal(f, g, err_msg=msg)
            else:
                np.testing.assert_allclose(f.astype(np.float64), g.astype(np.float64), rtol=rtol,
                                           atol=atol * atol_scale, equal_nan=True, err_msg=msg)


def test_every_registered_kernel_has_numeric_cases() -> None:
    assert set(CASES) == set(kernel_names())


def test_declared_dtypes_match_the_tested_ones() -> None:
    for name, (_, dtypes) in CASES.items():
        assert set(get_kernel(name).dtypes) == set(dtypes), name


@pytest.mark.parametrize(("name", "dtype"), PAIRS)
@EXAMPLES
@given(data=st.data())
def test_fast_path_matches_golden(name: str, dtype: str, data: st.DataObject) -> None:
    build, _ = CASES[name]
    values, atol_scale = build(data.draw, dtype)
    assert_fast_matches_golden(name, values, atol_scale)


# --------------------------------------------------------------------------- targeted numerics

def run_both(name: str, values: list) -> tuple[list, list]:
    kernel = get_kernel(name)
    fast, gold = copy_args(values), copy_args(values)
    kernel.run(fast)
    kernel.golden(gold)
    return fast, gold


@pytest.mark.parametrize("dtype", FLOATS)
def test_softmax_of_large_values_does_not_overflow(dtype: str) -> None:
    x = np.array([[1e4, 1e4 - 1.0, 0.0], [-1e4, -1e4, -1e4]], dtype=np.float32).astype(dt(dtype))
    values = [x, garbage(dtype, x.shape)]
    fast, gold = run_both("softmax", values)
    # Row 0 is [1, e^-g, 0] / (1 + e^-g) for the gap g between the first two entries once rounded to the
    # dtype (1e4 - 1 rounds onto 1e4 in both 16-bit types); e^-1e4 underflows to exactly 0.
    g = float(x[0, 0]) - float(x[0, 1])
    e = math.exp(-g)
    expected = np.array([[1 / (1 + e), e / (1 + e), 0.0], [1 / 3, 1 / 3, 1 / 3]])
    for out in (fast[1], gold[1]):
        assert np.all(np.isfinite(out.astype(np.float64)))
        np.testing.assert_allclose(out.astype(np.float64), expected, rtol=1e-2 if dtype != "float32" else 1e-6)


@pytest.mark.parametrize(("name", "formula"), [
    ("silu", lambda v: v / (1 + math.exp(-v))),
    ("gelu", lambda v: 0.5 * v * (1 + math.tanh(math.sqrt(2 / math.pi) * (v + 0.044715 * v**3)))),
])
def test_activation_matches_textbook_formula(name: str, formula) -> None:
    points = [-8.0, -3.0, -1.0, -0.5, 0.0, 0.25, 1.0, 2.0, 5.0, 30.0]
    x = np.array(points, dtype=np.float32)
    fast, gold = run_both(name, [x, garbage("float32", x.shape)])
    expected = np.array([formula(v) for v in points])
    np.testing.assert_allclose(fast[1], expected, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(gold[1], expected, rtol=1e-6, atol=1e-9)


@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")
@pytest.mark.parametrize("name", ["silu", "gelu", "swiglu"])
def test_activations_at_extreme_inputs_match_the_golden(name: str) -> None:
    # The short exp's clamps, flush and saturation, the divide by 1 + exp(-z) with exp(-z) = 0 or inf,
    # subnormals, infinities and NaN, plus a dense sweep over the range where exp(-z) is finite.
    special = np.array([0.0, -0.0, 1e-45, -1e-45, 1e-38, -1e-38, 1e-20, -1e-20, 0.5, -0.5, 9.0, -9.0,
                        40.0, -40.0, 87.0, -87.0, 88.5, -88.5, 90.0, -90.0, 1e4, -1e4, 1e30, -1e30,
                        3.4e38, -3.4e38, np.inf, -np.inf, np.nan], np.float32)
    x = np.concatenate([special, np.linspace(-100.0, 100.0, 200_001, dtype=np.float32)])
    kernel = get_kernel(name)
    rtol, atol = kernel.tolerance(np.dtype(np.float32))
    if name == "swiglu":
        up = np.concatenate([np.full(special.size, 3.0, np.float32),
                             np.linspace(-2.0, 2.0, x.size - special.size, dtype=np.float32)])
        fast, gold = run_both(name, [x, up, garbage("float32", x.shape)])
    else:
        fast, gold = run_both(name, [x, garbage("float32", x.shape)])
    with np.errstate(invalid="ignore"):
        np.testing.assert_allclose(fast[-1].astype(np.float64), gold[-1].astype(np.float64), rtol=rtol,
                                   atol=atol, equal_nan=True)


@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")
def test_elementwise_overflow_and_wraparound_agree() -> None:
    h = np.array([60000.0, -60000.0, 1.0], dtype=np.float16)
    fast, gold = run_both("add", [h, h.copy(), garbage("float16", h.shape)])
    assert np.isposinf(fast[2][0]) and np.isneginf(fast[2][1]) and fast[2][2] == 2.0
    assert same_bits(fast[2], gold[2])
    i = np.array([127, -128, 100], dtype=np.int8)
    fast, gold = run_both("add", [i, np.array([1, -1, 100], dtype=np.int8), garbage("int8", i.shape)])
    np.testing.assert_array_equal(fast[2], np.array([-128, 127, -56], dtype=np.int8))
    np.testing.assert_array_equal(gold[2], fast[2])


def test_topk_ties_prefer_the_lower_expert_and_weights_renormalise() -> None:
    logits = np.array([[1.0, 3.0, 3.0, 0.0, 3.0]], dtype=np.float32)
    fast, gold = run_both("moe_topk_gating", [logits, garbage("float32", (1, 2)), garbage("int32", (1, 2)), 2])
    for weights, indices in ((fast[1], fast[2]), (gold[1], gold[2])):
        np.testing.assert_array_equal(indices, [[1, 2]])
        np.testing.assert_allclose(weights, [[0.5, 0.5]], rtol=1e-7)


def test_dispatch_then_identity_experts_then_combine_is_the_weighted_sum() -> None:
    # With identity experts, dispatch + combine must give sum_j w[t, j] * x[t] for every token.
    rng = np.random.default_rng(7)
    t, k, e, h = 5, 2, 4, 3
    x = rng.standard_normal((t, h)).astype(np.float32)
    idx = rng.integers(0, e, size=(t, k)).astype(np.int32)
    w = rng.random((t, k)).astype(np.float32)
    xs, counts, rid = garbage("float32", (t * k, h)), garbage("int32", (e,)), garbage("int32", (t * k,))
    get_kernel("moe_dispatch").run([x, idx, xs, counts, rid])
    assert counts.sum() == t * k and np.array_equal(counts, np.bincount(idx.ravel(), minlength=e))
    out = garbage("float32", (t, h))
    get_kernel("moe_combine").run([xs, rid, w, out])
    np.testing.assert_allclose(out, w.sum(axis=1, keepdims=True) * x, rtol=1e-6)


def test_paged_decode_equals_prefill_on_the_last_token() -> None:
    # A contiguous cache laid out in shuffled blocks must give what causal prefill gives for its last query.
    rng = np.random.default_rng(3)
    s, hkv, g, d, bs = 7, 2, 5, 4, 3  # G = 5: a block of four heads and one more; 7 positions: 4 + 3
    q = rng.standard_normal((1, s, hkv * g, d)).astype(np.float32)
    k = rng.standard_normal((1, s, hkv, d)).astype(np.float32)
    v = rng.standard_normal((1, s, hkv, d)).astype(np.float32)
    pre = garbage("float32", q.shape)
    get_kernel("attention_prefill").run([q, k, v, pre, 0.5])
    n_blocks = -(-s // bs)
    order = rng.permutation(n_blocks + 2)[:n_blocks].astype(np.int32)
    kc = np.zeros((n_blocks + 2, bs, hkv, d), np.float32)
    vc = np.zeros_like(kc)
    for p in range(s):
        kc[order[p // bs], p % bs], vc[order[p // bs], p % bs] = k[0, p], v[0, p]
    dec = garbage("float32", (1, hkv * g, d))
    get_kernel("paged_attention_decode").run([q[:, -1], kc, vc, order[None, :], np.array([s], np.int32), dec, 0.5])
    np.testing.assert_allclose(dec[0], pre[0, -1], rtol=1e-5, atol=1e-6)


def test_collectives_follow_the_documented_rank_convention() -> None:
    n, c = 3, 2
    x = (np.arange(n)[:, None] * 100 + np.arange(n * c)[None, :]).astype(np.int32)  # x[s, i] = 100 s + i
    a2a = garbage("int32", x.shape)
    get_kernel("all_to_all").run([x, a2a])
    for r in range(n):
        for s in range(n):
            np.testing.assert_array_equal(a2a[r, s * c : (s + 1) * c], 100 * s + np.arange(r * c, (r + 1) * c))
    rs = garbage("int32", (n, c))
    get_kernel("reduce_scatter").run([x, rs])
    for r in range(n):
        np.testing.assert_array_equal(rs[r], sum(100 * s for s in range(n)) + n * np.arange(r * c, (r + 1) * c))


@pytest.mark.parametrize("dtype", FLOATS)
def test_strided_views_and_aliasing(dtype: str) -> None:
    rng = np.random.default_rng(11)
    base = rng.standard_normal((6, 8)).astype(dt(dtype))
    a, b = base[::2, ::2], base[1::2, 1::2]  # non-contiguous inputs
    out_base = np.full((4, 6), np.nan, dtype=dt(dtype))
    out = out_base[:3, 1:5]                   # non-contiguous output inside a larger buffer
    get_kernel("add").run([a, b, out])
    expected = (a.astype(np.float64) + b.astype(np.float64)).astype(dt(dtype))
    assert same_bits(np.ascontiguousarray(out), expected)
    assert np.isnan(out_base[3].astype(np.float64)).all() and np.isnan(out_base[:, 0].astype(np.float64)).all()
    # RoPE documents that out may be x itself.
    x = rng.standard_normal((3, 2, 6)).astype(dt(dtype))
    theta = rng.standard_normal((3, 3))
    cos, sin = np.cos(theta).astype(dt(dtype)), np.sin(theta).astype(dt(dtype))
    separate = garbage(dtype, x.shape)
    get_kernel("rope").run([x, cos, sin, separate])
    get_kernel("rope").run([x, cos, sin, x])
    assert same_bits(x, separate)


@pytest.mark.parametrize(("dtype", "offset", "step"), [("float32", 1e6, 0.0625), ("bfloat16", 256.0, 2.0),
                                                        ("float16", 1024.0, 1.0)])
def test_layernorm_of_a_large_offset_row_does_not_cancel(dtype: str, offset: float, step: float) -> None:
    # [c, c, c, c + d] normalises to [-1/sqrt 3, -1/sqrt 3, -1/sqrt 3, sqrt 3] whatever c and d are;
    # d is one ulp of c here, so a float32 "x - mean" would lose it.
    x = np.array([[offset, offset, offset, offset + step]], dtype=np.float32).astype(dt(dtype))
    ones, zeros = np.ones(4, dt(dtype)), np.zeros(4, dt(dtype))
    fast, gold = run_both("layernorm", [x, ones, zeros, garbage(dtype, x.shape), 0.0])
    r3 = math.sqrt(3.0)
    expected = np.array([[-1 / r3, -1 / r3, -1 / r3, r3]])
    rtol = get_kernel("layernorm").tolerance(dtype)[0]
    for out in (fast[3], gold[3]):
        np.testing.assert_allclose(out.astype(np.float64), expected, rtol=rtol)


# LayerNorm shifts its one-pass sums by the mean of each row's first 256 elements and keeps them only if
# that shift is within a quarter standard deviation of the row's mean (norms._ln_stats_given).
@pytest.mark.parametrize("h", [1 << 14, 1 << 20])
def test_layernorm_with_a_head_far_from_the_row_mean(h: int) -> None:
    # An outlying head on a large common offset: kept anyway, that shift cost about 3e-4 relative here.
    rng = np.random.default_rng(h)
    x = (1e4 + rng.standard_normal((2, h))).astype(np.float32)
    x[:, :256] += 50.0
    ones, zeros = np.ones(h, np.float32), np.zeros(h, np.float32)
    fast, gold = run_both("layernorm", [x, ones, zeros, garbage("float32", x.shape), 0.0])
    np.testing.assert_allclose(fast[3], gold[3], rtol=get_kernel("layernorm").tolerance("float32")[0], atol=1e-6)


@pytest.mark.parametrize("dtype", FLOATS)
@EXAMPLES
@given(data=st.data())
def test_layernorm_of_long_rows_with_offset_heads(dtype: str, data: st.DataObject) -> None:
    # Rows past the 256-element head, whose head is shifted by up to a few of the row's spreads (so the
    # shift lands on either side of the quarter-spread threshold), on a common offset.
    rows = data.draw(st.integers(1, 3))
    h = data.draw(st.integers(257, 1500))
    spread = data.draw(st.sampled_from([1e-3, 1.0, 1e3]))
    offset = data.draw(st.sampled_from([0.0, 3.0, -1e3]))
    shifts = data.draw(hnp.arrays(np.float64, (rows,), elements=st.floats(-4.0, 4.0)))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    x = offset + spread * rng.standard_normal((rows, h))
    x[:, :256] += spread * shifts[:, None]
    w = rng.uniform(-2, 2, h).astype(dt(dtype))
    b = rng.uniform(-2, 2, h).astype(dt(dtype))
    scale = max_abs(w) * math.sqrt(h) + max_abs(b)
    assert_fast_matches_golden("layernorm", [x.astype(dt(dtype)), w, b, garbage(dtype, x.shape), data.draw(EPS)],
                               terms_scale(dtype, scale))


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_rmsnorm_of_huge_values_does_not_overflow(dtype: str) -> None:
    # x^2 overflows float32 here; the result is still the well-defined [3, 4] / sqrt(12.5).
    x = np.array([[3e20, 4e20]], dtype=np.float32).astype(dt(dtype))
    fast, gold = run_both("rmsnorm", [x, np.ones(2, dt(dtype)), garbage(dtype, x.shape), 1e-6])
    exact = x.astype(np.float64) / math.sqrt(float(np.mean(x.astype(np.float64) ** 2)))
    for out in (fast[2], gold[2]):
        np.testing.assert_allclose(out.astype(np.float64), exact, rtol=get_kernel("rmsnorm").tolerance(dtype)[0])


@pytest.mark.parametrize("name", ["rmsnorm", "residual_add_rmsnorm"])
def test_rmsnorm_of_a_subnormal_row_without_eps(name: str) -> None:
    # 1/rms exceeds float32's range here; the result is still x / rms * w = [1, -1] * w.
    x = np.array([[1.25e-40, -1.25e-40]], dtype=np.float32)
    w = np.array([0.0, 2.0], dtype=np.float32)
    values = [x, w, garbage("float32", x.shape), 0.0]
    if name == "residual_add_rmsnorm":
        values = [x, np.zeros_like(x), w, garbage("float32", x.shape), 0.0]
    fast, gold = run_both(name, values)
    for out in (fast[-2], gold[-2]):
        np.testing.assert_allclose(out, [[0.0, -2.0]], rtol=1e-6)
