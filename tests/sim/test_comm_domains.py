"""Communication domains and collectives on the simulator (upstream ``docs/comm-domain.md``)."""

from __future__ import annotations

import numpy as np
import pytest

from reference import get_kernel
from sim import SimConfig, TaskArgs, TensorArgType, TensorSpec, Worker
from sim.comm import CollectiveKernel, CollectiveParam, CommBufferSpec
from sim.comm.links import LinkModel
from sim.cost import load_profile
from sim.errors import (
    DomainReleased,
    InvalidArgument,
    InvalidState,
    KernelArgumentError,
    NotADomainMember,
    SimulationHang,
    TaskFailure,
)
from sim.faultpoints import FaultPoint
from sim.kernel_spec import Direction
from sim.remote.faults import FaultPlan

COUNT = 256


def allreduce_kernel(traffic: str = "mesh") -> CollectiveKernel:
    """One rank of a one-phase all-reduce, shaped like upstream's allreduce example callable."""
    params = [CollectiveParam("x", Direction.IN), CollectiveParam("out", Direction.OUT),
              CollectiveParam("scratch", Direction.INOUT), CollectiveParam("nranks", Direction.SCALAR),
              CollectiveParam("ctx", Direction.SCALAR)]
    return CollectiveKernel("allreduce", params, get_kernel("all_reduce"), bind=(0, 1), ctx=4, traffic=traffic)


def scratch(n: int = COUNT) -> list[CommBufferSpec]:
    return [CommBufferSpec("scratch", "float32", n, 4 * n)]


def rank_args(domain, x, out, n: int = COUNT) -> TaskArgs:
    a = TaskArgs()
    a.add_tensor(x, TensorArgType.INPUT)
    a.add_tensor(out, TensorArgType.OUTPUT_EXISTING if isinstance(out, np.ndarray) else TensorArgType.OUTPUT)
    a.add_tensor(domain.buffers["scratch"].tensor((n,), "float32"), TensorArgType.INOUT)
    a.add_scalar(domain.domain_size)
    a.add_scalar(domain.device_ctx)
    return a


def make(chips: int = 4, **sim_kw) -> tuple[Worker, object]:
    w = Worker(3, sim=SimConfig(**sim_kw), device_ids=list(range(chips)))
    h = w.register(allreduce_kernel())
    w.init()
    return w, h


def test_rank_map_contexts_and_lifetime():
    w, _ = make(3)
    seen = {}

    def orch(o, _a, _c):
        even = o.allocate_domain(name="even", workers=[2, 0], window_size=4096, buffers=scratch())
        tail = o.allocate_domain(name="tail", workers=[1, 2], window_size=4096, buffers=scratch())
        seen["live"] = sorted(w.live_domains)
        seen["ranks"] = {(name, c): (h[c].domain_rank, h[c].domain_size)
                         for name, h in (("even", even), ("tail", tail)) for c in h.workers}
        seen["ctx"] = [h[c].device_ctx for h in (even, tail) for c in h.workers]
        seen["bases"] = (even[2].buffers["scratch"].base, tail[2].buffers["scratch"].base)
        with pytest.raises(NotADomainMember, match="chip 0 is not a member of domain 'tail'"):
            tail[0]
        tail.release()
        tail.release()  # idempotent
        seen["after_release"] = sorted(w.live_domains)
        seen["freed_inside"] = tail.freed
        with pytest.raises(DomainReleased):
            tail[1]
        seen["handles"] = (even, tail)

    w.run(orch)
    # workers order defines dense ranks: [2, 0] makes chip 2 rank 0
    assert seen["ranks"] == {("even", 2): (0, 2), ("even", 0): (1, 2), ("tail", 1): (0, 2), ("tail", 2): (1, 2)}
    assert seen["live"] == ["even", "tail"] and seen["after_release"] == ["even"]
    assert all(c != 0 for c in seen["ctx"]) and len(set(seen["ctx"])) == 4
    assert seen["bases"][0] != seen["bases"][1]
    assert seen["freed_inside"] is False
    even, tail = seen["handles"]
    # after the run fence: the released one is freed, the forgotten one swept and freed
    assert tail.freed and even.released and even.freed
    assert w.live_domains == {}
    w.close()


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({"workers": [0, 1], "window_size": 1000}, InvalidArgument, "buffers sum to 1024 bytes, which exceeds"),
    ({"workers": [0, 0]}, InvalidArgument, "duplicates"),
    ({"workers": []}, InvalidArgument, "non-empty"),
    ({"workers": [0, 4]}, InvalidArgument, "worker_id 4 is outside"),
    ({"workers": [0, 1], "window_size": 0}, InvalidArgument, "window_size must be positive"),
    ({"workers": [0, 1], "buffers": scratch() + scratch()}, InvalidArgument, "duplicate buffer names"),
    ({"workers": [0, 1], "name": ""}, InvalidArgument, "name must be a non-empty str"),
])
def test_bad_requests_are_refused_before_anything_is_allocated(kwargs, error, match):
    w, _ = make(4)
    req = {"name": "tp", "workers": [0, 1], "window_size": 4096, "buffers": scratch()} | kwargs
    out = {}

    def orch(o, _a, _c):
        with pytest.raises(error, match=match):
            o.allocate_domain(**req)
        out["live"] = dict(w.live_domains)
        out["ok"] = o.allocate_domain(name="tp", workers=[0, 1], window_size=4096, buffers=scratch())
        with pytest.raises(InvalidArgument, match="'tp' is already live"):
            o.allocate_domain(name="tp", workers=[2, 3], window_size=4096, buffers=scratch())

    w.run(orch)
    assert out["live"] == {} and out["ok"].workers == (0, 1)
    w.close()


