"""sim.runtime_env: the ring-override rules of CallConfig.runtime_env."""

import pytest

from sim.errors import InvalidArgument
from sim.runtime_env import check_runtime_env


@pytest.mark.parametrize("env", [
    {}, {"ring_task_window": 16, "ring_heap": 1 << 20, "ring_dep_pool": 64},
    {"ring_task_window": [128, 64, 0, 16]}, {"ring_heap": 0},
])
def test_valid(env):
    check_runtime_env(env)


@pytest.mark.parametrize(("env", "match"), [
    ({"ring_task_window": 12}, "power of 2"),
    ({"ring_task_window": 2}, "power of 2"),
    ({"ring_heap": 512}, ">= 1024"),
    ({"ring_dep_pool": 3}, r"\[4,"),
    ({"ring_heap": [1 << 20] * 3}, "4 entries"),
    ({"ring_task_window": [16, 16, 12, 16]}, r"ring_task_window\[2\]"),
    ({"ring_size": 4}, "unknown key"),
    ({"ring_heap": 1.5}, "must be an int"),
])
def test_invalid(env, match):
    with pytest.raises(InvalidArgument, match=match):
        check_runtime_env(env)
