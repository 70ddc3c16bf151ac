"""Benchmark of the reference kernel library: fast (numba) path against the numpy golden.

Run from the repository root::

    python benchmarks/bench_kernels.py            # full sizes
    python benchmarks/bench_kernels.py --quick    # small sizes, fewer repeats
    python benchmarks/bench_kernels.py --only rmsnorm softmax --dtype bfloat16

For every kernel the fast path (``Kernel.run``) and the golden
(``Kernel.golden``) are timed side by side in the same process, repeats
interleaved (baseline, run, golden, baseline, run, golden, ...), and the
*median* of each is reported with the kernel's spread ((slowest - fastest) /
median), so a noisy machine shows as a wide spread rather than as a slow kernel.
Memory-bound kernels are compared with this machine's copy bandwidth: a numpy
copy that reads and writes the kernel's minimum traffic in total, timed right
before each repeat of the kernel; the ratio copy time / kernel time is taken
per repeat (both halves of a pair meet the same load) and its median and range
are reported. That copy is glibc's memcpy, which switches to non-temporal
stores (no read of the destination lines) only above a threshold derived from
the cache size (192 MiB where this was checked), so at these
sizes it uses ordinary stores, as the kernels do; a kernel whose loop reads
more streams than a copy can exceed 100%. matmul/linear are compared with a plain numpy BLAS call on the
same operands in the same way.

In a float16/bfloat16 run each memory-bound kernel is also timed on float32
tensors of the same shape, in the same interleaved loop, and ``vs f32`` gives
the 16-bit time over the float32 time. A 16-bit kernel moves half the bytes of
its float32 kernel but does the same float32 arithmetic (plus a widening and a
rounding per element): near 0.5x it is bound by memory like a copy, near 1.0x
or above by its arithmetic, which then no change to its memory traffic can cure.

Per memory-bound kernel the table also gives ``moved/min``: the bytes the
implementation moves (as the kernel's docstring derives them) over the least
it must move (its cost descriptor's ``bytes_moved``: every input read once,
every output written once; for paged decode, the K/V rows of each sequence's
context). 1.00x means one pass over memory; a kernel far from copy bandwidth
at 1.00x is bound by its arithmetic, one above 1.00x by extra passes.

BLAS runs single-threaded unless ``OPENBLAS_NUM_THREADS`` (or ``OMP_NUM_THREADS``)
is set: the numba kernels are single-threaded too, and idle BLAS threads that
spin-wait distort everything measured after a BLAS call on a small machine.

The one-time compile cost of the whole library is measured in subprocesses
that import the library and run every kernel once for every dtype it supports:
once with a fresh, empty numba cache directory (``NUMBA_CACHE_DIR``; cold
compile) and once more with that directory populated (cached load).

Targets: fused elementwise, RMSNorm and MoE combine at least 2x faster than
the golden; memory-bound kernels at least 70% of copy bandwidth in float32 (and
int32), at least 50% in float16/bfloat16 (``--dtype``; their minimum traffic
is half as large while the float32 arithmetic is not); matmul at least 90% of
numpy BLAS; softmax not slower than the golden. All judged on the medians.
Timings are reported, never asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

# One BLAS thread unless the caller says otherwise: OpenBLAS worker threads spin after each call, and on a
# small shared machine they steal the core the next (single-threaded) numba kernel runs on. The fast path and
# the BLAS baseline use the same setting, so the matmul ratio is unaffected. Must precede importing numpy.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import ml_dtypes  # noqa: E402
import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # runnable as a plain script from anywhere
    sys.path.insert(0, str(REPO))

from reference import get_kernel, kernel_names  # noqa: E402

BF16 = np.dtype(ml_dtypes.bfloat16)
FLOATS = ("float32", "float16", "bfloat16")


def dt(name: str) -> np.dtype:
    return BF16 if name == "bfloat16" else np.dtype(name)


# --------------------------------------------------------------------------- argument builders
# Each builder takes (dtype, size) with size in {"full", "quick", "tiny"} and returns the positional
# values. "tiny" exists for the compile probe: it must exercise every code path, not be fast.

SIZES = {"full": 0, "quick": 1, "tiny": 2}


def pick(size: str, full, quick, tiny):
    return (full, quick, tiny)[SIZES[size]]


def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


def randn(shape: tuple[int, ...], dtype: str, scale: float = 1.0) -> np.ndarray:
    if dtype in ("int32", "int8"):
        info = np.iinfo(dtype)
        return rng().integers(max(info.min, -100), min(info.max, 100), size=shape, dtype=dtype)
    return (rng().standard_normal(shape, dtype=np.float32) * np.float32(scale)).astype(dt(dtype))


def empty(shape: tuple[int, ...], dtype: str) -> np.ndarray:
    return np.zeros(shape, dt(dtype))


def elementwise_n(size: str) -> int:
    return pick(size, 1 << 23, 1 << 20, 37)


def b_binary(dtype: str, size: str) -> list:
    n = elementwise_n(size)
    return [randn((n,), dtype), randn((n,), dtype), empty((n,), dtype)]


def b_add_scalar(dtype: str, size: str) -> list:
    n = elementwise_n(size)
    return [randn((n,), dtype), empty((n,), dtype), 1.5]


def b_axpy(dtype: str, size: str) -> list:
    n = elementwise_n(size)
    return [randn((n,), dtype), randn((n,), dtype), 1e-3]


def b_add_mul(dtype: str, size: str) -> list:
    n = elementwise_n(size)
    return [randn((n,), dtype), randn((n,), dtype), randn((n,), dtype), empty((n,), dtype)]


def b_unary(dtype: str, size: str) -> list:
    n = elementwise_n(size)
    return [randn((n,), dtype, 4.0), empty((n,), dtype)]


def b_swiglu(dtype: str, size: str) -> list:
    n = elementwise_n(size)
    return [randn((n,), dtype, 4.0), randn((n,), dtype), empty((n,), dtype)]


def rows(size: str) -> tuple[int, int]:
    return pick(size, (4096, 2048), (1024, 1024), (3, 5))


def b_rmsnorm(dtype: str, size: str) -> list:
    r, h = rows(size)
    return [randn((r, h), dtype), randn((h,), dtype), empty((r, h), dtype), 1e-6]


def b_layernorm(dtype: str, size: str) -> list:
    r, h = rows(size)
    return [randn((r, h), dtype), randn((h,), dtype), randn((h,), dtype), empty((r, h), dtype), 1e-5]


def b_residual(dtype: str, size: str) -> list:
    r, h = rows(size)
    return [randn((r, h), dtype), randn((r, h), dtype), randn((h,), dtype), empty((r, h), dtype), 1e-6]


def b_softmax(dtype: str, size: str) -> list:
    r, h = rows(size)
    return [randn((r, h), dtype, 8.0), empty((r, h), dtype)]


def b_rope(dtype: str, size: str) -> list:
    t, h, d = pick(size, (4096, 16, 128), (1024, 8, 128), (3, 2, 4))
    theta = rng().standard_normal((t, d // 2))
    return [randn((t, h, d), dtype), np.cos(theta).astype(dt(dtype)), np.sin(theta).astype(dt(dtype)),
            empty((t, h, d), dtype)]


def gemm_out(dtype: str) -> str:
    return "int32" if dtype == "int8" else dtype


def b_matmul(dtype: str, size: str) -> list:
    m, k, n = pick(size, (1024, 1024, 1024), (512, 512, 512), (3, 4, 5))
    return [randn((m, k), dtype), randn((k, n), dtype), empty((m, n), gemm_out(dtype))]


def b_linear(dtype: str, size: str) -> list:
    m, k, n = pick(size, (2048, 1024, 1024), (512, 512, 512), (3, 4, 5))
    return [randn((m, k), dtype), randn((n, k), dtype), empty((m, n), gemm_out(dtype))]


def b_prefill(dtype: str, size: str) -> list:
    b, s, hq, hkv, d = pick(size, (1, 1024, 16, 4, 64), (1, 256, 8, 2, 64), (1, 3, 2, 1, 4))
    return [randn((b, s, hq, d), dtype), randn((b, s, hkv, d), dtype), randn((b, s, hkv, d), dtype),
            empty((b, s, hq, d), dtype), 1.0 / np.sqrt(d)]


def b_decode(dtype: str, size: str) -> list:
    b, hq, hkv, d, bs, ctx = pick(size, (32, 32, 8, 128, 16, 1024), (8, 16, 4, 128, 16, 256), (2, 2, 1, 4, 2, 3))
    per_seq = -(-ctx // bs)
    num_blocks = b * per_seq + 3
    table = rng().permutation(num_blocks)[: b * per_seq].reshape(b, per_seq).astype(np.int32)
    lens = np.full(b, ctx, np.int32)
    lens[0] = max(ctx - bs // 2, 0)  # one ragged sequence
    return [randn((b, hq, d), dtype), randn((num_blocks, bs, hkv, d), dtype), randn((num_blocks, bs, hkv, d), dtype),
            table, lens, empty((b, hq, d), dtype), 1.0 / np.sqrt(d)]


def b_gating(dtype: str, size: str) -> list:
    t, e, k = pick(size, (4096, 64, 8), (1024, 64, 8), (3, 5, 2))
    return [randn((t, e), dtype), empty((t, k), "float32"), empty((t, k), "int32"), k]


def moe_dims(size: str) -> tuple[int, int, int, int]:
    return pick(size, (2048, 4, 16, 1024), (512, 4, 16, 512), (3, 2, 4, 5))  # T, k, E, H


def routing(t: int, k: int, e: int) -> np.ndarray:
    r = rng()
    return np.stack([r.permutation(e)[:k] for _ in range(t)]).astype(np.int32)


def b_dispatch(dtype: str, size: str) -> list:
    t, k, e, h = moe_dims(size)
    return [randn((t, h), dtype), routing(t, k, e), empty((t * k, h), dtype), empty((e,), "int32"),
            empty((t * k,), "int32")]


def b_ffn(dtype: str, size: str) -> list:
    rows_, e, h, f = pick(size, (2048, 8, 512, 1024), (512, 8, 256, 512), (5, 3, 4, 6))
    counts = np.bincount(rng().integers(0, e, rows_), minlength=e).astype(np.int32)
    return [randn((rows_, h), dtype), counts, randn((e, h, f), dtype, 0.05), randn((e, h, f), dtype, 0.05),
            randn((e, f, h), dtype, 0.05), empty((rows_, h), dtype)]


def b_combine(dtype: str, size: str) -> list:
    t, k, _, h = moe_dims(size)
    route_ids = rng().permutation(t * k).astype(np.int32)
    weights = rng().random((t, k), dtype=np.float32)
    return [randn((t * k, h), dtype), route_ids, weights, empty((t, h), dtype)]


def ranks(size: str) -> tuple[int, int]:
    return pick(size, (8, 1 << 20), (4, 1 << 18), (3, 6))  # N, elements per rank (divisible by N)


def b_all_reduce(dtype: str, size: str) -> list:
    n, c = ranks(size)
    return [randn((n, c), dtype), empty((n, c), dtype)]


def b_all_gather(dtype: str, size: str) -> list:
    n, c = ranks(size)
    c //= n
    return [randn((n, c), dtype), empty((n, n * c), dtype)]


def b_reduce_scatter(dtype: str, size: str) -> list:
    n, c = ranks(size)
    return [randn((n, c), dtype), empty((n, c // n), dtype)]


def b_all_to_all(dtype: str, size: str) -> list:
    n, c = ranks(size)
    return [randn((n, c), dtype), empty((n, c), dtype)]


def b_decode_min(values: list) -> int:
    """Paged decode's minimum traffic for these values: q, tables and out, and each sequence's cached K/V rows once."""
    q, kc, _, table, lens, out, _ = values
    row = int(np.prod(kc.shape[2:])) * kc.dtype.itemsize
    return q.nbytes + table.nbytes + lens.nbytes + out.nbytes + 2 * int(lens.astype(np.int64).sum()) * row


def b_combine_moved(values: list, minimum: int) -> int:
    """moe_combine also writes and reads an int64 inverse of route_ids (16 bytes a route; its docstring)."""
    return minimum + 16 * values[1].size


@dataclass(frozen=True)
class Bench:
    build: Callable[[str, str], list]
    memory_bound: bool
    target: str = ""  # "speedup2", "softmax", "blas"
    # The least traffic the kernel needs for these values (default: its cost descriptor's bytes_moved), and
    # what the implementation moves as its docstring derives it (default: that minimum). Memory-bound only.
    minimum: Callable[[list], int] | None = None
    moved: Callable[[list, int], int] | None = None


BENCHES: dict[str, Bench] = {
    "add": Bench(b_binary, True),
    "mul": Bench(b_binary, True),
    "add_scalar": Bench(b_add_scalar, True),
    "axpy": Bench(b_axpy, True),
    "add_mul": Bench(b_add_mul, True, "speedup2"),
    "silu": Bench(b_unary, True),
    "gelu": Bench(b_unary, True),
    "swiglu": Bench(b_swiglu, True),
    "rmsnorm": Bench(b_rmsnorm, True, "speedup2"),
    "layernorm": Bench(b_layernorm, True),
    "residual_add_rmsnorm": Bench(b_residual, True, "speedup2"),
    "softmax": Bench(b_softmax, True, "softmax"),
    "rope": Bench(b_rope, True),
    "matmul": Bench(b_matmul, False, "blas"),
    "linear": Bench(b_linear, False, "blas"),
    "attention_prefill": Bench(b_prefill, False),
    "paged_attention_decode": Bench(b_decode, True, minimum=b_decode_min),
    "moe_topk_gating": Bench(b_gating, False),
    "moe_dispatch": Bench(b_dispatch, True),
    "moe_expert_ffn": Bench(b_ffn, False),
    "moe_combine": Bench(b_combine, True, "speedup2", moved=b_combine_moved),
    "all_reduce": Bench(b_all_reduce, True),
    "all_gather": Bench(b_all_gather, True),
    "reduce_scatter": Bench(b_reduce_scatter, True),
    "all_to_all": Bench(b_all_to_all, True),
}

# Fraction of copy bandwidth a memory-bound kernel must reach, by the dtype of its data.
MEMORY_TARGET = {"float32": 0.70, "float16": 0.50, "bfloat16": 0.50, "int32": 0.70, "int8": 0.70}
SPEEDUP_TARGET = 2.0
BLAS_TARGET = 0.90


# --------------------------------------------------------------------------- timing

def timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def copies(values: list) -> list:
    return [v.copy() if isinstance(v, np.ndarray) else v for v in values]


def blas_baseline(name: str, values: list) -> Callable[[], object]:
    """The plain numpy BLAS call the matmul/linear fast path should match."""
    a, b, out = values[0], values[1], np.empty_like(values[2])
    if a.dtype != np.float32:
        a, b, out = a.astype(np.float32), b.astype(np.float32), out.astype(np.float32)
    if name == "linear":
        return lambda: np.matmul(a, b.T, out=out)
    return lambda: np.matmul(a, b, out=out)


def median(xs: list[float]) -> float:
    return float(np.median(xs))


@dataclass
class Result:
    name: str
    dtype: str
    shape: str
    run: list[float]       # seconds, one per repeat
    golden: list[float]
    baseline: list[float]  # copy (memory-bound) or BLAS (matmul/linear), interleaved with run; empty if none
    wide: list[float]      # 16-bit memory-bound kernels: the same kernel on float32 tensors; else empty
    minimum: int           # least bytes the kernel must move
    moved: int             # bytes the implementation moves (as its docstring derives them)
    bench: Bench

    @property
    def run_s(self) -> float:
        return median(self.run)

    @property
    def spread(self) -> float:
        """(slowest - fastest) / median of the kernel's repeats: how noisy this measurement was."""
        return (max(self.run) - min(self.run)) / self.run_s

    @property
    def vs_f32(self) -> float | None:
        """16-bit time over float32 time (medians): about 0.5 when memory-bound, about 1 or more when not."""
        return self.run_s / median(self.wide) if self.wide else None

    @property
    def speedup(self) -> float:
        return median(self.golden) / self.run_s

    def ratios(self) -> list[float]:
        """Baseline time / kernel time per repeat: each pair ran back to back, so load hits both alike."""
        return [b / r for b, r in zip(self.baseline, self.run, strict=True)]

    @property
    def copy_fraction(self) -> float | None:
        if not self.bench.memory_bound or not self.baseline:
            return None
        return median(self.ratios())

    @property
    def blas_fraction(self) -> float | None:
        return median(self.ratios()) if self.bench.target == "blas" and self.baseline else None

    def targets(self) -> list[tuple[str, bool]]:
        out: list[tuple[str, bool]] = []
        if self.bench.target == "speedup2":
            out.append((f">={SPEEDUP_TARGET:.0f}x golden", self.speedup >= SPEEDUP_TARGET))
        if self.bench.target == "softmax":
            out.append((">=1x golden", self.speedup >= 1.0))
        if self.bench.target == "blas":
            out.append((f">={BLAS_TARGET:.0%} BLAS", (self.blas_fraction or 0.0) >= BLAS_TARGET))
        if self.copy_fraction is not None:
            goal = MEMORY_TARGET[self.dtype]
            out.append((f">={goal:.0%} copy BW", self.copy_fraction >= goal))
        return out