def test_allocate_outside_a_run_and_without_chips():
    w, _ = make(2)
    kept = {}
    w.run(lambda o, a, c: kept.setdefault("o", o))
    with pytest.raises(InvalidState, match="outside the orchestration function"):
        kept["o"].allocate_domain(name="x", workers=[0], window_size=64)
    w.close()
    l4 = Worker(4)
    l4.add_worker(Worker(3, device_ids=[0]))
    l4.register(lambda args: None)
    l4.init()
    with pytest.raises(InvalidArgument, match=r"worker_id 0 is outside \[0, 0\): l4 has 0 chip"):
        l4.run(lambda o, a, c: o.allocate_domain(name="x", workers=[0], window_size=64))
    l4.close()


def test_windows_are_zeroed_and_copy_round_trips():
    w, _ = make(2)
    got = {}

    def orch(o, _a, _c):
        with o.allocate_domain(name="d", workers=[0, 1], window_size=4096, buffers=scratch()) as d:
            buf = d[1].buffers["scratch"]
            got["zero"] = buf.array.copy()
            buf.array[:8] = np.arange(8, dtype=np.uint8)
            got["view"] = d[1].buffers["scratch"].shm.buf[:8].tolist()

    w.run(orch)
    assert not got["zero"].any() and got["view"] == list(range(8))
    w.close()


def test_four_rank_allreduce_computes_numpys_sum():
    w, h = make(4)
    xs = [np.random.default_rng(r).standard_normal(COUNT).astype(np.float32) for r in range(4)]
    outs = [np.full(COUNT, np.nan, np.float32) for _ in range(4)]

    def orch(o, _a, _c):
        with o.allocate_domain(name="tp", workers=[3, 2, 1, 0], window_size=4096, buffers=scratch()) as d:
            o.submit_next_level_group(h, [rank_args(d[c], xs[c], outs[c]) for c in d.workers], workers=list(d.workers))

    w.run(orch)
    want = np.sum(np.stack(xs), axis=0, dtype=np.float32)
    for out in outs:
        np.testing.assert_allclose(out, want, rtol=1e-6, atol=1e-6)
    w.close()


def test_a_context_of_a_freed_domain_or_another_chip_is_refused_at_submit():
    w, h = make(2)
    kept = {}
    x, out = np.ones(COUNT, np.float32), np.zeros(COUNT, np.float32)

    def first(o, _a, _c):
        with o.allocate_domain(name="d", workers=[0, 1], window_size=4096, buffers=scratch()) as d:
            kept["ctx0"] = d[0]
            wrong_chip = r"rank 0 belongs to l3\.chip0, but the task goes to l3\.chip1"
            with pytest.raises(KernelArgumentError, match=wrong_chip):
                o.submit_next_level(h, rank_args(d[0], x, out), worker=1)

    w.run(first)

    def second(o, _a, _c):
        fresh = o.allocate_domain(name="d", workers=[0, 1], window_size=4096, buffers=scratch())
        a = TaskArgs()
        a.add_tensor(x, TensorArgType.INPUT)
        a.add_tensor(out, TensorArgType.OUTPUT_EXISTING)
        a.add_tensor(fresh[0].buffers["scratch"].tensor((COUNT,), "float32"), TensorArgType.INOUT)
        a.add_scalar(2)
        a.add_scalar(kept["ctx0"].device_ctx)  # captured in the first run, freed at its fence
        o.submit_next_level(h, a, worker=0)

    with pytest.raises(KernelArgumentError, match="names no live communication domain"):
        w.run(second)
    with pytest.raises(InvalidState, match="closed buffer"):
        kept["ctx0"].buffers["scratch"].tensor((COUNT,), "float32")
    w.close()


