"""Tensor-parallel FFN at cluster scale: collectives over communication domains, timing-only.

The workload is upstream's ``examples/workers/l3/ffn_tp_parallel`` grown to a cluster (issue
"Communication domains on the simulator", Done means): an L4 Worker over ``--nodes`` L3 nodes of
``--tp`` chips each (4,096 chips by default). Every node allocates one domain over its chips; for
each of ``--layers`` layers every chip multiplies its shard (``x[M, K/tp] @ w[K/tp, N]``, the
reference ``matmul``) and the node's chips then all-reduce their ``[M, N]`` partials through the
domain (a :class:`sim.comm.CollectiveKernel` over the reference ``all_reduce``, one group task per
node, as the example submits it). ``data_mode="timing"`` and no trace, as a user simulating a
cluster would run it.

Printed: the whole run's wall and CPU seconds (target: under a minute at 4,096 chips), chip tasks
and simulated time, and per layer the simulated all-reduce time against the link model's own
arithmetic (an all-reduce over a node's full mesh moves one peer's partial per link, in parallel),
measured alongside SimPy's raw event rate in the same process as a yardstick for the machine.

Run: ``python benchmarks/bench_comm.py [--nodes 512] [--tp 8] [--layers 4] [--m 2048 --k 8192 --n 8192]``.
"""

from __future__ import annotations

import argparse
import time

from bench_sim import raw_simpy_rate

from reference import get_kernel
from sim import SimConfig, TaskArgs, TensorArgType, TensorSpec, Worker
from sim.comm import CollectiveKernel, CollectiveParam, CommBufferSpec
from sim.kernel_spec import Direction


def allreduce_sum() -> CollectiveKernel:
    """The example's allreduce_sum callable: (partial IN, y OUT, scratch INOUT; nranks, ctx)."""
    params = [CollectiveParam("partial", Direction.IN), CollectiveParam("y", Direction.OUT),
              CollectiveParam("scratch", Direction.INOUT), CollectiveParam("nranks", Direction.SCALAR),
              CollectiveParam("ctx", Direction.SCALAR)]
    return CollectiveKernel("allreduce_sum", params, get_kernel("all_reduce"), bind=(0, 1), ctx=4)


def run(nodes: int, tp: int, layers: int, m: int, k: int, n: int) -> dict[str, float]:
    cfg = SimConfig(data_mode="timing", trace=False)
    root = Worker(4, sim=cfg, num_sub_workers=0)
    coll = allreduce_sum()
    node_fns = []
    ks = k // tp
    window = m * n * 4 + 64
    x = TensorSpec((m, ks), "float32", "x_shard")
    w = TensorSpec((ks, n), "float32", "w_shard")

    def node_ffn(o, matmul, allreduce) -> None:
        with o.allocate_domain(name="tp", workers=list(range(tp)), window_size=window,
                               buffers=[CommBufferSpec("scratch", "float32", m * n, m * n * 4)]) as d:
            for _layer in range(layers):
                group = []
                for c in range(tp):
                    partial = TensorSpec((m, n), "float32")
                    a = TaskArgs()
                    a.add_tensor(x, TensorArgType.INPUT)
                    a.add_tensor(w, TensorArgType.INPUT)
                    a.add_tensor(partial, TensorArgType.OUTPUT)
                    o.submit_next_level(matmul, a, worker=c)
                    r = TaskArgs()
                    r.add_tensor(partial, TensorArgType.INPUT)
                    r.add_tensor(TensorSpec((m, n), "float32"), TensorArgType.OUTPUT)
                    r.add_tensor(d[c].buffers["scratch"].tensor((m * n,), "float32"), TensorArgType.INOUT)
                    r.add_scalar(d[c].domain_size)
                    r.add_scalar(d[c].device_ctx)
                    group.append(r)
                o.submit_next_level_group(allreduce, group, workers=list(range(tp)))

    t_wall, t_cpu = time.perf_counter(), time.process_time()
    for _ in range(nodes):
        l3 = Worker(3, sim=cfg, device_ids=list(range(tp)), num_sub_workers=0)
        handles = (l3.register(get_kernel("matmul")), l3.register(coll))
        root.add_worker(l3)
        node_fns.append(root.register(lambda o, _a, _c, h=handles: node_ffn(o, *h)))
    root.init()

    def cluster(o, _args, _cfg) -> None:
        for i in range(nodes):
            o.submit_next_level(node_fns[i], TaskArgs(), worker=i)

    root.run(cluster)
    wall, cpu = time.perf_counter() - t_wall, time.process_time() - t_cpu
    rec = root.take_record()
    sim = root.simulation
    reduce_tasks = [t for t in rec.tasks.values() if t.callable == "allreduce_sum"]
    matmuls = [t for t in rec.tasks.values() if t.callable == "matmul"]
    bad = sum(1 for t in rec.tasks.values() if t.outcome.value != "COMPLETED")
    link = sim.profile.comm_link(True)
    reduce_us = sorted(t.end - t.start for t in reduce_tasks)
    root.close()
    return {"wall": wall, "cpu": cpu, "chip_tasks": len(reduce_tasks) * tp + len(matmuls),
            "groups": len(reduce_tasks), "virtual_s": sim.now / 1e6, "bad": bad,
            "reduce_median_us": reduce_us[len(reduce_us) // 2],
            "link_us": m * n * 4 / (link.gbps * 1e3) + link.latency_us}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nodes", type=int, default=512)
    ap.add_argument("--tp", type=int, default=8)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--m", type=int, default=2048)
    ap.add_argument("--k", type=int, default=8192)
    ap.add_argument("--n", type=int, default=8192)
    ns = ap.parse_args()
    raw = raw_simpy_rate(400_000)
    r = run(ns.nodes, ns.tp, ns.layers, ns.m, ns.k, ns.n)
    chips = ns.nodes * ns.tp
    print(f"ffn_tp_parallel-shaped run: {ns.nodes} L3 nodes x {ns.tp} chips = {chips:,} chips, "
          f"{ns.layers} layers, M={ns.m} K={ns.k} N={ns.n} (timing-only, trace off)")
    print(f"  chip tasks                    {r['chip_tasks']:12,}  ({r['groups']:,} all-reduce groups)")
    print(f"  tasks not COMPLETED           {r['bad']:12,}")
    print(f"  simulated time                {r['virtual_s']:12.4f} s")
    print(f"  all-reduce task, median       {r['reduce_median_us']:12.1f} us  (link arithmetic for the exchange "
          f"alone: {r['link_us']:.1f} us per peer link, in parallel)")
    print(f"  wall / CPU                    {r['wall']:12.2f} s / {r['cpu']:.2f} s   "
          f"(target at 4,096 chips: under 60 s: {'met' if r['wall'] < 60 else 'MISSED'})")
    print(f"  chip tasks per wall second    {r['chip_tasks'] / r['wall']:12,.0f}")
    print(f"  raw SimPy Timeout events/s    {raw:12,.0f}   (ratio {r['chip_tasks'] / r['wall'] / raw:.3f})")


if __name__ == "__main__":
    main()
