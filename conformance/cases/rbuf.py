"""RBUF: remote buffers -- handles, copies, export/import, access flags, lifetimes, and the seed 001
review findings (access flags enforced per tag, opaque export descriptors, pending frees kept on
failure).

Spec: upstream ``docs/remote-l3-worker-design/buffers-and-transports.md`` ("Buffer Handles",
"Public Memory API", "TaskArgs Sidecar Contract", "Export/Import Handle Semantics", "Release Policy",
"Dependency Keys"). Backends without remote L3 workers report these cases NOT_SUPPORTED.
"""

from __future__ import annotations

import numpy as np

from conformance.cases._kit import N, remote_l4, rref, targs
from conformance.catalog import case

BT = "docs/remote-l3-worker-design/buffers-and-transports.md"
HANDLES = (BT, "Buffer Handles")
MEMAPI = (BT, "Public Memory API")
SIDECAR = (BT, "TaskArgs Sidecar Contract")
EXPORT = (BT, "Export/Import Handle Semantics")
RELEASE = (BT, "Release Policy")
KEYS = (BT, "Dependency Keys")
NB = N * 4


def _bed(rt, faults=None):
    w, _, rids = remote_l4(rt, 2, faults=faults, register_add=True)
    add = w.register(rt.RemoteCallable(rt.remote_target("add_buffers")), workers=rids)
    noop = w.register(rt.RemoteCallable(rt.remote_target("noop")), workers=rids)
    w.init()
    return w, rids, add, noop


@case("RBUF-001", "Copies round-trip and a remote kernel sees the copied bytes", spec=MEMAPI)
def copy_round_trip(rt, ctx):
    w, (r0, _), add, _ = _bed(rt)
    T = rt.TensorArgType
    a_host, b_host = rt.tensor(N, fill="random"), rt.tensor(N, fill="random")
    a, b, out = (w.remote_malloc(worker=r0, nbytes=NB) for _ in range(3))
    w.remote_copy_to(a, a_host, NB)
    w.remote_copy_to(b, b_host, NB)
    rec = ctx.run_expecting(w, lambda o, _a, _c: o.submit_next_level(
        add, targs(rt, (rref(rt, a), T.INPUT), (rref(rt, b), T.INPUT), (rref(rt, out), T.OUTPUT)), worker=r0),
        None)
    got = rt.tensor(N)
    w.remote_copy_from(out, got, NB)
    rt.record_output(rec, "out", got)
    ctx.expect_output(rec, "out", ctx.golden("add", a_host, b_host, rt.tensor(N)), kernel="add")
    w.close()


@case("RBUF-002", "Buffer handles and exports cannot be constructed by the user", spec=HANDLES)
def not_constructible(rt, ctx):
    rt.require("remote")
    with ctx.expect_error("RemoteBufferHandle(...)", "INVALID_ARGUMENT"):
        rt.RemoteBufferHandle(worker_id=0, buffer_id=1, generation=1)
    with ctx.expect_error("RemoteBufferExport(...)", "INVALID_ARGUMENT"):
        rt.RemoteBufferExport(owner_worker_id=0, buffer_id=1, generation=1, export_id=1)


@case("RBUF-003", "An export is opaque (no address, key or descriptor) and immutable", spec=EXPORT)
def export_opaque(rt, ctx):
    w, (r0, _), _, _ = _bed(rt)
    e = w.remote_export(w.remote_malloc(worker=r0, nbytes=64), access="read")
    ctx.check("transport secrets exposed", [],
              [a for a in ("remote_addr", "rkey_or_token", "ub_ldst_va", "transport_descriptor") if hasattr(e, a)])
    ctx.check("public fields", (r0, 0, 64, "host_tcp"), (e.owner_worker_id, e.offset, e.nbytes, e.transport_profile))
    got = "assigned"
    try:
        e.nbytes = 128
    except AttributeError:
        got = "AttributeError"
    ctx.check("assigning nbytes", "AttributeError", got)
    w.close()


