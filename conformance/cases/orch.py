"""ORCH: submit, tags and dependencies, groups, scopes, the heap ring, failure and poison.

Spec: upstream ``docs/orchestrator.md`` ("2. submit_next_level -- the 7-step flow",
"3. submit_next_level_group", "4. submit_sub", "5. Ring", "6. Scope", "7. TensorMap" -> "Semantics",
"8b. alloc" -> "Consumer interaction", "heap_ring_size and back-pressure"), ``docs/scheduler.md``
("5. Dependency release and PENDING updates", "6. Completion and group aggregation") and
``docs/directed-next-level-scheduling.md`` ("Placement contract"); the checks on one task's own
arguments follow ``docs/buffer-abi.md`` ("What a submit checks" -> "No overlapping writes within one
task").
"""

from __future__ import annotations

from conformance.cases._kit import (
    Boom,
    N,
    add_args,
    boom,
    fail_if_one,
    fill_from_scalar,
    hold_long,
    hold_short,
    noop,
    starts_after,
    starts_while,
    targs,
)
from conformance.catalog import case

ORCH = "docs/orchestrator.md"
SCHED = "docs/scheduler.md"
TMAP = (ORCH, "7. TensorMap / Semantics")
SUBMIT = (ORCH, "2. `submit_next_level` — the 7-step flow")
GROUP = (ORCH, "3. `submit_next_level_group` — N workers, 1 DAG node")
SUB = (ORCH, "4. `submit_sub` — Python callable leaf")
SCOPE = (ORCH, "6. Scope")
ALLOC = (ORCH, "8b. `alloc(shape, dtype, identity)` — runtime-owned intermediate buffers")
BACKPRESSURE = (ORCH, "8b / `heap_ring_size` and back-pressure")
RELEASE = (SCHED, "5. Dependency release and PENDING updates")
COMPLETION = (SCHED, "6. Completion and group aggregation")
PLACEMENT = ("docs/directed-next-level-scheduling.md", "Placement contract")


def _l3(rt, chips=1, subs=2, **kw):
    w = rt.Worker(3, device_ids=list(range(chips)), num_sub_workers=subs, **kw)
    h = {"add": w.register(rt.kernel("add")), "mul": w.register(rt.kernel("mul")), "noop": w.register(noop),
         "boom": w.register(boom), "fill": w.register(fill_from_scalar), "maybe": w.register(fail_if_one)}
    w.init()
    return w, h


def _T(rt):
    T = rt.TensorArgType
    return T.INPUT, T.OUTPUT, T.INOUT, T.OUTPUT_EXISTING, T.NO_DEP


@case("ORCH-001", "A chip task computes the kernel's golden", spec=SUBMIT)
def single_chip(rt, ctx):
    w, h = _l3(rt)
    a, b, out = rt.tensor(N, fill="random"), rt.tensor(N, fill="random"), rt.tensor(N)
    rec = ctx.run_expecting(w, lambda o, _a, _c: o.submit_next_level(h["add"], add_args(rt, a, b, out), worker=0),
                            None)
    rt.record_output(rec, "out", out)
    ctx.expect_outcomes(rec, {"l3:r1:t1": "COMPLETED"}, exact=True)
    ctx.expect_output(rec, "out", ctx.golden("add", a, b, rt.tensor(N)), kernel="add")
    w.close()


@case("ORCH-002", "RAW: a consumer depends on its producer and sees its output", spec=TMAP)
def raw_chain(rt, ctx):
    IN, OUT, *_ = _T(rt)
    w, h = _l3(rt, chips=2)
    a, b, c = (rt.tensor(N, fill="random") for _ in range(3))
    x, y = rt.tensor(N), rt.tensor(N)

    def orch(o, _a, _c):
        o.submit_next_level(h["add"], add_args(rt, a, b, x), worker=0)
        o.submit_next_level(h["mul"], targs(rt, (x, IN), (c, IN), (y, OUT)), worker=1)

    rec = ctx.run_expecting(w, orch, None)
    rt.record_output(rec, "y", y)
    ctx.expect_producers(rec, "l3:r1:t2", ("l3:r1:t1",))
    ctx.expect_output(rec, "y", ctx.golden("mul", ctx.golden("add", a, b, rt.tensor(N)), c, rt.tensor(N)),
                      kernel="mul")
    w.close()


@case("ORCH-003", "WAW: a second writer replaces the entry with no edge between writers", spec=TMAP)
def waw(rt, ctx):
    IN, OUT, *_ = _T(rt)
    w, h = _l3(rt)
    x = rt.tensor(N)

    def orch(o, _a, _c):
        o.submit_sub(h["noop"], targs(rt, (x, OUT)))
        o.submit_sub(h["noop"], targs(rt, (x, OUT)))
        o.submit_sub(h["noop"], targs(rt, (x, IN)))

    rec = ctx.run_expecting(w, orch, None)
    ctx.expect_producers(rec, "l3:r1:t2", ())
    ctx.expect_producers(rec, "l3:r1:t3", ("l3:r1:t2",))
    w.close()


