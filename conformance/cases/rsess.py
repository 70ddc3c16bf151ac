"""RSESS: remote L3 sessions -- attachment, start-up, the HELLO READY barrier, ordering, health.

Spec: upstream ``docs/remote-l3-worker-design.md`` ("Worker Identity and Callable Routing",
"Remote Worker Session", "Failure Semantics"), ``docs/remote-l3-worker-design/protocol.md``
("HELLO Payload", "Ordering") and the seed 001 review findings (partial-init cleanup).
Backends without remote L3 workers report these cases NOT_SUPPORTED.
"""

from __future__ import annotations

from conformance.cases._kit import remote_l4, remote_spec
from conformance.catalog import case

RL3 = "docs/remote-l3-worker-design.md"
PROTO = "docs/remote-l3-worker-design/protocol.md"
IDENTITY = (RL3, "Worker Identity and Callable Routing")
SESSION = (RL3, "Remote Worker Session")
FAILURE = (RL3, "Failure Semantics")
ORDERING = (PROTO, "Ordering")
HELLO = (PROTO, "HELLO Payload")


@case("RSESS-001", "Remote worker ids continue the NEXT_LEVEL id space in attach order", spec=IDENTITY)
def remote_ids(rt, ctx):
    rt.require("remote")
    w = rt.Worker(4)
    got = [w.add_worker(rt.Worker(3, num_sub_workers=1)), w.add_remote_worker(remote_spec(rt, 9000)),
           w.add_worker(rt.Worker(3, num_sub_workers=1)), w.add_remote_worker(remote_spec(rt, 9001))]
    ctx.check("ids of local, remote, local, remote", [0, 1, 2, 3], got)


@case("RSESS-002", "add_remote_worker on an L3 is INVALID_WORKER_TYPE", spec=IDENTITY)
def remote_under_l3(rt, ctx):
    rt.require("remote")
    with ctx.expect_error("L3.add_remote_worker", "INVALID_WORKER_TYPE"):
        rt.Worker(3).add_remote_worker(remote_spec(rt, 9000))


@case("RSESS-003", "add_remote_worker after init() is INVALID_STATE", spec=SESSION)
def remote_after_init(rt, ctx):
    w, _, _ = remote_l4(rt, 1)
    w.init()
    with ctx.expect_error("add_remote_worker after init", "INVALID_STATE"):
        w.add_remote_worker(remote_spec(rt, 9100))
    w.close()


@case("RSESS-004", "An endpoint with a hostname or no port is INVALID_ARGUMENT, before any connection",
      spec=IDENTITY)
def bad_endpoints(rt, ctx):
    # Upstream rejects at add_remote_worker (a hostname would need an unbounded DNS lookup); the sim
    # already at RemoteWorkerSpec. Either is before any connection, so the case accepts both.
    rt.require("remote")
    for bad in ("node7:9000", "127.0.0.1", "127.0.0.1:0"):
        with ctx.expect_error(f"add_remote_worker(RemoteWorkerSpec({bad!r}))", "INVALID_ARGUMENT"):
            rt.Worker(4).add_remote_worker(rt.RemoteWorkerSpec(bad, "a2a3sim"))


@case("RSESS-005", "A RemoteCallable must name its remote workers explicitly", spec=IDENTITY)
def remote_callable_workers(rt, ctx):
    w, ids, _rids = remote_l4(rt, 2, local=True)
    target = rt.remote_target("noop")
    with ctx.expect_error("register without workers=", "INVALID_ARGUMENT"):
        w.register(rt.RemoteCallable(target))
    with ctx.expect_error("register with workers=[]", "INVALID_ARGUMENT"):
        w.register(rt.RemoteCallable(target), workers=[])
    with ctx.expect_error("register naming a local child", "UNKNOWN_WORKER"):
        w.register(rt.RemoteCallable(target), workers=[ids[0]])


@case("RSESS-006", "A remote task runs its orchestration on the remote L3 and completes", spec=SESSION)
def remote_task_runs(rt, ctx):
    w, _, rids = remote_l4(rt, 2, register_add=True)
    h = w.register(rt.RemoteCallable(rt.remote_target("chain")), workers=rids)
    w.init()

    def orch(o, _a, _c):
        o.submit_next_level(h, _scalars(rt, 2), worker=rids[0])
        o.submit_next_level(h, rt.TaskArgs(), worker=rids[1])

    rec = ctx.run_expecting(w, orch, None)
    ctx.expect_outcomes(rec, {"l4:r1:t1": "COMPLETED", "l4:r1:t2": "COMPLETED"})
    ctx.check("inner chip tasks on the remote L3", ["COMPLETED", "COMPLETED"],
              [t.outcome.value for t in rec.tasks.values() if t.node == f"l4.w{rids[0]}.l3"])
    w.close()


def _scalars(rt, *values):
    ta = rt.TaskArgs()
    for v in values:
        ta.add_scalar(v)
    return ta


@case("RSESS-007", "A remote orchestration that raises is a TASK_FAILURE of its task", spec=FAILURE)
def remote_failure(rt, ctx):
    w, _, rids = remote_l4(rt, 1)
    h = w.register(rt.RemoteCallable(rt.remote_target("fail")), workers=rids)
    w.init()
    rec = ctx.run_expecting(w, lambda o, _a, _c: o.submit_next_level(h, rt.TaskArgs(), worker=rids[0]),
                            "TASK_FAILURE")
    ctx.expect_outcomes(rec, {"l4:r1:t1": ("FAILED", "TASK_FAILURE")}, exact=True)
    w.close()


