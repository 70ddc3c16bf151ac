"""The stacked-by-rank EP dispatch/combine kernel (``reference.kernels.ep``).

Four kinds of test:

* a hand-worked 2-rank routing whose every slot, label and sum is written out
  here, so that a bug shared by the fast path and the golden still fails;
* the fast path against the golden on random routings for N in {1, 2, 4}
  (hypothesis), with outputs pre-filled with junk so that the zeroed-window
  rows are checked too, and with nonzero pads and shuffled route labels so
  that the row-sum compaction is exercised;
* an independent replay of upstream's host golden
  (``examples/workers/l3/ep_dispatch_combine/main.py``: the protocol of its
  README, "The dispatch protocol" and "Verification") at the example's real
  shapes, N=2, compared with both;
* bad signatures and bad contents rejected with a message naming the argument.

The kernel is not in the kernel table yet: the completeness tests of
``test_kernel_checks``, ``test_kernel_costs`` and ``test_kernel_numerics``
require a case for every registered kernel, so registering it goes together
with adding its cases there. These tests use the kernel object directly.
"""

from __future__ import annotations

from dataclasses import dataclass

import ml_dtypes
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reference import KernelArgError
from reference.kernel import Cost
from reference.kernels.ep import EP_DISPATCH_COMBINE as EP

BF16 = np.dtype(ml_dtypes.bfloat16)
F32, I32 = np.dtype("float32"), np.dtype("int32")
PAD = 8
OUT_NAMES = ("recv_x_out", "recv_w_out", "recv_idx_out", "recv_count_out", "recv_y", "routed_y")


def outputs(n: int, t: int, d: int, n_local: int, r_cap: int, fill: float = 0.0) -> list[np.ndarray]:
    """The six output buffers, every element set to ``fill`` (junk the kernel must overwrite; -7 for int32 if NaN)."""
    junk = -7 if np.isnan(fill) else int(fill)
    return [np.full((n, n_local, r_cap, d), fill, BF16), np.full((n, n_local, r_cap), fill, F32),
            np.full((n, n_local, r_cap), junk, I32), np.full((n, n_local, 1), junk, I32),
            np.full((n, n_local, r_cap, d), fill, BF16), np.full((n, t, d), fill, F32)]


def pack(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """[N, routes] values as upstream's padded rows: [v, 0, ..., 0]."""
    out = np.zeros((*values.shape, PAD), dtype)
    out[..., 0] = values
    return out


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a.view(np.uint8), b.view(np.uint8))


def run_both(inputs: list[np.ndarray], dims: tuple[int, ...], fill: float = 0.0):
    fast, gold = outputs(*dims, fill=fill), outputs(*dims, fill=fill)
    EP.run([*inputs, *fast])
    EP.golden([*inputs, *gold])
    return fast, gold


# --------------------------------------------------------------------------- a routing worked by hand

def test_hand_worked_two_rank_routing() -> None:
    # N=2 ranks, T=2 tokens, TOPK=2, L=2 local experts (expert g on rank g // 2), R=3 slots.
    indices = np.array([[[3, 0], [2, 3]],     # rank 0: routes 0..3 -> (rank, expert) (1,1) (0,0) (1,0) (1,1)
                        [[0, 3], [1, 2]]],    # rank 1: routes 0..3 -> (0,0) (1,1) (0,1) (1,0)
                       dtype=np.int32)
    x = np.array([[[1, 2], [3, 4]], [[5, 6], [7, 8]]], dtype=F32).astype(BF16)  # [N, T, D=2]
    w = np.array([[0.5, 1.0, 2.0, 4.0], [0.25, 8.0, 1.0, 0.5]], dtype=F32)       # per route; exact products
    labels = np.tile(np.arange(4, dtype=np.int32), (2, 1))
    for impl in (EP.run, EP.golden):
        out = outputs(2, 2, 2, 2, 3, fill=9.0)
        impl([indices, x, pack(w, F32), pack(labels, I32), *out])
        rx, rw, ri, rc, ry, routed = out
        # Senders fill an expert's slots in rank order, each in route order; unfilled slots are 0.
        np.testing.assert_array_equal(rc[..., 0], [[2, 1], [2, 3]])
        np.testing.assert_array_equal(ri, [[[1, 0, 0], [2, 0, 0]], [[2, 3, 0], [0, 3, 1]]])
        np.testing.assert_array_equal(rw, [[[1.0, 0.25, 0], [1.0, 0, 0]], [[2.0, 0.5, 0], [0.5, 4.0, 8.0]]])
        rows = {(0, 0): [(0, 0), (1, 0)], (0, 1): [(1, 1)], (1, 0): [(0, 1), (1, 1)],
                (1, 1): [(0, 0), (0, 1), (1, 0)]}  # (rank, expert) -> the (sender, token) of each filled slot
        for (d, e), senders in rows.items():
            for slot in range(3):
                want_x = x[senders[slot]] if slot < len(senders) else np.zeros(2, BF16)
                assert same_bits(rx[d, e, slot], want_x.astype(BF16)), (d, e, slot)
                want_y = want_x.astype(F32) * rw[d, e, slot]
                np.testing.assert_array_equal(ry[d, e, slot].astype(F32), want_y)
        # routed_y[s, t] = sum over the token's two routes of weight * x (all exact here).
        want = x.astype(F32) * w.reshape(2, 2, 2).sum(axis=2)[:, :, None]
        np.testing.assert_array_equal(routed, want)


