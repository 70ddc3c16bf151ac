"""Signature checks: wrong shapes, dtypes, kinds and arity give a KernelArgError naming the parameter.

Checks run on timing-only specs (objects with only ``.shape`` and ``.dtype``),
so every case here uses :class:`Spec`; the content checks that need data
(block ids, routing indices, permutations) are exercised through ``run``.
"""

from __future__ import annotations

from dataclasses import dataclass

import ml_dtypes
import numpy as np
import pytest

from reference import Direction, KernelArgError, get_kernel, kernel_names

BF16 = np.dtype(ml_dtypes.bfloat16)
F32, F16, F64 = np.dtype("float32"), np.dtype("float16"), np.dtype("float64")
I32, I64, I8 = np.dtype("int32"), np.dtype("int64"), np.dtype("int8")


@dataclass(frozen=True)
class Spec:
    """A timing-only tensor: a shape and a dtype, no data."""

    shape: tuple[int, ...]
    dtype: np.dtype = F32


def S(*shape: int, dtype: np.dtype = F32) -> Spec:
    """Shorthand for a spec, so the tables below read like signatures."""
    return Spec(tuple(shape), np.dtype(dtype))


# A valid signature for every kernel.
VALID: dict[str, list] = {
    "add": [S(4, 5), S(4, 5), S(4, 5)],
    "mul": [S(4, 5, dtype=I8), S(4, 5, dtype=I8), S(4, 5, dtype=I8)],
    "add_scalar": [S(4, 5), S(4, 5), 1.5],
    "axpy": [S(4), S(4), 2.0],
    "add_mul": [S(4, 5), S(4, 5), S(4, 5), S(4, 5)],
    "silu": [S(3, 7), S(3, 7)],
    "gelu": [S(3, 7, dtype=BF16), S(3, 7, dtype=BF16)],
    "swiglu": [S(3, 7), S(3, 7), S(3, 7)],
    "rmsnorm": [S(2, 3, 8), S(8), S(2, 3, 8), 1e-6],
    "layernorm": [S(2, 8), S(8), S(8), S(2, 8), 1e-5],
    "residual_add_rmsnorm": [S(2, 8, dtype=BF16), S(2, 8), S(8, dtype=BF16), S(2, 8, dtype=BF16), 1e-6],
    "softmax": [S(2, 8), S(2, 8)],
    "rope": [S(3, 2, 8), S(3, 4), S(3, 4), S(3, 2, 8)],
    "matmul": [S(3, 4), S(4, 5), S(3, 5)],
    "linear": [S(2, 3, 4, dtype=I8), S(5, 4, dtype=I8), S(2, 3, 5, dtype=I32)],
    "attention_prefill": [S(1, 5, 4, 8), S(1, 5, 2, 8), S(1, 5, 2, 8), S(1, 5, 4, 8), 0.35],
    "paged_attention_decode": [S(2, 4, 8, dtype=BF16), S(6, 4, 2, 8, dtype=BF16), S(6, 4, 2, 8, dtype=BF16),
                               S(2, 3, dtype=I32), S(2, dtype=I32), S(2, 4, 8), 0.35],
    "moe_topk_gating": [S(5, 8), S(5, 2), S(5, 2, dtype=I32), 2],
    "moe_dispatch": [S(5, 16), S(5, 2, dtype=I32), S(10, 16), S(8, dtype=I32), S(10, dtype=I32)],
    "moe_expert_ffn": [S(10, 16), S(4, dtype=I32), S(4, 16, 32), S(4, 16, 32), S(4, 32, 16), S(10, 16)],
    "moe_combine": [S(10, 16), S(10, dtype=I32), S(5, 2), S(5, 16)],
    "all_reduce": [S(4, 6), S(4, 6)],
    "all_gather": [S(4, 2, 3), S(4, 8, 3)],
    "reduce_scatter": [S(4, 8, 3), S(4, 2, 3)],
    "all_to_all": [S(4, 8), S(4, 8)],
}

