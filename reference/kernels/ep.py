"""Expert-parallel dispatch, local expert and combine over N ranks, as one stacked kernel.

Upstream's largest L3 example, ``examples/workers/l3/ep_dispatch_combine``,
runs one chip callable per rank as a group over a communication domain. Its
orchestration (``kernels/orchestration/ep_dispatch_combine_orch.cpp``) chains
three AIV kernels on every rank: ``kernels/aiv/dispatch.cpp`` (route counts
exchanged, each route's receive slot fixed by prefix sums, payload pushed into
the owning rank's window, window staged out), ``kernels/aiv/local_expert.cpp``
(a stand-in expert that scales each received row by its weight) and
``kernels/aiv/combine.cpp`` (expert rows pushed back to their origin rank by
route id, then summed over the k choices). ``main.py`` builds the host golden
by replaying the protocol, and ``README.md`` ("The dispatch protocol",
"Verification") states what is compared and how tightly.

:data:`EP_DISPATCH_COMBINE` computes what those three kernels leave in the ten
host-visible tensors, for all ranks at once, in the convention of
:mod:`reference.kernels.collectives`: every tensor is **stacked by rank**
(axis 0 has length N and ``a[r]`` is rank r's buffer). The window (``scratch``)
and the two scalars (``nranks``, the comm context) have no counterpart: N is
axis 0, and the window is modelled as freshly zeroed.

Shapes (N ranks, T tokens, K = TOPK choices per token, D hidden, L local
experts per rank, R receive slots per expert, P and Q pad widths — 8 upstream;
a *route* is a (token t, choice j) pair with id ``t*K + j``; expert ``g`` lives
on rank ``g // L`` as local expert ``g % L``)::

    indices        IN   [N, T, K]     int32     global expert id of each route, 0 <= g < N*L
    x_norm         IN   [N, T, D]     bfloat16  token rows
    w_padded       IN   [N, T*K, P]   float32   per route, its weight as a row ([w, 0, ...] upstream)
    idx_padded     IN   [N, T*K, Q]   int32     per route, its label as a row ([t*K + j, 0, ...] upstream)
    recv_x_out     OUT  [N, L, R, D]  bfloat16
    recv_w_out     OUT  [N, L, R]     float32
    recv_idx_out   OUT  [N, L, R]     int32
    recv_count_out OUT  [N, L, 1]     int32
    recv_y         OUT  [N, L, R, D]  bfloat16
    routed_y       OUT  [N, T, D]     float32

Semantics (``c[s, d, e]`` = routes of rank s whose expert is local expert e of rank d):

* **Slots.** On rank d, expert e's slots are filled sender by sender in rank
  order, each sender's routes to (d, e) in route-id order: sender s starts at
  ``sum_{s' < s} c[s', d, e]``. (dispatch.cpp stably sorts a sender's routes by
  (destination, local expert), so a (d, e) bucket keeps route order; its
  offset on the peer is the prefix sum of the exchanged count table.)
* **Dispatch outputs** (rank d, expert e, slot i filled by route (s, t, j)):
  ``recv_x_out[d, e, i] = x_norm[s, t]`` (a bit copy);
  ``recv_w_out[d, e, i]`` = the float32 sum of the row ``w_padded[s, t*K+j]``
  taken left to right, and ``recv_idx_out[d, e, i]`` the int32 (wrapping) sum
  of ``idx_padded[s, t*K+j]`` — the device compacts the padded rows by a row
  sum, which is exactly the first column when the rest is zero;
  ``recv_count_out[d, e, 0] = sum_s c[s, d, e]``. Slots at or beyond the count
  are 0 in all three, as the device stages out a zero-initialised window.
* **Local expert.** ``recv_y[d, e, i] = bf16(f32(recv_x_out[d, e, i]) * recv_w_out[d, e, i])``
  for the filled slots (a float32 product rounded once, to nearest even); the
  device leaves the other rows untouched, and this kernel writes them 0 (what
  ``main.py``'s zeroed buffers hold).
* **Combine.** The row in slot i of (d, e) goes back to its sender s, into
  route ``recv_idx_out[d, e, i]`` of a zeroed buffer; then
  ``routed_y[s, t] = ((0 + y[t*K+0]) + y[t*K+1]) + ... + y[t*K+K-1]`` in
  float32, in choice order, each term widened from bfloat16.

Contents the device would corrupt memory or race on are rejected before any
computation (``check_data``): an expert id outside ``[0, N*L)``, more than R
routes for one expert of one rank (the slot would run into the next expert's
rows), and labels (row sums of ``idx_padded``) that are not, per rank, a
permutation of ``0 .. T*K-1`` (combine would write outside its buffer, or two
routes would land on one row).

Fidelity notes. This is the first call after the window is allocated: upstream
accumulates the count table with atomic adds into the window and never clears
it, so a second call on the same window sees stale counts. Upstream's kernels
fix N=2 and the shapes above at compile time; this kernel takes any. The
device's casts use ``CAST_ROUND``; like ``main.py``'s golden this kernel rounds
to nearest even, which the README allows one bfloat16 ULP on ties for. With
nonzero padding the device's row-sum order is not known; with the upstream
(zero) padding every order gives the first column exactly.

Registration: this kernel is not in the kernel table yet (the library's
completeness tests want a signature, cost and numeric case for every
registered kernel, to be added with it). Until then it is reached as
``reference.kernels.ep:EP_DISPATCH_COMBINE``, the ``module:attr`` form a
kernel map accepts.

Tolerances are ``main.py``'s for the arithmetic outputs (``recv_y``,
``routed_y``: two bfloat16 ULPs, ``rtol = atol = 2**-6``); ``recv_x_out``,
``recv_w_out``, ``recv_idx_out`` and ``recv_count_out`` are data movement and
agree bit for bit (the fast path and the golden do the same float32 operations
in the same order, so they agree bit for bit on every output).

Cost: flops are one multiply per received element (local expert), one add per
route element (combine) and the row-sum adds of the compaction. Bytes are the
local memory traffic of all ranks' three kernels: dispatch reads the indices,
one token row and both padded rows per route, writes them into the window and
stages out the whole window (L*R slots); local expert reads each received row
and weight and writes its result row; combine reads each result row and label,
writes it into the combine buffer, reads it back and writes ``routed_y``. A
push to a peer is charged as the write it is on the receiving rank;
interconnect traffic is for the simulator's link model.
"""