def describe(values: list) -> str:
    first = values[0]
    return f"{'x'.join(str(d) for d in first.shape)} {first.dtype}"


def bench_one(name: str, dtype: str, size: str, repeats: int) -> Result:
    kernel = get_kernel(name)
    bench = BENCHES[name]
    values = bench.build(dtype, size)
    run_vals, gold_vals = copies(values), copies(values)
    minimum = bench.minimum(values) if bench.minimum else kernel.cost(values).bytes_moved
    moved = bench.moved(values, minimum) if bench.moved else minimum
    baseline: Callable[[], object] | None = None
    if bench.target == "blas":
        baseline = blas_baseline(name, values)
    elif bench.memory_bound:
        # A copy that reads and writes the kernel's minimum traffic in total.
        src = np.ones(max(minimum // 2, 1), np.uint8)
        dst = np.empty_like(src)
        baseline = lambda: np.copyto(dst, src)  # noqa: E731 - a one-line closure reads best here
    # The float32 twin of a 16-bit memory-bound kernel: same shape, same arithmetic, twice the bytes.
    wide_vals = bench.build("float32", size) if bench.memory_bound and dtype in ("float16", "bfloat16") else None
    kernel.run(run_vals)  # warm-up: compile (or load from the cache) and touch the pages
    kernel.golden(gold_vals)
    if wide_vals is not None:
        kernel.run(wide_vals)
    if baseline:
        baseline()
    times: dict[str, list[float]] = {"run": [], "golden": [], "base": [], "wide": []}
    for _ in range(repeats):
        # The baseline runs right before the kernel, so each pair meets (nearly) the same machine load.
        if baseline:
            times["base"].append(timed(baseline))
        times["run"].append(timed(lambda: kernel.run(run_vals)))
        if wide_vals is not None:
            times["wide"].append(timed(lambda: kernel.run(wide_vals)))
        times["golden"].append(timed(lambda: kernel.golden(gold_vals)))
    return Result(name, str(values[0].dtype), describe(values), times["run"], times["golden"], times["base"],
                  times["wide"], minimum, moved, bench)


def print_table(results: list[Result]) -> None:
    wide = any(r.wide for r in results)
    header = (f"{'kernel':<23} {'shape dtype':<24} {'moved/min':>9} {'numba ms':>9} {'spread':>6} "
              f"{'golden ms':>10} {'speedup':>8} {'GB/s':>6} {'copy BW (range)':>16} "
              + (f"{'vs f32':>6} " if wide else "") + f"{'BLAS':>5}  targets")
    print(header)
    print("-" * len(header))
    for r in results:
        memory = r.bench.memory_bound
        ratio = f"{r.moved / r.minimum:.2f}x" if memory else "-"
        gbs = f"{r.minimum / r.run_s / 1e9:6.1f}" if memory else f"{'-':>6}"
        if r.copy_fraction is not None:
            ratios = r.ratios()
            copy = f"{r.copy_fraction:.0%} ({min(ratios):.0%}-{max(ratios):.0%})"
        else:
            copy = "-"
        blas = f"{r.blas_fraction:.0%}" if r.blas_fraction is not None else "-"
        vs = (f"{r.vs_f32:5.2f}x " if r.vs_f32 is not None else f"{'-':>6} ") if wide else ""
        marks = ", ".join(f"{label} {'MET' if ok else 'MISSED'}" for label, ok in r.targets())
        print(f"{r.name:<23} {r.shape:<24} {ratio:>9} {r.run_s * 1e3:9.3f} {r.spread:6.0%} "
              f"{median(r.golden) * 1e3:10.3f} {r.speedup:7.1f}x {gbs} {copy:>16} {vs}{blas:>5}  {marks}")


def summarize(results: list[Result]) -> None:
    checks = [(r, label, ok) for r in results for label, ok in r.targets()]
    met = [c for c in checks if c[2]]
    missed = [c for c in checks if not c[2]]
    print(f"\ntargets met: {len(met)} of {len(checks)}")
    for r, label, _ in missed:
        why = f" ({r.vs_f32:.2f}x the time of its float32 kernel)" if "copy BW" in label and r.vs_f32 else ""
        print(f"  MISSED  {r.name}: {label}{why}")


# --------------------------------------------------------------------------- compile cost

def compile_probe() -> None:
    """Child process: import the library and run every kernel once per supported dtype."""
    t0 = time.perf_counter()
    for name in kernel_names():
        kernel = get_kernel(name)
        for dtype in kernel.dtypes:
            kernel.run(BENCHES[name].build(dtype, "tiny"))
    print(json.dumps({"seconds": time.perf_counter() - t0}))


def measure_compile() -> tuple[float, float]:
    with tempfile.TemporaryDirectory(prefix="numba-cache-") as cache:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache}
        times = []
        for _ in range(2):  # cold (empty cache), then cached
            proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--compile-probe"],
                                  env=env, cwd=REPO, capture_output=True, text=True, check=True)
            times.append(json.loads(proc.stdout.strip().splitlines()[-1])["seconds"])
    return times[0], times[1]


