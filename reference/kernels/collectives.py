"""Collectives over N chips' buffers: all-reduce, all-gather, reduce-scatter, all-to-all.

Upstream runs these as L3 scene tests over a communication window
(``tests/st/worker/collectives/``: ``allreduce``, ``allgather``,
``reduce_scatter``, ``all_to_all``; the minimal demo is
``examples/workers/l3/allreduce``). The reference kernels compute the *result*
of a collective for all ranks at once, so a functional run can check the data
that a simulated exchange delivers.

Convention: every tensor is **stacked by rank** — axis 0 has length N (the
ranks), ``x[r]`` is rank r's input buffer and ``out[r]`` its output buffer.
Chunked collectives split axis 1 into N equal chunks of C rows; trailing axes
ride along.

* ``all_reduce(x [N, ...], out [N, ...])``: ``out[r] = sum_s x[s]`` for every r.
* ``all_gather(x [N, C, ...], out [N, N*C, ...])``: ``out[r, s*C:(s+1)*C] = x[s]``
  — every rank holds the concatenation in rank order.
* ``reduce_scatter(x [N, N*C, ...], out [N, C, ...])``:
  ``out[r] = sum_s x[s, r*C:(r+1)*C]`` — rank r owns the reduced chunk r.
* ``all_to_all(x [N, N*C, ...], out [N, N*C, ...])``:
  ``out[r, s*C:(s+1)*C] = x[s, r*C:(r+1)*C]`` — slot s of rank r holds what
  rank s prepared for rank r (upstream's all_to_all README "Golden Check").

Sums run in rank order with a float32 accumulator (int64 for int32, so int32
sums wrap exactly once at the end), as a device reduces float data, and are
deterministic. Their rounding error is relative to ``sum_s |x[s]|``, not to the
result, which ranks of opposite sign can cancel: see ``_SUM_TOL``. 16-bit inputs
are widened to float32 in registers as they are loaded and the sums rounded as
they are stored, so the summing collectives read ``x`` once and write ``out``
once in their own dtype. Data-movement collectives are bit-exact for every
dtype. Memory traffic: every kernel moves exactly ``Cost.bytes_moved`` (which
for all-gather counts each input chunk once per receiving rank).

Cost convention: the flops of the reduction (``(N-1)`` adds per output element
of one rank) and the local memory traffic of the stacked buffers (read ``x``,
write ``out``). Interconnect traffic is for the simulator's link model.
"""

from __future__ import annotations

import numba
import numpy as np

from reference.kernel import Cost, Direction, Kernel, Param, nbytes_of
from reference.kernel_table import register_kernel
from reference.kernels._checks import (
    ALL_DTYPES,
    FLOAT_DTYPES,
    fail,
    numel,
    require_dtype,
    require_min_ndim,
    require_same_dtype,
    require_shape,
    shape_of,
)
from reference.kernels._numerics import (
    FAST,
    JIT,
    as_numba,
    lanes,
    lanes_out,
    lanes_store,
    narrow,
    native_buffer,
    prefetch,
    prefetch_for_write,
    store_native,
    widen,
)

_P = Param
_IN, _OUT = Direction.IN, Direction.OUT
_SUM_DTYPES = (*FLOAT_DTYPES, "int32")
# Float32 sums in rank order are within (N - 1) * 2**-24 of sum_s |x[s]| of the exact sum: relative to
# the terms, not to a result that ranks of opposite sign can cancel. Hence an atol, stated for unit-scale
# terms (sum_s |x[s]| = 1) and valid up to about 16 ranks. int32 sums are exact (they wrap).
_SUM_TOL = {"float32": (2e-6, 1e-6), "float16": (2e-3, 1e-6), "bfloat16": (1e-2, 1e-6), "int32": (0.0, 0.0)}
_EXACT = {name: (0.0, 0.0) for name in ALL_DTYPES}
# Accumulator block, in elements. Small on purpose: each block's loads and stores are issued while the
# next block of every rank is prefetched, so the 2N streams keep memory busy (caches cold, 8 ranks of
# 4 MiB: 2048 unprefetched 74%, 128 prefetched 104% of copy bandwidth).
_CHUNK = 128


# --------------------------------------------------------------------------- numba bodies on [N, M] views

