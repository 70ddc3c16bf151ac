"""The row kernels' software pipelining changes no bits.

RMSNorm, LayerNorm and softmax compute row r's output in the same pass as the
statistic of row r + 1 that reads memory (sum of squares, shifted sums, max), and a
16-bit next row is widened on the way. A matrix must therefore give exactly the
bits of its rows run one at a time (a one-row matrix has no next row), including
rows that take the other paths: squares beyond float32's range, a zero row with
eps = 0 (1/rms beyond float32), NaN and inf, and the last row.
"""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

from reference import get_kernel

DTYPES = {"float32": np.dtype(np.float32), "float16": np.dtype(np.float16), "bfloat16": np.dtype(ml_dtypes.bfloat16)}


def rows(dtype: np.dtype, h: int) -> np.ndarray:
    rng = np.random.default_rng(h)
    x = rng.standard_normal((9, h)).astype(np.float32)
    big = 6.0e4 if dtype == np.float16 else 1e30
    x[1] *= big / 8          # squares beyond float32 (float32, bfloat16)
    x[2] *= 1e-30            # squares that underflow
    x[3] = 0.0               # 1/rms beyond float32 when eps = 0
    x[4, 0] = np.nan
    x[5, 1] = np.inf
    x[6] += 1e4              # a large common offset (LayerNorm's shift)
    with np.errstate(over="ignore"):
        return x.astype(dtype)


def run(name: str, x: np.ndarray, eps: float) -> np.ndarray:
    h = x.shape[-1]
    out = np.zeros_like(x)
    w = np.linspace(-2, 2, h).astype(x.dtype)
    if name == "rmsnorm":
        args = [x, w, out, eps]
    elif name == "layernorm":
        args = [x, w, np.linspace(1, -1, h).astype(x.dtype), out, eps]
    else:
        args = [x, out]
    with np.errstate(all="ignore"):
        get_kernel(name).run(args)
    return out


@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("name", ["rmsnorm", "layernorm", "softmax"])
def test_a_matrix_gives_the_bits_of_its_rows_one_by_one(name: str, dtype: str) -> None:
    for h in (5, 33, 1100):  # below, at and across the summing blocks
        x = rows(DTYPES[dtype], h)
        for eps in (0.0, 1e-6):
            whole = run(name, x, eps)
            for r in range(x.shape[0]):
                alone = run(name, x[r : r + 1].copy(), eps)
                assert np.array_equal(whole[r : r + 1].view(np.uint8), alone.view(np.uint8)), (h, eps, r)
