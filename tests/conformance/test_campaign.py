"""Fault-injection campaigns: the generator, every invariant on a planted bug, shrink, replay, Dask, Ctrl-C and
bad input."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from conformance.campaign import api
from conformance.campaign.generate import Topology, draw_plan
from conformance.campaign.invariants import BUILTIN
from conformance.campaign.results import read_rows
from conformance.campaign.seedrun import observe
from conformance.cli import main
from conformance.fault_space import FAULT_KINDS, FaultSpace, FaultSpaceError
from conformance.scenario import parse_faults

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
SHIPPED = str(ROOT / "conformance" / "scenarios" / "l4_remote_faults.yaml")
L3 = "conformance.campaign.examples:l3_pipeline"
RBUF = "conformance.campaign.examples:l4_remote_buffers"
sys.path.insert(0, str(HERE))  # campaign_plants: user invariants, importable here and (via PYTHONPATH) in workers
TOPO = Topology(remote=("node1", "node2"), local=("l4.sub0", "l4.w0", "l4.w0.chip0"))


# ------------------------------------------------------------------------------------------- generator


@given(st.integers(0, 2**32 - 1))
def test_one_seed_one_plan_and_every_plan_is_a_valid_fault_list(seed):
    space = FaultSpace(max_faults=6)
    a, b = draw_plan(space, TOPO, seed), draw_plan(space, TOPO, seed)
    assert a == b
    parsed = parse_faults([dict(f) for f in a.faults])  # every drawn fault is a valid scenario fault
    assert len(parsed) == len(a.faults)
    assert len(a.kinds) <= 6 and set(a.kinds) <= set(FAULT_KINDS)


def test_seeds_differ_and_every_kind_and_point_is_drawn_over_many_seeds():
    from sim.faultpoints import FAULT_POINTS

    plans = [draw_plan(FaultSpace(point_probability=0.3), TOPO, s) for s in range(400)]
    assert len({json.dumps(p.faults, sort_keys=True) for p in plans}) > 350
    assert {k for p in plans for k in p.kinds} == set(FAULT_KINDS)
    assert {n for p in plans for n in p.points()} == set(FAULT_POINTS)


def test_topology_limits_the_kinds_and_an_explicit_list_is_obeyed():
    local_only = Topology(local=("l3.chip0",))
    kinds = {k for s in range(200) for k in draw_plan(FaultSpace(), local_only, s).kinds}
    assert kinds == {"local_control_error", "local_control_timeout"}
    only = FaultSpace(kinds=["session_crash"], points="none", max_faults=2)
    for s in range(50):
        plan = draw_plan(only, TOPO, s)
        assert {f["type"] for f in plan.faults} <= {"SessionCrash"}


def test_swizzle_clogs_distinct_links_in_order_and_unclogs_them_in_another_order():
    space = FaultSpace(kinds=["swizzle_clog"], points="none", max_faults=1)
    topo = Topology(remote=tuple(f"n{i}" for i in range(6)))
    seen_reordered = False
    for s in range(100):
        clogs = list(draw_plan(space, topo, s).faults)
        links = [c["worker"] for c in clogs]
        assert len(links) == len(set(links))
        by_start = sorted(clogs, key=lambda c: c["start_us"])
        assert all(c["end_us"] > max(x["start_us"] for x in clogs) for c in clogs)  # all clogged before any unclog
        if [c["worker"] for c in by_start] != [c["worker"] for c in sorted(clogs, key=lambda c: c["end_us"])]:
            seen_reordered = True
    assert seen_reordered


def test_liveness_mode_closes_every_window_by_the_heal_time():
    space = FaultSpace(kinds=["link_delay", "link_clog", "swizzle_clog", "link_cut"], window_us=[0, 1000],
                       heal_at_us=1000, max_delay_us=5000, points="none")
    for s in range(200):
        for f in draw_plan(space, TOPO, s, liveness=True).faults:
            assert f.get("at_us", f.get("start_us")) < 1000
            if "end_us" in f:
                assert f["end_us"] <= 1000


def test_bad_fault_space_is_a_typed_error_naming_the_field():
    with pytest.raises(FaultSpaceError, match="unknown fault kind 'meteor'"):
        FaultSpace.from_data({"kinds": ["meteor"]})
    with pytest.raises(FaultSpaceError, match="unknown fault point 'gremlin'"):
        FaultSpace.from_data({"points": {"gremlin": 0.5}})
    with pytest.raises(FaultSpaceError, match="max_faults"):
        FaultSpace.from_data({"max_faults": -1})
    with pytest.raises(FaultSpaceError, match="window_us"):
        FaultSpace.from_data({"window_us": [10, 5]})
    with pytest.raises(FaultSpaceError, match="unknown fault point 'not_a_point'"):
        FaultSpace.from_data({"points": ["slow_sub", "not_a_point"]})
    listed = FaultSpace.from_data({"points": ["slow_chip", "slow_sub"], "point_probability": 0.25})
    assert listed.point_probabilities() == {"slow_sub": 0.25, "slow_chip": 0.25}  # catalog order


# ------------------------------------------------------------------------------------------- invariants


def _campaign(target, tmp_path, seeds="0:12", **kw):
    kw.setdefault("inline", True)
    kw.setdefault("progress", False)
    return api.run_campaign(target, seeds, out=tmp_path / "out", **kw)


def test_a_clean_target_violates_nothing_and_writes_every_result(tmp_path):
    res = _campaign(L3, tmp_path, "0:20")
    s = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert s["runs"] == 20 and s["violations"] == 0 and s["hangs"] == 0 and s["violating_seeds"] == []
    assert s["by_invariant"] == {}
    assert s["determinism_checked"] >= 1  # seed 0 is always replayed
    rows = read_rows(tmp_path / "out" / "seeds.parquet")
    assert [r["seed"] for r in rows] == list(range(20))
    assert all(r["digest"] and r["tasks"] == 3 for r in rows)
    assert "fault kind link_cut" not in s["coverage"]["never_exercised"]  # not applicable to a local tree
    page = res.page.read_text()
    assert "<svg" in page and "Never exercised" in page


def _plant_take_record(monkeypatch, mutate):
    from sim.worker import Worker

    orig = Worker.take_record

    def take_record(self, **meta):
        rec = orig(self, **meta)
        mutate(rec)
        return rec

    monkeypatch.setattr(Worker, "take_record", take_record)


def _violated(res, name):
    assert res.summary["by_invariant"].get(name), res.summary["by_invariant"]
    assert res.summary["violating_seeds"]
    return res


def test_poison_catches_a_consumer_completed_after_its_failed_producer(tmp_path, monkeypatch):
    import dataclasses

    from sim.record import Outcome

    def mutate(rec):  # planted bug: the first task fails, yet its consumer reads COMPLETED
        ids = list(rec.tasks)
        if len(ids) >= 2:
            rec.tasks[ids[0]] = dataclasses.replace(rec.tasks[ids[0]], outcome=Outcome.FAILED,
                                                    error_class="TASK_FAILURE")

    _plant_take_record(monkeypatch, mutate)
    res = _violated(_campaign(L3, tmp_path, "0:3", do_shrink=False), "poison")
    ev = json.loads(res.rows[0]["evidence"])["poison"][0]
    assert "l3:r1:t2 COMPLETED although its producer l3:r1:t1 is FAILED" in ev


def test_edge_order_catches_a_consumer_that_started_before_its_producer_ended(tmp_path, monkeypatch):
    import dataclasses

    def mutate(rec):
        t = rec.tasks.get("l3:r1:t2")
        if t is not None:
            rec.tasks[t.task_id] = dataclasses.replace(t, start=0.0)

    _plant_take_record(monkeypatch, mutate)
    res = _violated(_campaign(L3, tmp_path, "0:3", do_shrink=False), "edge_order")
    assert "l3:r1:t2 started at 0.0 before its producer l3:r1:t1 ended" in json.loads(res.rows[0]["evidence"])[
        "edge_order"][0]


def test_all_terminal_catches_a_completed_task_without_an_end(tmp_path, monkeypatch):
    import dataclasses

    def mutate(rec):
        t = rec.tasks.get("l3:r1:t3")
        if t is not None:
            rec.tasks[t.task_id] = dataclasses.replace(t, end=None)

    _plant_take_record(monkeypatch, mutate)
    _violated(_campaign(L3, tmp_path, "0:3", do_shrink=False), "all_terminal")


def test_no_hang_catches_a_task_whose_completion_is_lost(tmp_path, monkeypatch):
    from sim.lanes import ChipLane, Lane

    orig = Lane._done

    def lost(self, ev):  # planted bug: chip 1's completions vanish
        if isinstance(self, ChipLane) and self.scope.endswith("chip1"):
            return None
        return orig(self, ev)

    monkeypatch.setattr(Lane, "_done", lost)
    res = _violated(_campaign(L3, tmp_path, "0:3", do_shrink=False), "no_hang")
    assert res.rows[0]["outcome"] == "HANG"
    assert "l3:r1:t2" in json.loads(res.rows[0]["evidence"])["no_hang"][0]  # the stuck task is named


def test_typed_errors_catches_an_untyped_exception_from_the_runtime(tmp_path, monkeypatch):
    from sim.node import Node

    def broken(self, task):
        raise KeyError("planted")

    monkeypatch.setattr(Node, "_complete", broken)
    res = _violated(_campaign(L3, tmp_path, "0:2", do_shrink=False), "typed_errors")
    assert res.rows[0]["run"] == "UNTYPED:KeyError"


def test_clean_close_catches_a_session_left_open(tmp_path, monkeypatch):
    from sim.remote.endpoint import RemoteEndpoint

    monkeypatch.setattr(RemoteEndpoint, "close", lambda self: None)
    res = _violated(_campaign(RBUF, tmp_path, "0:2", faults="link_delay", do_shrink=False), "clean_close")
    ev = json.loads(res.rows[0]["evidence"])["clean_close"]
    assert any("is READY" in e for e in ev)


def test_determinism_catches_a_trace_that_differs_on_replay(tmp_path, monkeypatch):
    import itertools

    from sim.trace import Trace

    orig, counter = Trace.text, itertools.count()

    def text(self, *a, **k):  # planted bug: process state leaks into the trace
        return orig(self, *a, **k) + f"# {next(counter)}\n"

    monkeypatch.setattr(Trace, "text", text)
    res = _violated(_campaign(L3, tmp_path, "0:4", determinism_every=2, do_shrink=False), "determinism")
    assert res.summary["violating_seeds"] == [0, 2]


def test_liveness_catches_a_second_run_that_hangs(tmp_path, monkeypatch):
    from sim.errors import SimulationHang
    from sim.worker import Worker

    orig, runs = Worker.run, {}

    def run(self, *a, **k):  # planted bug: after faults heal, the Worker never finishes another run
        runs[id(self)] = runs.get(id(self), 0) + 1
        if runs[id(self)] == 2:
            raise SimulationHang("planted: the second run stalled")
        return orig(self, *a, **k)

    monkeypatch.setattr(Worker, "run", run)
    res = _violated(_campaign(L3, tmp_path, "0:3", liveness=True, do_shrink=False), "liveness")
    assert res.rows[0]["second_run"] == "HANG:HANG"
    monkeypatch.undo()
    ok = _campaign(L3, tmp_path / "clean", "0:3", liveness=True, do_shrink=False)
    assert ok.summary["violations"] == 0  # the same mode without the bug


def test_liveness_second_run_completes_or_is_refused_typed_on_the_shipped_scenario(tmp_path):
    res = _campaign(SHIPPED, tmp_path, "0:40", liveness=True, do_shrink=False)
    seconds = {r["second_run"] for r in res.rows if r["second_run"]}
    assert seconds and all(s == "OK" or s.startswith("ERROR:") for s in seconds)
    assert "liveness" not in res.summary["by_invariant"]


def test_a_user_invariant_gets_the_record_and_the_trace(tmp_path):
    res = _campaign(L3, tmp_path, "0:3", invariants=["campaign_plants:trace_has_start"])
    assert res.summary["violations"] == 0
    res = _campaign(SHIPPED, tmp_path / "b", "0:60", invariants=["campaign_plants:no_link_cut"],
                    faults="link_cut", do_shrink=False)
    assert res.summary["by_invariant"].get("campaign_plants:no_link_cut")


# ------------------------------------------------------------------------------------------- shrink and replay


def test_a_violation_shrinks_to_the_one_fault_that_causes_it_and_the_case_replays(tmp_path):
    res = _campaign(SHIPPED, tmp_path, "0:60", invariants=["campaign_plants:no_link_cut"],
                    faults="link_cut,link_delay,frame_delay,control_error")
    inv = "campaign_plants:no_link_cut"
    first = min(r["seed"] for r in res.rows if inv in r["violations"])
    original = json.loads(next(r for r in res.rows if r["seed"] == first)["fault_plan"])
    case = Path(res.shrunk[inv])
    assert case.name == f"campaign_plants-no_link_cut-seed{first}.yaml"
    from conformance.scenario import load_scenario

    scn = load_scenario(case)
    assert scn.seed == first and scn.invariants == [inv]
    assert [f.type for f in scn.faults] == ["LinkCut"]  # the other faults were not needed
    cut = next(f for f in original if f["type"] == "LinkCut")
    assert scn.faults[0].at_us <= cut["at_us"]
    out = CliRunner().invoke(main, ["run", str(case)])
    assert out.exit_code == 1, out.output
    assert f"invariant   {inv}: VIOLATED" in out.output
    assert f"verdict     FAIL (the expectations hold; invariant {inv} violated)" in out.output


def test_a_shrunk_case_fails_the_way_the_seed_did_not_through_an_invariant_that_raises(tmp_path):
    # Seed 1 of the shipped scenario ends with a failed task. Some smaller plans make init() fail instead,
    # where this invariant raises on the missing record: such a plan is a different failure, not kept.
    inv = "campaign_plants:no_failed_tasks"
    res = _campaign(SHIPPED, tmp_path, "1:2", invariants=[inv])
    row = res.rows[0]
    assert inv in row["violations"] and row["run"].startswith("ERROR"), row
    text = Path(res.shrunk[inv]).read_text(encoding="utf-8")
    assert "# evidence: failed tasks:" in text and "raised" not in text
    out = CliRunner().invoke(main, ["run", res.shrunk[inv]])
    assert out.exit_code == 1 and f"invariant   {inv}: VIOLATED: failed tasks:" in out.output, out.output


def test_replay_reproduces_a_seed_byte_for_byte_and_writes_its_perfetto_trace(tmp_path):
    res = _campaign(SHIPPED, tmp_path, "0:30", do_shrink=False)
    row = next(r for r in res.rows if r["faults"])
    rep = api.replay_seed(tmp_path / "out", row["seed"])
    assert rep.reproduced is True and rep.observation.digest == row["digest"]
    names = sorted(p.name for p in rep.trace_files)
    assert names == ["trace.perfetto.json", "trace.txt"]
    assert json.loads((rep.trace_files[0]).read_text())["traceEvents"]
    out = CliRunner().invoke(main, ["campaign", "--replay", str(tmp_path / "out"), "--seed", str(row["seed"])])
    assert out.exit_code == 0, out.output
    assert "identical to the campaign's run" in out.output


def test_tierbed_run_checks_the_invariants_a_file_or_the_command_names(tmp_path):
    out = CliRunner().invoke(main, ["run", SHIPPED, "--invariant", "no_hang", "--invariant", "poison"])
    assert out.exit_code == 0, out.output
    assert "invariant   no_hang: holds" in out.output and "invariant   poison: holds" in out.output
    out = CliRunner().invoke(main, ["run", SHIPPED, "--invariant", "nope"])
    assert out.exit_code == 2 and "unknown invariant 'nope'" in out.output


# ------------------------------------------------------------------------------------------- Dask


@contextlib.contextmanager
def _local_cluster(workers: int, **config):
    """A cluster by address, as a user's own: process workers of one thread that can import campaign_plants,
    no retries of a task whose worker died, and any further scheduler ``config``."""
    import dask
    from distributed import LocalCluster

    env = {"PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])}
    # As the embedded cluster: nannies restart dead workers for the whole test (see execute.dask_client).
    with dask.config.set({"distributed.scheduler.allowed-failures": 0, "distributed.deploy.lost-worker-timeout":
                          "1000 days", "logging.distributed": "error", **config}), \
            LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                         silence_logs=40, env=env) as c:
        yield c


@pytest.fixture(scope="module")
def cluster():
    with _local_cluster(2) as c:
        yield c


def test_dask_gives_the_same_rows_as_one_process(tmp_path, cluster):
    kw = {"faults": "all", "determinism_every": 0, "do_shrink": False}
    inline = _campaign(SHIPPED, tmp_path / "a", "0:40", **kw)
    dask = _campaign(SHIPPED, tmp_path / "b", "0:40", inline=False, scheduler=cluster.scheduler_address, batch=3, **kw)
    key = lambda r: (r["seed"], r["digest"], r["run"], tuple(r["faults"]))  # noqa: E731
    assert sorted(map(key, inline.rows)) == sorted(map(key, dask.rows))


def test_a_seed_that_kills_its_worker_is_a_crash_and_the_campaign_goes_on(tmp_path, cluster):
    res = _campaign(L3, tmp_path, "0:12", inline=False, scheduler=cluster.scheduler_address, batch=4,
                    invariants=["campaign_plants:die_on_seed_7"], do_shrink=False)
    by_seed = {r["seed"]: r for r in res.rows}
    assert sorted(by_seed) == list(range(12))
    assert by_seed[7]["outcome"] == "CRASH" and by_seed[7]["violations"] == ["crash"]
    assert all(by_seed[s]["outcome"] == "OK" for s in by_seed if s != 7)
    assert res.summary["crashes"] == 1


def _one_worker_with_room_for_two():
    """One worker that takes a second task while it runs one (saturation 2.0), as a cluster we do not own
    may: when the worker dies, the task queued beside the one that killed it fails too."""
    return _local_cluster(1, **{"distributed.scheduler.worker-saturation": 2.0})


def test_a_seed_queued_beside_a_crashing_one_on_its_worker_is_not_a_crash(tmp_path):
    """A dying worker fails every task the scheduler had queued on it, not only the one it ran.

    Lone seeds (batch 1): when seed 7 kills the worker, the seed queued behind it fails too. It must be
    run alone again and come back OK; only seed 7 is a CRASH.
    """
    with _one_worker_with_room_for_two() as c:
        res = _campaign(L3, tmp_path, "0:10", inline=False, scheduler=c.scheduler_address, batch=1,
                        invariants=["campaign_plants:die_on_seed_7"], do_shrink=False)
    outcomes = {r["seed"]: r["outcome"] for r in res.rows}
    assert outcomes == {s: ("CRASH" if s == 7 else "OK") for s in range(10)}


def test_two_crashing_seeds_are_each_a_crash_and_the_seeds_beside_them_are_not(tmp_path):
    """A seed's second lone run goes out only when nothing else is in flight.

    Batches of two, crashers 3 and 7: each kills a batch and the task queued beside it, their seeds are
    retried alone, and an innocent seed's second run could meet the other crasher's first lone run on
    the one worker. Only 3 and 7 may come back CRASH, and every seed comes back once.
    """
    with _one_worker_with_room_for_two() as c:
        res = _campaign(L3, tmp_path, "0:12", inline=False, scheduler=c.scheduler_address, batch=2,
                        invariants=["campaign_plants:die_on_seeds_3_and_7"], do_shrink=False)
    assert sorted(r["seed"] for r in res.rows) == list(range(12))
    outcomes = {r["seed"]: r["outcome"] for r in res.rows}
    assert outcomes == {s: ("CRASH" if s in (3, 7) else "OK") for s in range(12)}
    assert res.summary["crashes"] == 2


def test_a_finished_batch_lost_with_its_worker_whose_rerun_dies_counts_as_failed(tmp_path):
    """A finished task's result stays on its worker until fetched. If that worker dies first, the scheduler
    runs the task again; if the rerun dies too, fetching raises KilledWorker. The campaign must take that
    as a failed batch (its seeds run again alone), not stop with the exception."""
    import campaign_plants
    import distributed
    from distributed import Client, wait

    from conformance.campaign.execute import _outcome

    with _local_cluster(1) as c, Client(c) as client:
        fut = client.submit(campaign_plants.once_then_die, str(tmp_path / "ran"), pure=False)
        wait(fut)
        assert fut.status == "finished"
        with contextlib.suppress(Exception):  # the call dies with the worker
            client.run(os._exit, 3)
        res, exc = _outcome(fut)
        client.wait_for_workers(1, timeout=60)  # closing a cluster whose nanny is mid-restart can fail
    assert res is None and isinstance(exc, distributed.scheduler.KilledWorker)


def test_the_embedded_cluster_restarts_a_worker_that_is_dead_again_when_the_lost_worker_timeout_ends():
    """Seeds that crash every few seconds must not cost the campaign its workers. A cluster closes, for
    good, a nanny whose worker is absent when the lost-worker timeout (15 s by default) after a death
    ends; the embedded cluster must not. The worker is killed, then killed again and again around that
    moment, and must still come back."""
    from conformance.campaign.execute import dask_client

    def kill_the_worker() -> None:
        with contextlib.suppress(Exception):  # the call dies with the worker, or finds none
            client.run(os._exit, 3)

    with dask_client(None, 1) as client:
        kill_the_worker()
        start = time.monotonic()
        time.sleep(13)
        while time.monotonic() < start + 17:  # the worker mostly dead when the 15 s after the first death end
            kill_the_worker()
            time.sleep(0.2)
        client.wait_for_workers(1, timeout=30)
        assert client.submit(sum, [1, 2], pure=False).result(timeout=60) == 3


def test_a_seed_over_its_wall_clock_limit_is_a_timeout_and_the_rest_still_run(tmp_path, cluster):
    res = _campaign(L3, tmp_path, "0:8", inline=False, scheduler=cluster.scheduler_address, batch=8,
                    invariants=["campaign_plants:stall_on_seed_5"], seed_timeout_s=2.0, do_shrink=False)
    by_seed = {r["seed"]: r for r in res.rows}
    assert sorted(by_seed) == list(range(8))
    assert by_seed[5]["outcome"] == "TIMEOUT" and "no_hang" in by_seed[5]["violations"]
    assert res.summary["hangs"] == 1


# ------------------------------------------------------------------------------------------- Ctrl-C and bad input


def test_ctrl_c_writes_what_finished(tmp_path):
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "conformance.cli", "campaign", SHIPPED, "--seeds", "0:1000000", "--inline",
           "--out", str(out)]
    p = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not (out / "campaign.json").exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(3)
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=60)
    finally:
        p.kill()
    assert p.returncode == 130, err
    s = json.loads((out / "summary.json").read_text())
    rows = read_rows(out / "seeds.parquet")
    assert s["interrupted"] is True and 0 < s["runs"] == len(rows) < 1000000
    assert "interrupted:" in err


@pytest.mark.parametrize(("args", "message"), [
    (["--seeds", "0:10", "--faults", "link_cut,meteor"], "unknown fault kind 'meteor'"),
    (["--seeds", "10:5"], "--seeds '10:5'"),
    (["--seeds", "a:b"], "expected A:B"),
    (["--seeds", "0:10", "--invariant", "no_such_module_xyz:check"], "cannot import 'no_such_module_xyz'"),
    (["--seeds", "0:10", "--invariant", "campaign_plants:missing"], "has no attribute 'missing'"),
    ([], "--seeds A:B is required"),
    (["--seeds", "0:10", "--faults", "control_error"], "cannot host this kind"),  # no CONTROL after init()
    (["--seeds", "0:10", "--seed", "3"], "--seed N is for --replay"),
    (["--seeds", "0:10", "--inline", "--scheduler", "tcp://127.0.0.1:1"], "not both"),
])
def test_bad_input_is_a_typed_error_exit_2_and_nothing_is_written(tmp_path, args, message):
    out = tmp_path / "out"
    res = CliRunner().invoke(main, ["campaign", SHIPPED, "--out", str(out), *args])
    assert res.exit_code == 2, res.output
    assert message in res.output
    assert not out.exists()


def test_bad_targets_are_typed_errors(tmp_path):
    runner = CliRunner()
    res = runner.invoke(main, ["campaign", str(tmp_path / "missing.yaml"), "--seeds", "0:3"])
    assert res.exit_code == 2 and "cannot read the scenario file" in res.output
    res = runner.invoke(main, ["campaign", "nosuchmod_abc:f", "--seeds", "0:3"])
    assert res.exit_code == 2 and "cannot import 'nosuchmod_abc'" in res.output
    res = runner.invoke(main, ["campaign", "--replay", str(tmp_path), "--seed", "1"])
    assert res.exit_code == 2 and "not a campaign directory" in res.output
    res = runner.invoke(main, ["campaign", "os:getcwd", "--seeds", "0:3", "--inline", "--out", str(tmp_path / "o")])
    assert res.exit_code == 2, res.output  # a function that cannot build a tree: bad input, not a traceback
    assert "os:getcwd: building it on the simulator without faults raised TypeError" in res.output
    assert not (tmp_path / "o").exists()


def test_builtin_invariants_are_listed_in_help():
    res = CliRunner().invoke(main, ["campaign", "--help"])
    assert all(n in res.output for n in BUILTIN)


def test_a_failed_init_is_classified_by_its_error_class():
    spec = api.make_spec(SHIPPED)
    obs = observe(spec, 0, [{"type": "LinkCut", "worker": "node1", "at_us": 0.0}])
    assert (obs.run.outcome, obs.run.error_class) == ("INIT_ERROR", "ENDPOINT_FAILURE")
    assert "no HELLO" in obs.run.message


def test_a_failure_after_init_still_records_what_hit_and_closes_cleanly():
    spec = api.make_spec(RBUF)
    obs = observe(spec, 0, [{"type": "ControlFault", "worker": 0, "control": "ALLOC_REMOTE_BUFFER", "ordinal": 2}])
    assert (obs.run.outcome, obs.run.error_class) == ("INIT_ERROR", "CONTROL_FAILURE")
    assert obs.faults_hit == {"ControlFault": 1} and obs.record is not None
    assert obs.leftovers == []  # the buffer allocated before the failure was released at close


def test_coverage_names_what_was_drawn_but_never_took_effect(tmp_path):
    # The example registers everything before init(): a local REGISTER / UNREGISTER fault never bites.
    res = _campaign(RBUF, tmp_path, "0:40", faults="local_control_error,link_cut", do_shrink=False)
    cov = res.summary["coverage"]
    assert cov["fault_kinds"]["local_control_error"]["seeds_drawn"] > 0
    assert cov["fault_kinds"]["local_control_error"]["seeds_hit"] == 0
    assert cov["fault_kinds"]["link_cut"]["seeds_hit"] > 0
    assert any(n.startswith("fault kind local_control_error (drawn in") for n in cov["never_exercised"])
    assert not any(n.startswith("fault kind link_cut") for n in cov["never_exercised"])


def test_a_yaml_scenario_draws_no_fault_that_only_a_control_after_init_could_trigger(tmp_path):
    res = _campaign(SHIPPED, tmp_path, "0:60", do_shrink=False)
    drawn = {k for r in res.rows for k in r["kinds"]} | {p for r in res.rows for p in r["points"]}
    assert not drawn & {"control_error", "control_timeout", "local_control_error", "local_control_timeout",
                        "control_reply_lost"}
    assert "fault kind link_cut" not in " ".join(res.summary["coverage"]["never_exercised"])
    assert "control_error" in res.summary["not_applicable"]


def test_a_new_campaign_removes_the_previous_ones_outputs(tmp_path):
    out = tmp_path / "out"
    stale = out / "shrunk" / "old-seed1.yaml"
    stale.parent.mkdir(parents=True)
    stale.write_text("scenario: old\n")
    (out / "replay" / "seed-1").mkdir(parents=True)
    _campaign(L3, tmp_path, "0:2", do_shrink=True)
    assert not stale.exists() and not (out / "replay").exists()
    assert (out / "summary.json").is_file()


def test_an_unreachable_scheduler_is_bad_input_and_nothing_is_written(tmp_path):
    import socket

    with socket.socket() as s:  # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "out"
    res = CliRunner().invoke(main, ["campaign", L3, "--seeds", "0:3", "--scheduler", f"tcp://127.0.0.1:{port}",
                                    "--out", str(out)])
    assert res.exit_code == 2 and "cannot connect" in res.output, res.output
    assert not out.exists()


def test_replay_usage_errors_and_a_seed_outside_the_campaign(tmp_path):
    _campaign(L3, tmp_path, "0:3", do_shrink=False)
    runner = CliRunner()
    res = runner.invoke(main, ["campaign", L3, "--replay", str(tmp_path / "out"), "--seed", "1"])
    assert res.exit_code == 2 and "give no SCENARIO" in res.output
    res = runner.invoke(main, ["campaign", "--replay", str(tmp_path / "out"), "--seed", "500"])
    assert res.exit_code == 0 and "seed 500 is not among the campaign's results" in res.output


def test_faults_none_draws_only_points(tmp_path):
    res = _campaign(SHIPPED, tmp_path, "0:30", faults="none", do_shrink=False)
    assert all(r["kinds"] == [] for r in res.rows)
    assert any(r["points"] for r in res.rows)


@pytest.mark.skipif(__import__("importlib").util.find_spec("simpler") is not None,
                    reason="the real runtime is installed here: the hw backend is available")
def test_hw_without_the_real_runtime_is_bad_input_before_any_seed(tmp_path):
    out = tmp_path / "out"
    res = CliRunner().invoke(main, ["campaign", SHIPPED, "--seeds", "0:3", "--backend", "hw", "--out", str(out)])
    assert res.exit_code == 2 and "cannot be imported" in res.output and "--backend sim" in res.output
    assert not out.exists()