@case("RBUF-004", "An export from another Worker, or a non-export, is rejected by import", spec=EXPORT)
def foreign_export(rt, ctx):
    w, (r0, r1), _, _ = _bed(rt)
    other, (_o0, o1), _, _ = _bed(rt)
    e = w.remote_export(w.remote_malloc(worker=r0, nbytes=64), access="read")
    with ctx.expect_error("import of another Worker's export", "INVALID_ARGUMENT"):
        other.remote_import(e, worker=o1)
    with ctx.expect_error("import of a string", "INVALID_ARGUMENT"):
        w.remote_import("not an export", worker=r1)
    with ctx.expect_ok("import of the genuine export"):
        w.remote_import(e, worker=r1)
    other.close()
    w.close()


def _access(rt, ctx, grant, allowed, denied):
    w, (r0, r1), _, noop = _bed(rt)
    h = w.remote_malloc(worker=r0, nbytes=NB)
    imp = w.remote_import(w.remote_export(h, access=grant), worker=r1)
    T = rt.TensorArgType
    for tag in allowed + denied:
        want = None if tag in allowed else "ACCESS_DENIED"
        ctx.run_expecting(w, lambda o, _a, _c, t=tag: o.submit_next_level(noop, targs(rt, (rref(rt, imp), T[t])),
                                                                           worker=r1), want,
                          label=f"{grant} grant, {tag}")
    w.close()


@case("RBUF-005", "A read-only import is usable as INPUT only (ACCESS_DENIED otherwise)",
      spec=("seed 001 review", "access flags enforced per tag"))
def access_read(rt, ctx):
    rt.require("remote")
    _access(rt, ctx, "read", ["INPUT"], ["OUTPUT", "OUTPUT_EXISTING", "INOUT", "NO_DEP"])


@case("RBUF-006", "A write-only import is usable as OUTPUT/OUTPUT_EXISTING only",
      spec=("seed 001 review", "access flags enforced per tag"))
def access_write(rt, ctx):
    rt.require("remote")
    _access(rt, ctx, "write", ["OUTPUT", "OUTPUT_EXISTING"], ["INPUT", "INOUT", "NO_DEP"])


@case("RBUF-007", "A readwrite import is usable with every tag",
      spec=("seed 001 review", "access flags enforced per tag"))
def access_rw(rt, ctx):
    rt.require("remote")
    _access(rt, ctx, "readwrite", ["INPUT", "OUTPUT", "OUTPUT_EXISTING", "INOUT", "NO_DEP"], [])


@case("RBUF-008", "Remote data is eligible only on its owner or importer", spec=SIDECAR)
def eligibility(rt, ctx):
    w, (r0, r1), _, noop = _bed(rt)
    IN = rt.TensorArgType.INPUT
    h = w.remote_malloc(worker=r0, nbytes=NB)
    ctx.run_expecting(w, lambda o, _a, _c: o.submit_next_level(noop, targs(rt, (rref(rt, h), IN)), worker=r1),
                      "INVALID_ARGUMENT", label="owner data on another worker")
    imp = w.remote_import(w.remote_export(h), worker=r1)
    ctx.run_expecting(w, lambda o, _a, _c: o.submit_next_level(noop, targs(rt, (rref(rt, imp), IN)), worker=r0),
                      "INVALID_ARGUMENT", label="imported view on the owner")
    ctx.run_expecting(w, lambda o, _a, _c: o.submit_next_level(noop, targs(rt, (rref(rt, imp), IN)), worker=r1),
                      None, label="imported view on its importer")
    w.close()


@case("RBUF-009", "Owner and imported views share the owner's dependency key", spec=KEYS)
def shared_key(rt, ctx):
    w, (r0, r1), _, noop = _bed(rt)
    T = rt.TensorArgType
    h = w.remote_malloc(worker=r0, nbytes=NB)
    imp = w.remote_import(w.remote_export(h), worker=r1)

    def orch(o, _a, _c):
        o.submit_next_level(noop, targs(rt, (rref(rt, h), T.OUTPUT)), worker=r0)
        o.submit_next_level(noop, targs(rt, (rref(rt, imp), T.INPUT)), worker=r1)

    rec = ctx.run_expecting(w, orch, None)
    ctx.expect_producers(rec, "l4:r1:t2", ("l4:r1:t1",))
    w.close()


