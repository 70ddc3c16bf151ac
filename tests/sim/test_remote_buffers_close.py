"""``close()`` with remote buffers: every release round trip is waited for, states only on confirmation.

Spec: upstream ``docs/remote-l3-worker-design/buffers-and-transports.md`` "Release Policy" (an
owner's physical free waits until its imports and slot refs have drained; ``RELEASE_IMPORT`` tears
down only the importer's mapping), "HCOMM Adapter Contract" (a control returns only after its
CONTROL_REPLY, or a timeout / disconnect turned into a failed reply) and
``docs/remote-l3-worker-design.md`` "Buffer Lifecycle"; the seed 001 review ("Pending Remote Free
Error Handling": a cleanup that cannot be confirmed is UNCERTAIN, never forgotten).

Before this was fixed, ``close()`` of a Worker holding an import whose owner's free was pending
marked the owner FREED with no confirmation (and, when the import's release went through at
close, sent the owner's FREE_REMOTE_BUFFER without waiting for it), while the import handle read
LIVE after close.
"""

from __future__ import annotations

from reference import get_kernel
from sim import SimConfig, Worker
from sim.remote.faults import ControlFault, FaultPlan, SessionCrash
from sim.remote.spec import RemoteCallable, RemoteWorkerSpec
from sim.trace import EventKind

NOOP = "sim.remote.examples:noop"
TERMINAL = ("FREED", "UNCERTAIN")


def l4(*faults, seed: int = 5):
    w = Worker(level=4, sim=SimConfig(seed=seed, faults=FaultPlan(faults) if faults else None))
    rids = [w.add_remote_worker(RemoteWorkerSpec(f"127.0.0.1:{9100 + i}", "a2a3sim", device_ids=(0,)))
            for i in range(2)]
    w.register(get_kernel("add"))
    w.register(RemoteCallable(NOOP), workers=rids)
    w.init()
    return w, rids


def shared(w, r0, r1):
    """An owner buffer on r0 whose free is pending, held by a live import of it on r1."""
    h = w.remote_malloc(worker=r0, nbytes=64)
    imp = w.remote_import(w.remote_export(h), worker=r1)
    w.remote_free(h)
    assert h.state == "RELEASED" and imp.state == "LIVE"
    return h, imp


def events(w, scope: str, subject: str) -> list:
    return [e for e in w.simulation.trace.of_kind(EventKind.CONTROL) if e.scope == scope and e.subject == subject]


def settled(w, label: str) -> float:
    """When the parent marked handle ``label`` settled (its confirmation arrived)."""
    return next(e.t for e in events(w, "l4", "remote_buffer") if e.detail.startswith(label))


def test_close_releases_the_import_then_frees_its_owner_and_waits_for_both_replies() -> None:
    w, (r0, r1) = l4()
    h, imp = shared(w, r0, r1)
    w.close()
    assert (imp.state, h.state) == ("FREED", "FREED")
    reg = w._remote._buffers
    assert not reg.pending and not reg.inflight
    (release,) = events(w, "l4.w1.l3", "release_import")
    (free,) = events(w, "l4.w0.l3", "physical_free")
    shutdown = min(e.t for e in w.simulation.trace.of_kind(EventKind.FRAME) if e.subject == "SHUTDOWN")
    # Import torn down, confirmed, then the owner freed, confirmed -- all before SHUTDOWN.
    assert release.t < settled(w, "w1:import1") <= free.t < settled(w, "w0:b1") <= shutdown
    assert "at shutdown" not in free.detail


def test_every_handle_reads_a_terminal_state_after_close() -> None:
    w, (r0, r1) = l4()
    h, imp = shared(w, r0, r1)
    untouched = w.remote_malloc(worker=r1, nbytes=32)  # never freed by the user
    w.close()
    assert all(x.state in TERMINAL for x in (h, imp, untouched))
    assert untouched.state == "FREED"  # confirmed by its FREE_REMOTE_BUFFER reply, not assumed


def test_a_release_that_fails_at_close_is_uncertain_and_holds_its_owner() -> None:
    w, (r0, r1) = l4(ControlFault("RELEASE_IMPORT", 1, probability=1.0))
    h, imp = shared(w, r0, r1)
    w.close()
    assert (imp.state, h.state) == ("UNCERTAIN", "UNCERTAIN")
    assert "RELEASE_IMPORT" in str(imp._error)
    # The owner's free was never sent: its import may still map it.
    assert not [e for e in w.simulation.trace.of_kind(EventKind.FRAME)
                if e.scope == "l4.w0.link" and e.subject.startswith("FREE_REMOTE_BUFFER")]
    reg = w._remote._buffers
    assert not reg.pending and not reg.inflight


def test_close_after_the_importer_crashed_marks_both_uncertain() -> None:
    w, (r0, r1) = l4(SessionCrash(1, 1_000.0))
    h = w.remote_malloc(worker=r0, nbytes=64)
    imp = w.remote_import(w.remote_export(h), worker=r1)
    w.remote_free(h)
    w.simulation.env.run(until=2_000.0)  # the importer's process died; its endpoint failed
    w.close()
    assert imp.state == "UNCERTAIN" and "FAILED" in str(imp._error)
    assert h.state == "UNCERTAIN"  # its import could not be released, so it was never freed
    # Only the owner session's SHUTDOWN frees it, and nothing confirms that to the parent.
    assert [e.detail for e in events(w, "l4.w0.l3", "physical_free")] == ["b1g1 at shutdown"]