@case("ORCH-004", "WAR is not tracked: a writer after a reader gets no edge", spec=TMAP)
def war(rt, ctx):
    IN, OUT, *_ = _T(rt)
    w, h = _l3(rt)
    x = rt.tensor(N)

    def orch(o, _a, _c):
        o.submit_sub(h["noop"], targs(rt, (x, IN)))
        o.submit_sub(h["noop"], targs(rt, (x, OUT)))

    rec = ctx.run_expecting(w, orch, None)
    ctx.expect_producers(rec, "l3:r1:t1", ())
    ctx.expect_producers(rec, "l3:r1:t2", ())
    w.close()


@case("ORCH-005", "INOUT both looks up the last writer and becomes the writer", spec=TMAP)
def inout_chain(rt, ctx):
    IN, OUT, INOUT, *_ = _T(rt)
    w, h = _l3(rt)
    x = rt.tensor(N)

    def orch(o, _a, _c):
        o.submit_sub(h["noop"], targs(rt, (x, OUT)))
        o.submit_sub(h["noop"], targs(rt, (x, INOUT)))
        o.submit_sub(h["noop"], targs(rt, (x, IN)))

    rec = ctx.run_expecting(w, orch, None)
    ctx.expect_producers(rec, "l3:r1:t2", ("l3:r1:t1",))
    ctx.expect_producers(rec, "l3:r1:t3", ("l3:r1:t2",))
    w.close()


@case("ORCH-006", "NO_DEP neither looks up nor becomes a writer", spec=TMAP)
def no_dep(rt, ctx):
    IN, OUT, _, _, NO_DEP = _T(rt)
    w, h = _l3(rt)
    x = rt.tensor(N)

    def orch(o, _a, _c):
        o.submit_sub(h["noop"], targs(rt, (x, OUT)))
        o.submit_sub(h["noop"], targs(rt, (x, NO_DEP)))
        o.submit_sub(h["noop"], targs(rt, (x, IN)))

    rec = ctx.run_expecting(w, orch, None)
    ctx.expect_producers(rec, "l3:r1:t2", ())
    ctx.expect_producers(rec, "l3:r1:t3", ("l3:r1:t1",))
    w.close()


@case("ORCH-007", "A producer read twice by one consumer is one edge", spec=(ORCH, "2. Step 3 — tag walk"))
def dedup(rt, ctx):
    IN, OUT, *_ = _T(rt)
    w, h = _l3(rt)
    x, y = rt.tensor(N), rt.tensor(N)

    def orch(o, _a, _c):
        o.submit_sub(h["noop"], targs(rt, (x, OUT), (y, OUT)))
        o.submit_sub(h["noop"], targs(rt, (x, IN), (y, IN), (x, IN)))

    rec = ctx.run_expecting(w, orch, None)
    ctx.expect_producers(rec, "l3:r1:t2", ("l3:r1:t1",))  # a repeat would show as a second entry
    w.close()


@case("ORCH-008", "A consumer of two tensors depends on both producers", spec=TMAP)
def two_producers(rt, ctx):
    IN, OUT, *_ = _T(rt)
    w, h = _l3(rt)
    x, y = rt.tensor(N), rt.tensor(N)

    def orch(o, _a, _c):
        o.submit_sub(h["noop"], targs(rt, (x, OUT)))
        o.submit_sub(h["noop"], targs(rt, (y, OUT)))
        o.submit_sub(h["noop"], targs(rt, (x, IN), (y, IN)))

    rec = ctx.run_expecting(w, orch, None)
    ctx.expect_producers(rec, "l3:r1:t3", ("l3:r1:t1", "l3:r1:t2"))
    w.close()


@case("ORCH-009", "OUTPUT_EXISTING makes the task the writer of an existing buffer", spec=TMAP)
def output_existing(rt, ctx):
    _IN, _, _, OUT_EX, _ = _T(rt)
    w, h = _l3(rt)
    a, b = rt.tensor(N, fill=1.0), rt.tensor(N, fill=2.0)
    out, y = rt.tensor(N, fill=7.0), rt.tensor(N)

    def orch(o, _a, _c):
        o.submit_next_level(h["add"], add_args(rt, a, b, out, OUT_EX), worker=0)
        o.submit_next_level(h["add"], add_args(rt, out, out, y), worker=0)

    rec = ctx.run_expecting(w, orch, None)
    rt.record_output(rec, "y", y)
    ctx.expect_producers(rec, "l3:r1:t2", ("l3:r1:t1",))
    ctx.expect_output(rec, "y", rt.tensor(N, fill=6.0), kernel="add")
    w.close()


@case("ORCH-010", "A next-level group runs one member per worker as one DAG node", spec=GROUP)
def nl_group(rt, ctx):
    w, h = _l3(rt, chips=2)
    a0, b0, a1, b1 = (rt.tensor(N, fill="random") for _ in range(4))
    o0, o1 = rt.tensor(N), rt.tensor(N)
    rec = ctx.run_expecting(w, lambda o, _a, _c: o.submit_next_level_group(
        h["add"], [add_args(rt, a0, b0, o0), add_args(rt, a1, b1, o1)], workers=[0, 1]), None)
    rt.record_output(rec, "o0", o0)
    rt.record_output(rec, "o1", o1)
    ctx.expect_outcomes(rec, {"l3:r1:t1": "COMPLETED"}, exact=True)
    ctx.check("group member workers", 2, len(rec.tasks["l3:r1:t1"].workers))
    ctx.expect_output(rec, "o0", ctx.golden("add", a0, b0, rt.tensor(N)), kernel="add")
    ctx.expect_output(rec, "o1", ctx.golden("add", a1, b1, rt.tensor(N)), kernel="add")
    w.close()


