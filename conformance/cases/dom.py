"""DOM: communication domains -- allocation checks, the rank map, the live / released / freed lifetime,
zero-filled windows, host staging, and collectives over a domain (with their two fault points).

Spec: upstream ``docs/comm-domain.md`` (§1 "API", §2 "Lifetime model", §3 "Lazy base communicator
(created once, cached)", §4 "Backends", §5 "Staging host data into a window") and the request checks
of ``python/simpler/worker.py`` (``_validate_domain_allocation``, ``Worker._allocate_domain``,
``Worker.live_domains``), with ``python/simpler/task_interface.py`` (``CommDomainHandle``:
``__getitem__``, ``release``, ``released``, ``freed``).

Every case needs the ``domains`` feature; the collective cases (DOM-016 and after) also need a
backend that can build a collective kernel (``rt.collective``) and, for the fault points, inject them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from conformance.cases._kit import Boom
from conformance.catalog import case

CM = "docs/comm-domain.md"
WK = "python/simpler/worker.py"
TI = "python/simpler/task_interface.py"
API = (CM, "1. API")
LIFE = (CM, "2. Lifetime model")
BASE = (CM, "3. Lazy base communicator (created once, cached)")
BACKENDS = (CM, "4. Backends")
STAGING = (CM, "5. Staging host data into a window")
VALIDATE = (WK, "_validate_domain_allocation")
N = 16  # float32 elements of a window buffer
NB = N * 4


def _node(rt: Any, chips: int = 4, faults: Any = None) -> Any:
    """An initialised L3 Worker with ``chips`` chips and nothing registered."""
    rt.require("domains")
    w = rt.Worker(3, device_ids=list(range(chips)), num_sub_workers=0, faults=faults)
    w.init()
    return w


def _specs(rt: Any, *names: str, nbytes: int = NB) -> list[Any]:
    return [rt.CommBufferSpec(name, "float32", nbytes // 4, nbytes) for name in names]


def _error(fn: Any) -> BaseException | None:
    try:
        fn()
    except Exception as exc:  # what the call raised is the observable
        return exc
    return None


@case("DOM-001", "Dense domain ranks follow the order of workers; domain_size is their count", spec=API)
def rank_map(rt, ctx):
    w = _node(rt)
    seen: dict[str, Any] = {}

    def orch(o, _a, _c):
        h = o.allocate_domain(name="d", workers=[2, 0, 3], window_size=4096, buffers=_specs(rt, "s"))
        seen["workers"] = tuple(h.workers)
        seen["ranks"] = {c: (h[c].domain_rank, h[c].domain_size, h[c].name) for c in (2, 0, 3)}
        h.release()

    ctx.run_expecting(w, orch, None)
    ctx.check("handle.workers", (2, 0, 3), seen.get("workers"))
    ctx.check("(domain_rank, domain_size, name) per chip", {2: (0, 3, "d"), 0: (1, 3, "d"), 3: (2, 3, "d")},
              seen.get("ranks"))
    w.close()


@case("DOM-002", "Each member's context: a non-zero device_ctx, buffers carved in order from its own window",
      spec=API)
def contexts(rt, ctx):
    w = _node(rt)
    seen: dict[str, Any] = {}

    def orch(o, _a, _c):
        h = o.allocate_domain(name="d", workers=[0, 1, 3], window_size=4096, buffers=_specs(rt, "a", "b"))
        cs = [h[c] for c in h.workers]
        seen["ctx_nonzero"] = all(c.device_ctx != 0 for c in cs)
        seen["window_at_least"] = all(c.actual_window_size >= 4096 for c in cs)
        seen["a_at_window_base"] = all(c.buffers["a"].base == c.local_window_base for c in cs)
        seen["b_after_a"] = [c.buffers["b"].base - c.buffers["a"].base for c in cs]
        # Each rank's addresses are its own chip's (device_ctx and window bases of two ranks may coincide).
        seen["bases_distinct"] = all(c.buffers["a"].base and c.buffers["a"].base != c.buffers["b"].base for c in cs)
        seen["owner"] = [c.buffers["a"].owner_worker_id for c in cs]
        h.release()

    ctx.run_expecting(w, orch, None)
    ctx.check("every device_ctx is non-zero", True, seen.get("ctx_nonzero"))
    ctx.check("actual_window_size >= window_size", True, seen.get("window_at_least"))
    ctx.check("first buffer starts at local_window_base", True, seen.get("a_at_window_base"))
    ctx.check("second buffer follows the first (declaration order)", [NB] * 3, seen.get("b_after_a"))
    ctx.check("each rank's buffer bases are non-zero and distinct", True, seen.get("bases_distinct"))
    ctx.check("each rank's buffers are owned by its chip", [0, 1, 3], seen.get("owner"))
    w.close()


@case("DOM-003", "Indexing a handle with a chip that is not a member raises KeyError (UNKNOWN_WORKER)",
      spec=(CM, "7. Examples"))
def non_member(rt, ctx):
    w = _node(rt)
    seen: dict[str, Any] = {}

    def orch(o, _a, _c):
        h = o.allocate_domain(name="tail", workers=[1, 2], window_size=4096, buffers=_specs(rt, "s"))
        for chip in (0, 3):
            with ctx.expect_error(f"tail[{chip}]", "UNKNOWN_WORKER"):
                h[chip]
        seen["is_key_error"] = isinstance(_error(lambda: h[0]), KeyError)
        h.release()

    ctx.run_expecting(w, orch, None)
    ctx.check("the error is a KeyError", True, seen.get("is_key_error"))
    w.close()


@case("DOM-004", "Buffers over window_size raise ValueError before anything is allocated", spec=API)
def over_window(rt, ctx):
    w = _node(rt)
    seen: dict[str, Any] = {}

    def orch(o, _a, _c):
        with ctx.expect_error("buffers of 65 bytes in a 64-byte window", "INVALID_ARGUMENT"):
            o.allocate_domain(name="big", workers=[0, 1], window_size=64,
                              buffers=[rt.CommBufferSpec("x", "uint8", 65, 65)])
        seen["is_value_error"] = isinstance(_error(lambda: o.allocate_domain(
            name="big", workers=[0], window_size=64, buffers=_specs(rt, "p", "q", nbytes=40))), ValueError)
        seen["live_after"] = sorted(w.live_domains)
        with ctx.expect_ok("the same name with a window that fits"):
            o.allocate_domain(name="big", workers=[0, 1], window_size=128,
                              buffers=[rt.CommBufferSpec("x", "uint8", 65, 65)]).release()

    ctx.run_expecting(w, orch, None)
    ctx.check("the error is a ValueError", True, seen.get("is_value_error"))
    ctx.check("live_domains after the refusals", [], seen.get("live_after"))
    w.close()


@case("DOM-005", "Malformed requests are refused with ValueError and leave no domain behind", spec=VALIDATE)
def malformed(rt, ctx):
    w = _node(rt)
    seen: dict[str, Any] = {}
    bad = {
        "empty workers": dict(workers=[], window_size=64),
        "duplicate workers": dict(workers=[1, 1], window_size=64),
        "worker id == number of chips": dict(workers=[0, 4], window_size=64),
        "negative worker id": dict(workers=[-1], window_size=64),
        "window_size 0": dict(workers=[0], window_size=0),
        "negative window_size": dict(workers=[0], window_size=-64),
        "duplicate buffer names": dict(workers=[0], window_size=64,
                                       buffers=[rt.CommBufferSpec("x", "uint8", 8, 8)] * 2),
    }

    def orch(o, _a, _c):
        for i, (label, kw) in enumerate(bad.items()):
            with ctx.expect_error(label, "INVALID_ARGUMENT"):
                o.allocate_domain(name=f"bad{i}", **kw)
        seen["live_after"] = sorted(w.live_domains)

    ctx.run_expecting(w, orch, None)
    ctx.check("live_domains after the refusals", [], seen.get("live_after"))
    w.close()


@case("DOM-006", "A name already live is refused; once released, the name can be allocated again", spec=VALIDATE)
def duplicate_name(rt, ctx):
    w = _node(rt)

    def orch(o, _a, _c):
        first = o.allocate_domain(name="tp", workers=[0, 1], window_size=256)
        with ctx.expect_error("a second live 'tp' (other chips)", "INVALID_ARGUMENT"):
            o.allocate_domain(name="tp", workers=[2, 3], window_size=256)
        with ctx.expect_ok("another name on the same chips"):
            o.allocate_domain(name="dp", workers=[0, 1], window_size=256).release()
        first.release()
        with ctx.expect_ok("'tp' again after release()"):
            o.allocate_domain(name="tp", workers=[2, 3], window_size=256).release()

    ctx.run_expecting(w, orch, None)
    w.close()


@case("DOM-007", "release() marks released at once (indexing raises), is idempotent, frees after the run",
      spec=LIFE)
def release_then_free(rt, ctx):
    w = _node(rt)
    seen: dict[str, Any] = {}

    def orch(o, _a, _c):
        h = o.allocate_domain(name="a", workers=[0, 1], window_size=256, buffers=_specs(rt, "s"))
        g = o.allocate_domain(name="b", workers=[2, 3], window_size=256)
        seen["live"] = sorted(w.live_domains)
        seen["fresh"] = (h.released, h.freed)
        h.release()
        seen["released"] = (h.released, h.freed)
        with ctx.expect_ok("a second release()"):
            h.release()
        with ctx.expect_error("indexing after release()", "INVALID_STATE"):
            h[0]
        o.release_domain(g)
        seen["release_domain"] = (g.released, g.freed)
        seen["live_after"] = sorted(w.live_domains)
        seen["handles"] = (h, g)

    ctx.run_expecting(w, orch, None)
    ctx.check("live_domains with both allocated", ["a", "b"], seen.get("live"))
    ctx.check("(released, freed) when allocated", (False, False), seen.get("fresh"))
    ctx.check("(released, freed) inside the run after release()", (True, False), seen.get("released"))
    ctx.check("(released, freed) after orch.release_domain()", (True, False), seen.get("release_domain"))
    ctx.check("live_domains after both releases", [], seen.get("live_after"))
    h, g = seen.get("handles", (None, None))
    ctx.check("freed after the run returns", (True, True), (getattr(h, "freed", None), getattr(g, "freed", None)))
    w.close()


@case("DOM-008", "The with block releases the domain at its exit; the free waits for the run fence", spec=LIFE)
def with_block(rt, ctx):
    w = _node(rt)
    seen: dict[str, Any] = {}

    def orch(o, _a, _c):
        with o.allocate_domain(name="w", workers=[0, 1], window_size=256) as h:
            seen["inside"] = (h.released, h.freed, sorted(w.live_domains))
        seen["after_with"] = (h.released, h.freed, sorted(w.live_domains))
        seen["h"] = h

    ctx.run_expecting(w, orch, None)
    ctx.check("(released, freed, live) inside the with block", (False, False, ["w"]), seen.get("inside"))
    ctx.check("(released, freed, live) after the with block", (True, False, []), seen.get("after_with"))
    ctx.check("freed after the run returns", True, getattr(seen.get("h"), "freed", None))
    w.close()


@case("DOM-009", "A domain the orchestration never released is swept after the run: released, freed, not live",
      spec=LIFE)
def swept(rt, ctx):
    w = _node(rt)
    seen: dict[str, Any] = {}

    def orch(o, _a, _c):
        seen["hs"] = [o.allocate_domain(name=n, workers=ws, window_size=256)
                      for n, ws in (("x", [0, 1]), ("y", [1, 2]))]
        seen["live"] = sorted(w.live_domains)

    ctx.run_expecting(w, orch, None)
    ctx.check("live_domains inside the run", ["x", "y"], seen.get("live"))
    ctx.check("(released, freed) of each after the run", [(True, True)] * 2,
              [(h.released, h.freed) for h in seen.get("hs", [])])
    ctx.check("live_domains after the run", [], sorted(w.live_domains))

    def again(o, _a, _c):
        o.allocate_domain(name="x", workers=[0, 1], window_size=256).release()

    ctx.run_expecting(w, again, None, label="the next run allocates 'x' again")
    w.close()


@case("DOM-010", "Overlapping domains: a chip in both has two contexts with distinct windows", spec=(CM, "7. Examples"))
def overlap(rt, ctx):
    w = _node(rt, 3)
    seen: dict[str, Any] = {}

    def orch(o, _a, _c):
        even = o.allocate_domain(name="even", workers=[0, 2], window_size=4096, buffers=_specs(rt, "scratch"))
        tail = o.allocate_domain(name="tail", workers=[1, 2], window_size=4096, buffers=_specs(rt, "scratch"))
        seen["ranks"] = (even[2].domain_rank, tail[2].domain_rank)
        seen["scratch_distinct"] = even[2].buffers["scratch"].base != tail[2].buffers["scratch"].base
        seen["window_distinct"] = even[2].local_window_base != tail[2].local_window_base
        seen["ctx_distinct"] = even[2].device_ctx != tail[2].device_ctx
        seen["ids"] = (even.allocation_id, tail.allocation_id)
        tail.release()
        even.release()

    ctx.run_expecting(w, orch, None)
    ctx.check("chip 2's rank in even and in tail", (1, 1), seen.get("ranks"))
    ctx.check("chip 2's scratch bases differ", True, seen.get("scratch_distinct"))
    ctx.check("chip 2's window bases differ", True, seen.get("window_distinct"))
    ctx.check("chip 2's device_ctx differ", True, seen.get("ctx_distinct"))
    ids = seen.get("ids", (0, 0))
    ctx.check("allocation ids differ", True, ids[0] != ids[1])
    w.close()


@case("DOM-011", "allocate_domain outside the graph build of a run raises RuntimeError (INVALID_STATE)",
      spec=VALIDATE)
def outside_run(rt, ctx):
    w = _node(rt)
    kept: dict[str, Any] = {}

    def orch(o, _a, _c):
        kept["o"] = o

    ctx.run_expecting(w, orch, None)
    with ctx.expect_error("allocate_domain on the orchestrator of a finished run", "INVALID_STATE"):
        kept["o"].allocate_domain(name="late", workers=[0], window_size=64)
    ctx.check("live_domains", [], sorted(w.live_domains))
    w.close()


@case("DOM-012", "A window is zero-filled when allocated, even where a freed window held data", spec=BACKENDS)
def zero_filled(rt, ctx):
    w = _node(rt, 2)
    ones = rt.tensor(N, fill=1.0)
    got = {c: rt.tensor(N, fill=7.0) for c in (0, 1)}

    def dirty(o, _a, _c):
        with o.allocate_domain(name="d", workers=[0, 1], window_size=NB, buffers=_specs(rt, "s")) as h:
            for c in (0, 1):
                rt.copy_to(o, h[c].buffers["s"], ones)

    def fresh(o, _a, _c):
        with o.allocate_domain(name="d", workers=[0, 1], window_size=NB, buffers=_specs(rt, "s")) as h:
            for c in (0, 1):
                rt.copy_from(o, got[c], h[c].buffers["s"])

    ctx.run_expecting(w, dirty, None, label="a run that fills both windows with ones")
    ctx.run_expecting(w, fresh, None, label="a run that reads a new domain's windows")
    for c in (0, 1):
        ctx.check(f"chip {c}'s new window", np.zeros(N, np.float32), got[c])
    w.close()


@case("DOM-013", "copy_to stages host bytes into one rank's window; copy_from reads them back, ranks apart",
      spec=STAGING)
def staging(rt, ctx):
    w = _node(rt)
    data = {c: rt.tensor(N, fill=np.arange(N, dtype=np.float32) + 100 * c) for c in (0, 2)}
    back = {c: rt.tensor(N) for c in (0, 1, 2)}
    tail = rt.tensor(N, fill=9.0)

    def orch(o, _a, _c):
        with o.allocate_domain(name="d", workers=[0, 1, 2], window_size=2 * NB, buffers=_specs(rt, "in", "out")) as h:
            for c, x in data.items():  # stage every rank first (§5 "Cross-rank ordering")
                rt.copy_to(o, h[c].buffers["in"], x)
            rt.copy_to(o, h[1].buffers["out"], tail)
            for c in (0, 1, 2):
                rt.copy_from(o, back[c], h[c].buffers["in"])
            back["out1"] = rt.tensor(N)
            rt.copy_from(o, back["out1"], h[1].buffers["out"])

    ctx.run_expecting(w, orch, None)
    for c in (0, 2):
        ctx.check(f"chip {c}'s 'in' after copy_to / copy_from", data[c], back[c])
    ctx.check("chip 1's 'in' (never staged)", np.zeros(N, np.float32), back[1])
    ctx.check("chip 1's 'out' (the next slice of its window)", tail, back.get("out1"))
    w.close()


@case("DOM-014", "A run whose orchestration fails still frees its domains at the fence", spec=LIFE)
def failed_run_frees(rt, ctx):
    w = _node(rt, 2)
    kept: dict[str, Any] = {}

    def orch(o, _a, _c):
        kept["released"] = o.allocate_domain(name="r", workers=[0], window_size=64)
        kept["released"].release()
        kept["forgot"] = o.allocate_domain(name="f", workers=[1], window_size=64)
        raise Boom("orchestration failed after allocating")

    err = _error(lambda: w.run(orch))
    ctx.take(w, "the failing run")
    ctx.check("the run raised the orchestration's error", "Boom", type(err).__name__ if err else None)
    ctx.check("(released, freed) of the released domain", (True, True),
              (kept["released"].released, kept["released"].freed) if "released" in kept else None)
    ctx.check("(released, freed) of the forgotten domain", (True, True),
              (kept["forgot"].released, kept["forgot"].freed) if "forgot" in kept else None)
    ctx.check("live_domains after the run", [], sorted(w.live_domains))

    def again(o, _a, _c):
        o.allocate_domain(name="f", workers=[0, 1], window_size=64).release()

    ctx.run_expecting(w, again, None, label="the next run allocates 'f' again")
    w.close()


@case("DOM-015", "Every allocation gets a fresh allocation_id, across domains and runs", spec=BASE)
def allocation_ids(rt, ctx):
    w = _node(rt, 2)
    ids: list[int] = []

    def orch(o, _a, _c):
        for name in ("a", "b"):
            with o.allocate_domain(name=name, workers=[0, 1], window_size=64) as h:
                ids.append(h.allocation_id)

    ctx.run_expecting(w, orch, None, label="run 1")
    ctx.run_expecting(w, orch, None, label="run 2")
    ctx.check("four distinct allocation ids", 4, len(set(ids)))
    ctx.check("ids increase in allocation order", True, ids == sorted(ids))
    w.close()


# ------------------------------------------------------------------------------------------- collectives


def _allreduce_bed(rt: Any, chips: int, faults: Any = None) -> tuple[Any, Any]:
    rt.require("domains")
    coll = rt.collective("all_reduce")
    w = rt.Worker(3, device_ids=list(range(chips)), num_sub_workers=0, faults=faults)
    h = w.register(coll)
    w.init()
    return w, h


def _rank_args(rt: Any, x: Any, out: Any, dctx: Any) -> Any:
    T = rt.TensorArgType
    a = rt.TaskArgs()
    a.add_tensor(x, T.INPUT)
    a.add_tensor(out, T.OUTPUT_EXISTING)
    a.add_scalar(dctx.domain_size)
    a.add_scalar(dctx.device_ctx)
    return a


@case("DOM-016", "A 4-rank all-reduce over a domain gives every rank the sum of all ranks' inputs", spec=API)
def allreduce(rt, ctx):
    w, h = _allreduce_bed(rt, 4)
    xs = [rt.tensor(64, fill="random") for _ in range(4)]
    outs = [rt.tensor(64) for _ in range(4)]

    def orch(o, _a, _c):
        with o.allocate_domain(name="tp", workers=[0, 1, 2, 3], window_size=4096) as d:
            o.submit_next_level_group(h, [_rank_args(rt, xs[c], outs[c], d[c]) for c in range(4)],
                                      workers=[0, 1, 2, 3])

    rec = ctx.run_expecting(w, orch, None)
    total = np.sum(np.stack(xs), axis=0)
    for c in range(4):
        rt.record_output(rec, f"out{c}", outs[c])
        ctx.expect_output(rec, f"out{c}", total, kernel="all_reduce")
    w.close()


@case("DOM-017", "A rank that never joins leaves its peers waiting: the run hangs, naming the collective and rank",
      spec=API)
def missing_rank(rt, ctx):
    w, h = _allreduce_bed(rt, 3)
    xs, outs = [rt.tensor(16, fill=1.0) for _ in range(3)], [rt.tensor(16) for _ in range(3)]
    seen: dict[str, Any] = {}

    def orch(o, _a, _c):
        d = o.allocate_domain(name="tp", workers=[0, 1, 2], window_size=4096)
        for c in (0, 2):  # rank 1 is never submitted
            o.submit_next_level(h, _rank_args(rt, xs[c], outs[c], d[c]), worker=c)

    with ctx.expect_error("run", "HANG") as exp:
        w.run(orch)
    msg = exp.extra.get("message", "")
    seen["names"] = "all_reduce" in msg and "'tp'" in msg and "[1]" in msg
    ctx.check("the hang names the collective, the domain and the missing rank", True, seen["names"])
    w.close()


def _faulted_allreduce(rt: Any, ctx: Any, point: str) -> Any:
    rt.require("faults")
    w, h = _allreduce_bed(rt, 3, faults=[rt.fault(point, target="l3.chip1")])
    spec_x, outs = [rt.tensor(16, fill=1.0) for _ in range(3)], [rt.tensor(16) for _ in range(3)]

    def orch(o, _a, _c):
        with o.allocate_domain(name="tp", workers=[0, 1, 2], window_size=4096) as d:
            o.submit_next_level_group(h, [_rank_args(rt, spec_x[c], outs[c], d[c]) for c in range(3)],
                                      workers=[0, 1, 2])

    return w, orch


@case("DOM-018", "A member that crashes as it enters a collective leaves the others waiting: a visible HANG",
      spec=API)
def member_crash(rt, ctx):
    w, orch = _faulted_allreduce(rt, ctx, "domain_member_crash")
    with ctx.expect_error("run", "HANG") as exp:
        w.run(orch)
    ctx.check("the hang names the crashed rank", True, "waits for rank(s) [1]" in exp.extra.get("message", ""))
    w.close()


@case("DOM-019", "A link cut during a collective's exchange fails every rank with ENDPOINT_FAILURE", spec=API)
def link_cut(rt, ctx):
    w, orch = _faulted_allreduce(rt, ctx, "domain_link_cut")
    rec = ctx.run_expecting(w, orch, "TASK_FAILURE")
    tids = [t for t, r in rec.tasks.items() if "next_level" in r.kind]
    ctx.check("the collective's group task in the record", 1, len(tids))
    if tids:
        ctx.expect_outcomes(rec, {tids[0]: ("FAILED", "ENDPOINT_FAILURE")})
    w.close()


@case("DOM-020", "Only the buffers' sum is bounded: a zero-byte buffer and an exactly full window are accepted",
      spec=VALIDATE)
def buffer_sizes(rt, ctx):
    w = _node(rt, 2)
    seen: dict[str, Any] = {}

    def orch(o, _a, _c):
        with ctx.expect_ok("buffers summing to exactly window_size"):
            h = o.allocate_domain(name="full", workers=[0, 1], window_size=2 * NB, buffers=_specs(rt, "a", "b"))
            seen["full"] = h[1].buffers["b"].base + NB - h[1].local_window_base
            h.release()
        with ctx.expect_ok("a zero-byte buffer next to a 64-byte one"):
            h = o.allocate_domain(name="empty", workers=[0], window_size=NB,
                                  buffers=[rt.CommBufferSpec("nil", "uint8", 0, 0), *_specs(rt, "s")])
            seen["nil"] = h[0].buffers["nil"].nbytes
            h.release()

    ctx.run_expecting(w, orch, None)
    ctx.check("the last buffer ends at the window's end", 2 * NB, seen.get("full"))
    ctx.check("the zero-byte buffer's nbytes", 0, seen.get("nil"))
    w.close()


@case("DOM-021", "copy_to / copy_from of more bytes than the window buffer holds raise ValueError; fewer fit",
      spec=STAGING)
def staging_bounds(rt, ctx):
    w = _node(rt, 2)
    big, small, back = rt.tensor(2 * N, fill=1.0), rt.tensor(N // 2, fill=3.0), rt.tensor(2 * N, fill=5.0)

    def orch(o, _a, _c):
        with o.allocate_domain(name="d", workers=[0, 1], window_size=NB, buffers=_specs(rt, "s")) as h:
            with ctx.expect_error("copy_to of 128 bytes into a 64-byte buffer", "INVALID_ARGUMENT"):
                rt.copy_to(o, h[0].buffers["s"], big)
            with ctx.expect_error("copy_from of 64-byte buffer into 128 host bytes", "INVALID_ARGUMENT"):
                rt.copy_from(o, back, h[0].buffers["s"])
            with ctx.expect_ok("copy_to of 32 bytes into a 64-byte buffer"):
                rt.copy_to(o, h[1].buffers["s"], small)

    ctx.run_expecting(w, orch, None)
    ctx.check("the host array of the refused copy_from is untouched", rt.tensor(2 * N, fill=5.0), back)
    w.close()


@case("DOM-022", "A window buffer kept past its run is no live range: copy_from in a later run raises ValueError",
      spec=LIFE)
def stale_window(rt, ctx):
    w = _node(rt, 2)
    kept: dict[str, Any] = {}
    host = rt.tensor(N, fill=2.0)

    def first(o, _a, _c):
        with o.allocate_domain(name="d", workers=[0, 1], window_size=NB, buffers=_specs(rt, "s")) as h:
            kept["buf"] = h[1].buffers["s"]

    def later(o, _a, _c):
        with ctx.expect_error("copy_from a buffer of the freed domain", "INVALID_ARGUMENT"):
            rt.copy_from(o, host, kept["buf"])
        with ctx.expect_error("copy_to a buffer of the freed domain", "INVALID_ARGUMENT"):
            rt.copy_to(o, kept["buf"], host)

    ctx.run_expecting(w, first, None, label="the run that allocates and frees the domain")
    ctx.run_expecting(w, later, None, label="a later run")
    ctx.check("the host array is untouched", rt.tensor(N, fill=2.0), host)
    w.close()


@case("DOM-023", "An L4 Worker has no chip ids of its own: allocate_domain refuses any worker id (ValueError)",
      spec=VALIDATE)
def no_chips_of_its_own(rt, ctx):
    rt.require("domains")
    w = rt.Worker(4, num_sub_workers=0)
    w.add_worker(rt.Worker(3, device_ids=[0], num_sub_workers=0))
    w.init()

    def orch(o, _a, _c):
        with ctx.expect_error("allocate_domain over worker 0 of an L4 without device_ids", "INVALID_ARGUMENT"):
            o.allocate_domain(name="tp", workers=[0], window_size=64)

    ctx.run_expecting(w, orch, None)
    ctx.check("live_domains", [], sorted(w.live_domains))
    w.close()
