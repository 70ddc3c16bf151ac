"""Streamed (non-temporal) stores of the norms' large float32 outputs.

RMSNorm and LayerNorm write a float32 output of at least
``_numerics.STREAM_MIN_BYTES`` with streaming stores (``_numerics.stream_row``,
``stream_scaled``). That must change nothing but speed: the helpers write
exactly, whatever the destination's alignment and length (ordinary stores
before the first and after the last 32-byte boundary), and each kernel gives
the same bits streamed or not. The threshold is lowered to zero here so that
small cases take that path.
"""

from __future__ import annotations

import ml_dtypes
import numba
import numpy as np
import pytest

from reference import Direction, get_kernel
from reference.kernels import _numerics

BF16 = np.dtype(ml_dtypes.bfloat16)
DTYPES = {"float32": np.dtype(np.float32), "float16": np.dtype(np.float16), "bfloat16": BF16}


@numba.njit
def _copy_and_fence(dst, src):  # pragma: no cover - compiled
    _numerics.stream_row(dst, src)
    _numerics.store_fence()


@pytest.mark.parametrize("dtype", [np.float32, np.uint16, np.int16, np.uint8])
def test_stream_row_copies_exactly_at_every_alignment(dtype: type) -> None:
    rng = np.random.default_rng(5)
    for offset in range(0, 40 // np.dtype(dtype).itemsize):
        for n in (0, 1, 7, 8, 9, 31, 33, 64, 100):
            src = rng.integers(1, 100, size=n).astype(dtype)
            buf = np.zeros(offset + n + 40, dtype)
            _copy_and_fence(buf[offset : offset + n], src)
            assert np.array_equal(buf[offset : offset + n], src)
            assert not buf[:offset].any() and not buf[offset + n :].any()


@numba.njit
def _scale_and_fence(dst, a, s, w):  # pragma: no cover - compiled
    _numerics.stream_scaled(dst, a, s, w)
    _numerics.store_fence()


@pytest.mark.parametrize("weighted", [False, True])
def test_stream_scaled_matches_float32_arithmetic_at_every_alignment(weighted: bool) -> None:
    rng = np.random.default_rng(6)
    s = np.float32(0.37)
    for offset in range(10):
        for n in (0, 1, 7, 8, 9, 33, 100):
            a = rng.standard_normal(n).astype(np.float32)
            w = rng.standard_normal(n).astype(np.float32) if weighted else None
            buf = np.zeros(offset + n + 10, np.float32)
            _scale_and_fence(buf[offset : offset + n], a, s, w)
            want = a * s * w if weighted else a * s
            assert np.array_equal(buf[offset : offset + n], want)
            assert not buf[:offset].any() and not buf[offset + n :].any()


def _case(name: str, rng: np.random.Generator, dtype: np.dtype, h: int) -> list:
    """Arguments of ``name``: 3 rows of h; the output one element past an aligned start (misaligned)."""
    def t(shape: tuple[int, ...], scale: float = 3.0) -> np.ndarray:
        return (rng.standard_normal(shape) * scale).astype(dtype)

    def misaligned_out() -> np.ndarray:
        return np.zeros(3 * h + 1, dtype)[1:].reshape(3, h)

    if name == "rmsnorm":
        return [t((3, h)), t((h,), 1.0), misaligned_out(), 1e-6]
    if name == "layernorm":
        return [t((3, h)), t((h,), 1.0), t((h,), 1.0), misaligned_out(), 1e-5]
    raise AssertionError(name)


@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("name", ["rmsnorm", "layernorm"])
def test_streamed_output_is_bit_identical(name: str, dtype: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for h in (5, 33, 517):
        plain = _case(name, np.random.default_rng(h), DTYPES[dtype], h)
        streamed = _case(name, np.random.default_rng(h), DTYPES[dtype], h)  # the same values
        get_kernel(name).run(plain)
        monkeypatch.setattr(_numerics, "STREAM_MIN_BYTES", 0)
        assert _numerics.streams(plain[-2]) == (dtype == "float32")  # 16-bit outputs never stream
        get_kernel(name).run(streamed)
        monkeypatch.undo()
        for i, p in enumerate(get_kernel(name).params):
            if p.direction in (Direction.OUT, Direction.INOUT):
                a, b = np.ascontiguousarray(plain[i]), np.ascontiguousarray(streamed[i])
                assert np.array_equal(a.view(np.uint8), b.view(np.uint8))
