"""Global CommDomains across local and remote L3 nodes, and MPI L3 groups (upstream ``docs/comm-domain.md``
"Global CommDomain across local and remote L3 nodes", ``docs/mpi-l3-mailbox.md``)."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from reference import get_kernel
from sim import SimConfig, TaskArgs, TensorArgType, Worker
from sim.comm import CollectiveKernel, CollectiveParam, CommBufferSpec
from sim.comm.global_domain import GlobalCommDomainHandle, fabric
from sim.errors import (
    ControlFailure,
    DomainReleased,
    InvalidArgument,
    InvalidState,
    NotADomainMember,
    UnknownWorker,
    UnsupportedCommProfile,
)
from sim.kernel_spec import Direction
from sim.remote.faults import ControlFault, FaultPlan
from sim.remote.spec import MpiL3GroupSpec, RemoteCallable, RemoteWorkerSpec
from sim.trace import EventKind

COUNT = 256
NBYTES = COUNT * 4
TLOAD = "sim.remote.examples:global_tload"


def tload_kernel() -> CollectiveKernel:
    """The callable of upstream's global_tload_orch.cpp: (input, result, rank count, device_ctx)."""
    params = [CollectiveParam("input", Direction.IN), CollectiveParam("result", Direction.OUT),
              CollectiveParam("nranks", Direction.SCALAR), CollectiveParam("ctx", Direction.SCALAR)]
    return CollectiveKernel("global_tload", params, get_kernel("all_reduce"), bind=(0, 1), ctx=3)


BUFFERS = (CommBufferSpec("input", "float32", COUNT, NBYTES), CommBufferSpec("result", "float32", COUNT, NBYTES))


def inputs(rank: int) -> bytes:
    return struct.pack(f"<{COUNT}f", *(float(rank * 100 + i) for i in range(COUNT)))


def expected(ranks: int) -> np.ndarray:
    return sum(np.arange(COUNT, dtype=np.float32) + 100 * r for r in range(ranks))


class Cluster:
    """An L4 over one local L3 (worker 0) and one remote L3 (worker 1), one chip each."""

    def __init__(self, *, faults=None, local_profile: str = "sim", remote_profile: str = "sim") -> None:
        kernel = tload_kernel()
        self.local = Worker(3, device_ids=[0], comm_profile=local_profile, global_device_ranks=[0])
        self.local_tload = self.local.register(kernel)
        self.w = Worker(4, sim=SimConfig(seed=5, faults=faults))
        self.local_id = self.w.add_worker(self.local)
        self.remote_id = self.w.add_remote_worker(RemoteWorkerSpec(
            "127.0.0.1:7000", "a2a3sim", device_ids=(0,), comm_profile=remote_profile, global_device_ranks=(1,)))
        self.w.register(kernel)  # installed on the remote session's inner L3 (found there by name)
        self.local_orch = self.w.register(self._local_rank)
        self.remote_orch = self.w.register(RemoteCallable(TLOAD), workers=[self.remote_id])
        self.w.init()

    def _local_rank(self, orch, args, _cfg) -> None:
        ctx = orch.get_global_domain(int(args.scalar(0)))[int(args.scalar(1))]
        ta = TaskArgs()
        ta.add_tensor(ctx.buffers["input"].tensor((COUNT,), "float32"), TensorArgType.INPUT)
        ta.add_tensor(ctx.buffers["result"].tensor((COUNT,), "float32"), TensorArgType.OUTPUT_EXISTING)
        ta.add_scalar(ctx.domain_size)
        ta.add_scalar(ctx.device_ctx)
        orch.submit_next_level(self.local_tload, ta, worker=int(args.scalar(1)))

    @property
    def remote_inner(self) -> Worker:
        return self.w._remote.endpoints[self.remote_id].session.inner

    def submit_ranks(self, orch, domain) -> None:
        for handle, node in ((self.local_orch, self.local_id), (self.remote_orch, self.remote_id)):
            ta = TaskArgs()
            ta.add_scalar(domain.domain_id)
            ta.add_scalar(0)
            orch.submit_next_level(handle, ta, worker=node)

    def allocate(self, orch, **kw) -> GlobalCommDomainHandle:
        kw.setdefault("members", ((self.local_id, 0), (self.remote_id, 0)))
        kw.setdefault("window_size", 4096)
        kw.setdefault("buffers", BUFFERS)
        return orch.allocate_global_domain(name=kw.pop("name", "g"), **kw)

    def leftovers(self) -> dict[str, object]:
        """Everything a domain can leave behind, on every node and in the shared window table."""
        sim = self.w.simulation
        fab = fabric(sim.comm) if sim.comm is not None else None
        parts = [p for p in (self.local._global_part, self.remote_inner._global_part) if p is not None]
        table = self.w._global_table
        return {"exports": len(fab.exports) if fab else 0, "fabric_domains": len(fab.domains) if fab else 0,
                "engine_domains": len(sim.comm.domains) if sim.comm else 0,
                "contexts": len(sim.comm.contexts) if sim.comm else 0,
                "node_states": sum(len(p.states) for p in parts),
                "live": len(table.live) if table else 0}


