"""LVL: level rules and recursive composition.

Spec: seed 000 "Level rules" (L3 holds CHIP and SUB; L4 and above hold DIST -- the Worker one level
down -- and SUB; wrong wiring is rejected at ``add_worker`` time; ``accepts_worker_type`` answers the
capability query), upstream ``docs/hierarchical-level-runtime.md`` "1. Level Model" and
"4. Recursive Composition", and ``python/simpler/worker.py`` (lifecycle of ``add_worker``/``init``).
"""

from __future__ import annotations

from typing import Any

from conformance.cases._kit import N, add_args, noop, targs
from conformance.catalog import case

HLR = "docs/hierarchical-level-runtime.md"
LEVEL_MODEL = (HLR, "1. Level Model")
COMPOSITION = (HLR, "4. Recursive Composition")
SEED000 = ("seed 000 (level-aware DistWorker)", "Level rules")

# The seed's table, written out by hand.
ACCEPTS = {
    2: {"CHIP": False, "SUB": False, "DIST": False},
    3: {"CHIP": True, "SUB": True, "DIST": False},
    4: {"CHIP": False, "SUB": True, "DIST": True},
    5: {"CHIP": False, "SUB": True, "DIST": True},
    6: {"CHIP": False, "SUB": True, "DIST": True},
}


def _accepts(rt: Any, ctx: Any, level: int) -> None:
    w = rt.Worker(level)
    for name, want in ACCEPTS[level].items():
        ctx.check(f"L{level}.accepts_worker_type({name})", want, w.accepts_worker_type(rt.WorkerType[name]))


@case("LVL-001", "An L2 Worker accepts no child worker type", spec=SEED000)
def l2_accepts(rt, ctx):
    _accepts(rt, ctx, 2)


@case("LVL-002", "An L3 Worker accepts CHIP and SUB children, not DIST", spec=SEED000)
def l3_accepts(rt, ctx):
    _accepts(rt, ctx, 3)


@case("LVL-003", "An L4 Worker accepts DIST and SUB children, not CHIP", spec=SEED000)
def l4_accepts(rt, ctx):
    _accepts(rt, ctx, 4)


@case("LVL-004", "An L5 Worker accepts DIST and SUB children, not CHIP", spec=SEED000)
def l5_accepts(rt, ctx):
    _accepts(rt, ctx, 5)


@case("LVL-005", "An L6 Worker accepts DIST and SUB children, not CHIP", spec=SEED000)
def l6_accepts(rt, ctx):
    _accepts(rt, ctx, 6)


@case("LVL-006", "add_worker of an L3 under an L3 is INVALID_WORKER_TYPE", spec=SEED000)
def l3_under_l3(rt, ctx):
    with ctx.expect_error("L3.add_worker(L3)", "INVALID_WORKER_TYPE"):
        rt.Worker(3).add_worker(rt.Worker(3))


@case("LVL-007", "add_worker of a chip (L2) under an L4 is INVALID_WORKER_TYPE", spec=SEED000)
def chip_under_l4(rt, ctx):
    with ctx.expect_error("L4.add_worker(L2)", "INVALID_WORKER_TYPE"):
        rt.Worker(4).add_worker(rt.Worker(2))


@case("LVL-008", "add_worker that skips a level (L3 under L5) is INVALID_WORKER_TYPE", spec=SEED000)
def skip_level(rt, ctx):
    with ctx.expect_error("L5.add_worker(L3)", "INVALID_WORKER_TYPE"):
        rt.Worker(5).add_worker(rt.Worker(3))


@case("LVL-009", "An L2 Worker rejects any child", spec=SEED000)
def l2_no_child(rt, ctx):
    with ctx.expect_error("L2.add_worker(L2)", "INVALID_WORKER_TYPE"):
        rt.Worker(2).add_worker(rt.Worker(2))


@case("LVL-010", "An upper level under a lower one (L4 under L3) is INVALID_WORKER_TYPE", spec=SEED000)
def upside_down(rt, ctx):
    with ctx.expect_error("L3.add_worker(L4)", "INVALID_WORKER_TYPE"):
        rt.Worker(3).add_worker(rt.Worker(4))


@case("LVL-011", "A rejected add_worker takes no worker id and leaves the child free", spec=SEED000)
def rejected_leaves_nothing(rt, ctx):
    parent = rt.Worker(4)
    child = rt.Worker(3)
    with ctx.expect_error("L4.add_worker(L2)", "INVALID_WORKER_TYPE"):
        parent.add_worker(rt.Worker(2))
    ctx.check("first valid child id after a rejection", 0, parent.add_worker(child))
    ctx.check("second valid child id", 1, parent.add_worker(rt.Worker(3)))


@case("LVL-012", "Chip ids from device_ids come first; add_worker continues the id space", spec=COMPOSITION)
def ids_after_devices(rt, ctx):
    w = rt.Worker(3, device_ids=[0, 1], num_sub_workers=1)
    with ctx.expect_error("L3.add_worker(L3)", "INVALID_WORKER_TYPE"):
        w.add_worker(rt.Worker(3))
    ctx.check("id of the chip added after device_ids=[0, 1]", 2, w.add_worker(rt.Worker(2)))


@case("LVL-013", "add_worker after init() is INVALID_STATE", spec=COMPOSITION)
def add_after_init(rt, ctx):
    w = rt.Worker(4, num_sub_workers=1)
    w.add_worker(rt.Worker(3, num_sub_workers=1))
    w.init()
    with ctx.expect_error("add_worker after init", "INVALID_STATE"):
        w.add_worker(rt.Worker(3))
    w.close()


