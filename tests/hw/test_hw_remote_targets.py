"""The hw backend's chip-kernel remote targets (``chain``, ``add_buffers``) on real remote L3 sessions."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("simpler", reason="the real runtime (simpler) is not installed in this environment")

from conformance.backends import NotSupportedByBackend, get_backend

N = 64
NB = N * 4


@pytest.fixture
def rt():
    api = get_backend("hw", 0)
    yield api
    api.close_all()


def _remote_l4_with_add(rt, target: str):
    """An L4 with one remote L3 on chip 0, the built-in ``add`` registered before init (so the session's
    inner Worker holds it) and ``target`` registered for the remote worker."""
    w = rt.Worker(4, num_sub_workers=1)
    rid = w.add_remote_worker(rt.RemoteWorkerSpec("127.0.0.1:9000", "a2a3sim", device_ids=(0,)))
    try:
        w.register(rt.kernel("add"))
    except NotSupportedByBackend as exc:
        pytest.skip(f"the built-in chip kernels are unavailable here: {exc}")
    h = w.register(rt.RemoteCallable(rt.remote_target(target)), workers=[rid])
    w.init()
    return w, rid, h


def test_a_chain_of_three_runs_on_a_real_remote_session(rt) -> None:
    w, rid, h = _remote_l4_with_add(rt, "chain")
    ta = rt.TaskArgs()
    ta.add_scalar(3)
    w.run(lambda o, _a, _c: o.submit_next_level(h, ta, worker=rid))
    rec = w.take_record()
    t = rec.tasks["l4:r1:t1"]
    assert t.outcome.value == "COMPLETED" and t.start is not None  # the target's probe saw it run and end
    # the target reported its three chip tasks (scoped to the remote L3 it ran on)
    inner = [x for x in rec.tasks.values() if x.callable == "add" and x.level == 3]
    assert [x.outcome.value for x in inner] == ["COMPLETED"] * 3
    w.close()


def test_a_chain_without_a_count_runs_one_task(rt) -> None:
    w, rid, h = _remote_l4_with_add(rt, "chain")
    w.run(lambda o, _a, _c: o.submit_next_level(h, rt.TaskArgs(), worker=rid))
    rec = w.take_record()
    assert rec.tasks["l4:r1:t1"].outcome.value == "COMPLETED"
    assert len([x for x in rec.tasks.values() if x.callable == "add" and x.level == 3]) == 1
    w.close()


def test_add_buffers_adds_remote_buffers_in_place(rt) -> None:
    w, rid, h = _remote_l4_with_add(rt, "add_buffers")
    T = rt.TensorArgType
    rng = np.random.default_rng(0)
    a_host, b_host = rng.random(N, dtype=np.float32), rng.random(N, dtype=np.float32)
    a, b, out = (w.remote_malloc(worker=rid, nbytes=NB) for _ in range(3))
    w.remote_copy_to(a, a_host, NB)
    w.remote_copy_to(b, b_host, NB)

    def ref(handle):
        return rt.RemoteTensorRef(handle, offset=0, shape=(N,), dtype=rt.DataType.FLOAT32)

    ta = rt.TaskArgs()
    ta.add_tensor(ref(a), T.INPUT)
    ta.add_tensor(ref(b), T.INPUT)
    ta.add_tensor(ref(out), T.OUTPUT)
    w.run(lambda o, _a, _c: o.submit_next_level(h, ta, worker=rid))
    rec = w.take_record()
    assert rec.tasks["l4:r1:t1"].outcome.value == "COMPLETED"
    assert rec.tasks[f"l4.w{rid}.l3:r1:t1"].outcome.value == "COMPLETED"  # the inner add, under its worker
    got = np.zeros(N, dtype=np.float32)
    w.remote_copy_from(out, got, NB)
    np.testing.assert_allclose(got, a_host + b_host, rtol=1e-6)
    w.close()
