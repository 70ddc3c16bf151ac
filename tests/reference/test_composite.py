"""reference.composite: chains of reference kernels as one chip kernel."""

import numpy as np
import pytest

from reference.composite import Step, composite_kernel
from reference.errors import KernelArgError
from reference.kernel import Direction
from sim.tensors import TensorSpec

IN, OUT = Direction.IN, Direction.OUT
VECTOR_EXAMPLE = [Step("add", ("a", "b", "c")), Step("add_scalar", ("c", "d"), (1.0,)),
                  Step("add_scalar", ("c", "e"), (2.0,)), Step("mul", ("d", "e", "g")), Step("add", ("g", "c", "f"))]


def test_chain_runs_golden_and_costs_the_sum():
    k = composite_kernel("vec", [("a", IN), ("b", IN), ("f", OUT)], VECTOR_EXAMPLE)
    a, b = np.full(16, 2.0, np.float32), np.full(16, 3.0, np.float32)
    f, g = np.zeros(16, np.float32), np.zeros(16, np.float32)
    k.run([a, b, f])
    k.golden([a, b, g])
    assert np.all(f == 47.0) and np.all(g == 47.0)
    cost = k.cost([TensorSpec((16,), "float32")] * 3)
    assert cost.flops == 5 * 16
    assert cost.bytes_written == 5 * 64


def test_check_runs_each_step_on_specs():
    k = composite_kernel("vec", [("a", IN), ("b", IN), ("f", OUT)], VECTOR_EXAMPLE)
    with pytest.raises(KernelArgError):
        k.check([TensorSpec((16,), "float32"), TensorSpec((8,), "float32"), TensorSpec((16,), "float32")])


@pytest.mark.parametrize(("steps", "match"), [
    ([], "at least one step"),
    ([Step("nope", ("a", "b", "f"))], "no reference kernel"),
    ([Step("add", ("a", "b"))], "takes 3 tensors"),
    ([Step("add", ("a", "x", "f"))], "read before any step writes it"),
    ([Step("add", ("a", "b", "c"))], "written by no step"),
])
def test_bad_chains(steps, match):
    with pytest.raises(KernelArgError, match=match):
        composite_kernel("bad", [("a", IN), ("b", IN), ("f", OUT)], steps)
