"""Expectations files: known departures keep a run green and stay visible in every report."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from click.testing import CliRunner

from conformance.catalog import load_catalog
from conformance.cli import main
from conformance.expectations import BUILTIN_DIR, ExpectationsError, load_expectations, parse_expectations
from conformance.judge import Verdict
from conformance.report import write_reports
from conformance.runner import run_cases

from .test_conformance import _harness

HARNESS_IDS = [c.id for c in _harness()]
GOOD = """\
backend: sim
versions: ""
departures:
  - case: TST-002
    reason: fails on purpose to show a known departure
  - case: TST-001
    reason: listed although it passes, to show a stale entry
  - case: TST-004
    verdicts: [FAIL]
    reason: known to FAIL, but it CRASHes, which is not what is known
"""


def test_shipped_files_are_valid_and_select_by_backend_and_version() -> None:
    files = sorted(BUILTIN_DIR.glob("*.yaml"))
    assert files, "the package ships its expectations files"
    ids = [c.id for c in load_catalog()]
    for f in files:
        parse_expectations(f.read_text(encoding="utf-8"), f.name, ids)
    hw = load_expectations("hw", "0.1.0")
    assert "LVL-008" in hw.by_case and hw.by_case["LVL-008"].reason
    assert "LVL-021" not in hw.by_case  # a second close() is a no-op on both (upstream Worker.close)
    assert hw.files == ("conformance/expectations/hw-simpler-0.1.yaml",)
    assert load_expectations("hw", "0.2.0").by_case == {}
    assert load_expectations("hw", "unknown").by_case == {}  # a version range never matches an unknown version
    # The simulator is the spec and the reference its oracle: nothing departs there.
    assert load_expectations("sim", "0.1.0").by_case == {}
    assert load_expectations("reference", "0.1.0").by_case == {}


@pytest.mark.parametrize("text, where", [
    ("backend: sim\ndepartures:\n  - case: TST-002\n    reason: a long enough reason\n    why: x\n",
     "f.yaml:5: departures[0].why: unknown field"),
    ("backend: sim\ndepartures:\n  - case: TST-999\n    reason: a long enough reason\n",
     "f.yaml:3: departures[0].case: TST-999 is not a case of the catalog"),
    ("backend: sim\ndepartures:\n  - {case: TST-002, reason: a long enough reason}\n"
     "  - {case: TST-002, reason: a long enough reason}\n", "f.yaml:4: departures[1].case: TST-002 is listed twice"),
    ("backend: sim\nversions: '>>1'\n", "f.yaml:2: versions: not a PEP 440 version specifier set"),
    ("backend: gpu\n", "f.yaml:1: backend:"),
    ("backend: sim\ndepartures:\n  - {case: TST-002, verdicts: [SKIP], reason: a long enough reason}\n",
     "f.yaml:3: departures[0].verdicts[0]"),
    ("backend: sim\ndepartures:\n  - {case: TST-002, reason: short}\n", "f.yaml:3: departures[0].reason"),
    ("backend: sim\ndepartures: [\n", "f.yaml:3: YAML syntax error"),
    ("- just a list\n", "f.yaml:1: an expectations file is a YAML mapping"),
])
def test_a_bad_file_names_its_line_and_field(text: str, where: str) -> None:
    with pytest.raises(ExpectationsError) as info:
        parse_expectations(text, "f.yaml", HARNESS_IDS)
    assert str(info.value).startswith(where), str(info.value)


def test_one_case_listed_by_two_files_for_one_version_is_an_error(tmp_path: Path) -> None:
    body = "backend: sim\ndepartures:\n  - {case: TST-002, reason: a long enough reason}\n"
    (tmp_path / "a.yaml").write_text(body, encoding="utf-8")
    (tmp_path / "b.yaml").write_text(body, encoding="utf-8")
    with pytest.raises(ExpectationsError, match=r"already listed in .*a\.yaml"):
        load_expectations("sim", "0.1.0", [tmp_path / "a.yaml", tmp_path / "b.yaml"], builtin=False,
                          case_ids=HARNESS_IDS)


@pytest.fixture(scope="module")
def marked_run(tmp_path_factory: pytest.TempPathFactory):
    f = tmp_path_factory.mktemp("exp") / "sim.yaml"
    f.write_text(GOOD, encoding="utf-8")
    exp = load_expectations("sim", "0.1.0", [f], builtin=False, case_ids=HARNESS_IDS)
    return run_cases(list(_harness()), "sim", jobs=2, timeout_s=3, expectations=exp)


def test_known_departures_do_not_fail_the_run_but_stay_reported(marked_run, tmp_path: Path) -> None:
    by_id = {r.case.id: r for r in marked_run.results}
    assert by_id["TST-002"].verdict is Verdict.FAIL and by_id["TST-002"].known
    assert by_id["TST-001"].verdict is Verdict.PASS and by_id["TST-001"].expectation["status"] == "stale"
    assert by_id["TST-004"].verdict is Verdict.CRASH and by_id["TST-004"].expectation is None
    assert [r.case.id for r in marked_run.failed_must()] == ["TST-003", "TST-004"]
    assert [r.case.id for r in marked_run.with_expectation("known")] == ["TST-002"]

    json_path, junit_path = write_reports(marked_run, tmp_path)
    data = json.loads(json_path.read_text(encoding="utf-8"))
    assert (data["run"]["known_departures"], data["run"]["stale_expectations"]) == (1, 1)
    cases = {c["id"]: c for c in data["cases"]}
    assert cases["TST-002"]["verdict"] == "FAIL"
    assert cases["TST-002"]["expectation"]["reason"] == "fails on purpose to show a known departure"
    assert "expectation" not in cases["TST-003"]
    root = ET.parse(junit_path).getroot()
    # TST-002 moves from failures to skipped; CRASH and TIMEOUT stay errors.
    assert (root.get("failures"), root.get("errors"), root.get("skipped")) == ("1", "2", "2")
    tc = next(t for t in root.iter("testcase") if t.get("name").startswith("TST-002"))
    assert tc.find("failure") is None and "known departure (FAIL)" in tc.find("skipped").get("message")


def test_html_marks_known_and_stale(marked_run) -> None:
    from conformance.html import render_html
    from conformance.report import to_json

    page = render_html([to_json(marked_run)])
    assert "FAIL <small>(known)</small>" in page and "PASS <small>(stale)</small>" in page
    assert "fails on purpose to show a known departure" in page


def test_cli_reports_stale_entries_and_rejects_bad_files(tmp_path: Path) -> None:
    good = tmp_path / "sim.yaml"
    good.write_text("backend: sim\ndepartures:\n  - {case: LVL-001, reason: listed to show a stale entry}\n",
                    encoding="utf-8")
    runner = CliRunner()
    res = runner.invoke(main, ["conform", "--backend", "sim", "--cases", "LVL-001", "--out", str(tmp_path),
                               "--expectations", str(good)])
    assert res.exit_code == 0, res.output
    assert f"stale         LVL-001 passes now: remove it from {good}" in res.output
    bad = tmp_path / "bad.yaml"
    bad.write_text("backend: sim\ndepartures:\n  - {case: NOPE-001, reason: a long enough reason}\n",
                   encoding="utf-8")
    res = runner.invoke(main, ["conform", "--backend", "sim", "--cases", "LVL-001", "--out", str(tmp_path),
                               "--expectations", str(bad)])
    assert res.exit_code == 2 and "Traceback" not in res.output  # invalid input
    assert f"{bad}:3: departures[0].case: NOPE-001 is not a case of the catalog" in res.output


def test_a_departure_that_shows_only_sometimes_lists_pass_and_is_never_stale(tmp_path: Path) -> None:
    f = tmp_path / "racy.yaml"
    f.write_text("backend: sim\ndepartures:\n  - {case: TST-001, verdicts: [FAIL, PASS], reason: a race upstream}\n",
                 encoding="utf-8")
    exp = load_expectations("sim", "0.1.0", [f], builtin=False, case_ids=HARNESS_IDS)
    assert exp.classify("TST-001", "PASS") is None
    assert exp.classify("TST-001", "FAIL")["status"] == "known"
    assert exp.classify("TST-001", "CRASH") is None