# (kernel, position, replacement, parameter the message must name)
BAD: list[tuple[str, int, object, str]] = [
    ("add", 1, S(4, 6), "b"),
    ("add", 2, S(4, 5, dtype=F16), "out"),
    ("mul", 2, S(5, 4, dtype=I8), "out"),
    ("mul", 1, S(4, 5, dtype=I32), "b"),
    ("add_scalar", 1, S(4, 4), "out"),
    ("axpy", 1, S(5), "y"),
    ("axpy", 1, S(4, dtype=F16), "y"),
    ("add_mul", 2, S(4, 4), "c"),
    ("add_mul", 3, S(4, 5, dtype=BF16), "out"),
    ("silu", 1, S(3, 6), "out"),
    ("gelu", 1, S(3, 7), "out"),
    ("swiglu", 1, S(3, 6), "up"),
    ("rmsnorm", 1, S(7), "weight"),
    ("rmsnorm", 2, S(2, 3, 7), "out"),
    ("rmsnorm", 0, S(), "x"),
    ("layernorm", 2, S(9), "bias"),
    ("layernorm", 1, S(8, dtype=F16), "weight"),
    ("residual_add_rmsnorm", 1, S(2, 8, dtype=F16), "residual"),
    ("residual_add_rmsnorm", 1, S(2, 7), "residual"),
    ("residual_add_rmsnorm", 2, S(8), "weight"),
    ("softmax", 1, S(2, 7), "out"),
    ("rope", 0, S(3, 2, 7), "x"),
    ("rope", 0, S(3, 8), "x"),
    ("rope", 1, S(3, 3), "cos"),
    ("rope", 2, S(2, 4), "sin"),
    ("matmul", 1, S(5, 5), "b"),
    ("matmul", 2, S(3, 4), "out"),
    ("matmul", 2, S(3, 5, dtype=F16), "out"),
    ("matmul", 0, S(3, 4, 1), "a"),
    ("linear", 1, S(5, 3, dtype=I8), "weight"),
    ("linear", 2, S(2, 3, 5, dtype=I8), "out"),
    ("linear", 2, S(2, 3, 4, dtype=I32), "out"),
    ("attention_prefill", 1, S(1, 5, 3, 8), "k"),
    ("attention_prefill", 2, S(1, 5, 2, 7), "v"),
    ("attention_prefill", 3, S(1, 5, 4, 8, dtype=I32), "out"),
    ("attention_prefill", 1, S(1, 4, 2, 8), "k"),
    ("paged_attention_decode", 1, S(6, 4, 3, 8, dtype=BF16), "key_cache"),
    ("paged_attention_decode", 2, S(6, 4, 2, 7, dtype=BF16), "value_cache"),
    ("paged_attention_decode", 3, S(2, 3, dtype=I64), "block_table"),
    ("paged_attention_decode", 3, S(3, 3, dtype=I32), "block_table"),
    ("paged_attention_decode", 4, S(3, dtype=I32), "context_lens"),
    ("paged_attention_decode", 5, S(2, 4, 8, dtype=F16), "out"),
    ("moe_topk_gating", 1, S(5, 3), "weights"),
    ("moe_topk_gating", 2, S(5, 2, dtype=I64), "indices"),
    ("moe_topk_gating", 3, 9, "k"),
    ("moe_topk_gating", 3, 0, "k"),
    ("moe_topk_gating", 3, 2.5, "k"),
    ("moe_topk_gating", 3, True, "k"),
    ("moe_topk_gating", 0, S(5, 0), "logits"),
    ("moe_dispatch", 1, S(4, 2, dtype=I32), "indices"),
    ("moe_dispatch", 2, S(10, 15), "x_sorted"),
    ("moe_dispatch", 3, S(8), "counts"),
    ("moe_dispatch", 4, S(9, dtype=I32), "route_ids"),
    ("moe_expert_ffn", 2, S(3, 16, 32), "w_gate"),
    ("moe_expert_ffn", 3, S(4, 16, 31), "w_up"),
    ("moe_expert_ffn", 4, S(4, 31, 16), "w_down"),
    ("moe_expert_ffn", 5, S(10, 15), "out"),
    ("moe_expert_ffn", 1, S(4, dtype=I64), "counts"),
    ("moe_combine", 0, S(9, 16), "expert_out"),
    ("moe_combine", 1, S(9, dtype=I32), "route_ids"),
    ("moe_combine", 2, S(5, 2, dtype=F16), "weights"),
    ("moe_combine", 3, S(5, 15), "out"),
    ("all_reduce", 1, S(4, 5), "out"),
    ("all_reduce", 0, S(0, 6), "x"),
    ("all_gather", 1, S(4, 7, 3), "out"),
    ("reduce_scatter", 0, S(4, 7, 3), "x"),
    ("reduce_scatter", 1, S(4, 3, 3), "out"),
    ("all_to_all", 0, S(4, 6), "x"),
    ("all_to_all", 1, S(4, 4), "out"),
]

