"""Campaign throughput: seeds per second on the embedded Dask cluster against a plain loop in one process.

The workload is the shipped remote fault campaign (``conformance/scenarios/l4_remote_faults.yaml``:
an L4 pod, a local L3 and two remote L3 sessions, faults drawn per seed from its ``fault_space``),
run through the product's own path (:func:`conformance.campaign.run_campaign`: plan, run, observe,
every built-in invariant, one determinism replay in 50, Parquet and summary written). In the same
run we time, on the same seeds, the plain in-process loop (``--inline``) and the embedded
``LocalCluster`` (one worker process per core), both after a warm-up, and print seeds/s for each,
their ratio (the parallel speed-up), the cluster's start-up, and the projected wall time of 10,000
seeds on the cluster. Targets (issue "Fault-injection campaigns"): 10,000 seeds in under 3 minutes
on 2 cores, speed-up at least 1.6x on 2 workers.

Run: ``python benchmarks/bench_campaign.py [--seeds N] [--workers N]``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from conformance.campaign import run_campaign
from conformance.campaign.api import make_spec
from conformance.campaign.execute import dask_client, run_dask

SCENARIO = str(Path(__file__).resolve().parent.parent / "conformance" / "scenarios" / "l4_remote_faults.yaml")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=2000, help="seeds per side (default 2000)")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 2, help="embedded cluster workers")
    a = ap.parse_args()
    n = a.seeds
    with tempfile.TemporaryDirectory() as tmp:
        # Warm-up in this process (imports, numba compiles), then the timed in-process loop.
        run_campaign(SCENARIO, range(0, 20), out=Path(tmp) / "warm", inline=True, progress=False, do_shrink=False)
        t = time.perf_counter()
        inline = run_campaign(SCENARIO, range(0, n), out=Path(tmp) / "inline", inline=True, progress=False,
                              do_shrink=False)
        inline_s = time.perf_counter() - t

        spec = make_spec(SCENARIO)
        t = time.perf_counter()
        with dask_client(None, a.workers) as client:
            start_s = time.perf_counter() - t
            client.run(lambda: None)  # every worker up
            run_dask(spec, list(range(n, n + 4 * a.workers)), lambda r: None,
                     scheduler=client.scheduler.address)  # warm the workers
            t = time.perf_counter()
            rows: list[dict] = []
            run_dask(spec, list(range(0, n)), rows.append, scheduler=client.scheduler.address)
            dask_s = time.perf_counter() - t
    same = sorted((r["seed"], r["digest"]) for r in rows) == sorted((r["seed"], r["digest"]) for r in inline.rows)
    inline_rate, dask_rate = n / inline_s, n / dask_s
    print(f"bench_campaign: {n} seeds of {Path(SCENARIO).name} per side, {a.workers} workers")
    print(f"  in-process loop   {inline_rate:8.1f} seeds/s  ({inline_s:.1f} s)")
    print(f"  embedded Dask     {dask_rate:8.1f} seeds/s  ({dask_s:.1f} s; cluster start-up {start_s:.1f} s)")
    print(f"  speed-up          {dask_rate / inline_rate:8.2f}x   (target >= 1.6x on 2 workers)")
    print(f"  10,000 seeds      {10000 / dask_rate + start_s:8.1f} s projected on the cluster (target < 180 s)")
    print(f"  rows identical on both sides (seed, trace digest): {same}")


if __name__ == "__main__":
    main()
