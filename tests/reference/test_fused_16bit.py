"""The one-pass 16-bit paths of the memory-bound kernels.

These kernels read float16/bfloat16 tensors as raw bits, widen each element in
a register and round each result on its way to memory (``_numerics.lanes``).
That must give *bit-identical* results to the two-pass route it replaced:
widen every input to float32, run the float32 kernel, round its output once.
So each case runs the kernel on 16-bit arrays and on their float32 widening,
rounds the latter, and compares bits — for odd sizes (vector remainders),
non-contiguous inputs and outputs, and values that round to inf, to the
smallest subnormals and to NaN. The goldens and tolerances are checked
elsewhere (``test_kernel_numerics``); this is the stronger, exact property.
"""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

from reference import Direction, get_kernel
from reference.kernels import _numerics, attention, norms

BF16 = np.dtype(ml_dtypes.bfloat16)
HALVES = {"float16": np.dtype(np.float16), "bfloat16": BF16}


def values(rng: np.random.Generator, shape: tuple[int, ...], dtype: np.dtype, scale: float = 3.0) -> np.ndarray:
    a = (rng.standard_normal(shape) * scale).astype(np.float32)
    flat = a.reshape(-1)
    if flat.size >= 4:  # a few edge values among ordinary ones
        big = 6.0e4 if dtype == np.float16 else 3.0e38
        flat[:4] = [big, -big, 1e-7 if dtype == np.float16 else 1e-38, np.nan]
    return a.astype(dtype)


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    a, b = np.ascontiguousarray(a), np.ascontiguousarray(b)
    ua, ub = a.view(np.uint16), b.view(np.uint16)
    nan_a, nan_b = np.isnan(a.astype(np.float32)), np.isnan(b.astype(np.float32))
    return bool(np.array_equal(nan_a, nan_b) and np.array_equal(ua[~nan_a], ub[~nan_b]))


def case(name: str, rng: np.random.Generator, dtype: np.dtype, n: int) -> list:
    """Arguments of ``name`` with odd sizes; tensors in ``dtype`` (16-bit)."""
    h = n
    if name in ("add", "mul", "add_mul", "silu", "gelu", "swiglu"):
        count = {"add": 3, "mul": 3, "add_mul": 4, "silu": 2, "gelu": 2, "swiglu": 3}[name]
        return [values(rng, (n,), dtype) for _ in range(count)]
    if name == "add_scalar":
        return [values(rng, (n,), dtype), values(rng, (n,), dtype), 0.3]
    if name == "axpy":
        return [values(rng, (n,), dtype), values(rng, (n,), dtype), -1.7]
    if name == "softmax":
        return [values(rng, (3, h), dtype), values(rng, (3, h), dtype)]
    if name == "rmsnorm":
        return [values(rng, (3, h), dtype), values(rng, (h,), dtype, 1.0), values(rng, (3, h), dtype), 1e-6]
    if name == "layernorm":
        return [values(rng, (3, h), dtype), values(rng, (h,), dtype, 1.0), values(rng, (h,), dtype, 1.0),
                values(rng, (3, h), dtype), 1e-5]
    if name == "residual_add_rmsnorm":  # a float32 residual stream, as Qwen3 carries it
        return [values(rng, (3, h), dtype), values(rng, (3, h), np.dtype(np.float32)),
                values(rng, (h,), dtype, 1.0), values(rng, (3, h), dtype), 1e-6]
    if name == "rope":
        theta = rng.standard_normal((3, 4))
        return [values(rng, (3, 5, 8), dtype), np.cos(theta).astype(dtype), np.sin(theta).astype(dtype),
                values(rng, (3, 5, 8), dtype)]
    if name == "moe_combine":  # k: a tail only, a group of four, four and a tail of 2, two groups and 1
        t, k = 5, {1: 3, 7: 4, 33: 6, 517: 9}[n]
        return [values(rng, (t * k, h), dtype), rng.permutation(t * k).astype(np.int32),
                rng.random((t, k), dtype=np.float32), values(rng, (t, h), dtype)]
    if name in ("all_reduce", "all_to_all"):
        return [values(rng, (3, 3 * h), dtype, 1.0), values(rng, (3, 3 * h), dtype)]
    if name == "reduce_scatter":
        return [values(rng, (3, 3 * h), dtype, 1.0), values(rng, (3, h), dtype)]
    if name == "paged_attention_decode":
        b, hq, hkv, d, bs, blocks = 2, 4, 2, h, 3, 7
        table = rng.permutation(blocks)[:6].reshape(2, 3).astype(np.int32)
        return [values(rng, (b, hq, d), dtype, 0.5), values(rng, (blocks, bs, hkv, d), dtype, 0.5),
                values(rng, (blocks, bs, hkv, d), dtype, 0.5), table, np.array([7, 2], np.int32),
                values(rng, (b, hq, d), dtype), 0.3]
    raise AssertionError(name)