from __future__ import annotations

import numba
import numpy as np

from reference.kernel import Cost, Direction, Kernel, Param, nbytes_of
from reference.kernels._checks import (
    fail,
    require_dtype,
    require_ndim,
    require_shape,
    shape_of,
)
from reference.kernels._numerics import BFLOAT16, JIT, as_numba, native_buffer, store_native

_KN = "ep_dispatch_combine"
_P = Param
_IN, _OUT = Direction.IN, Direction.OUT

# main.py's verification: two bfloat16 ULPs for the products and their sums; the moved data is exact.
_ULP2 = 2.0**-6
_TOL = {"bfloat16": (_ULP2, _ULP2), "float32": (_ULP2, _ULP2), "int32": (0.0, 0.0)}


# --------------------------------------------------------------------------- numba body

@numba.njit(**JIT)
def _slots(flat, n_local, r_cap, dest):  # pragma: no cover - compiled
    """dest[s, q] = flat row (d*L + e)*R + slot on the receiving rank of route q of rank s; fills counts."""
    n, routes = flat.shape
    counts = np.zeros((n, n, n_local), dtype=np.int64)  # [sender, receiver, local expert]
    for s in range(n):
        for q in range(routes):
            g = flat[s, q]
            counts[s, g // n_local, g % n_local] += 1
    fill = np.zeros((n, n_local), dtype=np.int64)  # next free slot per (receiver, expert); senders in rank order
    for s in range(n):
        for q in range(routes):
            g = flat[s, q]
            d = g // n_local
            e = g % n_local
            dest[s, q] = (d * n_local + e) * r_cap + fill[d, e]
            fill[d, e] += 1
    return fill  # = the received count per (receiver, expert)


@numba.njit(**JIT)
def _exchange(flat, k, x, w_pad, i_pad, dest, recv_x, recv_w, recv_idx, recv_y, routed_y,
              fbuf):  # pragma: no cover - compiled
    """Dispatch, local expert and combine on flat views; bfloat16 arrays are uint16 bit views.

    flat [N, T*K] expert ids; x [N, T, D]; w_pad [N, T*K, P]; i_pad [N, T*K, Q]; dest [N, T*K];
    recv_x / recv_y [N*L*R, D]; recv_w / recv_idx [N*L*R]; routed_y [N, T, D];
    fbuf: a D-long float32 row, also read as its bits.
    """
    ubuf = fbuf.view(np.uint32)
    n, routes = flat.shape
    d_n = x.shape[2]
    recv_x[:] = 0  # the staged-out window starts zeroed; unfilled slots stay 0
    recv_w[:] = 0
    recv_idx[:] = 0
    recv_y[:] = 0
    origin = np.empty((n, routes), dtype=np.int64)  # origin[s, label] = receiving row of that route
    for s in range(n):
        for q in range(routes):
            row = dest[s, q]
            src = x[s, q // k]
            dst = recv_x[row]
            for c in range(d_n):
                dst[c] = src[c]
            wsum = w_pad[s, q, 0]
            for c in range(1, w_pad.shape[2]):
                wsum = np.float32(wsum + w_pad[s, q, c])
            isum = i_pad[s, q, 0]
            for c in range(1, i_pad.shape[2]):
                isum = np.int32(isum + i_pad[s, q, c])
            recv_w[row] = wsum
            recv_idx[row] = isum
            origin[s, isum] = row
            # local expert: widen, scale in float32, round to nearest even
            for c in range(d_n):
                ubuf[c] = np.uint32(src[c]) << np.uint32(16)
            for c in range(d_n):
                fbuf[c] = fbuf[c] * wsum
            y = recv_y[row]
            for c in range(d_n):
                b = ubuf[c]
                if (b & np.uint32(0x7FFFFFFF)) > np.uint32(0x7F800000):
                    y[c] = np.uint16((b >> np.uint32(16)) | np.uint32(0x0040))  # NaN stays a quiet NaN
                else:
                    y[c] = np.uint16((b + np.uint32(0x7FFF) + ((b >> np.uint32(16)) & np.uint32(1))) >> np.uint32(16))
    # combine: every route's row back at its origin, summed over the k choices in float32, in order
    t_n = routed_y.shape[1]
    for s in range(n):
        for t in range(t_n):
            acc = routed_y[s, t]
            for c in range(d_n):
                acc[c] = 0.0
            for j in range(k):
                src = recv_y[origin[s, t * k + j]]
                for c in range(d_n):
                    ubuf[c] = np.uint32(src[c]) << np.uint32(16)
                for c in range(d_n):
                    acc[c] = acc[c] + fbuf[c]


# --------------------------------------------------------------------------- checks

def _dims(indices, x_norm, recv_x_out) -> tuple[int, int, int, int, int, int]:
    """(N, T, K, D, L, R) from the signature; fails on the tensors that fix them."""
    require_dtype(_KN, "indices", indices, ("int32",))
    require_ndim(_KN, "indices", indices, 3, "[ranks, tokens, topk]")
    n, t, k = shape_of(indices)
    if n == 0:
        fail(_KN, "indices", "has no ranks (axis 0, the rank axis, is empty)")
    require_dtype(_KN, "x_norm", x_norm, ("bfloat16",))
    require_ndim(_KN, "x_norm", x_norm, 3, "[ranks, tokens, hidden]")
    if shape_of(x_norm)[:2] != (n, t):
        fail(_KN, "x_norm", f"has shape {shape_of(x_norm)}; expected ({n}, {t}, hidden) "
             "(ranks and tokens of indices)")
    d = int(x_norm.shape[2])
    require_dtype(_KN, "recv_x_out", recv_x_out, ("bfloat16",))
    require_ndim(_KN, "recv_x_out", recv_x_out, 4, "[ranks, local experts, receive slots, hidden]")
    _, n_local, r_cap, _ = shape_of(recv_x_out)
    require_shape(_KN, "recv_x_out", recv_x_out, (n, n_local, r_cap, d), "[ranks, local experts, slots, hidden]")
    if n_local == 0:
        fail(_KN, "recv_x_out", "has no local experts (axis 1 is empty)")
    return n, t, k, d, n_local, r_cap


def _check(indices, x_norm, w_padded, idx_padded, recv_x_out, recv_w_out, recv_idx_out, recv_count_out,
           recv_y, routed_y) -> None:
    n, t, k, d, n_local, r_cap = _dims(indices, x_norm, recv_x_out)
    routes = t * k
    for name, v, dt, what in (("w_padded", w_padded, "float32", "weight"),
                              ("idx_padded", idx_padded, "int32", "label")):
        require_dtype(_KN, name, v, (dt,))
        require_ndim(_KN, name, v, 3, f"[ranks, tokens * topk, pad]: each route's {what} as a padded row")
        if shape_of(v)[:2] != (n, routes) or int(v.shape[2]) == 0:
            fail(_KN, name, f"has shape {shape_of(v)}; expected ({n}, {routes}, pad) with pad >= 1 "
                 f"(one padded row per route: tokens * topk = {t} * {k})")
    grid = (n, n_local, r_cap)
    require_dtype(_KN, "recv_w_out", recv_w_out, ("float32",))
    require_shape(_KN, "recv_w_out", recv_w_out, grid, "[ranks, local experts, slots]")
    require_dtype(_KN, "recv_idx_out", recv_idx_out, ("int32",))
    require_shape(_KN, "recv_idx_out", recv_idx_out, grid, "[ranks, local experts, slots]")
    require_dtype(_KN, "recv_count_out", recv_count_out, ("int32",))
    require_shape(_KN, "recv_count_out", recv_count_out, (n, n_local, 1), "[ranks, local experts, 1]")
    require_dtype(_KN, "recv_y", recv_y, ("bfloat16",))
    require_shape(_KN, "recv_y", recv_y, (*grid, d), "same as recv_x_out")
    require_dtype(_KN, "routed_y", routed_y, ("float32",))
    require_shape(_KN, "routed_y", routed_y, (n, t, d), "[ranks, tokens, hidden]")


def _labels(idx_padded: np.ndarray) -> np.ndarray:
    """Each route's label as the device compacts it: the int32 (wrapping) sum of its padded row."""
    return idx_padded.sum(axis=2, dtype=np.int32)


def _check_data(indices, x_norm, w_padded, idx_padded, recv_x_out, recv_w_out, recv_idx_out, recv_count_out,
                recv_y, routed_y) -> None:
    n = int(indices.shape[0])
    n_local, r_cap = int(recv_x_out.shape[1]), int(recv_x_out.shape[2])
    flat = indices.reshape(n, -1)
    if flat.size:
        lo, hi = int(flat.min()), int(flat.max())
        if lo < 0 or hi >= n * n_local:
            bad = lo if lo < 0 else hi
            fail(_KN, "indices", f"holds expert {bad}; experts are 0..{n * n_local - 1} "
                 f"(N={n} ranks x L={n_local} local experts)")
        received = np.bincount(flat.reshape(-1), minlength=n * n_local)
        worst = int(received.argmax())
        if received[worst] > r_cap:
            fail(_KN, "indices", f"sends {int(received[worst])} routes to expert {worst} (rank {worst // n_local}, "
                 f"local expert {worst % n_local}); at most R={r_cap} fit (axis 2 of recv_x_out)")
    routes = int(flat.shape[1])
    labels = _labels(idx_padded)
    for s in range(n):
        row = labels[s]
        if routes and (row.min() < 0 or row.max() >= routes or np.bincount(row, minlength=routes).max() != 1):
            fail(_KN, "idx_padded", f"rank {s}: the row sums (route labels) must be a permutation of "
                 f"0..{routes - 1}; upstream packs route q's row as [q, 0, ..., 0]")


# --------------------------------------------------------------------------- run / golden

def _run(indices, x_norm, w_padded, idx_padded, recv_x_out, recv_w_out, recv_idx_out, recv_count_out,
         recv_y, routed_y) -> None:
    n, t, k = shape_of(indices)
    d = int(x_norm.shape[2])
    n_local, r_cap = int(recv_x_out.shape[1]), int(recv_x_out.shape[2])
    flat = np.ascontiguousarray(indices.reshape(n, t * k)).astype(np.int64)
    dest = np.empty((n, t * k), dtype=np.int64)
    received = _slots(flat, n_local, r_cap, dest)
    bufs = [native_buffer(a) for a in (recv_x_out, recv_w_out, recv_idx_out, recv_y, routed_y)]
    rx, rw, ri, ry, out = bufs
    _exchange(flat, k, as_numba(x_norm), np.ascontiguousarray(w_padded), np.ascontiguousarray(idx_padded),
              dest, as_numba(rx).reshape(-1, d), rw.reshape(-1), ri.reshape(-1), as_numba(ry).reshape(-1, d), out,
              np.empty(d, np.float32))
    for dst, buf in zip((recv_x_out, recv_w_out, recv_idx_out, recv_y, routed_y), bufs, strict=True):
        store_native(dst, buf)
    recv_count_out[..., 0] = received.astype(np.int32)


def _golden(indices, x_norm, w_padded, idx_padded, recv_x_out, recv_w_out, recv_idx_out, recv_count_out,
            recv_y, routed_y) -> None:
    n, t, k = indices.shape
    d = x_norm.shape[2]
    n_local, r_cap = recv_x_out.shape[1], recv_x_out.shape[2]
    routes = t * k
    expert = indices.reshape(n, routes).astype(np.int64)
    # histogram + publish: count[s, d, e] = routes of sender s to local expert e of rank d
    count = np.zeros((n, n, n_local), dtype=np.int64)
    for s in range(n):
        np.add.at(count[s], (expert[s] // n_local, expert[s] % n_local), 1)
    # prefix_sum: sender s's first slot at (d, e) follows every lower-ranked sender's routes there
    first = np.cumsum(count, axis=0) - count
    # payload_push into zeroed windows, each sender's routes in route order
    win_x = np.zeros((n, n_local, r_cap, d), dtype=BFLOAT16)
    win_w = np.zeros((n, n_local, r_cap, w_padded.shape[2]), dtype=np.float32)
    win_i = np.zeros((n, n_local, r_cap, idx_padded.shape[2]), dtype=np.int32)
    sender = np.full((n, n_local, r_cap), -1, dtype=np.int64)
    for s in range(n):
        used = np.zeros((n, n_local), dtype=np.int64)
        for q in range(routes):
            dd, e = divmod(int(expert[s, q]), n_local)
            slot = first[s, dd, e] + used[dd, e]
            used[dd, e] += 1
            win_x[dd, e, slot] = x_norm[s, q // k]
            win_w[dd, e, slot] = w_padded[s, q]
            win_i[dd, e, slot] = idx_padded[s, q]
            sender[dd, e, slot] = s
    # stage_out: the padded rows compacted by a left-to-right row sum (float32; int32 wraps)
    w_sum = win_w[..., 0].copy()
    for c in range(1, win_w.shape[3]):
        w_sum = w_sum + win_w[..., c]
    i_sum = win_i[..., 0].copy()
    for c in range(1, win_i.shape[3]):
        i_sum = i_sum + win_i[..., c]
    recv_x_out[...] = win_x
    recv_w_out[...] = w_sum
    recv_idx_out[...] = i_sum
    recv_count_out[...] = count.sum(axis=0)[..., None].astype(np.int32)
    # local expert on the filled slots: float32 product, one rounding to bfloat16
    filled = sender >= 0
    y = np.zeros((n, n_local, r_cap, d), dtype=BFLOAT16)
    y[filled] = (win_x[filled].astype(np.float32) * w_sum[filled][:, None]).astype(BFLOAT16)
    recv_y[...] = y
    # combine: each row back to its sender at its label, then the k choices summed in float32, in order
    back = np.zeros((n, routes, d), dtype=BFLOAT16)
    for dd, e, slot in zip(*np.nonzero(filled), strict=True):
        back[sender[dd, e, slot], i_sum[dd, e, slot]] = y[dd, e, slot]
    total = np.zeros((n, t, d), dtype=np.float32)
    for j in range(k):
        total = total + back.reshape(n, t, k, d)[:, :, j].astype(np.float32)
    routed_y[...] = total


# --------------------------------------------------------------------------- cost

def _cost(indices, x_norm, w_padded, idx_padded, recv_x_out, recv_w_out, recv_idx_out, recv_count_out,
          recv_y, routed_y) -> Cost:
    n, t, k = shape_of(indices)
    d = int(x_norm.shape[2])
    _, n_local, r_cap, _ = shape_of(recv_x_out)
    p, q = int(w_padded.shape[2]), int(idx_padded.shape[2])
    routes = n * t * k  # every route lands on exactly one rank
    slots = n * n_local * r_cap
    x_row = d * np.dtype(x_norm.dtype).itemsize
    pad_row = 4 * (p + q)
    flops = 2.0 * routes * d + slots * ((p - 1) + (q - 1))
    read = (nbytes_of(indices) + routes * (x_row + pad_row)        # dispatch: indices, a row and its pads per route
            + slots * (x_row + pad_row)                            # stage-out reads the whole window
            + routes * (x_row + 4) + nbytes_of(recv_count_out)     # local expert: received rows and weights
            + routes * (x_row + 4) + routes * x_row)               # combine: result rows and labels, then its buffer
    written = (routes * (x_row + pad_row)                          # pushes into the windows
               + nbytes_of(recv_x_out) + nbytes_of(recv_w_out) + nbytes_of(recv_idx_out) + nbytes_of(recv_count_out)
               + routes * x_row                                    # local expert's result rows
               + routes * x_row + nbytes_of(routed_y))             # combine's pushes and its sums
    return Cost(flops=float(flops), bytes_read=int(read), bytes_written=int(written))


EP_DISPATCH_COMBINE = Kernel(
    name="ep_dispatch_combine",
    params=(_P("indices", _IN), _P("x_norm", _IN), _P("w_padded", _IN), _P("idx_padded", _IN),
            _P("recv_x_out", _OUT), _P("recv_w_out", _OUT), _P("recv_idx_out", _OUT), _P("recv_count_out", _OUT),
            _P("recv_y", _OUT), _P("routed_y", _OUT)),
    run_fn=_run, golden_fn=_golden, check_fn=_check, cost_fn=_cost,
    tolerances=_TOL, dtypes=("bfloat16",), data_check_fn=_check_data,
    doc="EP MoE over N ranks: dispatch to the experts' ranks, scale by weight, combine back over TOPK; "
        "every tensor stacked by rank",
)
