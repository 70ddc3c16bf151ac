"""The kernel registry: it lists every kernel, looks them up by name and rejects unknown names."""

from __future__ import annotations

import numpy as np
import pytest

from reference import Direction, Kernel, KernelArgError, UnknownKernelError, get_kernel, kernel_names
from reference.registry import register_kernel

EXPECTED = {
    "add", "add_scalar", "mul", "axpy", "add_mul",
    "silu", "gelu", "swiglu",
    "rmsnorm", "layernorm", "residual_add_rmsnorm",
    "softmax", "rope", "matmul", "linear",
    "attention_prefill", "paged_attention_decode",
    "moe_topk_gating", "moe_dispatch", "moe_expert_ffn", "moe_combine",
    "all_reduce", "all_gather", "reduce_scatter", "all_to_all",
}


def test_lists_every_kernel_sorted_once() -> None:
    names = kernel_names()
    assert names == sorted(names)
    assert len(names) == len(set(names))
    assert set(names) == EXPECTED


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_lookup_returns_the_named_kernel(name: str) -> None:
    kernel = get_kernel(name)
    assert isinstance(kernel, Kernel)
    assert kernel.name == name
    assert kernel.doc


@pytest.mark.parametrize("name", ["", "Add", "softmax ", "flash_attention", "matmul2"])
def test_unknown_names_are_rejected_with_the_known_ones(name: str) -> None:
    with pytest.raises(UnknownKernelError) as info:
        get_kernel(name)
    message = str(info.value)
    assert repr(name) in message
    assert "add" in message and "softmax" in message
    assert isinstance(info.value, KeyError)


def test_registering_a_name_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="already registered"):
        register_kernel(get_kernel("add"))


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_signature_conventions(name: str) -> None:
    params = get_kernel(name).params
    names = [p.name for p in params]
    assert len(names) == len(set(names)), "parameter names must be unique"
    kinds = [p.direction is Direction.SCALAR for p in params]
    assert kinds == sorted(kinds), "scalars come after every tensor"
    assert any(p.direction.writes for p in params), "a kernel must write something"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_tolerance_of_an_unsupported_dtype_is_an_error(name: str) -> None:
    with pytest.raises(KernelArgError, match=name):
        get_kernel(name).tolerance(np.float64)


def test_direction_properties() -> None:
    assert Direction.IN.reads and not Direction.IN.writes
    assert Direction.OUT.writes and not Direction.OUT.reads
    assert Direction.INOUT.reads and Direction.INOUT.writes
    assert not Direction.SCALAR.is_tensor and Direction.IN.is_tensor