NOTHING = {"exports": 0, "fabric_domains": 0, "engine_domains": 0, "contexts": 0, "node_states": 0, "live": 0}


def test_ranks_on_a_local_and_a_remote_l3_sum_each_others_windows():
    c = Cluster()
    got: dict[str, object] = {}

    def build(orch, _a, _c):
        d = c.allocate(orch, retain_after_run=True)
        assert [(m.node_worker_id, m.local_worker_id, m.global_device_rank, m.domain_rank) for m in d.members] == \
            [(c.local_id, 0, 0, 0), (c.remote_id, 0, 1, 1)]
        for rank in range(2):
            orch.copy_to_global_domain(d, rank, inputs(rank), buffer="input")
        c.submit_ranks(orch, d)
        got["d"] = d
        got["scopes"] = [n.scope for n, _chip in fabric(c.w.simulation.comm).domains[(d.domain_id, 1)].members]

    c.w.run(build)
    d = got["d"]
    assert not d.released and not d.freed and c.w._global_table.live == {"g": d}

    def read(orch, _a, _c):
        got["out"] = [np.frombuffer(orch.copy_from_global_domain(d, r, NBYTES, buffer="result"), np.float32)
                      for r in range(2)]
        got["in1"] = orch.copy_from_global_domain(d, 1, NBYTES, offset=0)  # whole-window addressing
        d.release()
        got["freed_inside"] = d.freed

    c.w.run(read)
    for out in got["out"]:
        np.testing.assert_array_equal(out, expected(2))
    assert got["in1"] == inputs(1)
    assert got["freed_inside"] is False and d.freed
    assert c.leftovers() == NOTHING
    # One domain object serves both nodes: its ranks live on two different L3 scopes.
    assert got["scopes"] == ["l4.w0", "l4.w1.l3"]
    details = [e.detail for e in c.w.simulation.trace.of_kind(EventKind.CONTROL) if "global domain" in e.subject]
    assert any(s.startswith("committed#") for s in details) and any(s.startswith("freed#") for s in details)
    c.w.close()


def test_a_forgotten_domain_is_swept_at_the_fence_unless_retained():
    c = Cluster()
    got = {}

    def run(orch, _a, _c):
        got["swept"] = c.allocate(orch, name="swept")
        got["kept"] = c.allocate(orch, name="kept", retain_after_run=True)

    c.w.run(run)
    assert got["swept"].released and got["swept"].freed
    assert not got["kept"].released and not got["kept"].freed and list(c.w._global_table.live) == ["kept"]
    # The retained one is still usable by a later run.

    def again(orch, _a, _c):
        orch.copy_to_global_domain(got["kept"], 1, b"\x07" * 8, buffer="result", offset=8)
        got["bytes"] = orch.copy_from_global_domain(got["kept"], 1, 16, buffer="result")

    c.w.run(again)
    assert got["bytes"] == bytes(8) + b"\x07" * 8
    c.w.close()  # the safety net frees it
    assert got["kept"].freed
    assert c.leftovers() == NOTHING


@pytest.mark.parametrize("ordinal", [1, 2, 3], ids=["prepare", "import", "commit"])
def test_a_failed_phase_aborts_and_leaves_nothing_behind(ordinal):
    c = Cluster(faults=FaultPlan((ControlFault("ALLOC_DOMAIN", worker_id=1, ordinal=ordinal),)))

    def run(orch, _a, _c):
        c.allocate(orch)

    with pytest.raises(ControlFailure, match="ALLOC_DOMAIN"):
        c.w.run(run)
    assert c.leftovers() == NOTHING
    aborts = [e for e in c.w.simulation.trace.of_kind(EventKind.CONTROL) if e.detail.startswith("abort#")]
    assert aborts, "the local node, which prepared, must have been told to abort"
    # The failure is not sticky: the next allocation succeeds.
    got = {}
    c.w.run(lambda orch, _a, _c: got.setdefault("d", c.allocate(orch, name="next")))
    assert got["d"].freed
    c.w.close()