# --------------------------------------------------------------------------- fast path == golden

@st.composite
def routings(draw):
    n = draw(st.sampled_from([1, 2, 4]))
    t = draw(st.integers(0, 6))
    k = draw(st.integers(1, 4))
    d = draw(st.integers(1, 9))
    n_local = draw(st.integers(1, 3))
    slack = draw(st.integers(0, 2))
    fancy_pads = draw(st.booleans())
    seed = draw(st.integers(0, 2**32 - 1))
    return n, t, k, d, n_local, slack, fancy_pads, seed


def random_case(n, t, k, d, n_local, slack, fancy_pads, seed):
    rng = np.random.default_rng(seed)
    routes = t * k
    indices = rng.integers(0, n * n_local, (n, t, k)).astype(np.int32)
    received = np.bincount(indices.reshape(-1), minlength=n * n_local)
    r_cap = int(received.max(initial=0)) + slack
    x = (rng.standard_normal((n, t, d)) * 4).astype(BF16)
    w = pack(rng.standard_normal((n, routes)).astype(F32), F32)
    labels = pack(np.stack([np.arange(routes, dtype=np.int32) for _ in range(n)]), I32)
    if fancy_pads:  # pads that only sum to the weight/label: exercises the row-sum compaction
        w[..., 1:] = rng.standard_normal((n, routes, PAD - 1)).astype(F32)
        shuffled = np.stack([rng.permutation(routes) for _ in range(n)]).astype(np.int32)
        extra = rng.integers(-50, 50, (n, routes)).astype(np.int32)
        labels[..., 0] = shuffled - extra
        labels[..., 3] = extra
    return [indices, x, w, labels], (n, t, d, n_local, r_cap)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(routings())
def test_fast_path_matches_golden_on_random_routings(case) -> None:
    inputs, dims = random_case(*case)
    fast, gold = run_both(inputs, dims, fill=np.nan)
    for name, f, g in zip(OUT_NAMES, fast, gold, strict=True):
        # The fast path does the golden's float32 operations in the same order: bit for bit, every output.
        assert same_bits(f, g), f"{name} differs: {case}"
    n, t, k = inputs[0].shape
    assert int(fast[3].sum()) == n * t * k  # every route received once
    assert not np.isnan(fast[0].astype(F32)).any() and not np.isnan(fast[5]).any()  # junk fully overwritten