# Scalars that are of the right kind but an invalid value.
BAD_SCALARS: list[tuple[str, int, object, str]] = [
    ("add_scalar", 2, float("nan"), "value"),
    ("axpy", 2, float("inf"), "alpha"),
    ("rmsnorm", 3, -1e-6, "eps"),
    ("layernorm", 4, complex(1, 1), "eps"),
    ("attention_prefill", 4, float("nan"), "scale"),
]


def expect_error(name: str, values: list, param: str) -> KernelArgError:
    with pytest.raises(KernelArgError) as info:
        get_kernel(name).check(values)
    message = str(info.value)
    assert f"kernel {name!r}" in message, message
    assert f"{param!r}" in message, message
    return info.value


def test_every_kernel_has_a_valid_signature_here() -> None:
    assert set(VALID) == set(kernel_names())


@pytest.mark.parametrize("name", sorted(VALID))
def test_valid_specs_pass_check_and_cost(name: str) -> None:
    kernel = get_kernel(name)
    kernel.check(VALID[name])
    cost = kernel.cost(VALID[name])
    assert cost.flops >= 0 and cost.bytes_read > 0 and cost.bytes_written > 0


@pytest.mark.parametrize(("name", "pos", "replacement", "param"), BAD + BAD_SCALARS)
def test_bad_argument_names_the_parameter(name: str, pos: int, replacement: object, param: str) -> None:
    values = list(VALID[name])
    values[pos] = replacement
    expect_error(name, values, param)
    with pytest.raises(KernelArgError):  # cost validates too: no nonsense cost for a bad signature
        get_kernel(name).cost(values)


@pytest.mark.parametrize("name", sorted(VALID))
def test_unsupported_dtype_of_the_primary_input(name: str) -> None:
    kernel = get_kernel(name)
    values = list(VALID[name])
    values[0] = Spec(values[0].shape, F64)
    err = expect_error(name, values, kernel.params[0].name)
    assert "dtype float64" in str(err)


@pytest.mark.parametrize("name", sorted(VALID))
def test_wrong_arity(name: str) -> None:
    kernel = get_kernel(name)
    for values in (VALID[name][:-1], [*VALID[name], S(1)]):
        with pytest.raises(KernelArgError, match=rf"kernel '{name}' takes {len(kernel.params)} arguments"):
            kernel.check(values)
        with pytest.raises(KernelArgError):
            kernel.cost(values)


@pytest.mark.parametrize("name", sorted(VALID))
def test_wrong_kind_tensor_vs_scalar(name: str) -> None:
    kernel = get_kernel(name)
    for i, p in enumerate(kernel.params):
        values = list(VALID[name])
        values[i] = "oops" if not p.direction.is_tensor else 3.0
        err = expect_error(name, values, p.name)
        assert ("must be a tensor" if p.direction.is_tensor else "must be a scalar") in str(err)