# --------------------------------------------------------------------------- main

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes and 3 repeats")
    parser.add_argument("--repeats", type=int, default=None, help="timed repeats per kernel (default 9, quick 3)")
    parser.add_argument("--dtype", default="float32", choices=FLOATS, help="dtype of the floating-point kernels")
    parser.add_argument("--only", nargs="+", metavar="KERNEL", help="benchmark only these kernels")
    parser.add_argument("--skip-compile", action="store_true", help="do not measure the compile cost")
    parser.add_argument("--compile-probe", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.compile_probe:
        compile_probe()
        return 0

    names = args.only or kernel_names()
    unknown = sorted(set(names) - set(BENCHES))
    if unknown:
        parser.error(f"no benchmark for {', '.join(unknown)}")
    size = "quick" if args.quick else "full"
    repeats = args.repeats or (3 if args.quick else 9)
    print(f"reference kernels, {size} sizes, {args.dtype}, median of {repeats} interleaved repeats")
    print(f"numpy {np.__version__}, {os.cpu_count()} CPUs, BLAS threads {os.environ['OPENBLAS_NUM_THREADS']}\n")

    results = []
    for name in names:
        dtype = args.dtype if args.dtype in get_kernel(name).dtypes else get_kernel(name).dtypes[0]
        results.append(bench_one(name, dtype, size, repeats))
        print(f"  measured {name}", file=sys.stderr)
    print_table(results)
    summarize(results)

    if not args.skip_compile:
        cold, cached = measure_compile()
        print("\ncompile cost of the whole library (import + first run of every kernel x dtype, in a subprocess):")
        print(f"  cold (empty numba cache): {cold:6.2f} s")
        print(f"  cached:                   {cached:6.2f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
