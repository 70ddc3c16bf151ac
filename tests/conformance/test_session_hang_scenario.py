"""The YAML scenario format knows SessionHang; the hang example passes on sim by the health-expiry path.

Spec: upstream ``docs/remote-l3-worker-design/protocol.md`` "Ordering" (health expiry fails the
endpoint and the in-flight request) and ``docs/remote-l3-worker-design.md`` "Session execution rules".
"""

from __future__ import annotations

from pathlib import Path

import pytest

from conformance.judge import Verdict
from conformance.scenario import ScenarioError, parse_scenario
from conformance.scenario_runner import run_scenario

SCENARIOS = Path(__file__).resolve().parents[2] / "conformance" / "scenarios"
HANG = SCENARIOS / "l4_two_l3_session_hang.yaml"
CRASH = SCENARIOS / "l4_two_l3_session_crash.yaml"


def _fail_t(rec, scope: str) -> float:
    return next(e.t for e in rec.events if e.kind.value == "fail" and e.scope == scope and e.subject == "endpoint")


def test_hang_example_passes_on_sim_and_reference_says_not_supported() -> None:
    res = run_scenario(HANG, "sim", seed=0)
    assert res.verdict is Verdict.PASS, res.judgment.evidence
    assert run_scenario(HANG, "reference", seed=0).verdict is Verdict.NOT_SUPPORTED


def test_hang_is_found_by_a_timeout_and_crash_by_the_closed_connection() -> None:
    hang = run_scenario(HANG, "sim", seed=0).record
    crash = run_scenario(CRASH, "sim", seed=0).record
    assert hang.tasks["l4:r1:t2"].error_class == crash.tasks["l4:r1:t2"].error_class == "ENDPOINT_FAILURE"
    assert "connection closed" in crash.tasks["l4:r1:t2"].message
    assert "connection closed" not in hang.tasks["l4:r1:t2"].message
    assert _fail_t(crash, "l4.w1") < 2000.0 + 1000.0  # one link latency after the crash
    assert _fail_t(hang, "l4.w1") > 1e6  # the health / command timeout, seconds later


def test_session_hang_fault_is_validated_like_session_crash() -> None:
    text = HANG.read_text().replace("{type: SessionHang, worker: node1, at_us: 2000}",
                                    "{type: SessionHang, worker: node0, at_us: 2000}")
    with pytest.raises(ScenarioError, match="not a remote worker"):
        parse_scenario(text, "edited.yaml")
