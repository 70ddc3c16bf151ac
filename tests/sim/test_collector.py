"""A run pauses Python's cyclic collector and leaves it as it found it (``sim.collector.collector_paused``)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import numpy as np
import pytest

from reference import get_kernel
from sim import SimConfig, TaskArgs, TensorArgType, TensorSpec, Worker


@pytest.fixture
def collector() -> Iterator[None]:
    """Restore the collector's state whatever a test does to it."""
    was = gc.isenabled()
    try:
        yield
    finally:
        gc.unfreeze()
        if was:
            gc.enable()
        else:
            gc.disable()


def _run(kept: dict, fail: bool = False) -> None:
    w = Worker(level=3, device_ids=[0, 1], sim=SimConfig(data_mode="timing", trace=False))
    add = w.register(get_kernel("add"))
    w.init()
    outs = [TensorSpec((64,), np.float32) for _ in range(201)]

    def orch(o, _a, _c):
        kept["enabled_inside"] = gc.isenabled()
        kept["made_inside"] = [object()]  # a container allocated while the run goes on
        for i in range(200):
            ta = TaskArgs()
            ta.add_tensor(outs[i], TensorArgType.INPUT)
            ta.add_tensor(outs[i], TensorArgType.INPUT)
            ta.add_tensor(outs[i + 1], TensorArgType.OUTPUT)
            o.submit_next_level(add, ta, worker=i % 2)
        if fail:
            raise RuntimeError("orchestration gave up")

    try:
        w.run(orch)
    finally:
        w.close()


def _in_generation(obj: object, generation: int) -> bool:
    return any(o is obj for o in gc.get_objects(generation=generation))


def test_run_pauses_collector_and_promotes_what_it_left_alive(collector):
    gc.enable()
    kept: dict = {}
    _run(kept)
    assert kept["enabled_inside"] is False
    assert gc.isenabled()
    assert gc.get_freeze_count() == 0
    # Promoted, not left for a young-generation pass to rescan.
    assert _in_generation(kept["made_inside"], 2)


def test_failed_run_still_restores_collector(collector):
    gc.enable()
    kept: dict = {}
    with pytest.raises(RuntimeError, match="orchestration gave up"):
        _run(kept, fail=True)
    assert kept["enabled_inside"] is False
    assert gc.isenabled()


def test_collector_left_off_when_it_was_off(collector):
    gc.disable()
    kept: dict = {}
    _run(kept)
    assert not gc.isenabled()
    assert _in_generation(kept["made_inside"], 0)  # nothing was moved


def test_objects_frozen_by_the_process_stay_frozen(collector):
    gc.enable()
    mine = [object()]
    gc.freeze()
    frozen = gc.get_freeze_count()
    kept: dict = {}
    _run(kept)
    assert gc.isenabled()
    # Still frozen (the count only loses frozen objects freed since), and the run's objects
    # were not frozen with them: they sit in a collected generation.
    assert 0 < gc.get_freeze_count() <= frozen
    assert not any(_in_generation(mine, g) for g in range(3))
    assert any(_in_generation(kept["made_inside"], g) for g in range(3))
