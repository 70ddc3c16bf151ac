"""Fuzzing throughput on the simulator: examples per second, and where an example's time goes.

Measured side by side in one run (this machine is shared: read the ratios, not the absolute rates):

- **draw**: hypothesis generating scenarios only (``conformance.generators.scenarios``);
- **check**: drawing and fully checking them in this process — the simulator run with every property,
  one determinism replay in ten, and the reference executor for honest programs (``tierbed fuzz
  --backend sim --inline``'s inner loop, :func:`conformance.fuzz.search.run_chunk`);
- **dask**: the same examples through ``run_fuzz`` on the embedded ``LocalCluster`` (one worker per core),
  after its start-up.

It prints examples/s of each, the share of a checked example spent drawing it, and the parallel
speed-up of the cluster over the in-process loop.

Run: ``python benchmarks/bench_fuzz.py [--examples N] [--workers N]``.
"""

from __future__ import annotations

import argparse
import os
import time

from hypothesis import HealthCheck, given, settings

from conformance.campaign.execute import dask_client
from conformance.fuzz.api import run_fuzz
from conformance.fuzz.check import Checker
from conformance.fuzz.search import run_chunk
from conformance.generators import limits_for, scenarios


def draw_rate(n: int) -> float:
    t = time.perf_counter()

    @settings(max_examples=n, database=None, deadline=None, suppress_health_check=list(HealthCheck))
    @given(scenarios("sim"))
    def draw(drawn: dict) -> None:
        pass

    draw()
    return n / (time.perf_counter() - t)


def _warm() -> None:
    run_chunk(Checker("sim"), limits_for("sim"), 998, 10, frozenset())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--examples", type=int, default=400, help="examples per side (default 400)")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 2, help="embedded cluster workers")
    a = ap.parse_args()
    n = a.examples
    run_chunk(Checker("sim"), limits_for("sim"), 999, 20, frozenset())  # warm-up: imports, numba compiles
    draws = draw_rate(n)
    t = time.perf_counter()
    res = run_chunk(Checker("sim"), limits_for("sim"), 1, n, frozenset())
    inline_s = time.perf_counter() - t
    checked = len(res.rows)
    t = time.perf_counter()
    with dask_client(None, a.workers) as client:
        start_s = time.perf_counter() - t
        client.run(_warm)  # every worker imported and compiled, as the inline side was
        t = time.perf_counter()
        rep = run_fuzz("sim", examples=n, seed=1, scheduler=client.scheduler.address,
                       chunk=max(10, n // (4 * a.workers)))
        dask_s = time.perf_counter() - t
    print(f"fuzz throughput on the simulator ({n} examples per side, {a.workers} workers)")
    print(f"  draw only            {draws:8.1f} examples/s")
    print(f"  draw + check inline  {checked / inline_s:8.1f} examples/s  (drawing is "
          f"{100 * (checked / inline_s) / draws:.0f}% of an example)")
    print(f"  run_fuzz on Dask     {rep.examples / dask_s:8.1f} examples/s  (warm workers; speed-up over inline "
          f"x{(rep.examples / dask_s) / (checked / inline_s):.2f}; cluster start-up {start_s:.1f}s)")
    print(f"  departures found     {len(res.findings) + len(rep.findings)}")


if __name__ == "__main__":
    main()