@case("ORCH-011", "A consumer of any group member depends on the group", spec=COMPLETION)
def group_consumer(rt, ctx):
    _IN, *_ = _T(rt)
    w, h = _l3(rt, chips=2)
    a, b = rt.tensor(N, fill=1.0), rt.tensor(N, fill=2.0)
    o0, o1, y = rt.tensor(N), rt.tensor(N), rt.tensor(N)

    def orch(o, _a, _c):
        o.submit_next_level_group(h["add"], [add_args(rt, a, b, o0), add_args(rt, b, b, o1)], workers=[0, 1])
        o.submit_next_level(h["add"], add_args(rt, o1, a, y), worker=0)

    rec = ctx.run_expecting(w, orch, None)
    rt.record_output(rec, "y", y)
    ctx.expect_producers(rec, "l3:r1:t2", ("l3:r1:t1",))
    ctx.expect_output(rec, "y", rt.tensor(N, fill=5.0), kernel="add")
    w.close()


@case("ORCH-012", "A SUB group gives each member its own args", spec=SUB)
def sub_group(rt, ctx):
    _, OUT, *_ = _T(rt)
    w, h = _l3(rt, subs=3)
    outs = [rt.tensor(4) for _ in range(3)]
    rec = ctx.run_expecting(w, lambda o, _a, _c: o.submit_sub_group(
        h["fill"], [targs(rt, (outs[i], OUT), scalars=(i + 1,)) for i in range(3)]), None)
    for i, t in enumerate(outs):
        rt.record_output(rec, f"member{i}", t)
        ctx.expect_output(rec, f"member{i}", rt.tensor(4, fill=float(i + 1)))
    ctx.expect_outcomes(rec, {"l3:r1:t1": "COMPLETED"}, exact=True)
    w.close()


@case("ORCH-013", "A SUB group larger than the SUB pool is INVALID_ARGUMENT", spec=SUB, timeout_s=10.0)
def sub_group_too_big(rt, ctx):
    w, h = _l3(rt, subs=2)
    rec = ctx.run_expecting(w, lambda o, _a, _c: o.submit_sub_group(h["noop"], [rt.TaskArgs()] * 3),
                            "INVALID_ARGUMENT")
    ctx.expect_outcomes(rec, {}, exact=True)
    w.close()


@case("ORCH-014", "A group naming one worker twice is INVALID_ARGUMENT and leaves no task", spec=PLACEMENT)
def group_repeat(rt, ctx):
    w, h = _l3(rt, chips=2)
    a = rt.tensor(N)
    rec = ctx.run_expecting(w, lambda o, _a, _c: o.submit_next_level_group(
        h["add"], [add_args(rt, a, a, rt.tensor(N)), add_args(rt, a, a, rt.tensor(N))], workers=[0, 0]),
        "INVALID_ARGUMENT")
    ctx.expect_outcomes(rec, {}, exact=True)
    w.close()


@case("ORCH-015", "A submit to an unknown worker id is UNKNOWN_WORKER and leaves no task", spec=PLACEMENT)
def unknown_worker(rt, ctx):
    w, h = _l3(rt)
    a = rt.tensor(N)
    rec = ctx.run_expecting(w, lambda o, _a, _c: o.submit_next_level(h["add"], add_args(rt, a, a, rt.tensor(N)),
                                                                     worker=5), "UNKNOWN_WORKER")
    ctx.expect_outcomes(rec, {}, exact=True)
    w.close()


@case("ORCH-016", "Group sizes must match: workers and args_list of different lengths", spec=GROUP)
def group_len(rt, ctx):
    w, h = _l3(rt, chips=2)
    a = rt.tensor(N)
    ctx.run_expecting(w, lambda o, _a, _c: o.submit_next_level_group(
        h["add"], [add_args(rt, a, a, rt.tensor(N))], workers=[0, 1]), "INVALID_ARGUMENT")
    w.close()


@case("ORCH-017", "Tasks in nested scopes run and keep their edges", spec=(ORCH, "6. Scope / User-facing API"))
def nested_scope(rt, ctx):
    IN, OUT, *_ = _T(rt)
    w, h = _l3(rt)
    x = rt.tensor(N)

    def orch(o, _a, _c):
        with o.scope():
            o.submit_sub(h["noop"], targs(rt, (x, OUT)))
            with o.scope():
                o.submit_sub(h["noop"], targs(rt, (x, IN)))

    rec = ctx.run_expecting(w, orch, None)
    ctx.expect_outcomes(rec, {"l3:r1:t1": "COMPLETED", "l3:r1:t2": "COMPLETED"}, exact=True)
    ctx.expect_producers(rec, "l3:r1:t2", ("l3:r1:t1",))
    w.close()


