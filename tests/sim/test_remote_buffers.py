"""Remote buffers: handles, copies, export/import, sidecar checks at submit, lifetimes and faults.

Spec: upstream ``docs/remote-l3-worker-design/buffers-and-transports.md`` ("Buffer Handles",
"Public Memory API", "TaskArgs Sidecar Contract", "Export/Import Handle Semantics", "Release
Policy", "Dependency Keys", "A2 RoCE HCOMM Profile", "Simulation Backend"),
``docs/remote-l3-worker-design.md`` ("Remote TaskArgs Representation", "Failure Semantics",
"Buffer Lifecycle"), ``docs/remote-l3-worker-design/protocol.md`` ("RemoteTensorDesc", "Remote
Buffer Export and Import Controls", "CONTROL Payload") and the seed 001 review (access flags per
tag, opaque export descriptors, no public RemoteTaskArgs, pending frees kept on failure).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import sim
from reference import get_kernel
from sim import SimConfig, TaskArgs, TensorArgType, Worker
from sim.errors import (
    AccessDenied,
    ControlFailure,
    InvalidArgument,
    InvalidState,
    NotSupported,
    StaleGeneration,
    UncertainState,
)
from sim.remote.faults import ControlFault, FaultPlan, SessionCrash
from sim.remote.refs import RemoteBufferExport, RemoteBufferHandle, RemoteTensorRef
from sim.remote.spec import RemoteCallable, RemoteWorkerSpec
from sim.remote.wire import ControlName, ReleaseDomainCommand
from sim.trace import EventKind

ADD = "sim.remote.examples:add_buffers"
NOOP = "sim.remote.examples:noop"
F32 = "float32"


def l4(n: int = 2, *, faults=None, mode: str = "conformance", transport: str = "host_tcp", seed: int = 5):
    w = Worker(level=4, sim=SimConfig(seed=seed, faults=faults, mode=mode))
    rids = [w.add_remote_worker(RemoteWorkerSpec(f"127.0.0.1:{9100 + i}", "a2a3sim", device_ids=(0,),
                                                 transport=transport)) for i in range(n)]
    w.register(get_kernel("add"))
    add = w.register(RemoteCallable(ADD), workers=rids)
    noop = w.register(RemoteCallable(NOOP), workers=rids)
    w.init()
    return w, rids, add, noop


def ref(h, n: int = 16, offset: int = 0) -> RemoteTensorRef:
    return RemoteTensorRef(h, offset=offset, shape=(n,), dtype=F32)


def args(*pairs) -> TaskArgs:
    ta = TaskArgs()
    for t, tag in pairs:
        ta.add_tensor(t, tag)
    return ta


def submit(w, handle, ta, wid) -> None:
    w.run(lambda o, a, c: o.submit_next_level(handle, ta, worker=wid))


def physical_frees(w, scope: str) -> list:
    return [e for e in w.simulation.trace.of_kind(EventKind.CONTROL)
            if e.scope == scope and e.subject == "physical_free"]


# ------------------------------------------------------------------------------- data and time


def test_copy_round_trip_and_a_remote_kernel_sees_the_bytes() -> None:
    w, (r0, _), add, _ = l4()
    a, b, out = (w.remote_malloc(worker=r0, nbytes=64) for _ in range(3))
    w.remote_copy_to(a, np.arange(16, dtype=np.float32), 64)
    w.remote_copy_to(b, np.full(16, 10, np.float32), 64)
    submit(w, add, args((ref(a), TensorArgType.INPUT), (ref(b), TensorArgType.INPUT),
                        (ref(out), TensorArgType.OUTPUT)), r0)
    got = np.zeros(16, np.float32)
    w.remote_copy_from(out, got, 64)
    np.testing.assert_array_equal(got, np.arange(16, dtype=np.float32) + 10)
    part = bytearray(8)
    w.remote_copy_from(out, part, 8, offset=4)
    assert np.frombuffer(part, np.float32).tolist() == [11.0, 12.0]
    calls = [(c.call, c.ok) for c in w.take_record().calls if c.call.startswith("remote_")]
    assert ("remote_malloc", True) in calls and ("remote_copy_from", True) in calls
    w.close()


def test_copy_time_grows_with_bytes_over_the_link() -> None:
    w, (r0, _), _, _ = l4()
    big = w.remote_malloc(worker=r0, nbytes=1 << 20)
    t0 = w.simulation.now
    w.remote_copy_to(big, np.zeros(16, np.uint8), 16)
    small = w.simulation.now - t0
    t0 = w.simulation.now
    w.remote_copy_to(big, np.zeros(1 << 20, np.uint8), 1 << 20)
    large = w.simulation.now - t0
    gbps = w.simulation.profile.transports["host_tcp"].gbps
    assert large - small == pytest.approx(((1 << 20) - 16) / (gbps * 1e3), rel=1e-6)
    w.close()


def test_each_memory_call_is_a_control_on_the_ordered_command_lane() -> None:
    w, (r0, _), _, _ = l4()
    h = w.remote_malloc(worker=r0, nbytes=32)
    w.remote_copy_to(h, b"\x01" * 32, 32)
    labels = [e.subject for e in w.simulation.trace.of_kind(EventKind.FRAME) if e.scope == "l4.w0.link"]
    assert any(s.startswith("ALLOC_REMOTE_BUFFER#") for s in labels)
    assert any(s.startswith("COPY_TO_REMOTE#") for s in labels)
    w.close()


# ------------------------------------------------------------------------------- opacity


def test_handles_and_exports_cannot_be_constructed() -> None:
    with pytest.raises(InvalidArgument):
        RemoteBufferHandle(worker_id=0, buffer_id=1, generation=1)
    with pytest.raises(InvalidArgument):
        RemoteBufferExport(owner_worker_id=0, buffer_id=1, generation=1, export_id=1)


def test_export_is_opaque_and_immutable() -> None:
    w, (r0, _), _, _ = l4()
    h = w.remote_malloc(worker=r0, nbytes=64)
    e = w.remote_export(h, access="read")
    for attr in ("remote_addr", "rkey_or_token", "ub_ldst_va", "transport_descriptor", "export_id"):
        assert not hasattr(e, attr)
    text = repr(e)
    assert "sim-window" not in text and "descriptor" not in text and "rkey" not in text
    assert (e.owner_worker_id, e.offset, e.nbytes, e.access_flags, e.transport_profile) == (r0, 0, 64, 1, "host_tcp")
    with pytest.raises(AttributeError):
        e.nbytes = 128  # type: ignore[misc]
    w.close()


def test_forged_tampered_and_foreign_exports_are_rejected() -> None:
    w, (r0, r1), _, _ = l4()
    h = w.remote_malloc(worker=r0, nbytes=64)
    e = w.remote_export(h, access="read")
    tampered = RemoteBufferExport._mint(e._registry, dataclasses.replace(e._wire, access_flags=3), h)
    with pytest.raises(InvalidArgument, match="altered"):
        w.remote_import(tampered, worker=r1)
    widened = RemoteBufferExport._mint(e._registry, dataclasses.replace(e._wire, nbytes=4096), h)
    with pytest.raises(InvalidArgument):
        w.remote_import(widened, worker=r1)
    other, (_o0, o1), _, _ = l4(seed=9)
    with pytest.raises(InvalidArgument):
        other.remote_import(e, worker=o1)
    with pytest.raises(InvalidArgument):
        w.remote_import("not an export", worker=r1)  # type: ignore[arg-type]
    assert w.remote_import(e, worker=r1).access_flags == 1  # the genuine one still imports
    other.close()
    w.close()


def test_no_public_remote_task_args() -> None:
    assert not hasattr(sim, "RemoteTaskArgs")
    import sim.remote.refs as refs

    assert not hasattr(refs, "RemoteTaskArgs")


# ------------------------------------------------------------------------------- submit checks


@pytest.mark.parametrize(("grant", "tag", "ok"), [
    ("read", TensorArgType.INPUT, True),
    ("read", TensorArgType.OUTPUT, False),
    ("read", TensorArgType.OUTPUT_EXISTING, False),
    ("read", TensorArgType.INOUT, False),
    ("read", TensorArgType.NO_DEP, False),
    ("write", TensorArgType.INPUT, False),
    ("write", TensorArgType.OUTPUT, True),
    ("write", TensorArgType.OUTPUT_EXISTING, True),
    ("write", TensorArgType.INOUT, False),
    ("write", TensorArgType.NO_DEP, False),
    ("readwrite", TensorArgType.INPUT, True),
    ("readwrite", TensorArgType.OUTPUT, True),
    ("readwrite", TensorArgType.OUTPUT_EXISTING, True),
    ("readwrite", TensorArgType.INOUT, True),
    ("readwrite", TensorArgType.NO_DEP, True),
])
def test_access_flags_are_enforced_per_tag(grant: str, tag: TensorArgType, ok: bool) -> None:
    w, (r0, r1), _, noop = l4()
    h = w.remote_malloc(worker=r0, nbytes=64)
    imp = w.remote_import(w.remote_export(h, access=grant), worker=r1)
    ta = args((ref(imp), tag))
    if ok:
        submit(w, noop, ta, r1)
    else:
        with pytest.raises(AccessDenied) as info:
            submit(w, noop, ta, r1)
        msg = str(info.value)
        assert "tensor argument 0" in msg and tag.name in msg and f"grants {grant}" in msg
    w.close()


def test_remote_data_is_eligible_only_on_its_owner_or_importer() -> None:
    w, (r0, r1), _, noop = l4()
    h = w.remote_malloc(worker=r0, nbytes=64)
    with pytest.raises(InvalidArgument, match="owned by remote worker 0"):
        submit(w, noop, args((ref(h), TensorArgType.INPUT)), r1)
    imp = w.remote_import(w.remote_export(h), worker=r1)
    with pytest.raises(InvalidArgument, match="imported on remote worker 1"):
        submit(w, noop, args((ref(imp), TensorArgType.INPUT)), r0)
    submit(w, noop, args((ref(imp), TensorArgType.INPUT)), r1)
    w.close()


def test_owner_and_imported_views_share_the_owner_stable_dependency_key() -> None:
    w, (r0, r1), _, noop = l4()
    h = w.remote_malloc(worker=r0, nbytes=64)
    imp = w.remote_import(w.remote_export(h, offset=0, nbytes=64), worker=r1)
    assert ref(h)._key == ref(imp)._key == ("remote", r0, h.buffer_id, h.generation, 0)
    assert ref(h, 4, offset=16)._key != ref(h)._key  # exact-start semantics

    def orch(o, a, c):
        o.submit_next_level(noop, args((ref(h), TensorArgType.OUTPUT)), worker=r0)
        o.submit_next_level(noop, args((ref(imp), TensorArgType.INPUT)), worker=r1)

    w.run(orch)
    tasks = sorted(w.take_record().tasks.values(), key=lambda t: t.task_id)
    outer = [t for t in tasks if t.node == "l4"]
    assert outer[1].producers == (outer[0].task_id,) and outer[1].start >= outer[0].end
    w.close()


def test_bounds_are_checked_against_the_handle() -> None:
    w, (r0, _), _, _ = l4()
    h = w.remote_malloc(worker=r0, nbytes=64)
    with pytest.raises(InvalidArgument):
        RemoteTensorRef(h, offset=8, shape=(16,), dtype=F32)
    with pytest.raises(InvalidArgument):
        RemoteTensorRef(h, shape=(), dtype=F32)
    with pytest.raises(InvalidArgument):
        w.remote_copy_to(h, bytes(64), 64, offset=1)
    with pytest.raises(InvalidArgument):
        w.remote_export(h, offset=32, nbytes=64)
    with pytest.raises(InvalidArgument):
        w.remote_malloc(worker=r0, nbytes=0)
    w.close()


def test_stale_generations_are_rejected_and_ids_come_back_with_a_new_generation() -> None:
    w, (r0, _), _, noop = l4()
    h = w.remote_malloc(worker=r0, nbytes=64)
    r = ref(h)
    w.remote_free(h)
    assert h.state == "FREED" and h.released
    for call in (lambda: ref(h), lambda: w.remote_copy_to(h, bytes(64), 64), lambda: w.remote_export(h),
                 lambda: submit(w, noop, args((r, TensorArgType.INPUT)), r0)):
        with pytest.raises(StaleGeneration):
            call()
    again = w.remote_malloc(worker=r0, nbytes=64)
    assert (again.buffer_id, again.generation) == (h.buffer_id, h.generation + 1)
    w.remote_free(h)  # idempotent
    w.close()


def test_local_workers_reject_remote_refs_and_remote_workers_reject_host_tensors() -> None:
    w = Worker(level=4, num_sub_workers=1)
    local = w.add_worker(Worker(level=3, device_ids=[0]))
    rid = w.add_remote_worker(RemoteWorkerSpec("127.0.0.1:9200", "a2a3sim"))
    noop = w.register(RemoteCallable(NOOP), workers=[rid])
    sub = w.register(lambda a: None)
    w.init()
    inline = RemoteTensorRef.host_inline(b"\0" * 8, shape=(2,), dtype=F32)
    with pytest.raises(InvalidArgument, match="local workers reject"):
        w.run(lambda o, a, c: o.submit_sub(sub, args((inline, TensorArgType.INPUT))))
    with pytest.raises(InvalidArgument, match="local workers reject"):
        w.run(lambda o, a, c: o.submit_next_level(sub, args((inline, TensorArgType.INPUT)), worker=local))
    with pytest.raises(InvalidArgument, match="local tensor"):
        submit(w, noop, args((np.zeros(4, np.float32), TensorArgType.INPUT)), rid)
    w.close()


def test_host_inline_is_bounded_read_only_and_delivered() -> None:
    with pytest.raises(InvalidArgument):
        RemoteTensorRef.host_inline(bytes((1 << 20) + 4), shape=((1 << 18) + 1,), dtype=F32)
    with pytest.raises(InvalidArgument):
        RemoteTensorRef.host_inline(bytes(12), shape=(4,), dtype=F32)
    w, (r0, _), add, noop = l4()
    one = RemoteTensorRef.host_inline(np.ones(16, np.float32), shape=(16,), dtype=F32)
    with pytest.raises(AccessDenied):
        submit(w, noop, args((one, TensorArgType.OUTPUT)), r0)
    out = w.remote_malloc(worker=r0, nbytes=64)
    two = RemoteTensorRef.host_inline(np.full(16, 2, np.float32), shape=(16,), dtype=F32)
    submit(w, add, args((one, TensorArgType.INPUT), (two, TensorArgType.INPUT), (ref(out), TensorArgType.OUTPUT)), r0)
    got = np.zeros(16, np.float32)
    w.remote_copy_from(out, got, 64)
    assert got.tolist() == [3.0] * 16
    w.close()


def test_memory_calls_need_a_started_worker_with_remote_children() -> None:
    w = Worker(level=4)
    rid = w.add_remote_worker(RemoteWorkerSpec("127.0.0.1:9300", "a2a3sim"))
    with pytest.raises(InvalidState):
        w.remote_malloc(worker=rid, nbytes=8)
    w.init()
    with pytest.raises(InvalidState):
        w.run(lambda o, a, c: w.remote_malloc(worker=rid, nbytes=8))
    with pytest.raises(InvalidArgument):
        Worker(level=4).remote_malloc(worker=0, nbytes=8)
    w.close()


# ------------------------------------------------------------------------------- lifetimes


def test_owner_free_is_deferred_until_the_using_task_is_terminal() -> None:
    w, (r0, _), add, _ = l4()
    a = w.remote_malloc(worker=r0, nbytes=64)
    b = w.remote_malloc(worker=r0, nbytes=64)  # the inputs: a task may not also read what it writes

    def orch(o, _a, _c):
        o.submit_next_level(add, args((ref(b), TensorArgType.INPUT), (ref(b), TensorArgType.INPUT),
                                      (ref(a), TensorArgType.OUTPUT_EXISTING)), worker=r0)
        w.remote_free(a)  # allowed in a run: it only defers
        assert a.state == "RELEASED"

    w.run(orch)
    assert a.state == "FREED"
    task = next(t for t in w.take_record().tasks.values() if t.node == "l4")
    (free,) = physical_frees(w, "l4.w0.l3")
    assert free.t >= task.end
    w.close()


def test_owner_free_waits_for_imports_and_release_import_for_its_tasks() -> None:
    w, (r0, r1), _, noop = l4()
    h = w.remote_malloc(worker=r0, nbytes=64)
    imp = w.remote_import(w.remote_export(h), worker=r1)
    w.remote_free(h)
    assert h.state == "RELEASED" and not physical_frees(w, "l4.w0.l3")

    def orch(o, _a, _c):
        o.submit_next_level(noop, args((ref(imp), TensorArgType.INPUT)), worker=r1)
        w.remote_release_import(imp)
        assert imp.state == "RELEASED"

    w.run(orch)
    assert imp.state == "FREED" and h.state == "FREED"
    task = next(t for t in w.take_record().tasks.values() if t.node == "l4")
    release = next(e for e in w.simulation.trace.of_kind(EventKind.CONTROL)
                   if e.scope == "l4.w1.l3" and e.subject == "release_import")
    (free,) = physical_frees(w, "l4.w0.l3")
    assert task.end <= release.t <= free.t
    with pytest.raises(InvalidArgument):
        w.remote_free(imp)
    with pytest.raises(InvalidArgument):
        w.remote_release_import(h)
    w.close()


def test_a_failed_free_stays_pending_and_is_retried() -> None:
    w, (r0, _), _, _ = l4(faults=FaultPlan((ControlFault("FREE_REMOTE_BUFFER", 0, ordinal=1),)))
    h = w.remote_malloc(worker=r0, nbytes=64)
    with pytest.raises(ControlFailure):
        w.remote_free(h)
    assert h.state == "RELEASED" and h in w._remote._buffers.pending and not physical_frees(w, "l4.w0.l3")
    w.remote_free(h)  # the retry goes through
    assert h.state == "FREED" and len(physical_frees(w, "l4.w0.l3")) == 1
    errors = [c.error_class for c in w.take_record().calls if c.call == "remote_free" and not c.ok]
    assert errors == ["CONTROL_FAILURE"]
    w.close()


def test_a_failed_release_import_stays_pending_and_holds_the_owner() -> None:
    w, (r0, r1), _, _ = l4(faults=FaultPlan((ControlFault("RELEASE_IMPORT", 1, ordinal=1),)))
    h = w.remote_malloc(worker=r0, nbytes=64)
    imp = w.remote_import(w.remote_export(h), worker=r1)
    with pytest.raises(ControlFailure):
        w.remote_release_import(imp)
    w.remote_free(h)
    assert imp.state == "RELEASED" and h.state == "RELEASED"
    w.run(lambda o, a, c: None)  # the run fence retries
    assert imp.state == "FREED" and h.state == "FREED"
    w.close()


def test_a_failed_import_publishes_nothing_and_does_not_hold_the_owner() -> None:
    w, (r0, r1), _, _ = l4(faults=FaultPlan((ControlFault("IMPORT_BUFFER", 1, ordinal=1),)))
    h = w.remote_malloc(worker=r0, nbytes=64)
    e = w.remote_export(h)
    with pytest.raises(ControlFailure):
        w.remote_import(e, worker=r1)
    assert h._import_refs == 0
    w.remote_free(h)
    assert h.state == "FREED"
    w.close()


def test_a_free_on_a_failed_endpoint_is_uncertain() -> None:
    w, (r0, _), _, _ = l4(faults=FaultPlan((SessionCrash(0, 400.0),)))
    h = w.remote_malloc(worker=r0, nbytes=64)
    w.simulation.env.run(until=100_000_000)  # health expiry fails the endpoint
    with pytest.raises(UncertainState):
        w.remote_free(h)
    assert h.state == "UNCERTAIN" and not w._remote._buffers.pending
    w.close()


# ------------------------------------------------------------------------------- transports


def test_hcomm_profiles_and_comm_domain_controls_are_not_supported_in_conformance_mode() -> None:
    w, (r0, _), _, _ = l4()
    h = w.remote_malloc(worker=r0, nbytes=64)
    with pytest.raises(NotSupported):
        w.remote_export(h, transport_profile="roce")
    reg = w._remote._buffers
    with pytest.raises(NotSupported, match="CommDomain"):
        reg._call(reg.rs.endpoints[r0], ControlName.RELEASE_DOMAIN, ReleaseDomainCommand(1, 1))
    w.close()


def test_experiment_mode_models_hcomm_links_as_what_if_profiles() -> None:
    times = {}
    for transport in ("host_tcp", "roce", "ub"):
        w, (r0,), _, _ = l4(1, mode="experiment", transport=transport)
        h = w.remote_malloc(worker=r0, nbytes=1 << 20)
        t0 = w.simulation.now
        w.remote_copy_to(h, np.zeros(1 << 20, np.uint8), 1 << 20)
        times[transport] = w.simulation.now - t0
        e = w.remote_export(h, transport_profile=transport)
        assert e.transport_profile == transport
        w.close()
    assert times["ub"] < times["roce"] < times["host_tcp"]


# ------------------------------------------------------------------------------- property

_OPS = st.lists(st.tuples(st.sampled_from(["malloc", "free", "share", "release", "copy", "run"]),
                          st.integers(0, 7), st.integers(0, 1), st.sampled_from(["read", "write", "readwrite"])),
                min_size=1, max_size=14)
_FAULTS = st.lists(st.tuples(st.sampled_from(["FREE_REMOTE_BUFFER", "RELEASE_IMPORT", "IMPORT_BUFFER"]),
                             st.integers(0, 1), st.sampled_from([0.3, 1.0]), st.sampled_from(["error", "timeout"])),
                   max_size=2)


def _scenario(ops, faults, seed: int):
    plan = FaultPlan(tuple(ControlFault(c, wid, probability=p, outcome=out) for c, wid, p, out in faults))
    w, rids, _, noop = l4(faults=plan, seed=seed)
    owned: list = []
    imports: list = []
    used: dict[int, list[str]] = {}  # id(owner handle) -> names of tasks that named it or its imports

    def pick(pool, i):
        return pool[i % len(pool)] if pool else None

    for op, i, wsel, access in ops:
        try:
            if op == "malloc":
                owned.append(w.remote_malloc(worker=rids[wsel], nbytes=64))
            elif op == "free" and owned:
                w.remote_free(pick(owned, i))
            elif op == "share" and owned:
                h = pick(owned, i)
                imports.append(w.remote_import(w.remote_export(h, access=access), worker=rids[1 - h.worker_id]))
            elif op == "release" and imports:
                w.remote_release_import(pick(imports, i))
            elif op == "copy" and owned:
                w.remote_copy_to(pick(owned, i), bytes(64), 64)
            elif op == "run":
                live = [h for h in owned + imports if h.state == "LIVE"]

                def orch(o, _a, _c, live=live, i=i):
                    for k, h in enumerate(live[: 1 + i % 3]):
                        tag = TensorArgType.INPUT if h.access_flags & 1 else TensorArgType.OUTPUT
                        o.submit_next_level(noop, args((ref(h), tag)), worker=h.worker_id)
                        owner = h._owner or h
                        used.setdefault(id(owner), []).append(f"l4:r{o._run.id}:t{k + 1}")
                        if k == i % 2:
                            (w.remote_release_import if h.is_imported else w.remote_free)(h)

                w.run(orch)
        except sim.SimError:
            pass  # every rejected or failed call is a recorded ERROR; the property checks the rest
    w.close()
    return w, owned, imports, used


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=_OPS, faults=_FAULTS, seed=st.integers(0, 3))
# Found by this property: close() settling an import UNCERTAIN retried its owner's failed free, and
# nothing waited for that reply (a cleanup control left in flight after close).
@example(ops=[("malloc", 0, 1, "read")] + [("malloc", 0, 0, "read")] * 7 + [("share", 0, 0, "read")],
         faults=[("FREE_REMOTE_BUFFER", 0, 0.3, "error"), ("RELEASE_IMPORT", 0, 0.3, "error")], seed=0)
def test_property_remote_buffer_lifetimes_under_control_faults(ops, faults, seed) -> None:
    w, owned, imports, used = _scenario(ops, faults, seed)
    rec = w.take_record()
    assert all(t.outcome.value in ("COMPLETED", "FAILED", "NOT_RUN") for t in rec.tasks.values())
    assert all(c.ok or c.error_class for c in rec.calls)
    reg = getattr(w._remote, "_buffers", None)
    if reg is not None:
        assert not reg.pending and not reg.inflight
    assert all(h.state in ("LIVE", "FREED", "UNCERTAIN") for h in owned + imports)
    assert w.simulation.now < 1e9
    # No physical free while referenced: every task that named the buffer ended first, every import
    # of it was torn down first (an uncertain import keeps the owner allocated until shutdown).
    for h in owned:
        scope = f"l4.w{h.worker_id}.l3"
        frees = [e.t for e in physical_frees(w, scope)
                 if e.detail.split()[0] == f"b{h.buffer_id}g{h.generation}"]
        if not frees:
            continue
        t_free = frees[0]
        for name in used.get(id(h), []):
            task = rec.tasks.get(name)
            if task is not None and task.end is not None:
                assert task.end <= t_free
        for imp in imports:
            if imp._owner is h and imp.state == "UNCERTAIN":
                assert "at shutdown" in next(e.detail for e in physical_frees(w, scope)
                                             if e.detail.startswith(f"b{h.buffer_id}g{h.generation}"))
    # Same seed, same scenario: the same trace.
    again, *_ = _scenario(ops, faults, seed)
    assert again.simulation.trace.digest() == w.simulation.trace.digest()
