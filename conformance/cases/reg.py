"""REG: callable identity and registration.

Spec: seed 004 (hashid-based callable registration: canonical descriptors, opaque CallableHandle,
refcounts), upstream ``docs/callable-identity-registration.md`` ("Canonical Descriptor",
"Runtime Contracts", "Registry Contract", "Registration Failure Contract", "Dispatch Contract") and
``docs/hierarchical-level-runtime.md`` "4. Recursive Composition" (the init-time target check).
"""

from __future__ import annotations

import re

from conformance.cases._kit import N, add_args, noop
from conformance.catalog import case

CIR = "docs/callable-identity-registration.md"
REGISTRY = (CIR, "Registry Contract")
RUNTIME = (CIR, "Runtime Contracts")
DISPATCH = (CIR, "Dispatch Contract")
DESCRIPTOR = (CIR, "Canonical Descriptor")
HASHID = re.compile(r"sha256:[0-9a-f]{64}")


@case("REG-001", "register returns a handle with a sha256 hashid, kind and namespace", spec=DESCRIPTOR)
def handle_fields(rt, ctx):
    w = rt.Worker(3, device_ids=[0], num_sub_workers=1)
    hk, hp = w.register(rt.kernel("add")), w.register(noop)
    ctx.check("chip hashid format", True, bool(HASHID.fullmatch(hk.hashid)))
    ctx.check("python hashid format", True, bool(HASHID.fullmatch(hp.hashid)))
    ctx.check("chip (kind, namespace)", ("CHIP_CALLABLE", "LOCAL_CHIP"), (hk.kind, hk.target_namespace))
    ctx.check("python (kind, namespace)", ("PYTHON_SERIALIZED", "LOCAL_PYTHON"), (hp.kind, hp.target_namespace))


@case("REG-002", "The same callable registered twice has one hashid and two distinct handles", spec=REGISTRY)
def duplicate_handles(rt, ctx):
    w = rt.Worker(3, num_sub_workers=1)
    h1, h2 = w.register(noop), w.register(noop)
    ctx.check("hashids equal", True, h1.hashid == h2.hashid)
    ctx.check("handles distinct", True, h1 != h2)


@case("REG-003", "Identical registrations on two Workers share the hashid, not the handle", spec=DESCRIPTOR)
def two_workers(rt, ctx):
    a, b = rt.Worker(3, num_sub_workers=1), rt.Worker(3, num_sub_workers=1)
    ha, hb = a.register(noop), b.register(noop)
    ctx.check("hashids equal", True, ha.hashid == hb.hashid)
    ctx.check("handles distinct", True, ha != hb)


@case("REG-004", "A CallableHandle built from its public fields is no live registration: submit and "
      "unregister reject it", spec=RUNTIME)
def constructed_handle(rt, ctx):
    w = rt.Worker(3, num_sub_workers=1)
    real = w.register(noop)
    fake = rt.CallableHandle(real.hashid, real.kind, real.target_namespace)
    w.init()
    ctx.run_expecting(w, lambda o, _a, _c: o.submit_sub(fake), "FOREIGN_HANDLE", "submit constructed handle")
    with ctx.expect_error("unregister constructed handle", "FOREIGN_HANDLE"):
        w.unregister(fake)
    ctx.run_expecting(w, lambda o, _a, _c: o.submit_sub(real), None, "submit the registered handle")
    w.close()


@case("REG-005", "A CallableHandle whose public fields were changed is rejected by submit and unregister",
      spec=RUNTIME)
def mutated_handle(rt, ctx):
    w = rt.Worker(3, num_sub_workers=1)
    h, twin = w.register(noop), w.register(noop)
    h.hashid = "sha256:" + "0" * 64
    w.init()
    ctx.run_expecting(w, lambda o, _a, _c: o.submit_sub(h), "HANDLE_MUTATED", "submit mutated handle")
    with ctx.expect_error("unregister mutated handle", "HANDLE_MUTATED"):
        w.unregister(h)
    ctx.run_expecting(w, lambda o, _a, _c: o.submit_sub(twin), None, "submit the other handle of that hashid")
    w.close()


@case("REG-006", "A second unregister of a handle is UNKNOWN_CALLABLE and logged as a failed call",
      spec=REGISTRY)
def double_unregister(rt, ctx):
    w = rt.Worker(3, num_sub_workers=1)
    h = w.register(noop)
    w.init()
    with ctx.expect_ok("first unregister"):
        w.unregister(h)
    with ctx.expect_error("second unregister", "UNKNOWN_CALLABLE"):
        w.unregister(h)
    rec = ctx.take(w)
    ctx.check("unregister call log", [("unregister", True, None), ("unregister", False, "UNKNOWN_CALLABLE")],
              [(c.call, c.ok, c.error_class) for c in rec.calls if c.call == "unregister"])
    w.close()


@case("REG-007", "An unregistered handle cannot be submitted (UNKNOWN_CALLABLE)", spec=DISPATCH)
def submit_unregistered(rt, ctx):
    w = rt.Worker(3, num_sub_workers=1)
    h = w.register(noop)
    keep = w.register(noop)
    w.init()
    w.unregister(h)
    rec = ctx.run_expecting(w, lambda o, _a, _c: o.submit_sub(h), "UNKNOWN_CALLABLE")
    ctx.expect_outcomes(rec, {}, exact=True)
    ctx.run_expecting(w, lambda o, _a, _c: o.submit_sub(keep), None, label="the duplicate still runs")
    w.close()