@numba.njit(fastmath=FAST, **JIT)
def _sum_ranks(x, out, acc, chunk, replicate):  # pragma: no cover - compiled
    """out[r] = sum over s of x[s, r*chunk : r*chunk + width], accumulated in ``acc``'s dtype, in rank order.

    With ``replicate`` (all-reduce) the sum of columns ``0:width`` is computed
    once and copied to every rank while it is still in L1; otherwise
    (reduce-scatter) rank r sums its own chunk. Work goes block by block
    through ``acc``, on 1-D slices so that LLVM sees unit strides.
    """
    n = x.shape[0]
    width = out.shape[1]
    line = 64 // x.itemsize  # elements per cache line
    for r in range(1 if replicate else out.shape[0]):
        base = 0 if replicate else r * chunk
        for start in range(0, width, acc.size):
            stop = min(width, start + acc.size)
            for j in range(stop, min(width, stop + acc.size), line):  # the next block, everywhere
                for s in range(n):
                    prefetch(x[s], base + j)
                for q in range(out.shape[0]) if replicate else range(r, r + 1):
                    prefetch_for_write(out[q], j)
            a = acc[: stop - start]
            src = x[0, base + start : base + stop]
            for c in range(a.size):
                a[c] = widen(src[c])
            for s in range(1, n):
                src = x[s, base + start : base + stop]
                for c in range(a.size):
                    a[c] += widen(src[c])
            dst = out[r, start:stop]
            for c in range(a.size):
                dst[c] = narrow(a[c], dst)
            if replicate:
                for q in range(1, out.shape[0]):
                    other = out[q, start:stop]
                    for c in range(a.size):
                        other[c] = dst[c]


@numba.njit(**JIT)
def _copy(src, dst):  # pragma: no cover - compiled
    for i in range(src.size):
        dst[i] = src[i]


@numba.njit(**JIT)
def _gather(x, out):  # pragma: no cover - compiled
    # x [N, M], out [N, N*M]: every rank gets the concatenation.
    n, m = x.shape
    for r in range(n):
        for s in range(n):
            _copy(x[s], out[r, s * m : (s + 1) * m])


@numba.njit(**JIT)
def _transpose_chunks(x, out, chunk):  # pragma: no cover - compiled
    # x, out [N, N*chunk]: out[r, s-th chunk] = x[s, r-th chunk].
    n = x.shape[0]
    for r in range(n):
        for s in range(n):
            _copy(x[s, r * chunk : (r + 1) * chunk], out[r, s * chunk : (s + 1) * chunk])


def _as2d(a: np.ndarray) -> np.ndarray:
    return a.reshape(a.shape[0], -1)  # [ranks, elements per rank]


def _reduce(x: np.ndarray, out: np.ndarray, replicate: bool) -> None:
    if out.size == 0:
        return
    chunk = _per_rank(out.shape)
    acc = np.empty(_CHUNK, np.int64 if x.dtype == np.int32 else np.float32)
    buf = lanes_out(out)
    _sum_ranks(_as2d(lanes(x)), _as2d(buf), acc, chunk, replicate)
    lanes_store(out, buf)


def _golden_wide(a: np.ndarray) -> np.ndarray:
    return a.astype(np.int64 if a.dtype.kind == "i" else np.float64)


def _per_rank(shape: tuple[int, ...]) -> int:
    return numel(shape[1:])


def _require_ranks(kernel: str, x) -> int:
    require_min_ndim(kernel, "x", x, 1)
    n = int(x.shape[0])
    if n == 0:
        fail(kernel, "x", "has no ranks (axis 0, the rank axis, is empty)")
    return n


# --------------------------------------------------------------------------- all_reduce

def _all_reduce_check(x, out) -> None:
    require_dtype("all_reduce", "x", x, _SUM_DTYPES)
    _require_ranks("all_reduce", x)
    require_same_dtype("all_reduce", ("x", "out"), (x, out))
    require_shape("all_reduce", "out", out, shape_of(x), "same as x: [ranks, ...]")


def _all_reduce_run(x: np.ndarray, out: np.ndarray) -> None:
    _reduce(x, out, True)


def _all_reduce_golden(x: np.ndarray, out: np.ndarray) -> None:
    total = sum(_golden_wide(x[s]) for s in range(x.shape[0]))
    for r in range(out.shape[0]):
        out[r] = np.asarray(total).astype(out.dtype)


def _all_reduce_cost(x, out) -> Cost:
    n = int(x.shape[0])
    return Cost(flops=float(max(n - 1, 0) * _per_rank(shape_of(x))), bytes_read=nbytes_of(x),
                bytes_written=nbytes_of(out))


ALL_REDUCE = register_kernel(Kernel(
    name="all_reduce",
    params=(_P("x", _IN), _P("out", _OUT)),
    run_fn=_all_reduce_run, golden_fn=_all_reduce_golden, check_fn=_all_reduce_check, cost_fn=_all_reduce_cost,
    tolerances=_SUM_TOL, dtypes=_SUM_DTYPES,
    doc="sum over ranks, result on every rank; x/out [N, ...]",
))


# --------------------------------------------------------------------------- chunked layouts

def _chunked(kernel: str, name: str, v, n: int) -> int:
    """Chunk length C for a [N, N*C, ...] tensor; fails unless axis 1 splits into N chunks."""
    require_min_ndim(kernel, name, v, 2)
    rows = int(v.shape[1])
    if rows % n:
        fail(kernel, name, f"has {rows} rows on axis 1; it must split into N={n} equal chunks (one per rank)")
    return rows // n


