"""The pytest plugin: ``pytest --tierbed-backend=...`` collects the catalog and maps verdicts to outcomes."""

from __future__ import annotations

import os

import pytest

from conformance.catalog import load_catalog
from conformance.judge import Verdict
from conformance.runner import CaseResult, RunResult

pytest_plugins = ["pytester"]


def _args(*args: str) -> list[str]:
    # The plugin comes in through its entry point; load it by name if entry points are switched off.
    extra = ["-p", "conformance.pytest_plugin"] if os.environ.get("PYTEST_DISABLE_PLUGIN_AUTOLOAD") else []
    return [*extra, "-p", "no:cacheprovider", *args]


def test_catalog_cases_run_as_items(pytester: pytest.Pytester) -> None:
    res = pytester.runpytest(*_args("--tierbed-backend=reference", "--tierbed-cases=REG-006,RSESS-001", "-v", "-rs"))
    res.assert_outcomes(passed=1, skipped=1)
    res.stdout.fnmatch_lines(["*tierbed-reference::REG-006 PASSED*", "*tierbed-reference::RSESS-001 SKIPPED*",
                              "SKIPPED*rsess.py*NOT_SUPPORTED*"])
    assert res.ret == 0


def test_keyword_selection_and_collect_only(pytester: pytest.Pytester) -> None:
    res = pytester.runpytest(*_args("--tierbed-backend=sim", "--tierbed-cases=REG-00", "-k", "REG-006",
                                    "--collect-only", "-q"))
    res.stdout.fnmatch_lines(["tierbed-sim::REG-006"])
    assert "REG-001" not in res.stdout.str()


def test_without_the_option_nothing_is_collected(pytester: pytest.Pytester) -> None:
    res = pytester.runpytest(*_args())
    assert res.ret == pytest.ExitCode.NO_TESTS_COLLECTED
    res.assert_outcomes()


def test_bad_options_are_usage_errors(pytester: pytest.Pytester) -> None:
    res = pytester.runpytest(*_args("--tierbed-backend=sim", "--tierbed-cases=NO-SUCH-CASE"))
    assert res.ret == pytest.ExitCode.USAGE_ERROR
    res.stderr.fnmatch_lines(["*matches no case*"])


def test_failing_verdicts_map_to_outcomes(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    """FAIL/CRASH/TIMEOUT fail with the evidence, NON_STRICT is xfailed (runner stubbed: the catalog passes)."""
    verdicts = {"REG-001": Verdict.FAIL, "REG-002": Verdict.NON_STRICT, "REG-003": Verdict.CRASH,
                "REG-004": Verdict.TIMEOUT, "REG-005": Verdict.PASS}

    def fake_run_cases(cases, backend, **kwargs):
        (case,) = cases
        v = verdicts[case.id]
        ev = [{"check": "value", "label": "the answer", "ok": v is Verdict.PASS, "level": "MUST",
               "expected": 42, "observed": 41}]
        return RunResult(backend, 0, {}, [CaseResult(case, v, ev, f"{v.value} on purpose")], 0.0)

    monkeypatch.setattr("conformance.runner.run_cases", fake_run_cases)
    assert {c.id for c in load_catalog().select("REG-001,REG-002,REG-003,REG-004,REG-005")} == set(verdicts)
    res = pytester.runpytest_inprocess(*_args("--tierbed-backend=sim",
                                              "--tierbed-cases=REG-001,REG-002,REG-003,REG-004,REG-005"))
    res.assert_outcomes(passed=1, failed=3, xfailed=1)
    out = res.stdout.str()
    assert "REG-001 [MUST]" in out and "expected 42, observed 41" in out and "verdict: FAIL" in out
    assert "verdict: CRASH" in out and "verdict: TIMEOUT" in out


def test_own_expectations_file_marks_known_and_stale(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch,
                                                     tmp_path) -> None:
    """A user's file (``--tierbed-expectations``): its listed failure is xfailed, its listed pass warns as stale."""
    own = tmp_path / "mine.yaml"
    own.write_text("backend: sim\ndepartures:\n"
                   "  - {case: REG-001, reason: our fork answers this differently}\n"
                   "  - {case: REG-002, reason: listed although it passes}\n", encoding="utf-8")
    verdicts = {"REG-001": Verdict.FAIL, "REG-002": Verdict.PASS}

    def fake_run_cases(cases, backend, *, expectations, **kwargs):
        # Stubbed verdicts (the sim passes the whole catalog); the expectations are the plugin's real ones.
        (case,) = cases
        v = verdicts[case.id]
        return RunResult(backend, 0, {}, [CaseResult(case, v, [], f"{v.value} on purpose",
                                                     expectation=expectations.classify(case.id, v.value))], 0.0)

    monkeypatch.setattr("conformance.runner.run_cases", fake_run_cases)
    res = pytester.runpytest_inprocess(*_args("--tierbed-backend=sim", "--tierbed-cases=REG-001,REG-002", "-rx",
                                              f"--tierbed-expectations={own}"))
    res.assert_outcomes(passed=1, xfailed=1, warnings=1)
    res.stdout.fnmatch_lines([f"*REG-002 passes now: remove it from {own}*",
                              f"XFAIL*REG-001*known departure (FAIL, {own}): our fork answers this differently*"])
    assert res.ret == 0


@pytest.mark.parametrize(("text", "message"), [
    (None, "missing.yaml"),
    ("backend: sim\ndepartures:\n  - {case: NOPE-001, reason: a long enough reason}\n",
     "missing.yaml:3: departures[0].case: NOPE-001 is not a case of the catalog"),
])
def test_a_bad_expectations_file_is_a_usage_error(pytester: pytest.Pytester, tmp_path, text, message) -> None:
    f = tmp_path / "missing.yaml"
    if text is not None:
        f.write_text(text, encoding="utf-8")
    res = pytester.runpytest(*_args("--tierbed-backend=sim", "--tierbed-cases=REG-006",
                                    f"--tierbed-expectations={f}"))
    assert res.ret == pytest.ExitCode.USAGE_ERROR
    err = res.stderr.str()
    assert "--tierbed-expectations: " in err and message in err and "Traceback" not in err
