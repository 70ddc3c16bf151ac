"""Communication domains through the hw adapter on the real runtime: the runtime's own allocate_domain,
its errors mapped to the closed classes, window staging from numpy arrays, and collectives NOT_SUPPORTED."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("simpler", reason="the real runtime (simpler) is not installed in this environment")

from conformance.backends import NotSupportedByBackend, get_backend
from hw_backend.errors import error_class


@pytest.fixture
def rt():
    api = get_backend("hw", 0)
    yield api
    api.close_all()


def test_domain_calls_reach_the_runtime_and_map_their_errors(rt) -> None:
    import simpler.task_interface as ti

    assert rt.supports("domains") and rt.CommBufferSpec is ti.CommBufferSpec
    w = rt.Worker(3, device_ids=[0, 1], num_sub_workers=0)
    w.init()
    seen: dict = {}

    def orch(o, _a, _c):
        h = o.allocate_domain(name="d", workers=[1, 0], window_size=128,
                              buffers=[rt.CommBufferSpec("s", "float32", 16, 64)])
        seen["real"] = type(h.real).__name__
        seen["ranks"] = (h[1].domain_rank, h[0].domain_rank)
        seen["live"] = sorted(w.live_domains)
        x, back = np.arange(16, dtype=np.float32), np.zeros(16, np.float32)
        rt.copy_to(o, h[0].buffers["s"], x)
        rt.copy_from(o, back, h[0].buffers["s"])
        seen["round_trip"] = back.tolist() == x.tolist()
        for label, fn in (("member", lambda: h[5]),
                          ("window", lambda: o.allocate_domain(name="e", workers=[0], window_size=8,
                                                              buffers=[rt.CommBufferSpec("x", "uint8", 9, 9)]))):
            try:
                fn()
            except Exception as exc:  # the class is what is checked
                seen[label] = (type(exc).__name__, error_class(exc))
        o.release_domain(h)
        try:
            h[0]
        except Exception as exc:
            seen["released"] = (type(exc).__name__, error_class(exc))
        seen["o"] = o

    w.run(orch)
    assert seen["real"] == "CommDomainHandle" and seen["ranks"] == (0, 1) and seen["live"] == ["d"]
    assert seen["round_trip"]
    assert seen["member"] == ("KeyError", "UNKNOWN_WORKER")
    assert seen["window"] == ("ValueError", "INVALID_ARGUMENT")
    assert seen["released"] == ("RuntimeError", "INVALID_STATE")
    with pytest.raises(RuntimeError) as info:
        seen["o"].allocate_domain(name="late", workers=[0], window_size=64)
    assert error_class(info.value) == "INVALID_STATE"
    w.close()


def test_collectives_are_not_supported_without_a_kernel_map_entry(rt) -> None:
    with pytest.raises(NotSupportedByBackend, match="cannot build collective kernels"):
        rt.collective("all_reduce")
    with pytest.raises(NotSupportedByBackend, match="cannot inject 'domain_member_crash'"):
        rt.fault("domain_member_crash", target="l3.chip1")