@case("ORCH-018", "An orchestration function returning with a scope open fails the run", spec=SCOPE)
def scope_left_open(rt, ctx):
    w, h = _l3(rt)

    def orch(o, _a, _c):
        o.scope_begin()
        o.submit_sub(h["noop"])

    ctx.run_expecting(w, orch, "INVALID_STATE")
    w.close()


@case("ORCH-019", "scope_end without scope_begin is INVALID_STATE", spec=SCOPE)
def scope_end_alone(rt, ctx):
    w, _ = _l3(rt)
    ctx.run_expecting(w, lambda o, _a, _c: o.scope_end(), "INVALID_STATE")
    w.close()


@case("ORCH-020", "An alloc buffer wires its producer to its consumer", spec=(ALLOC[0], ALLOC[1] + " / Consumer "
                                                                                   "interaction"))
def alloc_wires(rt, ctx):
    IN, OUT, *_ = _T(rt)
    w, h = _l3(rt)
    a, b = rt.tensor(N, fill="random"), rt.tensor(N, fill="random")
    y = rt.tensor(N)

    def orch(o, _a, _c):
        buf = o.alloc((N,), "float32")
        t = buf.tensor((N,), "float32")
        o.submit_next_level(h["add"], add_args(rt, a, b, t), worker=0)
        o.submit_next_level(h["add"], targs(rt, (t, IN), (a, IN), (y, OUT)), worker=0)

    rec = ctx.run_expecting(w, orch, None)
    rt.record_output(rec, "y", y)
    ctx.expect_producers(rec, "l3:r1:t3", ("l3:r1:t2",))
    ctx.expect_output(rec, "y", ctx.golden("add", ctx.golden("add", a, b, rt.tensor(N)), a, rt.tensor(N)),
                      kernel="add")
    w.close()


@case("ORCH-021", "An alloc larger than the whole heap ring is RESOURCE_EXHAUSTED at once", spec=BACKPRESSURE)
def alloc_too_big(rt, ctx):
    w, _ = _l3(rt, heap_ring_size=4096)
    ctx.run_expecting(w, lambda o, _a, _c: o.alloc((4096,), "float32"), "RESOURCE_EXHAUSTED")
    ctx.run_expecting(w, lambda o, _a, _c: o.alloc((1024,), "float32"), None, label="alloc of exactly the ring")
    w.close()


@case("ORCH-022", "A small heap ring throttles a scoped pipeline but every task completes", spec=BACKPRESSURE)
def ring_backpressure(rt, ctx):
    IN, OUT, *_ = _T(rt)
    w, h = _l3(rt, heap_ring_size=4096)
    outs = [rt.tensor(256) for _ in range(8)]

    def orch(o, _a, _c):
        for i in range(8):
            with o.scope():
                buf = o.alloc((256,), "float32")
                t = buf.tensor((256,), "float32")
                o.submit_sub(h["fill"], targs(rt, (t, OUT), scalars=(i,)))
                o.submit_next_level(h["add"], targs(rt, (t, IN), (t, IN), (outs[i], OUT)), worker=0)

    rec = ctx.run_expecting(w, orch, None)
    ctx.expect_outcomes(rec, {f"l3:r1:t{i}": "COMPLETED" for i in range(1, 25) if i % 3 != 1}, exact=True)
    for i in (0, 7):
        rt.record_output(rec, f"out{i}", outs[i])
        ctx.expect_output(rec, f"out{i}", rt.tensor(256, fill=2.0 * i), kernel="add")
    w.close()


@case("ORCH-023", "A failing SUB task poisons its consumers only", spec=RELEASE)
def poison_consumers(rt, ctx):
    IN, OUT, _, _, NO_DEP = _T(rt)
    w, h = _l3(rt)
    x, y, z, free = (rt.tensor(N) for _ in range(4))

    def orch(o, _a, _c):
        o.submit_sub(h["boom"], targs(rt, (x, OUT)))
        o.submit_sub(h["noop"], targs(rt, (x, IN), (y, OUT)))
        o.submit_sub(h["noop"], targs(rt, (y, IN), (z, OUT)))
        o.submit_sub(h["noop"], targs(rt, (free, OUT)))
        o.submit_sub(h["noop"], targs(rt, (free, IN)))
        o.submit_sub(h["noop"], targs(rt, (x, NO_DEP)))

    rec = ctx.run_expecting(w, orch, "TASK_FAILURE")
    ctx.expect_outcomes(rec, {"l3:r1:t1": ("FAILED", "TASK_FAILURE"), "l3:r1:t2": "NOT_RUN", "l3:r1:t3": "NOT_RUN",
                              "l3:r1:t4": "COMPLETED", "l3:r1:t5": "COMPLETED", "l3:r1:t6": "COMPLETED"}, exact=True)
    t2 = rec.tasks.get("l3:r1:t2")
    ctx.check("a NOT_RUN task has no start stamp", None, t2.start if t2 is not None else None)
    w.close()