@case("RBUF-010", "Ranges are checked against the handle's bounds", spec=HANDLES)
def bounds(rt, ctx):
    w, (r0, _), _, _ = _bed(rt)
    h = w.remote_malloc(worker=r0, nbytes=64)
    with ctx.expect_error("RemoteTensorRef past the end", "INVALID_ARGUMENT"):
        rt.RemoteTensorRef(h, offset=8, shape=(16,), dtype=rt.DataType.FLOAT32)
    with ctx.expect_error("copy_to past the end", "INVALID_ARGUMENT"):
        w.remote_copy_to(h, bytes(64), 64, offset=1)
    with ctx.expect_error("export past the end", "INVALID_ARGUMENT"):
        w.remote_export(h, offset=32, nbytes=64)
    with ctx.expect_error("malloc of 0 bytes", "INVALID_ARGUMENT"):
        w.remote_malloc(worker=r0, nbytes=0)
    w.close()


@case("RBUF-011", "A freed handle is STALE_GENERATION everywhere; free is idempotent", spec=HANDLES)
def stale(rt, ctx):
    w, (r0, _), _, _ = _bed(rt)
    h = w.remote_malloc(worker=r0, nbytes=64)
    w.remote_free(h)
    with ctx.expect_error("copy_to a freed handle", "STALE_GENERATION"):
        w.remote_copy_to(h, bytes(64), 64)
    with ctx.expect_error("export a freed handle", "STALE_GENERATION"):
        w.remote_export(h)
    with ctx.expect_ok("second free"):
        w.remote_free(h)
    w.close()


@case("RBUF-012", "Local workers reject remote refs; remote workers reject host tensors", spec=SIDECAR)
def local_vs_remote(rt, ctx):
    w, _ids, rids = remote_l4(rt, 1, local=True, register_add=False)
    noop = w.register(rt.RemoteCallable(rt.remote_target("noop")), workers=rids)
    sub = w.register(_sub_noop)
    w.init()
    IN = rt.TensorArgType.INPUT
    inline = rt.RemoteTensorRef.host_inline(b"\0" * 8, shape=(2,), dtype=rt.DataType.FLOAT32)
    ctx.run_expecting(w, lambda o, _a, _c: o.submit_sub(sub, targs(rt, (inline, IN))), "INVALID_ARGUMENT",
                      label="remote ref to a SUB worker")
    ctx.run_expecting(w, lambda o, _a, _c: o.submit_next_level(noop, targs(rt, (rt.tensor(4), IN)), worker=rids[0]),
                      "INVALID_ARGUMENT", label="host tensor to a remote worker")
    w.close()


def _sub_noop(args):
    return None


@case("RBUF-013", "A host-inline tensor is read-only and delivered to the remote kernel", spec=SIDECAR)
def host_inline(rt, ctx):
    w, (r0, _), add, noop = _bed(rt)
    T = rt.TensorArgType
    one = rt.RemoteTensorRef.host_inline(np.ones(N, np.float32), shape=(N,), dtype=rt.DataType.FLOAT32)
    ctx.run_expecting(w, lambda o, _a, _c: o.submit_next_level(noop, targs(rt, (one, T.OUTPUT)), worker=r0),
                      "ACCESS_DENIED", label="host inline as OUTPUT")
    two = rt.RemoteTensorRef.host_inline(np.full(N, 2, np.float32), shape=(N,), dtype=rt.DataType.FLOAT32)
    out = w.remote_malloc(worker=r0, nbytes=NB)
    rec = ctx.run_expecting(w, lambda o, _a, _c: o.submit_next_level(
        add, targs(rt, (one, T.INPUT), (two, T.INPUT), (rref(rt, out), T.OUTPUT)), worker=r0), None)
    got = rt.tensor(N)
    w.remote_copy_from(out, got, NB)
    rt.record_output(rec, "out", got)
    ctx.expect_output(rec, "out", rt.tensor(N, fill=3.0), kernel="add")
    w.close()