def test_random_routing_at_full_capacity_across_four_ranks() -> None:
    # Every expert of every rank receives exactly R routes: no slot to spare, from all four senders.
    n, t, k, d, n_local = 4, 6, 2, 5, 3
    rng = np.random.default_rng(7)
    experts = np.repeat(np.arange(n * n_local), n * t * k // (n * n_local))
    indices = rng.permutation(experts).reshape(n, t, k).astype(np.int32)
    r_cap = n * t * k // (n * n_local)
    x = rng.standard_normal((n, t, d)).astype(BF16)
    w = pack(rng.random((n, t * k)).astype(F32), F32)
    labels = pack(np.tile(np.arange(t * k, dtype=np.int32), (n, 1)), I32)
    fast, gold = run_both([indices, x, w, labels], (n, t, d, n_local, r_cap), fill=3.0)
    assert all(same_bits(f, g) for f, g in zip(fast, gold, strict=True))
    np.testing.assert_array_equal(fast[3], r_cap)


# --------------------------------------------------------------------------- upstream's own golden, replayed

N, T, TOPK, D, L, R = 2, 128, 6, 4096, 16, 192  # the example's shapes (README "Shapes")


def example_inputs(seed: int = 20260510):
    """The example's inputs, built as its host does; the routing comes from numpy instead of torch's generator."""
    e_global = N * L
    rng = np.random.default_rng(seed)
    while True:  # distinct experts per token; redraw until no expert receives more than R routes
        indices = np.stack([np.stack([rng.permutation(e_global)[:TOPK] for _ in range(T)]) for _ in range(N)])
        if np.bincount(indices.reshape(-1), minlength=e_global).max() <= R:
            break
    ranks, tokens, dims, ks = np.arange(N), np.arange(T), np.arange(D), np.arange(TOPK)
    x = (ranks[:, None, None] * 100 + tokens[None, :, None] * 10 + dims[None, None, :]).astype(F32).astype(BF16)
    weights = (((ranks[:, None, None] + 1) * 0.01 + tokens[None, :, None] * 0.1) + ks[None, None, :] * 0.001)
    weights = weights.astype(F32)
    routes = np.arange(T * TOPK, dtype=np.int32)
    return indices.astype(np.int32), x, weights, pack(weights.reshape(N, -1), F32), pack(np.tile(routes, (N, 1)), I32)


def replay(indices, x, weights):
    """The host replay of the protocol: per destination, senders in rank order, each in route order."""
    exp_x = np.zeros((N, L, R, D), BF16)
    exp_w = np.zeros((N, L, R), F32)
    exp_idx = np.zeros((N, L, R), I32)
    exp_count = np.zeros((N, L), I32)
    for dst in range(N):
        for src in range(N):
            for t in range(T):
                for k in range(TOPK):
                    g = int(indices[src, t, k])
                    if g // L != dst:
                        continue
                    e = g % L
                    slot = exp_count[dst, e]  # earlier senders' routes, then this sender's earlier ones
                    exp_count[dst, e] += 1
                    exp_x[dst, e, slot] = x[src, t]
                    exp_w[dst, e, slot] = weights[src, t, k]
                    exp_idx[dst, e, slot] = t * TOPK + k
    # routed_y as the example checks it: per token, the bfloat16 products summed in float32 over TOPK.
    exp_routed = np.zeros((N, T, D), F32)
    for r in range(N):
        for k in range(TOPK):
            term = (x[r].astype(F32) * weights[r, :, k][:, None]).astype(BF16).astype(F32)
            exp_routed[r] = exp_routed[r] + term
    return exp_x, exp_w, exp_idx, exp_count, exp_routed


def test_matches_the_examples_own_golden_at_real_shapes() -> None:
    indices, x, weights, w_padded, idx_padded = example_inputs()
    exp_x, exp_w, exp_idx, exp_count, exp_routed = replay(indices, x, weights)
    fast, gold = run_both([indices, x, w_padded, idx_padded], (N, T, D, L, R))
    rtol = atol = 2.0**-6  # the example's tolerance for recv_y and routed_y (2 bfloat16 ULPs)
    for got in (fast, gold):
        rx, rw, ri, rc, ry, routed = got
        np.testing.assert_array_equal(rc[..., 0], exp_count)
        assert same_bits(rx, exp_x)  # the example compares the filled rows; the rest is the zeroed window
        assert same_bits(rw, exp_w)
        np.testing.assert_array_equal(ri, exp_idx)
        filled = np.arange(R)[None, None, :] < exp_count[:, :, None]
        exp_y = np.where(filled[..., None], exp_x.astype(F32) * exp_w[..., None], 0).astype(BF16)
        np.testing.assert_allclose(ry.astype(F32), exp_y.astype(F32), rtol=rtol, atol=atol)
        np.testing.assert_allclose(routed, exp_routed, rtol=rtol, atol=atol)
    assert all(same_bits(f, g) for f, g in zip(fast, gold, strict=True))
    assert EP.tolerance(BF16) == EP.tolerance(F32) == (rtol, atol) and EP.tolerance(I32) == (0.0, 0.0)


def test_the_replay_itself_catches_a_wrong_slot_order() -> None:
    # The comparison above can fail: receiving each expert's senders in reverse rank order changes recv_x.
    indices, x, weights, *_ = example_inputs()
    exp_x, *_ = replay(indices, x, weights)
    swapped = replay(indices[::-1], x[::-1], weights[::-1])[0]
    assert not same_bits(exp_x, swapped)


# --------------------------------------------------------------------------- bad arguments

@dataclass(frozen=True)
class Spec:
    """A timing-only tensor: a shape and a dtype, no data."""

    shape: tuple[int, ...]
    dtype: np.dtype


def valid_specs(n=2, t=3, k=2, d=4, n_local=2, r_cap=5) -> list[Spec]:
    shapes = [((n, t, k), I32), ((n, t, d), BF16), ((n, t * k, PAD), F32), ((n, t * k, PAD), I32),
              ((n, n_local, r_cap, d), BF16), ((n, n_local, r_cap), F32), ((n, n_local, r_cap), I32),
              ((n, n_local, 1), I32), ((n, n_local, r_cap, d), BF16), ((n, t, d), F32)]
    return [Spec(s, np.dtype(dt)) for s, dt in shapes]


def test_valid_specs_pass_check_and_cost_is_hand_computed() -> None:
    EP.check(valid_specs())
    # N=T=TOPK=L=R=1, D=2, pads of 8: one route, one slot; bf16 row 4 B, padded rows 64 B.
    # flops: multiply + add per element (2 * 2) + 7 + 7 row-sum adds = 18.
    # read: indices 4 + route (4 + 64) + window slot (4 + 64) + expert (4 + 4) + counts 4 + combine (4 + 4) + 4 = 164.
    # written: push 68 + recv_x 4 + recv_w 4 + recv_idx 4 + counts 4 + recv_y row 4 + combine push 4 + routed_y 8 = 100.
    assert EP.cost(valid_specs(1, 1, 1, 2, 1, 1)) == Cost(18.0, 164, 100)


BAD = [
    (1, Spec((2, 3, 4), F32), "x_norm", "dtype float32"),
    (0, Spec((2, 3, 2), np.dtype("int64")), "indices", "dtype int64"),
    (0, Spec((2, 6), I32), "indices", "3-D"),
    (1, Spec((2, 4, 4), BF16), "x_norm", "expected (2, 3, hidden)"),
    (2, Spec((2, 5, PAD), F32), "w_padded", "expected (2, 6, pad)"),
    (3, Spec((2, 6, PAD), F32), "idx_padded", "dtype float32"),
    (4, Spec((2, 2, 5, 3), BF16), "recv_x_out", "expected (2, 2, 5, 4)"),
    (5, Spec((2, 2, 4), F32), "recv_w_out", "expected (2, 2, 5)"),
    (6, Spec((2, 2, 5), F32), "recv_idx_out", "dtype float32"),
    (7, Spec((2, 2), I32), "recv_count_out", "expected (2, 2, 1)"),
    (8, Spec((2, 2, 5, 4), F32), "recv_y", "dtype float32"),
    (9, Spec((2, 3, 4), BF16), "routed_y", "dtype bfloat16"),
    (9, Spec((1, 3, 4), F32), "routed_y", "expected (2, 3, 4)"),
]


@pytest.mark.parametrize(("pos", "spec", "name", "says"), BAD, ids=[f"{b[2]}-{b[3]}" for b in BAD])
def test_bad_signature_is_rejected_naming_the_argument(pos: int, spec: Spec, name: str, says: str) -> None:
    values = valid_specs()
    values[pos] = spec
    with pytest.raises(KernelArgError) as info:
        EP.check(values)
    message = str(info.value)
    assert f"kernel 'ep_dispatch_combine': parameter {name!r}" in message, message
    assert says in message, message


def test_wrong_arity_is_rejected() -> None:
    with pytest.raises(KernelArgError, match="takes 10 arguments"):
        EP.check(valid_specs()[:9])


def small_case():
    inputs, dims = random_case(2, 3, 2, 4, 2, 1, False, 11)
    return inputs, dims


@pytest.mark.parametrize("impl", ["run", "golden"])
@pytest.mark.parametrize(
    ("spoil", "name", "says"),
    [
        (lambda i: i[0].__setitem__((1, 2, 1), 4), "indices", "holds expert 4; experts are 0..3"),
        (lambda i: i[0].__setitem__((0, 0, 0), -1), "indices", "holds expert -1"),
        (lambda i: i[0].fill(3), "indices", "sends 12 routes to expert 3 (rank 1, local expert 1); at most R="),
        (lambda i: i[3].__setitem__((1, 4, 0), 0), "idx_padded", "rank 1: the row sums (route labels)"),
        (lambda i: i[3].__setitem__((0, 5, 7), 1), "idx_padded", "rank 0:"),
    ],
    ids=["expert-too-large", "expert-negative", "over-capacity", "duplicate-label", "label-out-of-range"],
)
def test_bad_contents_are_rejected_naming_the_argument(impl, spoil, name, says) -> None:
    inputs, dims = small_case()
    spoil(inputs)
    out = outputs(*dims, fill=5.0)
    with pytest.raises(KernelArgError) as info:
        getattr(EP, impl)([*inputs, *out])
    message = str(info.value)
    assert f"parameter {name!r}" in message and says in message, message
    assert (out[5] == 5.0).all()  # rejected before anything was written