def test_numpy_scalars_are_scalars() -> None:
    values = list(VALID["rmsnorm"])
    values[3] = np.float32(1e-6)
    get_kernel("rmsnorm").check(values)
    gating = list(VALID["moe_topk_gating"])
    gating[3] = np.int64(2)
    get_kernel("moe_topk_gating").check(gating)


def test_errors_are_value_errors() -> None:
    values = list(VALID["add"])
    values[1] = S(9)
    with pytest.raises(ValueError, match="parameter 'b' has shape"):
        get_kernel("add").check(values)


# --------------------------------------------------------------------------- content checks (need data)

def arrays(name: str) -> list:
    """Real zero-filled arrays for the VALID signature."""
    return [np.zeros(v.shape, v.dtype) if isinstance(v, Spec) else v for v in VALID[name]]


def expect_run_error(name: str, values: list, param: str) -> None:
    kernel = get_kernel(name)
    kernel.check(values)  # the signature is fine: check() never looks at contents
    for method in (kernel.run, kernel.golden):
        with pytest.raises(KernelArgError) as info:
            method(values)
        assert f"kernel {name!r}" in str(info.value) and f"{param!r}" in str(info.value), str(info.value)


def test_paged_decode_rejects_block_ids_outside_the_cache() -> None:
    values = arrays("paged_attention_decode")
    values[4][:] = [5, 1]          # needs 2 blocks of 4 for sequence 0, 1 for sequence 1
    values[3][0, :2] = [0, 6]      # block 6 does not exist (6 blocks)
    expect_run_error("paged_attention_decode", values, "block_table")
    values[3][0, :2] = [0, -1]
    expect_run_error("paged_attention_decode", values, "block_table")
    values[3][0, 1] = 5
    values[3][0, 2] = 99           # past the sequence's last block: never read, so allowed
    get_kernel("paged_attention_decode").run(values)


def test_paged_decode_rejects_context_longer_than_the_table() -> None:
    values = arrays("paged_attention_decode")
    values[4][:] = [13, 0]         # 3 blocks of 4 hold at most 12 tokens
    expect_run_error("paged_attention_decode", values, "context_lens")
    values[4][:] = [-1, 0]
    expect_run_error("paged_attention_decode", values, "context_lens")


def test_dispatch_rejects_unknown_experts() -> None:
    values = arrays("moe_dispatch")
    values[1][2, 1] = 8            # counts has 8 experts: 0..7
    expect_run_error("moe_dispatch", values, "indices")
    values[1][2, 1] = -1
    expect_run_error("moe_dispatch", values, "indices")


def test_expert_ffn_rejects_counts_that_do_not_cover_the_rows() -> None:
    values = arrays("moe_expert_ffn")
    values[1][:] = [3, 3, 3, 0]    # 9 rows, x_sorted has 10
    expect_run_error("moe_expert_ffn", values, "counts")
    values[1][:] = [12, -2, 0, 0]
    expect_run_error("moe_expert_ffn", values, "counts")


def test_combine_rejects_route_ids_that_are_not_a_permutation() -> None:
    values = arrays("moe_combine")
    values[1][:] = np.arange(10)
    values[1][3] = 4               # 4 twice, 3 never
    expect_run_error("moe_combine", values, "route_ids")
    values[1][:] = np.arange(1, 11)
    expect_run_error("moe_combine", values, "route_ids")


@pytest.mark.parametrize("name", sorted(VALID))
def test_running_on_specs_is_refused(name: str) -> None:
    kernel = get_kernel(name)
    first_tensor = next(p.name for p in kernel.params if p.direction is not Direction.SCALAR)
    with pytest.raises(KernelArgError, match=rf"parameter '{first_tensor}' has no data"):
        kernel.run(VALID[name])