@case("LVL-014", "A child attached to one parent cannot join another", spec=COMPOSITION)
def attached_twice(rt, ctx):
    child = rt.Worker(3)
    rt.Worker(4).add_worker(child)
    with ctx.expect_error("second parent add_worker", "INVALID_STATE"):
        rt.Worker(4).add_worker(child)


@case("LVL-015", "Worker levels outside 2..6 are INVALID_ARGUMENT", spec=LEVEL_MODEL)
def bad_levels(rt, ctx):
    for level in (1, 7):
        with ctx.expect_error(f"Worker(level={level})", "INVALID_ARGUMENT"):
            rt.Worker(level)


@case("LVL-016", "L4 -> L3 -> chip: a nested orchestration computes the kernel's golden", spec=COMPOSITION)
def l4_l3_chip(rt, ctx):
    l4 = rt.Worker(4, num_sub_workers=1)
    l3 = rt.Worker(3, device_ids=[0])
    add = l3.register(rt.kernel("add"))
    a, b = rt.tensor(N, fill="random"), rt.tensor(N, fill="random")
    out = rt.tensor(N)

    def inner(o, args, cfg):
        o.submit_next_level(add, add_args(rt, args.tensor(0), args.tensor(1), args.tensor(2)), worker=0)

    h = l4.register(inner)
    l4.add_worker(l3)
    l4.init()
    T = rt.TensorArgType
    rec = ctx.run_expecting(l4, lambda o, _a, _c: o.submit_next_level(
        h, targs(rt, (a, T.INPUT), (b, T.INPUT), (out, T.OUTPUT)), worker=0), None)
    rt.record_output(rec, "out", out)
    ctx.expect_outcomes(rec, {"l4:r1:t1": "COMPLETED", "l4.w0:r1:t1": "COMPLETED"}, exact=True)
    ctx.expect_output(rec, "out", ctx.golden("add", a, b, rt.tensor(N)), kernel="add")
    l4.close()


@case("LVL-017", "L5 -> L4 -> L3: each level runs the orchestration function it was handed", spec=COMPOSITION)
def l5_l4_l3(rt, ctx):
    l5, l4, l3 = rt.Worker(5), rt.Worker(4), rt.Worker(3, num_sub_workers=1)
    h_sub = l3.register(noop)

    def l3_fn(o, args, cfg):
        o.submit_sub(h_sub)

    h3 = l4.register(l3_fn)

    def l4_fn(o, args, cfg):
        o.submit_next_level(h3, rt.TaskArgs(), worker=0)

    h4 = l5.register(l4_fn)
    l4.add_worker(l3)
    l5.add_worker(l4)
    l5.init()
    rec = ctx.run_expecting(l5, lambda o, _a, _c: o.submit_next_level(h4, rt.TaskArgs(), worker=0), None)
    ctx.expect_outcomes(rec, {"l5:r1:t1": "COMPLETED", "l5.w0:r1:t1": "COMPLETED", "l5.w0.w0:r1:t1": "COMPLETED"},
                        exact=True)
    l5.close()


@case("LVL-018", "run() on a child Worker is INVALID_STATE (its parent dispatches to it)", spec=COMPOSITION)
def run_on_child(rt, ctx):
    l4, l3 = rt.Worker(4), rt.Worker(3, num_sub_workers=1)
    l4.add_worker(l3)
    l4.init()
    with ctx.expect_error("child.run", "INVALID_STATE"):
        l3.run(lambda o, a, c: None)
    l4.close()


@case("LVL-019", "run() before init() is INVALID_STATE", spec=("python/simpler/worker.py", "Worker.run"))
def run_before_init(rt, ctx):
    w = rt.Worker(3, num_sub_workers=1)
    with ctx.expect_error("run before init", "INVALID_STATE"):
        w.run(lambda o, a, c: None)


@case("LVL-020", "A second init() is INVALID_STATE", spec=("python/simpler/worker.py", "Worker.init"))
def double_init(rt, ctx):
    w = rt.Worker(3, num_sub_workers=1)
    w.init()
    with ctx.expect_error("second init", "INVALID_STATE"):
        w.init()
    w.close()


@case("LVL-021", "close() of a closed Worker is a no-op; the Worker stays closed",
      spec=("python/simpler/worker.py", "Worker.close"))
def double_close(rt, ctx):
    # Upstream's Worker.close docstring: "Publicly terminal and retryable"; a call after a finished
    # close replays its result (returns None) rather than tearing down again, and CLOSED "never
    # reverts to READY". python-api.md (Lifecycle) puts close() in a `finally`.
    w = rt.Worker(3, num_sub_workers=1)
    w.init()
    w.close()
    with ctx.expect_ok("second close"):
        w.close()
    with ctx.expect_error("run after the second close", "INVALID_STATE"):
        w.run(lambda o, a, c: None)


@case("LVL-022", "init() of a child Worker is INVALID_STATE (the root brings the tree up)", spec=COMPOSITION)
def init_child(rt, ctx):
    l4, l3 = rt.Worker(4), rt.Worker(3, num_sub_workers=1)
    l4.add_worker(l3)
    with ctx.expect_error("child.init", "INVALID_STATE"):
        l3.init()
