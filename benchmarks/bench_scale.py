"""Simulator scale: CPU seconds, memory and record cost of the largest timing-only runs.

The workload (issue "Scale: ten million tasks on 16,384 chips"): an L4 Worker over L3 nodes of
8 chips each, timing-only, trace off, running a layered DAG. Each L4 task (one per L3 node and
layer) reads its own node's and its right neighbour's output of the previous layer and writes its
node's output of this one; the L3 node runs it as a nested orchestration of one chip task per
chip. So every L4 task stands for 9 tasks of the record (itself and its 8 chip tasks).

For each size the benchmark runs one child process (so that peak memory and teardown are those
of that size alone) and prints:

- CPU seconds of build (the Worker tree and its init), run (``Worker.run``), record
  (``Worker.take_record``) and free (dropping the record and the Worker);
- peak resident memory of the process, and that peak over the task count (bytes per task,
  the interpreter's own footprint before the build subtracted);
- the whole child process's wall time (start to exit, the raw-rate probe left out);
- simulated tasks per CPU second of the run over SimPy's raw ``Timeout`` rate, measured in the
  same process (as ``bench_sim.py`` does);
- optionally (``--stream``), the record streamed to a Parquet file during the run;
- optionally (``--trace memory`` or ``--trace stream``), the event trace on, kept in memory or
  streamed to a Parquet file during the run (``SimConfig.trace_path``), and the CPU seconds of
  its sha256 (``Trace.digest`` or ``sim.trace_stream.trace_digest``).

And, once: the CPU time of one submit whose task has ``--fanin`` live producers.

Targets: 10M tasks on 16,384 chips in under 5 minutes for the whole process and at most 400
bytes per task at peak; the record at most 10% of the run; a 32,000-producer submit in under
0.5 s.

Run: ``python benchmarks/bench_scale.py`` (both sizes), or one size in this process:
``python benchmarks/bench_scale.py --one --tasks 1000000 --chips 4096``.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import simpy
from simpy.events import Timeout

CHIPS_PER_NODE = 8


def rss_peak_bytes() -> int:
    """Peak resident set size of this process (Linux reports kilobytes)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def rss_now_bytes() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return rss_peak_bytes()


def raw_simpy_rate(n: int) -> float:
    """Raw SimPy events per CPU second: 16 chains of timeouts, each callback scheduling the next."""
    env = simpy.Environment()
    left = [n]

    def step(ev: simpy.Event) -> None:
        left[0] -= 1
        if left[0] > 0:
            Timeout(env, 1.0).callbacks.append(step)

    for _ in range(16):
        Timeout(env, 1.0).callbacks.append(step)
    t0 = time.process_time()
    env.run()
    return (n + 15) / (time.process_time() - t0)


