"""The conformance room: the catalog on sim and reference, the runner's verdicts, and the reports."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import conformance.cases
from conformance.catalog import ID_RE, load_catalog
from conformance.cli import main
from conformance.judge import Verdict
from conformance.report import write_reports
from conformance.runner import run_cases, run_catalog


@pytest.fixture(scope="module")
def sim_run():
    return run_catalog("sim", jobs=2, timeout_s=60)


@pytest.fixture(scope="module")
def ref_run():
    return run_catalog("reference", jobs=2, timeout_s=60)


def test_catalog_ids_metadata_and_size() -> None:
    cases = list(load_catalog())
    assert len(cases) >= 60
    areas = {m.upper() for m in conformance.cases.__all__}  # one module per area
    for c in cases:
        assert ID_RE.fullmatch(c.id) and c.title and c.spec[0] and c.spec[1]
        assert c.area in areas and c.module == f"conformance.cases.{c.area.lower()}"
    assert {c.area for c in cases} == areas == {"LVL", "ORCH", "REG", "RSESS", "RBUF", "SCHED", "WIRE", "DOM"}


def test_every_must_case_passes_on_sim(sim_run) -> None:
    bad = {r.case.id: (r.verdict.value, r.summary) for r in sim_run.results if r.verdict is not Verdict.PASS}
    assert bad == {}
    assert sim_run.failed_must() == []


def test_reference_verdicts(ref_run) -> None:
    unexpected = {r.case.id: (r.verdict.value, r.summary) for r in ref_run.results
                  if r.verdict not in (Verdict.PASS, Verdict.NOT_SUPPORTED)}
    assert unexpected == {}
    # The reference has no remote workers, no codec and no concurrency: those areas are NOT_SUPPORTED,
    # never PASS.
    for r in ref_run.results:
        if r.case.area in ("RSESS", "RBUF", "SCHED", "WIRE", "DOM"):
            assert r.verdict is Verdict.NOT_SUPPORTED, r.case.id


def test_reference_agrees_with_sim_on_every_functional_output(sim_run, ref_run) -> None:
    sim_by = {r.case.id: r for r in sim_run.results}
    compared = 0
    for r in ref_run.results:
        if r.verdict is not Verdict.PASS or not r.outputs:
            continue
        s = sim_by[r.case.id]
        assert set(s.outputs) == set(r.outputs), r.case.id
        for name, value in r.outputs.items():
            np.testing.assert_allclose(np.asarray(s.outputs[name], np.float64), np.asarray(value, np.float64),
                                       rtol=1e-5, atol=1e-6, err_msg=f"{r.case.id}:{name}")
            compared += 1
    assert compared >= 15


def _harness():
    import importlib.util
    import sys

    path = Path(__file__).with_name("harness_cases.py")
    name = "conformance_harness_cases"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, path)
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod
        spec.loader.exec_module(mod)
    return sys.modules[name].HARNESS


@pytest.fixture(scope="module")
def harness_run():
    return run_cases(list(_harness()), "sim", jobs=2, timeout_s=3)


def test_runner_verdicts_for_bad_cases(harness_run) -> None:
    got = {r.case.id: r.verdict for r in harness_run.results}
    assert got == {"TST-001": Verdict.PASS, "TST-002": Verdict.FAIL, "TST-003": Verdict.TIMEOUT,
                   "TST-004": Verdict.CRASH, "TST-005": Verdict.NON_STRICT, "TST-006": Verdict.SKIP}
    crash = next(r for r in harness_run.results if r.case.id == "TST-004")
    assert "exit code 3" in crash.summary
    failed = next(r for r in harness_run.results if r.case.id == "TST-002")
    assert any(e["expected"] == 2 and e["observed"] == 3 and not e["ok"] for e in failed.evidence)
    # The case's own output (Python's and the file descriptor's) is captured as evidence, not printed.
    log = next(e["observed"] for e in failed.evidence if e["check"] == "log")
    assert "diagnostic printed by the failing case" in log and "written to fd 2" in log
    passed = next(r for r in harness_run.results if r.case.id == "TST-001")
    assert not any(e["check"] == "log" for e in passed.evidence)
    assert [r.case.id for r in harness_run.failed_must()] == ["TST-002", "TST-003", "TST-004"]


def test_no_case_process_is_left_behind(harness_run) -> None:
    import multiprocessing

    assert [p for p in multiprocessing.active_children() if p.name.startswith("case-")] == []


def test_reports_parse(harness_run, tmp_path: Path) -> None:
    json_path, junit_path = write_reports(harness_run, tmp_path)
    data = json.loads(json_path.read_text(encoding="utf-8"))
    assert data["schema"] == "tierbed.conformance/1"
    for key in ("backend", "version", "platform", "seed", "git_revision", "host", "counts"):
        assert key in data["run"]
    assert data["run"]["counts"]["TIMEOUT"] == 1
    for c in data["cases"]:
        assert set(c) >= {"id", "title", "spec", "level", "verdict", "evidence", "duration_s"}
        assert set(c["spec"]) == {"document", "heading"}
        assert c["verdict"] in {v.value for v in Verdict}
    root = ET.parse(junit_path).getroot()
    assert root.tag == "testsuite" and root.get("tests") == "6"
    assert (root.get("failures"), root.get("errors"), root.get("skipped")) == ("2", "2", "1")
    cases = {tc.get("name").split()[0]: tc for tc in root.iter("testcase")}
    assert cases["TST-002"].find("failure") is not None
    assert cases["TST-003"].find("error").get("type") == "TIMEOUT"
    assert cases["TST-004"].find("error").get("type") == "CRASH"


def test_cli_list_and_conform(tmp_path: Path) -> None:
    runner = CliRunner()
    res = runner.invoke(main, ["list", "--cases", "WIRE-00*"])
    assert res.exit_code == 0 and "WIRE-001" in res.output and "WIRE-010" not in res.output
    res = runner.invoke(main, ["conform", "--backend", "sim", "--cases", "LVL-01", "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    assert "PASS" in res.output and (tmp_path / "conformance-sim.junit.xml").exists()
    res = runner.invoke(main, ["conform", "--backend", "reference", "--cases", "REG-006", "--out", str(tmp_path)])
    assert res.exit_code == 0 and "PASS" in res.output, res.output
    res = runner.invoke(main, ["conform", "--backend", "hw"])
    assert res.exit_code != 0 and "not available yet" in res.output and "Traceback" not in res.output


def test_checks_a_backend_cannot_observe_make_the_case_not_supported_never_pass() -> None:
    from conformance.catalog import Case, Level
    from conformance.context import CaseContext
    from conformance.judge import judge
    from sim.record import Outcome, RunRecord, TaskRecord

    def record(**meta):
        rec = RunRecord("hw", {"producers": "not observed", **meta})
        for tid in ("l3:r1:t1", "l3:r1:t2"):
            rec.tasks[tid] = TaskRecord(tid, "l3", 3, "next_level", "add", Outcome.COMPLETED, None, "", None, None,
                                        ("w0",), ())
        return rec

    case = Case("TST-900", "judge", ("tests", "judge"), Level.MUST, ("hw",), lambda rt, ctx: None, None, "m", "q",
                None)
    ctx = CaseContext(None, 0)
    rec = record(unobserved_tasks=["l3:r1:t2"])
    ctx.expect_producers(rec, "l3:r1:t2", ("l3:r1:t1",))
    ctx.expect_outcomes(rec, {"l3:r1:t1": "COMPLETED", "l3:r1:t2": "NOT_RUN"})
    j = judge(case, ctx)
    assert j.verdict is Verdict.NOT_SUPPORTED
    assert "not observable on this backend" in j.summary and "l3:r1:t2" in j.summary
    assert [e["observed"] for e in j.evidence if e["check"] == "producers"] == ["not observable"]
    # An observable failure still fails the case, whatever else could not be seen.
    ctx.expect_outcomes(rec, {"l3:r1:t1": "NOT_RUN"})
    assert judge(case, ctx).verdict is Verdict.FAIL
    # With producers observed, the same expectation is judged as usual.
    ctx2 = CaseContext(None, 0)
    ctx2.expect_producers(record(producers=()), "l3:r1:t2", ("l3:r1:t1",))
    assert judge(case, ctx2).verdict is Verdict.FAIL


def test_reports_name_no_directory_of_this_machine(harness_run) -> None:
    import sys
    import tempfile

    from conformance.report import scrub, to_json

    root = str(Path(__file__).resolve().parents[2])
    text = f'File "{sys.prefix}/lib/x.py", line 3, in {root}/sim/node.py; log {tempfile.gettempdir()}/case.log'
    assert scrub(text) == 'File "<python>/lib/x.py", line 3, in <tierbed>/sim/node.py; log <tmp>/case.log'
    assert scrub({"a": [text]}) == {"a": [scrub(text)]} and scrub(7) == 7
    tmp = tempfile.gettempdir()
    assert scrub(f"{tmp}x/other") == f"{tmp}x/other"  # only whole directory names are replaced
    data = json.dumps(to_json(harness_run))
    assert root not in data and sys.prefix not in data


def test_a_value_the_backend_reports_unobservable_is_judged_not_observable() -> None:
    from conformance.backends import Unobservable
    from conformance.catalog import Case, Level
    from conformance.context import CaseContext
    from conformance.judge import judge

    case = Case("TST-901", "judge", ("tests", "judge"), Level.MUST, ("hw",), lambda rt, ctx: None, None, "m", "q",
                None)
    ctx = CaseContext(None, 0)
    assert ctx.check("one equals one", 1, 1)
    assert not ctx.check("handle state", "FREED", Unobservable("the handle shows no state"))
    j = judge(case, ctx)
    assert j.verdict is Verdict.NOT_SUPPORTED
    assert j.summary == "not observable on this backend: handle state (the handle shows no state)"
    [state] = [e for e in j.evidence if e["label"] == "handle state"]
    assert (state["expected"], state["observed"], state["message"]) == ("FREED", "not observable",
                                                                        "the handle shows no state")
    # Seen values still decide: one that differs fails the case.
    ctx.check("two equals three", 2, 3)
    assert judge(case, ctx).verdict is Verdict.FAIL