@case("ORCH-024", "A failed group member fails the group and poisons its consumer", spec=COMPLETION)
def group_member_fails(rt, ctx):
    IN, OUT, *_ = _T(rt)
    w, h = _l3(rt)
    x = rt.tensor(N)

    def orch(o, _a, _c):
        o.submit_sub_group(h["maybe"], [targs(rt, (x, OUT), scalars=(0,)), targs(rt, scalars=(1,))])
        o.submit_sub(h["noop"], targs(rt, (x, IN)))

    rec = ctx.run_expecting(w, orch, "TASK_FAILURE")
    ctx.expect_outcomes(rec, {"l3:r1:t1": ("FAILED", "TASK_FAILURE"), "l3:r1:t2": "NOT_RUN"}, exact=True)
    w.close()


def _l4_pair(rt):
    """An L4 over two L3s: ``hf`` runs add then a raising SUB on L3 0, ``hc`` add then a SUB on L3 1.

    Each nested function takes (x IN, out OUT) from its parent and writes ``out = x + x``: it passes
    on the tensors it was given, so the parent reads the result on every backend (on the real
    runtime a nested orchestration runs in a child process, where host arrays of its own would
    stay).
    """
    l4 = rt.Worker(4, num_sub_workers=1)
    kids = [rt.Worker(3, device_ids=[0], num_sub_workers=1) for _ in range(2)]
    adds = [k.register(rt.kernel("add")) for k in kids]
    bad, good = kids[0].register(boom), kids[1].register(noop)
    IN = rt.TensorArgType.INPUT

    def l3_failing(o, args, cfg):
        o.submit_next_level(adds[0], add_args(rt, args.tensor(0), args.tensor(0), args.tensor(1)), worker=0)
        o.submit_sub(bad, targs(rt, (args.tensor(1), IN)))

    def l3_consumer(o, args, cfg):
        o.submit_next_level(adds[1], add_args(rt, args.tensor(0), args.tensor(0), args.tensor(1)), worker=0)
        o.submit_sub(good, targs(rt, (args.tensor(1), IN)))

    hf, hc = l4.register(l3_failing), l4.register(l3_consumer)
    l4.add_worker(kids[0])
    l4.add_worker(kids[1])
    l4.init()
    return l4, hf, hc


@case("ORCH-025", "Poison crosses levels: an L4 consumer of a failed L3 task is NOT_RUN", spec=RELEASE)
def poison_across_levels(rt, ctx):
    IN, OUT, *_ = _T(rt)
    l4, hf, hc = _l4_pair(rt)
    x, y, z = rt.tensor(N, fill=1.0), rt.tensor(N), rt.tensor(N)

    def orch(o, _a, _c):
        o.submit_next_level(hf, targs(rt, (x, IN), (y, OUT)), worker=0)
        o.submit_next_level(hc, targs(rt, (y, IN), (z, OUT)), worker=1)

    rec = ctx.run_expecting(l4, orch, "TASK_FAILURE")
    ctx.expect_outcomes(rec, {"l4:r1:t1": ("FAILED", "TASK_FAILURE"), "l4:r1:t2": "NOT_RUN",
                              "l4.w0:r1:t1": "COMPLETED", "l4.w0:r1:t2": ("FAILED", "TASK_FAILURE")}, exact=True)
    rt.record_output(rec, "untouched", z)
    ctx.expect_output(rec, "untouched", rt.tensor(N))
    l4.close()


@case("ORCH-026", "L4 keeps running independent L3 work after a failure, and the tree stays usable", spec=RELEASE)
def independent_after_failure(rt, ctx):
    IN, OUT, *_ = _T(rt)
    l4, hf, hc = _l4_pair(rt)
    x, a, b, b2 = rt.tensor(N, fill=1.0), rt.tensor(N), rt.tensor(N), rt.tensor(N)

    def orch(o, _a, _c):
        o.submit_next_level(hf, targs(rt, (x, IN), (a, OUT)), worker=0)
        o.submit_next_level(hc, targs(rt, (x, IN), (b, OUT)), worker=1)

    rec = ctx.run_expecting(l4, orch, "TASK_FAILURE")
    ctx.expect_outcomes(rec, {"l4:r1:t1": ("FAILED", "TASK_FAILURE"), "l4:r1:t2": "COMPLETED",
                              "l4.w1:r1:t1": "COMPLETED", "l4.w1:r1:t2": "COMPLETED"})
    rt.record_output(rec, "inner1", b)
    ctx.expect_output(rec, "inner1", rt.tensor(N, fill=2.0), kernel="add")
    rec2 = ctx.run_expecting(l4, lambda o, _a, _c: o.submit_next_level(hc, targs(rt, (x, IN), (b2, OUT)),
                                                                        worker=1), None, label="next run")
    ctx.expect_outcomes(rec2, {"l4:r2:t1": "COMPLETED"})
    rt.record_output(rec2, "next run's inner1", b2)
    ctx.expect_output(rec2, "next run's inner1", rt.tensor(N, fill=2.0), kernel="add")
    l4.close()


@case("ORCH-027", "An orchestration function's own exception is re-raised by run()",
      spec=(ORCH, "1. Python Facade and C++ Internal API"))