FUSED = ("add", "mul", "add_scalar", "axpy", "add_mul", "silu", "gelu", "swiglu", "softmax", "rmsnorm",
         "layernorm", "residual_add_rmsnorm", "rope", "moe_combine", "all_reduce", "reduce_scatter",
         "all_to_all", "paged_attention_decode")
ODD = (1, 7, 33, 517)  # scalar tails, one vector plus a tail, past a SUM_BLOCK of 512


def widened(args: list) -> list:
    return [a.astype(np.float32) if isinstance(a, np.ndarray) and a.dtype in HALVES.values() else
            (a.copy() if isinstance(a, np.ndarray) else a) for a in args]


def check_same_as_two_pass(name: str, args: list) -> None:
    kernel = get_kernel(name)
    wide = widened(args)
    kernel.run(wide)
    kernel.run(args)
    for i, p in enumerate(kernel.params):
        if p.direction in (Direction.OUT, Direction.INOUT) and args[i].dtype in HALVES.values():
            with np.errstate(over="ignore"):
                expected = wide[i].astype(args[i].dtype)
            assert same_bits(args[i], expected), f"{name}: parameter {p.name!r} differs from the two-pass route"


@pytest.mark.parametrize("dtype", sorted(HALVES))
@pytest.mark.parametrize("n", ODD)
@pytest.mark.parametrize("name", FUSED)
def test_one_pass_equals_widen_compute_round(name: str, n: int, dtype: str) -> None:
    if name == "paged_attention_decode" and n > 33:
        pytest.skip("head_dim 517 adds nothing over 33 here")
    args = case(name, np.random.default_rng(n), HALVES[dtype], n)
    if name in ("silu", "gelu", "swiglu", "softmax", "moe_combine", "paged_attention_decode"):
        # exp of a NaN or of +-inf inputs is covered elsewhere; here, finite values only
        for a in args:
            if isinstance(a, np.ndarray) and a.dtype in HALVES.values():
                a[np.isnan(a.astype(np.float32))] = 0
    check_same_as_two_pass(name, args)


@pytest.mark.parametrize("dtype", sorted(HALVES))
def test_non_contiguous_16bit_operands(dtype: str) -> None:
    rng = np.random.default_rng(5)
    half = HALVES[dtype]
    base = values(rng, (6, 34), half)
    x = base[::2, 1:]                                  # strided input
    out_base = np.full((4, 40), np.nan, dtype=half)
    out = out_base[1:4, 3:36]                          # output inside a larger buffer
    for name in ("softmax", "gelu"):
        kernel = get_kernel(name)
        expected = np.empty(x.shape, np.float32)
        kernel.run([x.astype(np.float32), expected])
        kernel.run([x, out])
        assert same_bits(out, expected.astype(half)), name
    untouched = np.ones(out_base.shape, bool)
    untouched[1:4, 3:36] = False
    assert np.isnan(out_base[untouched].astype(np.float32)).all()


@pytest.mark.parametrize("name", ["add", "softmax", "rmsnorm", "residual_add_rmsnorm", "all_reduce",
                                  "paged_attention_decode"])
def test_float16_without_half_conversions_in_hardware(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A CPU without half-precision conversions takes the two-pass route: same bits."""
    rng = np.random.default_rng(9)
    fused = case(name, rng, np.dtype(np.float16), 33)
    for a in fused:
        if isinstance(a, np.ndarray) and a.dtype == np.float16:
            a[np.isnan(a.astype(np.float32))] = 0
    fallback = [a.copy() if isinstance(a, np.ndarray) else a for a in fused]
    get_kernel(name).run(fused)
    monkeypatch.setattr(_numerics, "F16_IN_REGISTER", False)
    monkeypatch.setattr(norms, "F16_IN_REGISTER", False)
    monkeypatch.setattr(attention, "F16_IN_REGISTER", False)
    assert _numerics.lanes(np.zeros(3, np.float16)).dtype == np.float32
    get_kernel(name).run(fallback)
    for i, p in enumerate(get_kernel(name).params):
        if p.direction in (Direction.OUT, Direction.INOUT):
            assert same_bits(fused[i], fallback[i]) if fused[i].dtype == np.float16 else \
                np.array_equal(fused[i], fallback[i], equal_nan=True)


def test_float16_residual_is_rounded_before_it_is_normalised() -> None:
    rng = np.random.default_rng(3)
    x, res = values(rng, (3, 33), np.dtype(np.float16)), values(rng, (3, 33), np.dtype(np.float16))
    x[np.isnan(x.astype(np.float32))] = 0
    res[np.isnan(res.astype(np.float32))] = 0
    w = values(rng, (33,), np.dtype(np.float16), 1.0)
    out = np.empty_like(x)
    with np.errstate(over="ignore"):  # the edge values overflow float16, as they should
        summed = (res.astype(np.float32) + x.astype(np.float32)).astype(np.float16)
    expected = np.empty(x.shape, np.float32)
    get_kernel("rmsnorm").run([summed.astype(np.float32), w.astype(np.float32), expected, 1e-6])
    get_kernel("residual_add_rmsnorm").run([x, res, w, out, 1e-6])
    assert same_bits(res, summed)
    with np.errstate(over="ignore"):
        assert same_bits(out, expected.astype(np.float16))


@pytest.mark.skipif(not _numerics.F16_IN_REGISTER, reason="no half-precision conversions in hardware")
def test_float16_conversions_match_numpy_bit_for_bit() -> None:
    """to_f32/store (the two-pass route of the compute-bound kernels) use the CPU's conversions for float16."""
    every = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16).view(np.float16)
    ours, theirs = _numerics.to_f32(every), every.astype(np.float32)
    nan = np.isnan(theirs)
    assert np.array_equal(np.isnan(ours), nan)
    assert np.array_equal(ours[~nan].view(np.uint32), theirs[~nan].view(np.uint32))
    rng = np.random.default_rng(2)
    bits = rng.integers(0, 1 << 32, size=200_000, dtype=np.uint64).astype(np.uint32)
    ties = (rng.integers(0, 1 << 16, size=2000, dtype=np.uint64).astype(np.uint32) << 13) | 0x1000
    x = np.concatenate([bits, ties, np.array([0x477FF000, 0x477FEFFF, 0x33000000, 0x7F800000], np.uint32)])
    x = x.view(np.float32)
    mine = np.empty(x.shape, np.float16)
    _numerics.store(mine, x)
    with np.errstate(over="ignore"):
        want = x.astype(np.float16)
    assert same_bits(mine, want)


