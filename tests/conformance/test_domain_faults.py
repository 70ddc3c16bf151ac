"""The communication-domain fault points seen by campaigns like any other fault: drawn from the fault space,
taking effect on a target with a collective, and classified (HANG for a member crash, ENDPOINT_FAILURE for a
link cut); the generators' hw and reference limits never draw them."""

from __future__ import annotations

import json

from conformance.campaign import api
from conformance.campaign.seedrun import observe
from conformance.campaign.target import FunctionTarget
from conformance.fault_space import FaultSpace
from conformance.generators.limits import limits_for
from sim.faultpoints import FAULT_POINTS

ALLREDUCE = "conformance.campaign.examples:l3_allreduce"
DOMAIN_POINTS = ("domain_member_crash", "domain_link_cut")


def _rows(tmp_path, point: str, seeds: str = "0:16"):
    target = FunctionTarget(ALLREDUCE)
    target.fault_space = FaultSpace(kinds="none", points={point: 1.0})
    res = api.run_campaign(target, seeds, out=tmp_path / point, inline=True, progress=False, do_shrink=False)
    hit = [r for r in res.rows if json.loads(r["faults_hit"]).get(f"point:{point}")]
    return res, hit


def test_the_domain_points_are_in_the_catalog_and_the_default_space():
    assert set(DOMAIN_POINTS) <= set(FAULT_POINTS)
    assert set(DOMAIN_POINTS) <= set(FaultSpace().point_probabilities())


def test_without_faults_the_allreduce_target_completes():
    obs = observe(api.make_spec(ALLREDUCE), 0, [])
    assert obs.run.outcome == "OK" and obs.record is not None
    assert [t.outcome.value for t in obs.record.tasks.values()] == ["COMPLETED"]


def test_a_member_crash_is_a_hang_naming_the_waiting_collective(tmp_path):
    res, hit = _rows(tmp_path, "domain_member_crash")
    assert hit, "the point never took effect in 16 seeds"
    hangs = [r for r in hit if r["outcome"] == "HANG"]
    assert hangs and all("all_reduce" in r["message"] and "waits for rank(s)" in r["message"] for r in hangs)
    # Every rank crashing leaves nobody waiting: the run fails instead (TASK_FAILURE), never passes.
    assert all(r["outcome"] == "HANG" or (r["outcome"], r["error_class"]) == ("ERROR", "TASK_FAILURE") for r in hit)
    assert res.summary["hangs"] == len(hangs) and res.summary["by_invariant"].get("no_hang")
    assert all(r["outcome"] == "OK" for r in res.rows if r not in hit)


def test_a_link_cut_fails_every_rank_with_endpoint_failure(tmp_path):
    res, hit = _rows(tmp_path, "domain_link_cut")
    assert hit, "the point never took effect in 16 seeds"
    for r in hit:
        assert (r["outcome"], r["error_class"]) == ("ERROR", "TASK_FAILURE"), r
        assert r["task_error_classes"] == ["ENDPOINT_FAILURE"] and r["failed"] == r["tasks"] == 1, r
    assert res.summary["hangs"] == 0


def test_hw_and_reference_generators_never_draw_fault_points():
    for backend in ("hw", "reference"):
        assert "FaultPoint" not in limits_for(backend).faults
    assert "FaultPoint" in limits_for("sim").faults