def orch_raises(rt, ctx):
    w, h = _l3(rt)

    def orch(o, _a, _c):
        o.submit_sub(h["noop"])
        raise Boom("orchestration broke")

    got = "no exception"
    try:
        w.run(orch)
    except Exception as exc:
        got = type(exc).__name__
    ctx.check("exception type raised by run()", "Boom", got)
    ctx.expect_outcomes(ctx.take(w), {"l3:r1:t1": "COMPLETED"}, exact=True)
    w.close()


@case("ORCH-028", "A kernel given a wrong-shape tensor is KERNEL_ARGUMENT at submit", spec=SUBMIT)
def kernel_shape(rt, ctx):
    w, h = _l3(rt)
    rec = ctx.run_expecting(w, lambda o, _a, _c: o.submit_next_level(
        h["add"], add_args(rt, rt.tensor(N), rt.tensor(N + 1), rt.tensor(N)), worker=0), "KERNEL_ARGUMENT")
    ctx.expect_outcomes(rec, {}, exact=True)
    w.close()


@case("ORCH-029", "A kernel given too few tensors is KERNEL_ARGUMENT", spec=SUBMIT)
def kernel_arity(rt, ctx):
    IN, *_ = _T(rt)
    w, h = _l3(rt)
    ctx.run_expecting(w, lambda o, _a, _c: o.submit_next_level(h["add"], targs(rt, (rt.tensor(N), IN)), worker=0),
                      "KERNEL_ARGUMENT")
    w.close()


@case("ORCH-030", "A shape-only TensorSpec in a functional run is INVALID_ARGUMENT", spec=SUBMIT)
def spec_in_functional(rt, ctx):
    _IN, OUT, *_ = _T(rt)
    w, h = _l3(rt)
    s = rt.TensorSpec((N,), "float32")
    ctx.run_expecting(w, lambda o, _a, _c: o.submit_sub(h["noop"], targs(rt, (s, OUT))), "INVALID_ARGUMENT")
    w.close()


@case("ORCH-031", "A diagnostic CallConfig without output_prefix is rejected and leaves no task",
      spec=("docs/user/reference/python-api.md", "CallConfig"))
def diag_config(rt, ctx):
    w, h = _l3(rt)
    a = rt.tensor(N)
    cfg = rt.CallConfig()
    cfg.enable_pmu = 1  # set after construction: the runtime's CallConfig takes no keyword arguments
    rec = ctx.run_expecting(w, lambda o, _a, _c: o.submit_next_level(h["add"], add_args(rt, a, a, rt.tensor(N)),
                                                                     cfg, worker=0), "INVALID_ARGUMENT")
    ctx.expect_outcomes(rec, {}, exact=True)
    w.close()


@case("ORCH-032", "A tag that is not a TensorArgType is INVALID_ARGUMENT",
      spec=("docs/task-flow.md", "3. `TaskArgs` — one class, four representations"))
def bad_tag(rt, ctx):
    ta = rt.TaskArgs()
    with ctx.expect_error("add_tensor(x, 99)", "INVALID_ARGUMENT"):
        ta.add_tensor(rt.tensor(N), 99)


@case("ORCH-033", "submit_sub on a level with no SUB workers is INVALID_ARGUMENT", spec=SUB)
def sub_without_subs(rt, ctx):
    w = rt.Worker(3, device_ids=[0])
    w.init()
    h = None

    def orch(o, _a, _c):
        o.submit_sub(h)

    ctx.run_expecting(w, orch, "INVALID_ARGUMENT")
    w.close()


@case("ORCH-034", "A Worker whose run failed runs the next run normally", spec=(SCHED, "7. Lifecycle and invariants"))
def usable_after_failure(rt, ctx):
    IN, _OUT, *_ = _T(rt)
    w, h = _l3(rt)
    ctx.run_expecting(w, lambda o, _a, _c: o.submit_sub(h["boom"]), "TASK_FAILURE")
    a, b, out = rt.tensor(N, fill=1.0), rt.tensor(N, fill=2.0), rt.tensor(N)

    def orch(o, _a, _c):
        o.submit_next_level(h["add"], add_args(rt, a, b, out), worker=0)
        o.submit_sub(h["noop"], targs(rt, (out, IN)))

    rec = ctx.run_expecting(w, orch, None, label="second run")
    rt.record_output(rec, "out", out)
    ctx.expect_outcomes(rec, {"l3:r2:t1": "COMPLETED", "l3:r2:t2": "COMPLETED"}, exact=True)
    ctx.expect_output(rec, "out", rt.tensor(N, fill=3.0), kernel="add")
    w.close()


@case("ORCH-035", "An inner orchestration error fails the L4 task with the inner error's class",
      spec=COMPLETION)
def inner_error_class(rt, ctx):
    l4, l3 = rt.Worker(4), rt.Worker(3, num_sub_workers=1)
    h_ok = l3.register(noop)

    def bad_target(o, args, cfg):
        o.submit_sub(h_ok)
        o.submit_next_level(h_ok, rt.TaskArgs(), worker=3)

    hb = l4.register(bad_target)
    l4.add_worker(l3)
    l4.init()
    rec = ctx.run_expecting(l4, lambda o, _a, _c: o.submit_next_level(hb, rt.TaskArgs(), worker=0), "TASK_FAILURE")
    ctx.expect_outcomes(rec, {"l4:r1:t1": ("FAILED", "UNKNOWN_WORKER"), "l4.w0:r1:t1": "COMPLETED"}, exact=True)
    l4.close()