def _signed_powers(rng: np.random.Generator, shape: tuple[int, ...], lo: float, hi: float) -> np.ndarray:
    """Values +-2**u, u uniform in [lo, hi): magnitudes spread over many binades."""
    return rng.choice([-1.0, 1.0], size=shape) * 2.0 ** rng.uniform(lo, hi, size=shape)


@pytest.mark.parametrize("dtype", sorted(HALVES))
def test_rope_16bit_rotation_in_float32_matches_float64_where_it_must(dtype: str) -> None:
    """16-bit RoPE rotates in float32 only where both products are exact there (``rope`` docstring).

    bfloat16 has float32's exponent range, so products of tiny values fall below float32's normal
    range, and tables above 1 let them overflow it: those tokens and rows must take the float64
    route. (The float32 route would differ, mostly by the sign of a zero or a subnormal's last bits,
    in hundreds of elements here.) Each tensor mixes ordinary heads with such ones, so a check that
    looked at the wrong row or token fails too.
    """
    rng = np.random.default_rng(11)
    half = HALVES[dtype]
    t, h, d = 64, 4, 96
    x = rng.standard_normal((t, h, d))
    theta = rng.uniform(0, 7, (t, d // 2))
    cos, sin = np.cos(theta), np.sin(theta)
    # Each kind of token or row is caught by one check only; the others let it through.
    x[:, 1] = _signed_powers(rng, (t, d), -133, -70)   # tiny rows (the row check) ...
    cos[3::4], sin[3::4] = (_signed_powers(rng, (t // 4, d // 2), -60, -20) for _ in range(2))  # ... with small tables
    x[:, 2] = _signed_powers(rng, (t, d), -66, -50)    # small rows, fine ...
    cos[1::4], sin[1::4] = (_signed_powers(rng, (t // 4, d // 2), -110, -75) for _ in range(2))  # ... but tiny tables
    x[2::4, 3] = _signed_powers(rng, (t // 4, d), 110, 127) * 1.5  # huge rows ...
    sin[2::4] *= 3.0                                   # ... with tables above 1: products overflow
    with np.errstate(over="ignore"):
        args = [x.astype(half), cos.astype(half), sin.astype(half), np.empty((t, h, d), half)]
    with np.errstate(over="ignore", invalid="ignore"):
        check_same_as_two_pass("rope", args)


@pytest.mark.parametrize("name", ["silu", "gelu"])
def test_bfloat16_activation_table_is_the_two_pass_result_for_every_input(name: str) -> None:
    """bfloat16 SiLU and GELU look results up in a table of the fused kernel (``activations``): every one
    of the 65,536 inputs, NaNs and infinities included, gives the float32 kernel's result rounded once."""
    every = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16).view(BF16)
    out = np.empty_like(every)
    get_kernel(name).run([every, out])
    wide = np.empty(every.shape, np.float32)
    get_kernel(name).run([every.astype(np.float32), wide])
    with np.errstate(over="ignore"):
        assert same_bits(out, wide.astype(BF16))
    assert np.isnan(out.astype(np.float32))[np.isnan(every.astype(np.float32))].all()  # NaN in, NaN out