def _all_gather_check(x, out) -> None:
    require_dtype("all_gather", "x", x, ALL_DTYPES)
    _require_ranks("all_gather", x)
    require_min_ndim("all_gather", "x", x, 2)
    require_same_dtype("all_gather", ("x", "out"), (x, out))
    n, c, *rest = shape_of(x)
    require_shape("all_gather", "out", out, (n, n * c, *rest), "[ranks, ranks * chunk, ...]")


def _all_gather_run(x: np.ndarray, out: np.ndarray) -> None:
    if out.size == 0:
        return
    buf = native_buffer(out)
    _gather(_as2d(as_numba(x)), _as2d(as_numba(buf)))
    store_native(out, buf)


def _all_gather_golden(x: np.ndarray, out: np.ndarray) -> None:
    everything = np.concatenate([x[s] for s in range(x.shape[0])], axis=0)
    for r in range(out.shape[0]):
        out[r] = everything


def _all_gather_cost(x, out) -> Cost:
    return Cost(flops=0.0, bytes_read=int(x.shape[0]) * nbytes_of(x), bytes_written=nbytes_of(out))


ALL_GATHER = register_kernel(Kernel(
    name="all_gather",
    params=(_P("x", _IN), _P("out", _OUT)),
    run_fn=_all_gather_run, golden_fn=_all_gather_golden, check_fn=_all_gather_check, cost_fn=_all_gather_cost,
    tolerances=_EXACT, dtypes=ALL_DTYPES,
    doc="concatenate the ranks' chunks on every rank; x [N, C, ...] -> out [N, N*C, ...]",
))


def _reduce_scatter_check(x, out) -> None:
    require_dtype("reduce_scatter", "x", x, _SUM_DTYPES)
    require_same_dtype("reduce_scatter", ("x", "out"), (x, out))
    n = _require_ranks("reduce_scatter", x)
    c = _chunked("reduce_scatter", "x", x, n)
    require_shape("reduce_scatter", "out", out, (n, c, *shape_of(x)[2:]), "[ranks, chunk, ...]")


def _reduce_scatter_run(x: np.ndarray, out: np.ndarray) -> None:
    _reduce(x, out, False)


def _reduce_scatter_golden(x: np.ndarray, out: np.ndarray) -> None:
    n = x.shape[0]
    c = x.shape[1] // n
    for r in range(n):
        chunk = sum(_golden_wide(x[s, r * c : (r + 1) * c]) for s in range(n))
        out[r] = np.asarray(chunk).astype(out.dtype)


def _reduce_scatter_cost(x, out) -> Cost:
    n = int(x.shape[0])
    return Cost(flops=float(max(n - 1, 0) * numel(shape_of(out))), bytes_read=nbytes_of(x),
                bytes_written=nbytes_of(out))


REDUCE_SCATTER = register_kernel(Kernel(
    name="reduce_scatter",
    params=(_P("x", _IN), _P("out", _OUT)),
    run_fn=_reduce_scatter_run, golden_fn=_reduce_scatter_golden, check_fn=_reduce_scatter_check,
    cost_fn=_reduce_scatter_cost, tolerances=_SUM_TOL, dtypes=_SUM_DTYPES,
    doc="rank r gets the sum over ranks of chunk r; x [N, N*C, ...] -> out [N, C, ...]",
))


def _all_to_all_check(x, out) -> None:
    require_dtype("all_to_all", "x", x, ALL_DTYPES)
    require_same_dtype("all_to_all", ("x", "out"), (x, out))
    n = _require_ranks("all_to_all", x)
    _chunked("all_to_all", "x", x, n)
    require_shape("all_to_all", "out", out, shape_of(x), "same as x: [ranks, ranks * chunk, ...]")


def _all_to_all_run(x: np.ndarray, out: np.ndarray) -> None:
    if out.size == 0:
        return
    chunk = _per_rank(x.shape) // x.shape[0]
    buf = native_buffer(out)
    if np.shares_memory(buf, x):  # the exchange reads every rank's input: never write over it
        buf = np.empty(out.shape, out.dtype)
    _transpose_chunks(_as2d(as_numba(x)), _as2d(as_numba(buf)), chunk)
    store_native(out, buf)


def _all_to_all_golden(x: np.ndarray, out: np.ndarray) -> None:
    n = x.shape[0]
    c = x.shape[1] // n
    received = np.empty_like(x)
    for r in range(n):
        for s in range(n):
            received[r, s * c : (s + 1) * c] = x[s, r * c : (r + 1) * c]
    out[...] = received


def _all_to_all_cost(x, out) -> Cost:
    return Cost(flops=0.0, bytes_read=nbytes_of(x), bytes_written=nbytes_of(out))


ALL_TO_ALL = register_kernel(Kernel(
    name="all_to_all",
    params=(_P("x", _IN), _P("out", _OUT)),
    run_fn=_all_to_all_run, golden_fn=_all_to_all_golden, check_fn=_all_to_all_check, cost_fn=_all_to_all_cost,
    tolerances=_EXACT, dtypes=ALL_DTYPES,
    doc="personalised exchange: out[r] chunk s = x[s] chunk r; x/out [N, N*C, ...]",
))