@case("ORCH-036", "A numpy integer worker id is accepted as an integer", spec=PLACEMENT, level="SHOULD")
def numpy_worker_id(rt, ctx):
    import numpy as np

    w, h = _l3(rt)
    a = rt.tensor(N, fill=1.0)
    out = rt.tensor(N)
    rec = ctx.run_expecting(w, lambda o, _a, _c: o.submit_next_level(h["add"], add_args(rt, a, a, out),
                                                                     worker=np.int64(0)), None)
    ctx.expect_outcomes(rec, {"l3:r1:t1": "COMPLETED"}, exact=True)
    w.close()


# ---------------------------------------------------------------- dependencies seen in time
# The TensorMap rules once more, judged by when SUB tasks start and end instead of by the producer
# sets a record lists (which not every backend can observe): three SUB workers, so only a dependency
# can hold a task back.


def _in_time(rt, ctx, *tags):
    """One SUB task per tag on one tensor, the first long and the others short; their records."""
    rt.require("timing", "concurrency")
    w = rt.Worker(3, num_sub_workers=3)
    h_long, h_short = w.register(hold_long), w.register(hold_short)
    w.init()
    x = rt.tensor(N)

    def orch(o, _a, _c):
        for i, tag in enumerate(tags):
            o.submit_sub(h_short if i else h_long, targs(rt, (x, tag)))

    rec = ctx.run_expecting(w, orch, None)
    w.close()
    return [rec.tasks.get(f"l3:r1:t{i}") for i in range(1, len(tags) + 1)]


@case("ORCH-037", "RAW in time: a reader starts after its writer ends", spec=TMAP)
def raw_in_time(rt, ctx):
    IN, OUT, *_ = _T(rt)
    t1, t2 = _in_time(rt, ctx, OUT, IN)
    ctx.check("the reader starts after the writer ends", True, starts_after(t2, t1))


@case("ORCH-038", "WAW in time: a second writer does not wait for the first; a reader waits for the last only",
      spec=TMAP)
def waw_in_time(rt, ctx):
    IN, OUT, *_ = _T(rt)
    t1, t2, t3 = _in_time(rt, ctx, OUT, OUT, IN)
    ctx.check("the second writer starts while the first runs", True, starts_while(t2, t1))
    ctx.check("the reader starts after the second writer ends, while the first still runs", [True, True],
              [starts_after(t3, t2), starts_while(t3, t1)])


@case("ORCH-039", "WAR in time: a writer after a reader starts while the reader runs", spec=TMAP)
def war_in_time(rt, ctx):
    IN, OUT, *_ = _T(rt)
    t1, t2 = _in_time(rt, ctx, IN, OUT)
    ctx.check("the writer starts while the reader runs", True, starts_while(t2, t1))


@case("ORCH-040", "NO_DEP in time: a NO_DEP tensor never holds a task back", spec=TMAP)
def no_dep_in_time(rt, ctx):
    _IN, OUT, _INOUT, _OE, NO_DEP = _T(rt)
    t1, t2 = _in_time(rt, ctx, OUT, NO_DEP)
    ctx.check("the NO_DEP task starts while the writer runs", True, starts_while(t2, t1))


@case("ORCH-041", "INOUT in time: writer, INOUT and reader run one after another", spec=TMAP)
def inout_in_time(rt, ctx):
    IN, OUT, INOUT, *_ = _T(rt)
    t1, t2, t3 = _in_time(rt, ctx, OUT, INOUT, IN)
    ctx.check("the INOUT task starts after the writer ends, the reader after the INOUT task", [True, True],
              [starts_after(t2, t1), starts_after(t3, t2)])


# ---------------------------------------------------------------------------------------------- one task's own args

NO_OVERLAP = ("docs/buffer-abi.md", "What a submit checks / No overlapping writes within one task")


def _rejected_then_next(rt, ctx, *pairs_list):
    """Each (tag, tag) pair over one host tensor is rejected at submit; a valid submit after them is t1.

    The rejected submits leave no task and no slot: the first accepted task keeps the run's first name.
    """
    w, h = _l3(rt)
    x, y = rt.tensor(N), rt.tensor(N)

    def orch(o, _a, _c):
        for first, second in pairs_list:
            with ctx.expect_error(f"submit_sub(x {first.name}, x {second.name})", "INVALID_ARGUMENT"):
                o.submit_sub(h["noop"], targs(rt, (x, first), (y, rt.TensorArgType.INPUT), (x, second)))
        o.submit_sub(h["noop"], targs(rt, (x, rt.TensorArgType.OUTPUT)))

    rec = ctx.run_expecting(w, orch, None)
    ctx.expect_outcomes(rec, {"l3:r1:t1": "COMPLETED"}, exact=True)
    w.close()