@case("RSESS-008", "A session that dies during start-up fails init() and closes every opened session",
      spec=("seed 001 review", "partial-init cleanup"))
def partial_init(rt, ctx):
    rt.require("remote", "faults")
    w, _, _rids = remote_l4(rt, 2, faults=[rt.fault("session_crash", worker=1, at_us=0.0)])
    with ctx.expect_error("init", "ENDPOINT_FAILURE"):
        w.init()
    with ctx.expect_ok("close after a failed init"):
        w.close()
    with ctx.expect_ok("close again"):
        w.close()
    with ctx.expect_error("run after a failed init", "INVALID_STATE"):
        w.run(lambda o, a, c: None)


@case("RSESS-009", "A session that never says HELLO READY is not schedulable (NOT_READY)", spec=HELLO)
def hello_not_ready(rt, ctx):
    rt.require("remote", "faults")
    w, _, _ = remote_l4(rt, 1, faults=[rt.fault("frame_drop", worker=0, frame_type="HELLO", ordinal=2)])
    with ctx.expect_error("init", "NOT_READY"):
        w.init()
    w.close()


@case("RSESS-010", "An unimportable remote dispatcher target fails start-up", spec=IDENTITY)
def unimportable_target(rt, ctx):
    w, _, rids = remote_l4(rt, 1)
    w.register(rt.RemoteCallable(rt.remote_target("noop").replace("noop", "no_such_fn")), workers=rids)
    with ctx.expect_error("init", "INVALID_ARGUMENT"):
        w.init()
    w.close()


@case("RSESS-011", "A crashed session fails its in-flight task with ENDPOINT_FAILURE; others complete",
      spec=ORDERING)
def crash_mid_task(rt, ctx):
    _session_fault_mid_task(rt, ctx, "session_crash")


def _session_fault_mid_task(rt, ctx, kind: str) -> None:
    """Two sessions each running ``chain``; ``kind`` hits session 0 mid-task: its task fails with
    ENDPOINT_FAILURE, the other session's task completes."""
    rt.require("remote", "faults")
    w, _, rids = remote_l4(rt, 2, faults=[rt.fault(kind, worker=0, at_us=2000.0)], register_add=True)
    h = w.register(rt.RemoteCallable(rt.remote_target("chain")), workers=rids)
    w.init()

    def orch(o, _a, _c):
        o.submit_next_level(h, _scalars(rt, 6), worker=rids[0])
        o.submit_next_level(h, _scalars(rt, 1), worker=rids[1])

    rec = ctx.run_expecting(w, orch, ("TASK_FAILURE", "ENDPOINT_FAILURE"))
    ctx.expect_outcomes(rec, {"l4:r1:t1": ("FAILED", "ENDPOINT_FAILURE"), "l4:r1:t2": "COMPLETED"})
    w.close()


@case("RSESS-012", "A remote handle submitted to a remote worker it was not registered on is rejected",
      spec=("docs/directed-next-level-scheduling.md", "Placement contract"))
def ineligible_remote(rt, ctx):
    w, _, rids = remote_l4(rt, 2)
    h = w.register(rt.RemoteCallable(rt.remote_target("noop")), workers=[rids[0]])
    w.init()
    rec = ctx.run_expecting(w, lambda o, _a, _c: o.submit_next_level(h, rt.TaskArgs(), worker=rids[1]),
                            "INVALID_ARGUMENT")
    ctx.expect_outcomes(rec, {}, exact=True)
    w.close()


@case("RSESS-013", "Tasks to one endpoint run one at a time, in submit order", spec=ORDERING)
def one_in_flight(rt, ctx):
    w, _, rids = remote_l4(rt, 1)
    h = w.register(rt.RemoteCallable(rt.remote_target("noop")), workers=rids)
    w.init()
    rec = ctx.run_expecting(w, lambda o, _a, _c: [o.submit_next_level(h, rt.TaskArgs(), worker=rids[0])
                                                  for _ in range(3)], None)
    ts = [rec.tasks[f"l4:r1:t{i}"] for i in (1, 2, 3)]
    ctx.check("each task starts after the previous one ended", [True, True],
              [ts[i + 1].start >= ts[i].end for i in range(2)])
    w.close()


@case("RSESS-014", "A RoCE transport is NOT_SUPPORTED in conformance mode",
      spec=("docs/remote-l3-worker-design/buffers-and-transports.md", "A2 RoCE HCOMM Profile"))
def roce_not_supported(rt, ctx):
    rt.require("remote")
    with ctx.expect_error("add_remote_worker(transport='roce')", "NOT_SUPPORTED"):
        rt.Worker(4).add_remote_worker(remote_spec(rt, 9000, transport="roce"))


@case("RSESS-015", "A hung session (alive, silent) fails its in-flight task with ENDPOINT_FAILURE; others complete",
      spec=FAILURE)
def hang_mid_task(rt, ctx):
    # A stopped session process keeps its sockets open, so no closed connection tells the parent: only the
    # health watch (or the command timeout) can, and then the in-flight task gets a fabricated endpoint
    # failure (protocol.md "Ordering"; remote-l3-worker-design.md "Session execution rules"). Compare
    # RSESS-011, where the process dies and its closed connection fails the endpoint at once.
    _session_fault_mid_task(rt, ctx, "session_hang")