@case("REG-008", "A handle issued by another Worker is FOREIGN_HANDLE at submit", spec=DISPATCH)
def foreign_handle(rt, ctx):
    w, other = rt.Worker(3, num_sub_workers=1), rt.Worker(3, num_sub_workers=1)
    w.register(noop)
    theirs = other.register(noop)
    w.init()
    ctx.run_expecting(w, lambda o, _a, _c: o.submit_sub(theirs), "FOREIGN_HANDLE")
    with ctx.expect_error("unregister of a foreign handle", "FOREIGN_HANDLE"):
        w.unregister(theirs)
    w.close()


@case("REG-009", "submit accepts only CallableHandles (not a hashid string)", spec=DISPATCH)
def submit_string(rt, ctx):
    w = rt.Worker(3, num_sub_workers=1)
    h = w.register(noop)
    w.init()
    ctx.run_expecting(w, lambda o, _a, _c: o.submit_sub(h.hashid), ("INVALID_ARGUMENT", "UNKNOWN_CALLABLE"))
    w.close()


@case("REG-010", "A Python callable registered on an L2 Worker is INVALID_ARGUMENT", spec=DESCRIPTOR)
def python_at_l2(rt, ctx):
    w = rt.Worker(2)
    with ctx.expect_error("L2.register(python fn)", "INVALID_ARGUMENT"):
        w.register(noop)
    rec = None
    w.init()
    rec = ctx.take(w)
    ctx.check("register call logged as failed", [("register", False, "INVALID_ARGUMENT")],
              [(c.call, c.ok, c.error_class) for c in rec.calls if c.call == "register"])
    w.close()


@case("REG-011", "register of a non-callable is INVALID_ARGUMENT", spec=DESCRIPTOR)
def non_callable(rt, ctx):
    with ctx.expect_error("register(42)", "INVALID_ARGUMENT"):
        rt.Worker(3, num_sub_workers=1).register(42)


@case("REG-012", "init() fails when a Python callable has no SUB or next-level target", spec=REGISTRY)
def python_without_target(rt, ctx):
    w = rt.Worker(3, device_ids=[0])
    w.register(noop)
    with ctx.expect_error("init", "INVALID_STATE"):
        w.init()


@case("REG-013", "init() fails when a chip kernel has no chip target", spec=REGISTRY)
def chip_without_target(rt, ctx):
    w = rt.Worker(3, num_sub_workers=1)
    w.register(rt.kernel("add"))
    with ctx.expect_error("init", "INVALID_STATE"):
        w.init()


@case("REG-014", "Unregistering the only unplaceable callable lets init() succeed", spec=REGISTRY)
def unregister_then_init(rt, ctx):
    w = rt.Worker(3, device_ids=[0])
    h = w.register(noop)
    w.unregister(h)
    with ctx.expect_ok("init"):
        w.init()
    w.close()


@case("REG-015", "A SUB handle submitted to submit_next_level at L3 is INVALID_ARGUMENT", spec=DISPATCH)
def sub_handle_to_next_level(rt, ctx):
    w = rt.Worker(3, device_ids=[0], num_sub_workers=1)
    h = w.register(noop)
    w.init()
    rec = ctx.run_expecting(w, lambda o, _a, _c: o.submit_next_level(h, rt.TaskArgs(), worker=0),
                            "INVALID_ARGUMENT")
    ctx.expect_outcomes(rec, {}, exact=True)
    w.close()


@case("REG-016", "A kernel registered after init() is installed and runs", spec=(CIR, "Local Control Contract"))
def register_after_init(rt, ctx):
    w = rt.Worker(3, device_ids=[0], num_sub_workers=1)
    w.init()
    add = w.register(rt.kernel("add"))
    a, out = rt.tensor(N, fill=2.0), rt.tensor(N)
    rec = ctx.run_expecting(w, lambda o, _a, _c: o.submit_next_level(add, add_args(rt, a, a, out), worker=0), None)
    rt.record_output(rec, "out", out)
    ctx.expect_output(rec, "out", rt.tensor(N, fill=4.0), kernel="add")
    w.close()


@case("REG-017", "Unregistering one of two duplicate handles leaves the other runnable", spec=REGISTRY)
def duplicate_survives(rt, ctx):
    w = rt.Worker(3, device_ids=[0])
    h1, h2 = w.register(rt.kernel("add")), w.register(rt.kernel("add"))
    w.init()
    w.unregister(h1)
    a, out = rt.tensor(N, fill=1.5), rt.tensor(N)
    rec = ctx.run_expecting(w, lambda o, _a, _c: o.submit_next_level(h2, add_args(rt, a, a, out), worker=0), None)
    rt.record_output(rec, "out", out)
    ctx.expect_output(rec, "out", rt.tensor(N, fill=3.0), kernel="add")
    w.close()


@case("REG-018", "A chip kernel registered on an L4 reaches the chips of its L3 children: init() succeeds",
      spec=(CIR, "Target Namespace"))
def chip_kernel_cascades_to_descendant_chips(rt, ctx):
    # LOCAL_CHIP covers "descendant chip registries reached by the existing recursive ChipCallable cascade";
    # found by the stateful machine (the simulator refused it, the real runtime accepts it).
    pod, node = rt.Worker(4), rt.Worker(3, device_ids=[0], num_sub_workers=1)
    pod.add_worker(node)
    pod.register(rt.kernel("add"))
    with ctx.expect_ok("init"):
        pod.init()
    pod.close()