def test_a_rank_that_never_arrives_hangs_its_peers_and_the_hang_names_it():
    w, h = make(3, data_mode="timing")

    def orch(o, _a, _c):
        d = o.allocate_domain(name="tp", workers=[0, 1, 2], window_size=4096, buffers=scratch())
        for c in (0, 2):  # rank 1 is never submitted
            o.submit_next_level(h, rank_args(d[c], TensorSpec((COUNT,), "float32"), TensorSpec((COUNT,), "float32")),
                                worker=c)

    with pytest.raises(SimulationHang, match=r"waits for rank\(s\) \[1\] \(l3\.chip1\)"):
        w.run(orch)


def _faulted(point: str) -> tuple[Worker, object]:
    plan = FaultPlan((FaultPoint(point, target="l3.chip1"),))
    return make(3, data_mode="timing", faults=plan)


def _group(w, h):
    def orch(o, _a, _c):
        with o.allocate_domain(name="tp", workers=[0, 1, 2], window_size=4096, buffers=scratch()) as d:
            spec = TensorSpec((COUNT,), "float32")
            args = [rank_args(d[c], spec, TensorSpec((COUNT,), "float32")) for c in d.workers]
            o.submit_next_level_group(h, args, workers=[0, 1, 2])
    return orch


def test_member_crash_fault_point_leaves_the_collective_waiting():
    w, h = _faulted("domain_member_crash")
    with pytest.raises(SimulationHang, match=r"waits for rank\(s\) \[1\]"):
        w.run(_group(w, h))
    assert w.simulation.fault_hits == {"point:domain_member_crash": 1}


def test_link_cut_fault_point_fails_every_rank_with_endpoint_failure():
    w, h = _faulted("domain_link_cut")
    with pytest.raises(TaskFailure, match=r"the hccs link of rank 1 \(l3\.chip1\) was cut"):
        w.run(_group(w, h))
    rec = w.take_record()
    (task,) = [t for t in rec.tasks.values() if "next_level" in t.kind]
    assert task.error_class == "ENDPOINT_FAILURE"
    w.close()


def _collective_time(n: int, chips: int = 4, concurrent_domains: int = 1) -> list[float]:
    """End - start of each collective task, timing-only."""
    w, h = make(chips, data_mode="timing", trace=False)

    def orch(o, _a, _c):
        for k in range(concurrent_domains):
            d = o.allocate_domain(name=f"d{k}", workers=list(range(chips)), window_size=4 * n + 64,
                                  buffers=scratch(n))
            for c in range(chips):  # one single task per rank: domains overlap on every chip's port
                o.submit_next_level(h, rank_args(d[c], TensorSpec((n,), "float32"), TensorSpec((n,), "float32"), n),
                                    worker=c)

    w.run(orch)
    rec = w.take_record()
    w.close()
    return sorted(t.end - t.start for t in rec.tasks.values() if "next_level" in t.kind)


def test_exchange_time_follows_the_link_bandwidth():
    link_gbps = 56.0  # a2a3 [transport.hccs], per peer link of the node's mesh
    small, big = _collective_time(1024), _collective_time(1024 * 1024)
    # every rank reads each of its 3 peers' payloads over its own link to that peer, all at once;
    # its local part reads x and writes out once more through HBM (1600 GB/s)
    delta = 4 * (1024 * 1024 - 1024)
    extra = delta / (link_gbps * 1e3) + 2 * delta / 1600e3
    assert max(big) - max(small) == pytest.approx(extra, rel=0.05)
    assert min(big) - min(small) == pytest.approx(extra, rel=0.05)


