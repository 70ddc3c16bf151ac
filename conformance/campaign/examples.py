"""Campaign targets written as Python (``module:function``), to copy from.

Each is called as ``function(rt, faults)``: ``rt`` is the backend's runtime-shaped API, ``faults``
the seed's fault plan, which goes to the root Worker. Each builds the tree, calls ``init()`` and
returns ``(root, orchestration)``.

- :func:`l3_pipeline` -- an L3 node with two chips and a SUB worker: add -> mul -> a SUB check
  (local faults only: refused or unconfirmed registrations, fault points);
- :func:`l4_remote_buffers` -- an L4 with two remote L3 sessions and remote memory: buffers allocated
  and filled on one session, exported to and imported by the other, consumed by tasks on both
  (upstream ``docs/remote-l3-worker-design/buffers-and-transports.md``, "Export/Import Handle
  Semantics"), so link, session, frame and control faults all meet live remote state;
- :func:`l3_allreduce` -- an L3 node with four chips running one all-reduce over a communication
  domain (upstream ``docs/comm-domain.md`` §1): the fault points ``domain_member_crash`` (a rank never
  publishes: the run hangs) and ``domain_link_cut`` (every rank fails with ENDPOINT_FAILURE) meet a
  live collective. Simulator only: the hw backend builds no collective kernel.

``tierbed campaign conformance.campaign.examples:l4_remote_buffers --seeds 0:500``
"""

from __future__ import annotations

from typing import Any

N = 16  # float32 elements per tensor
NB = N * 4


def _targs(rt: Any, *pairs: tuple[Any, Any]) -> Any:
    ta = rt.TaskArgs()
    for tensor, tag in pairs:
        ta.add_tensor(tensor, tag)
    return ta


def _ref(rt: Any, handle: Any) -> Any:
    return rt.RemoteTensorRef(handle, offset=0, shape=(N,), dtype=rt.DataType.FLOAT32)


def l3_pipeline(rt: Any, faults: list[Any]) -> tuple[Any, Any]:
    """``t = a + b`` on chip 0, ``y = t * b`` on chip 1, then a SUB task reading ``y``."""
    T = rt.TensorArgType
    w = rt.Worker(3, device_ids=[0, 1], num_sub_workers=1, faults=faults or None)
    add, mul = w.register(rt.kernel("add")), w.register(rt.kernel("mul"))

    def check(args: Any) -> None:
        args.tensor(0)

    sub = w.register(check)
    w.init()
    a, b = rt.tensor(N, fill="random"), rt.tensor(N, fill=1.0)
    t, y = rt.tensor(N), rt.tensor(N)

    def orch(o: Any, _args: Any, _config: Any) -> None:
        o.submit_next_level(add, _targs(rt, (a, T.INPUT), (b, T.INPUT), (t, T.OUTPUT)), worker=0)
        o.submit_next_level(mul, _targs(rt, (t, T.INPUT), (b, T.INPUT), (y, T.OUTPUT)), worker=1)
        o.submit_sub(sub, _targs(rt, (y, T.INPUT)))

    return w, orch


def l4_remote_buffers(rt: Any, faults: list[Any]) -> tuple[Any, Any]:
    """Remote buffers across two sessions: ``out = a + b`` on the owner, then a reader on the importer."""
    T = rt.TensorArgType
    rt.require("remote")
    w = rt.Worker(4, num_sub_workers=1, faults=faults or None)
    r0, r1 = (w.add_remote_worker(rt.RemoteWorkerSpec(f"127.0.0.1:{9000 + i}", "a2a3sim", device_ids=(0,)))
              for i in range(2))
    w.register(rt.kernel("add"))
    add = w.register(rt.RemoteCallable(rt.remote_target("add_buffers")), workers=[r0, r1])
    noop = w.register(rt.RemoteCallable(rt.remote_target("noop")), workers=[r0, r1])
    w.init()
    a, b, out = (w.remote_malloc(worker=r0, nbytes=NB) for _ in range(3))
    w.remote_copy_to(a, rt.tensor(N, fill="random"), NB)
    w.remote_copy_to(b, rt.tensor(N, fill=1.0), NB)
    seen = w.remote_import(w.remote_export(out, access="read"), worker=r1)

    def orch(o: Any, _args: Any, _config: Any) -> None:
        o.submit_next_level(add, _targs(rt, (_ref(rt, a), T.INPUT), (_ref(rt, b), T.INPUT), (_ref(rt, out), T.OUTPUT)),
                            worker=r0)
        o.submit_next_level(noop, _targs(rt, (_ref(rt, seen), T.INPUT)), worker=r1)

    return w, orch


__all__ = ["l3_pipeline", "l4_remote_buffers"]


def l3_allreduce(rt: Any, faults: list[Any]) -> tuple[Any, Any]:
    """``out[r] = sum(x)`` on every rank of a four-chip domain, one group task of a collective kernel."""
    T = rt.TensorArgType
    rt.require("domains")
    coll = rt.collective("all_reduce")
    w = rt.Worker(3, device_ids=[0, 1, 2, 3], num_sub_workers=0, faults=faults or None)
    h = w.register(coll)
    w.init()
    xs = [rt.tensor(N, fill="random") for _ in range(4)]
    outs = [rt.tensor(N) for _ in range(4)]

    def orch(o: Any, _args: Any, _config: Any) -> None:
        with o.allocate_domain(name="tp", workers=[0, 1, 2, 3], window_size=4096) as d:
            args = []
            for c in range(4):
                ta = _targs(rt, (xs[c], T.INPUT), (outs[c], T.OUTPUT_EXISTING))
                ta.add_scalar(d[c].domain_size)
                ta.add_scalar(d[c].device_ctx)
                args.append(ta)
            o.submit_next_level_group(h, args, workers=[0, 1, 2, 3])

    return w, orch