def one_size(n_tasks: int, n_chips: int, stream: str | None, trace: str = "off", tmp: str | None = None) -> dict:
    """Build, run, record and free one layered-DAG run; return its figures."""
    from reference import get_kernel
    from sim import SimConfig, TaskArgs, TensorArgType, TensorSpec, Worker

    base = rss_now_bytes()
    nodes = max(1, n_chips // CHIPS_PER_NODE)
    per_l4 = 1 + CHIPS_PER_NODE
    layers = max(1, n_tasks // (nodes * per_l4))

    c0 = time.process_time()
    kw: dict = {} if stream is None else {"record_path": stream}
    if trace == "stream":
        kw["trace_path"] = os.path.join(tmp or tempfile.gettempdir(), "trace.parquet")
    l4 = Worker(level=4, sim=SimConfig(data_mode="timing", trace=trace != "off", **kw))
    l3s, adds = [], []
    kernel = get_kernel("add")
    for _ in range(nodes):
        l3 = Worker(level=3, device_ids=list(range(CHIPS_PER_NODE)))
        adds.append(l3.register(kernel))
        l4.add_worker(l3)
        l3s.append(l3)

    def node_orch(o, args, _cfg):
        # One chip task per chip: add(own input, neighbour's input) into the node's output. The
        # scalar names the node, whose own registration of the kernel its orchestration uses.
        a, b = args.tensor(0), args.tensor(1)
        scratch = args.tensor(2)
        add = adds[args.scalar(0)]
        for c in range(CHIPS_PER_NODE):
            ta = TaskArgs()
            ta.add_tensor(a, TensorArgType.INPUT)
            ta.add_tensor(b, TensorArgType.INPUT)
            ta.add_tensor(scratch, TensorArgType.OUTPUT)
            o.submit_next_level(add, ta, worker=c)

    step = l4.register(node_orch)
    l4.init()
    # Two layers of outputs, used in turn: a layer reads the previous one and overwrites the one
    # before it (write-after-read is not a dependency), so the user's own state is O(nodes).
    bufs = [[TensorSpec((1024,), "float32") for _ in range(nodes)] for _ in range(2)]
    build = time.process_time() - c0

    def orch(o, _args, _cfg):
        for layer in range(layers):
            src, dst = bufs[(layer + 1) % 2], bufs[layer % 2]
            for i in range(nodes):
                ta = TaskArgs()
                ta.add_tensor(src[i], TensorArgType.INPUT)
                ta.add_tensor(src[(i + 1) % nodes], TensorArgType.INPUT)
                ta.add_tensor(dst[i], TensorArgType.OUTPUT)
                ta.add_scalar(i)
                o.submit_next_level(step, ta, worker=i)

    c0 = time.process_time()
    l4.run(orch)
    run = time.process_time() - c0
    vt = l4.simulation.now / 1e6

    c0 = time.process_time()
    rec = l4.take_record()
    n_rec = len(rec.tasks)
    record = time.process_time() - c0
    peak = rss_peak_bytes()
    events, digest_s = 0, 0.0
    if trace != "off":  # the trace's sha256, as a determinism check takes it
        from sim.trace_stream import trace_digest

        events = len(l4.simulation.trace)
        c0 = time.process_time()
        if trace == "stream":
            trace_digest(rec.metadata["trace_path"])
        else:
            l4.simulation.trace.digest()
        digest_s = time.process_time() - c0

    c0 = time.process_time()
    l4.close()
    del rec, l4, l3s, orch, node_orch
    gc.collect()
    free = time.process_time() - c0

    w0 = time.perf_counter()
    raw = raw_simpy_rate(1_000_000)
    probe = time.perf_counter() - w0
    return {"tasks": n_rec, "chips": nodes * CHIPS_PER_NODE, "layers": layers, "build_s": build, "run_s": run,
            "record_s": record, "free_s": free, "peak_bytes": peak, "base_bytes": base,
            "bytes_per_task": (peak - base) / max(n_rec, 1), "virtual_s": vt,
            "tasks_per_cpu_s": n_rec / run, "raw_events_per_cpu_s": raw, "probe_wall_s": probe,
            "trace": trace, "events": events, "digest_s": digest_s}


def fanin_submit(k: int) -> float:
    """CPU seconds of one SUB submit whose task has ``k`` live producers (all submitted earlier)."""
    from sim import SimConfig, TaskArgs, TensorArgType, TensorSpec, Worker

    w = Worker(level=3, num_sub_workers=4, sim=SimConfig(data_mode="timing", trace=False))

    def noop(_args):
        return None

    fn = w.register(noop)
    w.init()
    outs = [TensorSpec((16,), "float32") for _ in range(k)]
    took = [0.0]

    def orch(o, _args, _cfg):
        for t in outs:
            ta = TaskArgs()
            ta.add_tensor(t, TensorArgType.OUTPUT)
            o.submit_sub(fn, ta)
        ta = TaskArgs()
        for t in outs:
            ta.add_tensor(t, TensorArgType.INPUT)
        c0 = time.process_time()
        o.submit_sub(fn, ta)
        took[0] = time.process_time() - c0

    w.run(orch)
    rec = w.take_record()
    assert len(next(reversed(rec.tasks.values())).producers) == k
    w.close()
    return took[0]


def print_size(r: dict, wall: float) -> None:
    n = r["tasks"]
    print(f"{n:,} tasks on {r['chips']:,} chips ({r['layers']} layers, L4 over L3 nodes of {CHIPS_PER_NODE} chips)")
    print(f"  build  CPU s                      {r['build_s']:10.2f}")
    print(f"  run    CPU s                      {r['run_s']:10.2f}")
    print(f"  record CPU s                      {r['record_s']:10.2f}   ({r['record_s'] / r['run_s']:.3f} x run)")
    print(f"  free   CPU s                      {r['free_s']:10.2f}")
    print(f"  whole process wall s              {wall:10.1f}   (the raw-rate probe left out)")
    print(f"  peak RSS                          {r['peak_bytes'] / 2**30:10.2f} GiB")
    print(f"  peak bytes per task               {r['bytes_per_task']:10.0f}")
    print(f"  virtual time simulated            {r['virtual_s']:10.3f} s")
    print(f"  tasks per CPU s of run            {r['tasks_per_cpu_s']:10,.0f}")
    print(f"  raw SimPy Timeout events per CPU s{r['raw_events_per_cpu_s']:10,.0f}")
    print(f"  ratio tasks / raw events          {r['tasks_per_cpu_s'] / r['raw_events_per_cpu_s']:10.3f}")
    if r.get("trace", "off") != "off":
        print(f"  trace ({r['trace']}) events            {r['events']:10,}")
        print(f"  trace digest CPU s                {r['digest_s']:10.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--one", action="store_true", help="run one size in this process and print JSON")
    ap.add_argument("--tasks", type=int, nargs="*", default=[1_000_000, 10_000_000])
    ap.add_argument("--chips", type=int, nargs="*", default=[4096, 16384])
    ap.add_argument("--fanin", type=int, default=32_000, help="producers of the one fan-in submit (0: skip)")
    ap.add_argument("--stream", action="store_true", help="stream the record to a Parquet file during the run")
    ap.add_argument("--trace", choices=("off", "memory", "stream"), default="off",
                    help="the event trace: off, kept in memory, or streamed to a Parquet file during the run")
    ns = ap.parse_args()
    if ns.one:
        with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
            record = os.path.join(tmp, "record.parquet") if ns.stream else None
            print(json.dumps(one_size(ns.tasks[0], ns.chips[0], record, ns.trace, tmp)))
        return
    if len(ns.tasks) != len(ns.chips):
        ap.error("--tasks and --chips need as many values each")
    for n, c in zip(ns.tasks, ns.chips, strict=True):
        cmd = [sys.executable, __file__, "--one", "--tasks", str(n), "--chips", str(c)]
        if ns.stream:
            cmd.append("--stream")
        cmd += ["--trace", ns.trace]
        t0 = time.perf_counter()
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        r = json.loads(out.strip().splitlines()[-1])
        print_size(r, time.perf_counter() - t0 - r["probe_wall_s"])
        sys.stdout.flush()
    if ns.fanin:
        took = fanin_submit(ns.fanin)
        verdict = "met" if took < 0.5 else "MISSED"
        print(f"one submit with {ns.fanin:,} live producers   {took:10.3f} CPU s   (target < 0.5: {verdict})")


if __name__ == "__main__":
    main()