def test_off_node_peers_share_a_port_and_queue_on_it():
    model = LinkModel(load_profile("a2a3"))
    mb = 1e6
    # 4 ranks on 2 nodes: each rank has 1 same-node peer (mesh link) and 2 off-node peers (its port)
    t = model.exchange(0.0, ["a.c0", "a.c1", "b.c0", "b.c1"], ["a", "a", "b", "b"], [3 * mb] * 4)
    assert t[0].intra_bytes == mb and t[0].inter_bytes == 2 * mb
    assert t[0].end == pytest.approx(2 * mb / 23e3 + 3.0)  # roce: 23 GB/s, 3 us; the mesh part is faster
    # a second exchange on the same port before the first is done waits for it
    t2 = model.exchange(1.0, ["a.c0", "b.c0"], ["a", "b"], [mb, mb])
    assert t2[0].end == pytest.approx(t[0].end - 3.0 + mb / 23e3 + 3.0)
    # all on one node: no port is used, only the mesh
    t3 = LinkModel(load_profile("a2a3")).exchange(0.0, ["a.c0", "a.c1", "a.c2"], ["a"] * 3, [2 * mb] * 3)
    assert t3[0].inter_bytes == 0 and t3[0].end == pytest.approx(mb / 56e3 + 2.0)


def test_one_seed_one_trace_with_collectives_and_jitter():
    def digest() -> str:
        w, h = make(4, jitter=0.1, seed=5)
        xs = [np.full(COUNT, r, np.float32) for r in range(4)]
        outs = [np.zeros(COUNT, np.float32) for _ in range(4)]

        def orch(o, _a, _c):
            with o.allocate_domain(name="tp", workers=[0, 1, 2, 3], window_size=4096, buffers=scratch()) as d:
                for c in range(4):
                    o.submit_next_level(h, rank_args(d[c], xs[c], outs[c]), worker=c)

        w.run(orch)
        out = w.simulation.trace.digest()
        w.close()
        return out

    assert digest() == digest()


def test_a_one_sided_collective_reads_peer_windows_without_waiting():
    params = [CollectiveParam("input", Direction.IN), CollectiveParam("result", Direction.OUT),
              CollectiveParam("nranks", Direction.SCALAR), CollectiveParam("ctx", Direction.SCALAR)]
    tload = CollectiveKernel("tload_sum", params, get_kernel("all_reduce"), bind=(0, 1), ctx=3, sync="onesided")
    w = Worker(3, device_ids=[0, 1, 2])
    h = w.register(tload)
    w.init()
    bufs = [CommBufferSpec("input", "float32", COUNT, 4 * COUNT),
            CommBufferSpec("result", "float32", COUNT, 4 * COUNT)]
    got = {}

    def orch(o, _a, _c):
        d = o.allocate_domain(name="g", workers=[0, 1, 2], window_size=8 * COUNT, buffers=bufs)
        for c in range(3):  # stage every rank's input window first, as the examples do
            d[c].buffers["input"].array.view(np.float32)[:] = c + 1
        a = TaskArgs()  # only rank 1 reads; nobody else submits, and nothing waits for them
        a.add_tensor(d[1].buffers["input"].tensor((COUNT,), "float32"), TensorArgType.INPUT)
        a.add_tensor(d[1].buffers["result"].tensor((COUNT,), "float32"), TensorArgType.OUTPUT_EXISTING)
        a.add_scalar(3)
        a.add_scalar(d[1].device_ctx)
        o.submit_next_level(h, a, worker=1)
        got["d"] = d
        got["result"] = [d[c].buffers["result"].array.view(np.float32) for c in range(3)]  # kept past the free

    w.run(orch, None)
    assert got["d"].freed
    np.testing.assert_array_equal(got["result"][1], np.full(COUNT, 6.0, np.float32))  # 1 + 2 + 3
    assert not got["result"][0].any() and not got["result"][2].any()  # peers' windows are only read
    w.close()


def test_a_one_sided_collective_refuses_host_tensors():
    params = [CollectiveParam("input", Direction.IN), CollectiveParam("result", Direction.OUT),
              CollectiveParam("nranks", Direction.SCALAR), CollectiveParam("ctx", Direction.SCALAR)]
    tload = CollectiveKernel("tload_sum", params, get_kernel("all_reduce"), bind=(0, 1), ctx=3, sync="onesided")
    w = Worker(3, device_ids=[0, 1])
    h = w.register(tload)
    w.init()

    def orch(o, _a, _c):
        with o.allocate_domain(name="g", workers=[0, 1], window_size=64) as d:
            a = TaskArgs()
            a.add_tensor(np.ones(4, np.float32), TensorArgType.INPUT)
            a.add_tensor(np.zeros(4, np.float32), TensorArgType.OUTPUT_EXISTING)
            a.add_scalar(2)
            a.add_scalar(d[0].device_ctx)
            o.submit_next_level(h, a, worker=0)

    with pytest.raises(TaskFailure, match="argument 'input' is not a window buffer of domain 'g'"):
        w.run(orch)
    w.close()