def test_copy_range_checks():
    c = Cluster()

    def run(orch, _a, _c):
        d = c.allocate(orch)
        assert d.mapping_size >= 4096
        with pytest.raises(InvalidArgument, match="exceeds buffer 'input'"):
            orch.copy_to_global_domain(d, 0, bytes(NBYTES + 4), buffer="input")
        with pytest.raises(InvalidArgument, match="exceeds buffer 'result'"):
            orch.copy_from_global_domain(d, 0, 8, buffer="result", offset=NBYTES - 4)
        with pytest.raises(InvalidArgument, match="non-negative"):
            orch.copy_to_global_domain(d, 0, b"x", offset=-1)
        with pytest.raises(InvalidArgument, match="positive"):
            orch.copy_from_global_domain(d, 0, 0)
        with pytest.raises(InvalidArgument, match="mapped window"):
            orch.copy_from_global_domain(d, 0, 8, offset=d.mapping_size - 4)
        with pytest.raises(InvalidArgument, match="no buffer 'nope'"):
            orch.copy_to_global_domain(d, 0, b"x", buffer="nope")
        with pytest.raises(NotADomainMember, match="no rank 2"):
            orch.copy_to_global_domain(d, 2, b"x")
        orch.copy_to_global_domain(d, 0, b"\x01\x02", buffer="result", offset=NBYTES - 2)  # the last bytes fit
        assert orch.copy_from_global_domain(d, 0, 2, offset=2 * NBYTES - 2) == b"\x01\x02"

    c.w.run(run)
    c.w.close()


def test_typed_errors_name_the_offender():
    c = Cluster()

    def run(orch, _a, _c):
        with pytest.raises(UnknownWorker, match="worker 7, which is not an L3 child"):
            c.allocate(orch, members=((c.local_id, 0), (7, 0)))
        with pytest.raises(InvalidArgument, match="local_l2_worker_id 3, outside remote L3 worker 1"):
            c.allocate(orch, members=((c.local_id, 0), (c.remote_id, 3)))
        with pytest.raises(InvalidArgument, match=r"member \(l3_worker_id=0, local_l2_worker_id=0\) is listed twice"):
            c.allocate(orch, members=((c.local_id, 0), (c.local_id, 0)))
        with pytest.raises(InvalidArgument, match="exceeds window_size=1024"):
            c.allocate(orch, window_size=1024)
        d = c.allocate(orch)
        with pytest.raises(InvalidArgument, match="'g' is already live"):
            c.allocate(orch)
        orch.release_global_domain(d)
        with pytest.raises(DomainReleased, match="already released"):
            orch.copy_to_global_domain(d, 0, b"x")
        with pytest.raises(DomainReleased):
            d.member(0)
        # Nothing was contacted for a refused request: only the one domain was ever prepared.
        assert c.w._global_table._next_id == 1

    c.w.run(run)
    assert c.leftovers() == NOTHING
    c.w.close()
    l3 = Worker(3, device_ids=[0])
    l3.init()
    with pytest.raises(InvalidState, match="requires an L4"):
        l3.run(lambda orch, _a, _c: orch.allocate_global_domain(name="x", members=((0, 0),), window_size=64))
    l3.close()


def test_get_global_domain_needs_a_committed_import_on_that_node():
    c = Cluster()
    part = c.local._global_participant("test")
    with pytest.raises(InvalidArgument, match="no Global CommDomain with id 42"):
        part.view(42)
    got = {}

    def run(orch, _a, _c):
        d = c.allocate(orch)
        view = part.view(d.domain_id)
        got["ctx"] = view[0]
        with pytest.raises(NotADomainMember, match="chip 1 of this node is not a member"):
            view[1]
        d.release()
        got["view"] = view

    c.w.run(run)
    assert got["ctx"].domain_rank == 0 and got["ctx"].domain_size == 2
    with pytest.raises(InvalidState, match="not committed"):
        got["view"][0]  # released everywhere after the fence
    c.w.close()


def test_comm_profile_rules():
    with pytest.raises(UnsupportedCommProfile, match="requires real A3 devices"):
        RemoteWorkerSpec("127.0.0.1:7000", "a2a3sim", device_ids=(0,), comm_profile="a3-fabric-v1")
    with pytest.raises(UnsupportedCommProfile, match="requires an a2a3 platform"):
        RemoteWorkerSpec("127.0.0.1:7000", "a5sim", device_ids=(0,), comm_profile="a3-fabric-v1")
    with pytest.raises(UnsupportedCommProfile, match="'hccl' is not supported"):
        RemoteWorkerSpec("127.0.0.1:7000", "a2a3sim", device_ids=(0,), comm_profile="hccl")
    with pytest.raises(InvalidArgument, match="global_device_ranks has 2 entries for 1 device"):
        RemoteWorkerSpec("127.0.0.1:7000", "a2a3sim", device_ids=(0,), global_device_ranks=(0, 1))
    # A local L3 whose profile its platform cannot implement is refused before any node is prepared.
    c = Cluster(local_profile="a3-fabric-v1")

    def run(orch, _a, _c):
        with pytest.raises(UnsupportedCommProfile, match=r"local L3 worker 0.*requires real A3 devices"):
            c.allocate(orch)

    c.w.run(run)
    assert c.leftovers() == NOTHING
    c.w.close()