@case("ORCH-042", "A write and a later read of the same bytes in one task are INVALID_ARGUMENT at submit",
      spec=NO_OVERLAP)
def overlap_write_then_read(rt, ctx):
    IN, OUT, INOUT, *_ = _T(rt)
    _rejected_then_next(rt, ctx, (OUT, IN), (INOUT, IN))


@case("ORCH-043", "Two writes of the same bytes in one task are INVALID_ARGUMENT at submit", spec=NO_OVERLAP)
def overlap_write_write(rt, ctx):
    _IN, OUT, INOUT, OE, _ = _T(rt)
    _rejected_then_next(rt, ctx, (OUT, OUT), (INOUT, INOUT), (OE, OE), (OUT, OE))


@case("ORCH-044", "A chip task writing the bytes it also reads is rejected and leaves no task", spec=NO_OVERLAP)
def overlap_chip_task(rt, ctx):
    IN, OUT, *_ = _T(rt)
    w, h = _l3(rt)
    a, out = rt.tensor(N, fill="random"), rt.tensor(N)
    rec = ctx.run_expecting(w, lambda o, _a, _c: o.submit_next_level(
        h["add"], targs(rt, (out, OUT), (a, IN), (out, IN)), worker=0), "INVALID_ARGUMENT")
    ctx.expect_outcomes(rec, {}, exact=True)
    w.close()


@case("ORCH-045", "Reading the same bytes twice in one task is legal", spec=NO_OVERLAP)
def overlap_reads_legal(rt, ctx):
    IN, OUT, *_ = _T(rt)
    w, h = _l3(rt)
    a, out = rt.tensor(N, fill="random"), rt.tensor(N)
    rec = ctx.run_expecting(w, lambda o, _a, _c: o.submit_next_level(
        h["add"], targs(rt, (a, IN), (a, IN), (out, OUT)), worker=0), None)
    rt.record_output(rec, "out", out)
    ctx.expect_outcomes(rec, {"l3:r1:t1": "COMPLETED"}, exact=True)
    ctx.expect_output(rec, "out", ctx.golden("add", a, a, rt.tensor(N)), kernel="add")
    w.close()


@case("ORCH-046", "Disjoint byte ranges of one buffer may be written by one task; overlapping ones may not",
      spec=NO_OVERLAP, backends=("sim", "reference"))
def overlap_byte_ranges(rt, ctx):
    # hw: the adapter hands each host array to the runtime as a buffer of its own, so two views of one
    # array are two backings there; this case needs byte ranges of one backing.
    IN, OUT, _INOUT, OE, _ = _T(rt)
    w, h = _l3(rt)
    whole = rt.tensor(4 * N)
    m = whole.reshape(4, N)

    def orch(o, _a, _c):
        with ctx.expect_ok("two halves written by one task"):
            o.submit_sub(h["noop"], targs(rt, (whole[:2 * N], OUT), (whole[2 * N:], OE)))
        with ctx.expect_ok("two interleaved column blocks written by one task"):
            o.submit_sub(h["noop"], targs(rt, (m[:, :N // 4], OUT), (m[:, N // 2:], OUT)))
        with ctx.expect_error("two ranges sharing bytes, one written", "INVALID_ARGUMENT"):
            o.submit_sub(h["noop"], targs(rt, (whole[:2 * N], OUT), (whole[N:3 * N], IN)))
        with ctx.expect_error("two column blocks sharing a column, both written", "INVALID_ARGUMENT"):
            o.submit_sub(h["noop"], targs(rt, (m[:, :N // 2], OUT), (m[:, N // 4:], OE)))

    rec = ctx.run_expecting(w, orch, None)
    ctx.expect_outcomes(rec, {"l3:r1:t1": "COMPLETED", "l3:r1:t2": "COMPLETED"}, exact=True)
    w.close()


@case("ORCH-047", "Group members may all name one buffer as output; members are not compared", spec=NO_OVERLAP)
def overlap_group_members(rt, ctx):
    IN, OUT, *_ = _T(rt)
    w, h = _l3(rt)
    x = rt.tensor(N)

    def orch(o, _a, _c):
        o.submit_sub_group(h["noop"], [targs(rt, (x, OUT)), targs(rt, (x, OUT))])
        o.submit_sub_group(h["noop"], [targs(rt, (x, OUT)), targs(rt, (x, IN))])
        o.submit_sub(h["noop"], targs(rt, (x, IN)))

    rec = ctx.run_expecting(w, orch, None)
    ctx.expect_outcomes(rec, {"l3:r1:t1": "COMPLETED", "l3:r1:t2": "COMPLETED", "l3:r1:t3": "COMPLETED"},
                        exact=True)
    w.close()


@case("ORCH-048", "A read placed before an overlapping write in one task is rejected too", spec=NO_OVERLAP)
def overlap_read_then_write(rt, ctx):
    # The doc's rule has no order: two arguments naming the same bytes, one of them written. (The
    # runtime's own check compares a write only with the arguments after it.)
    IN, OUT, INOUT, OE, NO_DEP = _T(rt)
    _rejected_then_next(rt, ctx, (IN, OUT), (IN, INOUT), (IN, OE), (NO_DEP, OUT))