@case("RBUF-014", "Remote memory calls need an initialised Worker with remote children", spec=MEMAPI)
def memory_needs_init(rt, ctx):
    rt.require("remote")
    w, _, rids = remote_l4(rt, 1)
    with ctx.expect_error("remote_malloc before init", "INVALID_STATE"):
        w.remote_malloc(worker=rids[0], nbytes=8)
    local_only = rt.Worker(4, num_sub_workers=1)
    local_only.init()  # initialised, so that only the missing remote child is wrong
    # A bad argument, or more precisely an id that names no remote worker: either class is right.
    with ctx.expect_error("remote_malloc on a Worker without remote children",
                          ("INVALID_ARGUMENT", "UNKNOWN_WORKER")):
        local_only.remote_malloc(worker=0, nbytes=8)
    local_only.close()


@case("RBUF-015", "An owner free during a run waits until the task using the buffer is terminal", spec=RELEASE)
def deferred_free(rt, ctx):
    w, (r0, _), add, _ = _bed(rt)
    T = rt.TensorArgType
    a = w.remote_malloc(worker=r0, nbytes=NB)
    b = w.remote_malloc(worker=r0, nbytes=NB)  # the inputs: a task may not also read what it writes
    seen = []

    def orch(o, _a, _c):
        o.submit_next_level(add, targs(rt, (rref(rt, b), T.INPUT), (rref(rt, b), T.INPUT),
                                       (rref(rt, a), T.OUTPUT_EXISTING)), worker=r0)
        w.remote_free(a)
        seen.append(rt.buffer_state(a))

    ctx.run_expecting(w, orch, None)
    ctx.check("state right after remote_free in the run", "RELEASED", seen[0] if seen else "ABSENT")
    ctx.check("state after the run", "FREED", rt.buffer_state(a))
    w.close()


@case("RBUF-016", "A free that fails stays pending and a retry completes it",
      spec=("seed 001 review", "pending frees kept on failure"))
def failed_free_retried(rt, ctx):
    rt.require("remote", "faults")
    w, (r0, _), _, _ = _bed(rt, faults=[rt.fault("control_error", control="FREE_REMOTE_BUFFER", worker=0)])
    h = w.remote_malloc(worker=r0, nbytes=64)
    with ctx.expect_error("first free", "CONTROL_FAILURE"):
        w.remote_free(h)
    ctx.check("state after the failed free", "RELEASED", rt.buffer_state(h))
    with ctx.expect_ok("retry"):
        w.remote_free(h)
    ctx.check("state after the retry", "FREED", rt.buffer_state(h))
    w.close()


@case("RBUF-017", "remote_free of an import and release_import of an owner handle are rejected", spec=RELEASE)
def wrong_release(rt, ctx):
    w, (r0, r1), _, _ = _bed(rt)
    h = w.remote_malloc(worker=r0, nbytes=64)
    imp = w.remote_import(w.remote_export(h), worker=r1)
    with ctx.expect_error("remote_free(imported handle)", "INVALID_ARGUMENT"):
        w.remote_free(imp)
    with ctx.expect_error("remote_release_import(owner handle)", "INVALID_ARGUMENT"):
        w.remote_release_import(h)
    w.close()


@case("RBUF-018", "A failed import publishes nothing and does not hold the owner",
      spec=("seed 001 review", "pending frees kept on failure"))
def failed_import(rt, ctx):
    rt.require("remote", "faults")
    w, (r0, r1), _, _ = _bed(rt, faults=[rt.fault("control_error", control="IMPORT_BUFFER", worker=1)])
    h = w.remote_malloc(worker=r0, nbytes=64)
    with ctx.expect_error("import", "CONTROL_FAILURE"):
        w.remote_import(w.remote_export(h), worker=r1)
    w.remote_free(h)
    ctx.check("owner state after free", "FREED", rt.buffer_state(h))
    w.close()
