"""Cost descriptors against hand-computed values for one small case per kernel.

The expected numbers are worked out by hand in the comments from each
module's documented cost convention (flops per element / per pair, bytes of
every tensor read or written once), on timing-only specs.
"""

from __future__ import annotations

from dataclasses import dataclass

import ml_dtypes
import numpy as np
import pytest

from reference import Cost, get_kernel, kernel_names

BF16 = np.dtype(ml_dtypes.bfloat16)
F32, F16, I32, I8 = np.dtype("float32"), np.dtype("float16"), np.dtype("int32"), np.dtype("int8")


@dataclass(frozen=True)
class Spec:
    shape: tuple[int, ...]
    dtype: np.dtype


def S(*shape: int, dtype: np.dtype = F32) -> Spec:
    """Shorthand for a spec, so the tables below read like signatures."""
    return Spec(tuple(shape), np.dtype(dtype))


CASES: dict[str, tuple[list, Cost]] = {
    # 20 elements: 1 flop each; read a, b (2 x 80 B), write 80 B.
    "add": ([S(4, 5), S(4, 5), S(4, 5)], Cost(20, 160, 80)),
    # 9 int8 elements: 9 flops; read 18 B, write 9 B.
    "mul": ([S(3, 3, dtype=I8), S(3, 3, dtype=I8), S(3, 3, dtype=I8)], Cost(9, 18, 9)),
    # 6 float16 elements: 6 flops; read 12 B, write 12 B.
    "add_scalar": ([S(2, 3, dtype=F16), S(2, 3, dtype=F16), 1.0], Cost(6, 12, 12)),
    # 10 bf16 elements, 2 flops each; read x and y (20 + 20 B), write y (20 B).
    "axpy": ([S(10, dtype=BF16), S(10, dtype=BF16), 0.5], Cost(20, 40, 20)),
    # 4 elements x 2 flops; read 3 x 16 B; write 16 B.
    "add_mul": ([S(2, 2), S(2, 2), S(2, 2), S(2, 2)], Cost(8, 48, 16)),
    # 6 elements x 5 flops; 24 B each way.
    "silu": ([S(2, 3), S(2, 3)], Cost(30, 24, 24)),
    # 4 float16 elements x 9 flops; 8 B each way.
    "gelu": ([S(4, dtype=F16), S(4, dtype=F16)], Cost(36, 8, 8)),
    # 4 elements x 6 flops; read gate + up (32 B), write 16 B.
    "swiglu": ([S(2, 2), S(2, 2), S(2, 2)], Cost(24, 32, 16)),
    # 3 rows of 4: 4 flops x 12 + 3 flops x 3 rows = 57; read x 48 B + weight 16 B; write 48 B.
    "rmsnorm": ([S(3, 4), S(4), S(3, 4), 1e-6], Cost(57, 64, 48)),
    # 2 rows of 4 (bf16): 8 x 8 + 3 x 2 = 70; read x 16 + weight 8 + bias 8 = 32 B; write 16 B.
    "layernorm": ([S(2, 4, dtype=BF16), S(4, dtype=BF16), S(4, dtype=BF16), S(2, 4, dtype=BF16), 1e-5],
                  Cost(70, 32, 16)),
    # bf16 x, float32 residual, 2 rows of 4: 5 x 8 + 3 x 2 = 46;
    # read x 16 + residual 32 + weight 8 = 56 B; write residual 32 + out 16 = 48 B.
    "residual_add_rmsnorm": ([S(2, 4, dtype=BF16), S(2, 4), S(4, dtype=BF16), S(2, 4, dtype=BF16), 1e-6],
                             Cost(46, 56, 48)),
    # 6 elements x 5 flops; 24 B each way.
    "softmax": ([S(2, 3), S(2, 3)], Cost(30, 24, 24)),
    # x [2, 3, 4] = 24 elements x 3 flops; read x 96 + cos 16 + sin 16 B; write 96 B.
    "rope": ([S(2, 3, 4), S(2, 2), S(2, 2), S(2, 3, 4)], Cost(72, 128, 96)),
    # 2 x 3 @ 3 x 4: 2 * 2 * 4 * 3 = 48 flops; read 24 + 48 B; write 32 B.
    "matmul": ([S(2, 3), S(3, 4), S(2, 4)], Cost(48, 72, 32)),
    # x [2, 2, 3] int8 -> M = 4; W [4, 3]: 2 * 4 * 4 * 3 = 96; read 12 + 12 B; write 2*2*4 int32 = 64 B.
    "linear": ([S(2, 2, 3, dtype=I8), S(4, 3, dtype=I8), S(2, 2, 4, dtype=I32)], Cost(96, 24, 64)),
    # B=1, S=3, Hq=2, D=4: causal pairs 1 * 2 * (3 * 4 / 2) = 12, each 4 * 4 + 5 = 21 flops -> 252;
    # read q 96 + k 48 + v 48 = 192 B; write 96 B.
    "attention_prefill": ([S(1, 3, 2, 4), S(1, 3, 1, 4), S(1, 3, 1, 4), S(1, 3, 2, 4), 0.5],
                          Cost(252, 192, 96)),
    # B=2, Hq=2, D=4, 3 blocks of 2 per sequence -> 6 positions (upper bound);
    # flops 2 * 2 * 6 * (16 + 5) = 504; a K or V row is 1 head x 4 x 4 B = 16 B;
    # read q 64 + table 24 + lens 8 + K and V rows 2 * 2 * 6 * 16 = 384 -> 480 B; write 64 B.
    "paged_attention_decode": ([S(2, 2, 4), S(5, 2, 1, 4), S(5, 2, 1, 4), S(2, 3, dtype=I32), S(2, dtype=I32),
                                S(2, 2, 4), 0.5], Cost(504, 480, 64)),
    # T=3, E=5, k=2: 3 * 2 * (5 + 3) = 48; read 3 x 5 bf16 = 30 B; write weights 24 + indices 24 = 48 B.
    "moe_topk_gating": ([S(3, 5, dtype=BF16), S(3, 2), S(3, 2, dtype=I32), 2], Cost(48, 30, 48)),
    # T=3, k=2, H=4: no flops; read 6 routed rows 96 + indices 24 = 120 B;
    # write x_sorted 96 + counts 5 x 4 = 20 + route_ids 24 = 140 B.
    "moe_dispatch": ([S(3, 4), S(3, 2, dtype=I32), S(6, 4), S(5, dtype=I32), S(6, dtype=I32)],
                     Cost(0, 120, 140)),
    # R=5, H=2, F=4, E=3: 6 * 5 * 2 * 4 + 6 * 5 * 4 = 360;
    # read x 40 + counts 12 + 3 weights of 3 * 2 * 4 * 4 = 96 B each = 340 B; write 40 B.
    "moe_expert_ffn": ([S(5, 2), S(3, dtype=I32), S(3, 2, 4), S(3, 2, 4), S(3, 4, 2), S(5, 2)],
                       Cost(360, 340, 40)),
    # 6 routes x H=4 x 2 flops = 48; read expert_out 96 + route_ids 24 + weights 24 = 144 B; write 3 x 4 x 4 = 48 B.
    "moe_combine": ([S(6, 4), S(6, dtype=I32), S(3, 2), S(3, 4)], Cost(48, 144, 48)),
    # N=4 ranks of 3: 3 adds per element x 3 = 9; 48 B each way.
    "all_reduce": ([S(4, 3), S(4, 3)], Cost(9, 48, 48)),
    # N=3 ranks, 2 x 2 int8 each (4 B): every rank reads all 12 B -> 36 B; out 3 x 6 x 2 = 36 B.
    "all_gather": ([S(3, 2, 2, dtype=I8), S(3, 6, 2, dtype=I8)], Cost(0, 36, 36)),
    # N=2, x [2, 4] -> out [2, 2]: 1 add x 4 output elements; read 32 B, write 16 B.
    "reduce_scatter": ([S(2, 4), S(2, 2)], Cost(4, 32, 16)),
    # N=2, [2, 4] bf16: 16 B each way.
    "all_to_all": ([S(2, 4, dtype=BF16), S(2, 4, dtype=BF16)], Cost(0, 16, 16)),
}


def test_every_kernel_has_a_hand_computed_cost() -> None:
    assert set(CASES) == set(kernel_names())


@pytest.mark.parametrize("name", sorted(CASES))
def test_cost_matches_hand_computation(name: str) -> None:
    values, expected = CASES[name]
    assert get_kernel(name).cost(values) == expected


@pytest.mark.parametrize("name", sorted(CASES))
def test_cost_is_the_same_for_specs_and_arrays(name: str) -> None:
    values, expected = CASES[name]
    arrays = [np.zeros(v.shape, v.dtype) if isinstance(v, Spec) else v for v in values]
    assert get_kernel(name).cost(arrays) == expected


def test_bytes_moved_is_read_plus_written() -> None:
    assert Cost(1.0, 10, 4).bytes_moved == 14
