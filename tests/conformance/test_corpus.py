"""A corpus of YAML scenario files as a test suite: ``tierbed run DIR``, ``tierbed conform --scenarios``
and the pytest plugin's scenario items, on the real sim backend."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from conformance.catalog import find_case
from conformance.cli import main
from conformance.corpus import CorpusError, load_corpus, scenario_files

pytest_plugins = ["pytester"]

# One chip adds two tensors of ones; ``outcome`` is what the scenario expects of the task (the sim
# completes it, so FAILED is an expectation the sim does not meet).
SCENARIO = """\
scenario: {name}
topology: {{name: node, level: 3, device_ids: [0], num_sub_workers: 0}}
tensors:
  - {{name: a, shape: [2, 8], init: ones}}
  - {{name: b, shape: [2, 8], init: ones}}
  - {{name: x, shape: [2, 8]}}
callables:
  - {{name: add, kernel: add, worker: node}}
program:
  node:
    - kind: next_level
      id: stage1
      callable: add
      worker: 0
      args: [{{tensor: a, tag: INPUT}}, {{tensor: b, tag: INPUT}}, {{tensor: x, tag: OUTPUT}}]
expect:
  tasks: {{stage1: {outcome}}}
"""
CORRUPT = "scenario: broken\ntopology:\n  name: node\n  level: 3\n  bogus: 1\nprogram: {node: []}\n"


def _write(path: Path, name: str, outcome: str = "COMPLETED") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(SCENARIO.format(name=name, outcome=outcome), encoding="utf-8")
    return path


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    """A directory: a passing scenario, and a failing one (a .yml file) in a subdirectory."""
    d = tmp_path / "corpus"
    _write(d / "pass.yaml", "add-ok")
    _write(d / "deeper" / "fail.yml", "add-expects-failure", outcome="FAILED")
    return d


def _invoke(*args: str) -> object:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


# ------------------------------------------------------------------------------------- the corpus


def test_directories_expand_recursively_in_path_order(corpus: Path, tmp_path: Path) -> None:
    (corpus / "notes.txt").write_text("not a scenario")
    files = scenario_files([corpus, corpus / "pass.yaml"])  # a file named twice counts once
    assert [f.relative_to(corpus).as_posix() for f in files] == ["deeper/fail.yml", "pass.yaml"]
    cases = load_corpus([corpus])
    assert [c.id for c in cases] == ["add-expects-failure", "add-ok"]
    with pytest.raises(CorpusError, match="no such file or directory"):
        scenario_files([tmp_path / "missing"])
    with pytest.raises(CorpusError, match="no scenario file"):
        scenario_files([_empty(tmp_path)])


def _empty(tmp_path: Path) -> Path:
    d = tmp_path / "empty"
    d.mkdir()
    return d


def test_a_corpus_case_is_found_again_from_its_locator(corpus: Path) -> None:
    (case,) = load_corpus([corpus / "pass.yaml"])
    module, qualname, file, kind, args = case.locator()
    assert (module, qualname, kind, args) == ("conformance.corpus", "case_from_file", "file", ())
    assert file == str((corpus / "pass.yaml").resolve())
    again = find_case(*case.locator())
    assert (again.id, again.spec[1], again.file) == ("add-ok", "scenario", case.file)


def test_two_files_with_one_scenario_name_are_an_input_error(corpus: Path) -> None:
    _write(corpus / "zz" / "copy.yaml", "add-ok")
    with pytest.raises(CorpusError) as err:
        load_corpus([corpus])
    (problem,) = err.value.problems
    assert "zz/copy.yaml" in problem and "pass.yaml" in problem and "'add-ok'" in problem


# ------------------------------------------------------------------------------------- tierbed run


def test_run_several_scenarios_exit_codes(corpus: Path, tmp_path: Path) -> None:
    res = _invoke("run", str(corpus), "--timeout", "60")
    assert res.exit_code == 1, res.output
    lines = res.stdout.splitlines()  # progress lines go to stderr
    assert lines[0].startswith("tierbed run: 2 scenarios, backend sim, seed 0")
    assert lines[1].split()[:2] == ["FAIL", "add-expects-failure"] and "deeper/fail.yml" in lines[1]
    assert "expected 'FAILED', observed 'COMPLETED'" in lines[1]
    assert lines[2].split()[:2] == ["PASS", "add-ok"]
    assert "FAIL 1, PASS 1 of 2 scenarios" in lines[3]

    other = _write(tmp_path / "other.yaml", "add-ok-too")
    res = _invoke("run", str(corpus / "pass.yaml"), str(other))
    assert res.exit_code == 0, res.output
    assert "PASS 2 of 2 scenarios" in res.output


def test_run_reports_every_invalid_file_and_runs_nothing(corpus: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(CORRUPT)
    bad2 = tmp_path / "bad2.yml"
    bad2.write_text("scenario: [not, a, name]\n")
    res = _invoke("run", str(corpus), str(bad), str(bad2))
    assert res.exit_code == 2
    assert f"{bad}:5: topology.bogus: unknown field 'bogus'" in res.output
    assert f"{bad2}:1: scenario" in res.output
    assert "2 invalid inputs; nothing was run" in res.output
    assert "PASS" not in res.output and "tierbed run:" not in res.output

    _write(corpus / "zz" / "copy.yaml", "add-ok")
    res = _invoke("run", str(corpus))
    assert res.exit_code == 2 and "zz/copy.yaml" in res.output and "pass.yaml" in res.output


def test_run_accepts_a_campaign_case_file_and_checks_invariants_first(corpus: Path, tmp_path: Path) -> None:
    case = tmp_path / "shrunk.yaml"
    case.write_text("target: conformance.campaign.examples:l3_pipeline\nseed: 3\nfaults: []\n"
                    "invariants: [all_terminal]\n")
    res = _invoke("run", str(corpus / "pass.yaml"), str(case), "--invariant", "typed_errors")
    assert res.exit_code == 0, res.output
    assert "seeds 0, 3 (the files' seed:)" in res.stdout
    assert [ln.split()[:2] for ln in res.stdout.splitlines()[1:3]] == [["PASS", "add-ok"], ["PASS", str(case)]]
    bad = tmp_path / "bad.yaml"
    bad.write_text(CORRUPT)
    res = _invoke("run", str(corpus / "pass.yaml"), str(case), str(bad), "--invariant", "nosuch:check")
    assert res.exit_code == 2 and "2 invalid inputs; nothing was run" in res.output
    assert "--invariant nosuch:check: invariant 'nosuch:check'" in res.output and f"{bad}:5:" in res.output
    case.write_text("target: conformance.campaign.examples:l3_pipeline\ninvariants: [nosuch:own]\n")
    res = _invoke("run", str(corpus / "pass.yaml"), str(case))
    assert res.exit_code == 2 and f"{case}: invariant 'nosuch:own'" in res.output


def test_run_of_one_file_keeps_its_detailed_output(corpus: Path) -> None:
    res = _invoke("run", str(corpus / "deeper" / "fail.yml"))
    assert res.exit_code == 1
    assert "tierbed run: scenario add-expects-failure" in res.output
    assert "checks" in res.output and "verdict     FAIL" in res.output


# ------------------------------------------------------------------------------------- tierbed conform


def test_conform_runs_the_corpus_with_reports_and_expectations(corpus: Path, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # the corpus given as a relative path: the reports name its files so
    out = tmp_path / "out"
    res = _invoke("conform", "--backend", "sim", "--scenarios", "corpus", "--no-catalog", "--out", str(out))
    assert res.exit_code == 1, res.output
    report = json.loads((out / "conformance-sim.json").read_text())
    cases = {c["id"]: c for c in report["cases"]}
    assert list(cases) == ["add-expects-failure", "add-ok"]
    assert cases["add-ok"]["verdict"] == "PASS" and cases["add-expects-failure"]["verdict"] == "FAIL"
    assert cases["add-ok"]["spec"] == {"document": "corpus/pass.yaml", "heading": "scenario"}
    assert cases["add-ok"]["area"] == "scenario"
    assert report["run"]["selection"]["scenarios"] == ["corpus"]
    assert report["run"]["selection"]["catalog"] is False
    assert 'name="add-expects-failure' in (out / "conformance-sim.junit.xml").read_text()
    assert "add-expects-failure" in (out / "conformance-sim.html").read_text()

    exp = tmp_path / "known.yaml"
    exp.write_text("backend: sim\ndepartures:\n  - case: add-expects-failure\n"
                   "    reason: the scenario expects a failure the sim does not produce\n")
    res = _invoke("conform", "--backend", "sim", "--scenarios", "corpus", "--no-catalog", "--out", str(out),
                  "--expectations", str(exp))
    assert res.exit_code == 0, res.output
    assert "known FAIL     add-expects-failure" in res.output
    report = json.loads((out / "conformance-sim.json").read_text())
    assert {c["id"]: (c.get("expectation") or {}).get("status") for c in report["cases"]} == {
        "add-expects-failure": "known", "add-ok": None}


def test_conform_cases_pattern_selects_among_catalog_and_corpus(corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    res = _invoke("conform", "--backend", "sim", "--scenarios", str(corpus), "--cases", "ADD-OK", "--out", str(out))
    assert res.exit_code == 0, res.output
    report = json.loads((out / "conformance-sim.json").read_text())
    assert [c["id"] for c in report["cases"]] == ["add-ok"]
    assert report["run"]["selection"]["catalog"] is True


def test_conform_input_errors_write_no_report(corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    _write(corpus / "clash.yaml", "REG-001")  # the ID of a catalog case
    (corpus / "bad.yaml").write_text(CORRUPT)
    res = _invoke("conform", "--backend", "sim", "--scenarios", str(corpus), "--out", str(out))
    assert res.exit_code == 2
    assert f"{corpus / 'bad.yaml'}:5: topology.bogus" in res.output
    assert "'REG-001' is the ID of a catalog case" in res.output
    assert not out.exists()
    res = _invoke("conform", "--backend", "sim", "--no-catalog", "--out", str(out))
    assert res.exit_code == 2 and "--scenarios" in res.output


# ------------------------------------------------------------------------------------- pytest


def _args(*args: str) -> list[str]:
    extra = ["-p", "conformance.pytest_plugin"] if os.environ.get("PYTEST_DISABLE_PLUGIN_AUTOLOAD") else []
    return [*extra, "-p", "no:cacheprovider", *args]


def test_pytest_collects_scenario_files(pytester: pytest.Pytester) -> None:
    _write(pytester.path / "suite" / "pass.yaml", "add-ok")
    _write(pytester.path / "suite" / "fail.yml", "add-expects-failure", outcome="FAILED")
    (pytester.path / "suite" / "config.yaml").write_text("colour: blue\n")  # not a scenario: ignored
    res = pytester.runpytest(*_args("--tierbed-backend=sim", "--tierbed-no-catalog", "-v", "suite"))
    res.assert_outcomes(passed=1, failed=1)
    res.stdout.fnmatch_lines(["*suite/fail.yml::add-expects-failure FAILED*", "*suite/pass.yaml::add-ok PASSED*",
                              "*expected 'FAILED', observed 'COMPLETED'*"])
    res = pytester.runpytest(*_args("--tierbed-backend=sim", "--tierbed-no-catalog", "-m", "tierbed",
                                    "--collect-only", "-q", "suite"))
    res.stdout.fnmatch_lines(["suite/fail.yml::add-expects-failure", "suite/pass.yaml::add-ok"])
    # without --tierbed-backend the plugin collects nothing
    assert pytester.runpytest(*_args("suite")).ret == pytest.ExitCode.NO_TESTS_COLLECTED


def test_pytest_scenarios_option_and_expectations(pytester: pytest.Pytester) -> None:
    _write(pytester.path / "corpus" / "fail.yaml", "add-expects-failure", outcome="FAILED")
    exp = pytester.path / "known.yaml"
    exp.write_text("backend: sim\ndepartures:\n  - case: add-expects-failure\n"
                   "    reason: the scenario expects a failure the sim does not produce\n")
    pytester.makepyfile(test_plain="def test_plain():\n    pass\n")
    res = pytester.runpytest(*_args("--tierbed-backend=sim", "--tierbed-no-catalog", "--tierbed-scenarios=corpus",
                                    f"--tierbed-expectations={exp}", "-rx", "test_plain.py"))
    res.assert_outcomes(passed=1, xfailed=1)
    res.stdout.fnmatch_lines(["*known departure (FAIL, *known.yaml)*"])


def test_pytest_scenario_names_must_be_unique(pytester: pytest.Pytester) -> None:
    _write(pytester.path / "a.yaml", "REG-001")
    res = pytester.runpytest(*_args("--tierbed-backend=sim", "a.yaml"))
    assert res.ret == pytest.ExitCode.USAGE_ERROR
    res.stderr.fnmatch_lines(["*a.yaml: scenario name 'REG-001' is the ID of a catalog case*"])
    _write(pytester.path / "b.yaml", "twice")
    _write(pytester.path / "more" / "c.yaml", "twice")
    res = pytester.runpytest(*_args("--tierbed-backend=sim", "--tierbed-no-catalog", "b.yaml",
                                    "--tierbed-scenarios=more"))
    assert res.ret == pytest.ExitCode.USAGE_ERROR
    res.stderr.fnmatch_lines(["*c.yaml: scenario name 'twice' is also the name of *b.yaml"])


def test_pytest_a_corrupt_scenario_is_a_collection_error(pytester: pytest.Pytester) -> None:
    (pytester.path / "bad.yaml").write_text(CORRUPT)
    res = pytester.runpytest(*_args("--tierbed-backend=sim", "--tierbed-no-catalog", "bad.yaml"))
    assert res.ret == pytest.ExitCode.INTERRUPTED
    res.assert_outcomes(errors=1)
    res.stdout.fnmatch_lines(["bad.yaml:5: topology.bogus: unknown field 'bogus'*"])
    assert "Traceback" not in res.stdout.str() and "conformance/" not in res.stdout.str()