def test_global_device_ranks_must_not_repeat_across_nodes():
    local = Worker(3, device_ids=[0], global_device_ranks=[1])
    w = Worker(4)
    w.add_worker(local)
    rid = w.add_remote_worker(RemoteWorkerSpec("127.0.0.1:7000", "a2a3sim", device_ids=(0,),
                                               global_device_ranks=(1,)))
    w.init()

    def run(orch, _a, _c):
        orch.allocate_global_domain(name="x", members=((0, 0), (rid, 0)), window_size=64)

    with pytest.raises(InvalidArgument, match="repeats global_device_ranks"):
        w.run(run)
    w.close()


# ------------------------------------------------------------------------------ MPI L3 groups


def test_mpi_group_spec_checks_its_fields():
    ok = dict(hosts=("10.0.0.1", "10.0.0.2"), platform="a2a3sim", device_ids_by_rank=((0,), (0, 1)))
    spec = MpiL3GroupSpec(**ok)
    assert spec.num_sub_workers_by_rank == (0, 0) and spec.global_device_ranks_by_rank == ((), ())
    for bad, match in [
        (dict(hosts=()), "hosts must be non-empty"),
        (dict(device_ids_by_rank=((0,),)), "1 entries for 2 host"),
        (dict(device_ids_by_rank=((0,), ())), "entries must be non-empty"),
        (dict(num_sub_workers_by_rank=(0,)), "num_sub_workers_by_rank must have one entry per host"),
        (dict(global_device_ranks_by_rank=((0,), (0, 1))), "unique across the whole group"),
        (dict(global_device_ranks_by_rank=((0,), (1,))), r"\[1\] has 1 entries for 2 device"),
        (dict(transport="roce"), "transport must be 'host_tcp'"),
        (dict(ready_port=70000), "ready_port"),
        (dict(mpirun_path=""), "mpirun_path must be non-empty"),
    ]:
        with pytest.raises(InvalidArgument, match=match):
            MpiL3GroupSpec(**{**ok, **bad})
    with pytest.raises(UnsupportedCommProfile, match="requires real A3 devices"):
        MpiL3GroupSpec(**ok, comm_profile="a3-fabric-v1")


def test_mpi_group_ranks_are_remote_l3_nodes_of_one_domain():
    w = Worker(4, sim=SimConfig(seed=2))
    with pytest.raises(InvalidArgument, match="expects a MpiL3GroupSpec"):
        w.add_mpirun_worker_group(object())
    ids = w.add_mpirun_worker_group(MpiL3GroupSpec(hosts=("10.0.0.1", "10.0.0.2"), platform="a2a3sim",
                                                   device_ids_by_rank=((0, 1), (0, 1))))
    assert ids == (0, 1)
    w.register(tload_kernel())
    orch_h = w.register(RemoteCallable(TLOAD), workers=list(ids))
    w.init()
    members = tuple((n, i) for n in ids for i in range(2))
    got = {}

    def build(orch, _a, _c):
        d = orch.allocate_global_domain(name="mpi", members=members, window_size=4096, buffers=BUFFERS,
                                        retain_after_run=True)
        assert [m.global_device_rank for m in d.members] == [0, 1, 2, 3]
        for r in range(4):
            orch.copy_to_global_domain(d, r, inputs(r), buffer="input")
        group = []
        for _n in ids:  # one task per rank process: it submits the collective on each of its chips
            ta = TaskArgs()
            ta.add_scalar(d.domain_id)
            group.append(ta)
        orch.submit_next_level_group(orch_h, group, workers=list(ids))
        got["d"] = d

    w.run(build)

    def read(orch, _a, _c):
        got["out"] = [np.frombuffer(orch.copy_from_global_domain(got["d"], r, NBYTES, buffer="result"), np.float32)
                      for r in range(4)]

    w.run(read)
    for out in got["out"]:
        np.testing.assert_array_equal(out, expected(4))
    w.close()
    assert got["d"].freed
    with pytest.raises(InvalidState, match="before init"):
        w.add_mpirun_worker_group(MpiL3GroupSpec(hosts=("10.0.0.3",), platform="a2a3sim", device_ids_by_rank=((0,),)))
