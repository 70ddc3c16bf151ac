"""Simulator throughput: simulated tasks per wall second against SimPy's raw event rate.

The workload (issue "Executable spec, part 1", Speed): an L3 node with 16 chips runs a
100,000-task DAG in timing-only mode. In the same run we measure SimPy's raw rate of
``Timeout`` events with one callback each — the floor any SimPy model pays per event — and
print the ratio of simulated tasks to raw events per second. Target: >= 0.1.

The same run is also timed with the event trace recorded (``SimConfig``'s default), which the
target does not cover: that ratio is printed for reference.

Run: ``python benchmarks/bench_sim.py [--tasks N] [--chips N] [--repeat N]``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import simpy
from simpy.events import Timeout

from reference import get_kernel
from sim import SimConfig, TaskArgs, TensorArgType, TensorSpec, Worker


def raw_simpy_rate(n: int) -> float:
    """Raw SimPy events per wall second: a chain of timeouts, each callback scheduling the next."""
    env = simpy.Environment()
    left = [n]

    def step(ev: simpy.Event) -> None:
        left[0] -= 1
        if left[0] > 0:
            Timeout(env, 1.0).callbacks.append(step)

    # Keep 16 chains in flight, like 16 busy chips.
    for _ in range(16):
        Timeout(env, 1.0).callbacks.append(step)
    t0 = time.perf_counter()
    env.run()
    dt = time.perf_counter() - t0
    return (n + 15) / dt


def build_dag(n_tasks: int, n_chips: int, seed: int) -> list[tuple[int, int, int]]:
    """(worker, producer a, producer b) per task; producers are earlier tasks or -1 (an input)."""
    rng = np.random.default_rng(seed)
    dag = []
    for i in range(n_tasks):
        lo = max(0, i - 64)
        a = int(rng.integers(lo, i)) if i else -1
        b = int(rng.integers(lo, i)) if i > 1 else -1
        dag.append((i % n_chips, a, b))
    return dag


def sim_rate(n_tasks: int, n_chips: int, trace: bool) -> tuple[float, float]:
    """(simulated tasks per wall second, virtual seconds simulated) for the 16-chip DAG."""
    dag = build_dag(n_tasks, n_chips, seed=1)
    w = Worker(level=3, device_ids=list(range(n_chips)), sim=SimConfig(data_mode="timing", trace=trace))
    add = w.register(get_kernel("add"))
    w.init()
    src = TensorSpec((1024,), "float32", "input")
    outs = [TensorSpec((1024,), "float32") for _ in range(n_tasks)]

    def orch(o, _args, _cfg):
        for i, (wid, a, b) in enumerate(dag):
            ta = TaskArgs()
            ta.add_tensor(outs[a] if a >= 0 else src, TensorArgType.INPUT)
            ta.add_tensor(outs[b] if b >= 0 else src, TensorArgType.INPUT)
            ta.add_tensor(outs[i], TensorArgType.OUTPUT)
            o.submit_next_level(add, ta, worker=wid)

    t0 = time.perf_counter()
    w.run(orch)
    dt = time.perf_counter() - t0
    vt = w.simulation.now / 1e6
    w.close()
    return n_tasks / dt, vt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", type=int, default=100_000)
    ap.add_argument("--chips", type=int, default=16)
    ap.add_argument("--repeat", type=int, default=3)
    ns = ap.parse_args()
    best_raw = best_off = best_on = 0.0
    vt = 0.0
    for _ in range(ns.repeat):  # interleaved, best of N: the machine is shared and noisy
        best_raw = max(best_raw, raw_simpy_rate(ns.tasks * 2))
        rate, vt = sim_rate(ns.tasks, ns.chips, trace=False)
        best_off = max(best_off, rate)
        rate, _ = sim_rate(ns.tasks, ns.chips, trace=True)
        best_on = max(best_on, rate)
    ratio = best_off / best_raw
    print(f"raw SimPy Timeout events/s          {best_raw:12,.0f}")
    print(f"simulated tasks/s (L3, {ns.chips} chips, {ns.tasks:,} tasks)")
    print(f"  trace off                         {best_off:12,.0f}")
    print(f"  trace on (SimConfig's default)    {best_on:12,.0f}")
    print(f"virtual time simulated              {vt:12.3f} s")
    verdict = "met" if ratio >= 0.1 else "MISSED"
    print(f"ratio tasks / raw events, trace off {ratio:12.3f}   (target >= 0.100: {verdict})")
    print(f"ratio tasks / raw events, trace on  {best_on / best_raw:12.3f}")


if __name__ == "__main__":
    main()
