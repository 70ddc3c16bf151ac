"""A campaign on the real runtime: the shipped scenario's seeds through the fault relay, cleanup checked per seed."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("simpler", reason="the real runtime (simpler) is not installed in this environment")

from conformance.campaign import api
from conformance.campaign.seedrun import observe

SHIPPED = str(Path(__file__).resolve().parents[2] / "conformance" / "scenarios" / "l4_remote_faults.yaml")


def test_hw_seeds_run_through_the_relay_and_leave_nothing_behind(tmp_path):
    res = api.run_campaign(SHIPPED, "0:3", out=tmp_path, backend="hw", inline=True, progress=False,
                           faults="session_crash,link_cut", do_shrink=False)
    assert res.summary["runs"] == 3
    assert {r["run"].split(":")[0] for r in res.rows} <= {"OK", "ERROR", "INIT_ERROR"}
    assert res.summary["by_invariant"] == {}, res.summary["by_invariant"]
    assert res.summary["coverage"]["fault_points"] == {}  # points are the model's; the hw space has none


def test_a_crashed_session_on_hw_fails_the_run_with_an_endpoint_failure():
    spec = api.make_spec(SHIPPED, backend="hw")
    obs = observe(spec, 0, [{"type": "SessionCrash", "worker": "node1", "at_us": 0.0}])
    assert obs.run.error_class == "ENDPOINT_FAILURE", obs.run
    assert obs.leftovers == []


def test_a_fault_the_relay_cannot_inject_is_not_supported_not_a_violation():
    spec = api.make_spec(SHIPPED, backend="hw")
    obs = observe(spec, 0, [{"type": "LinkClog", "worker": "node1", "start_us": 0.0, "end_us": 10.0}])
    assert obs.run.outcome == "NOT_SUPPORTED" and "LinkClog" in obs.run.message
