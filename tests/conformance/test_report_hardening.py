"""Hardening of ``tierbed conform`` / ``tierbed report``: progress lines off a terminal, the case
selection in the run JSON (a partial run is compared on the cases it ran), known departures marked
in the diff, and ``-m tierbed`` selecting only the catalog under pytest."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from conformance.cli import main
from conformance.html import diff_lines, load_run, render_html, verdict_diff
from conformance.progress import LineProgress
from conformance.report import SCHEMA, selected_ids

pytest_plugins = ["pytester"]


# ------------------------------------------------------------------------- 1. progress lines


def test_line_progress_prints_the_first_every_interval_and_the_last() -> None:
    now = [0.0]
    out = io.StringIO()
    p = LineProgress("conform sim", 5, stream=out, every_s=10.0, clock=lambda: now[0])
    for t, failing in ((2.0, False), (4.0, True), (8.0, False), (14.0, True), (15.0, False)):
        now[0] = t
        p.update(failing)
    assert out.getvalue().splitlines() == [
        "conform sim: 1/5 cases, 0 failing",  # one result: no pace yet (its time is mostly start-up)
        "conform sim: 4/5 cases, 2 failing, ETA 4s",  # 12 s after the first line: 4 s a case since then
        "conform sim: 5/5 cases, 2 failing, done in 15s",
    ]


def test_conform_off_a_terminal_prints_progress_lines_and_records_the_selection(tmp_path: Path) -> None:
    res = CliRunner().invoke(main, ["conform", "--backend", "reference", "--cases", "REG-006,RSESS-001",
                                    "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    assert "conform reference: 2/2 cases, 0 failing, done in" in res.stderr
    data = load_run(tmp_path / "conformance-reference.json")
    assert data["run"]["selection"] == {"pattern": "REG-006,RSESS-001", "cases": ["REG-006", "RSESS-001"]}


# ------------------------------------------------------------------- 2. selection-aware diff


def _report(backend: str, verdicts: dict[str, str], selection: list[str] | None = None,
            known: tuple[str, ...] = ()) -> dict:
    run: dict = {"backend": backend, "counts": {}}
    if selection is not None:
        run["selection"] = {"pattern": None, "cases": selection}
    return {"schema": SCHEMA, "run": run,
            "cases": [{"id": cid, "verdict": v, "title": cid, "level": "MUST",
                       **({"expectation": {"status": "known", "reason": "listed", "file": "x.yaml"}}
                          if cid in known else {})}
                      for cid, v in verdicts.items()]}


FULL = {f"C-{i:03d}": "PASS" for i in range(10)}


def test_diff_of_a_full_and_a_partial_run_compares_only_the_cases_both_ran(tmp_path: Path) -> None:
    full = _report("sim", FULL, list(FULL))
    partial = _report("sim", {"C-001": "PASS", "C-002": "FAIL"}, ["C-001", "C-002", "C-003"])  # C-003: interrupted
    assert verdict_diff([full, partial]) == [("C-002", ["PASS", "FAIL"]), ("C-003", ["PASS", "—"])]
    head = diff_lines([full, partial])[0]
    assert "2 of 3 cases differ" in head and "7 selected by only some runs, not compared" in head
    files = []
    for i, data in enumerate((full, partial)):
        files.append(tmp_path / f"r{i}.json")
        files[-1].write_text(json.dumps(data), encoding="utf-8")
    res = CliRunner().invoke(main, ["report", *map(str, files), "--out", str(tmp_path / "html")])
    assert res.exit_code == 0, res.output
    assert "2 of 3 cases differ" in res.output and "C-005" not in res.output
    assert "7 cases were selected by only some runs" in (tmp_path / "html" / "conformance.html").read_text()


def test_an_interrupted_run_is_compared_only_on_the_cases_it_finished(tmp_path: Path) -> None:
    full = _report("sim", FULL, list(FULL))
    cut = _report("sim", {"C-001": "PASS", "C-002": "FAIL"}, list(FULL))  # asked for all ten, stopped after two
    cut["run"]["interrupted"] = True
    assert verdict_diff([full, cut]) == [("C-002", ["PASS", "FAIL"])]
    lines = diff_lines([full, cut])
    assert "1 of 2 cases differ" in lines[0] and "8 selected by only some runs, not compared" in lines[0]
    assert any("was interrupted: only the 2 of its 10 selected cases it finished are compared" in line
               for line in lines)
    del cut["run"]["interrupted"]  # the same report, not marked: its missing cases show as "—"
    assert ("C-003", ["PASS", "—"]) in verdict_diff([full, cut])


def test_old_reports_without_a_selection_still_load_and_select_the_cases_they_hold(tmp_path: Path) -> None:
    old = _report("sim", {"C-001": "PASS", "C-002": "FAIL"})
    path = tmp_path / "old.json"
    path.write_text(json.dumps(old), encoding="utf-8")
    assert selected_ids(load_run(path)) == ["C-001", "C-002"]
    assert verdict_diff([_report("sim", FULL, list(FULL)), old]) == [("C-002", ["PASS", "FAIL"])]
    bad = _report("sim", {"C-001": "PASS"})
    bad["run"]["selection"] = {"cases": "C-001"}
    path.write_text(json.dumps(bad), encoding="utf-8")
    with pytest.raises(ValueError, match=r"run\.selection"):
        load_run(path)


# ------------------------------------------------------------------- 3. known in the diff


def test_known_departures_are_marked_in_the_diff_lines_and_the_html_diff_table() -> None:
    runs = [_report("sim", {"C-001": "PASS", "C-002": "PASS"}),
            _report("hw", {"C-001": "FAIL", "C-002": "FAIL"}, known=("C-001",))]
    lines = diff_lines(runs)
    assert any("C-001" in x and "hw=FAIL (known)" in x for x in lines)
    assert any("C-002" in x and "hw=FAIL" in x and "(known)" not in x for x in lines)
    page = render_html(runs)
    table = page[page.index('id="diff"'):]
    table = table[:table.index("</table>")]
    row = table[table.index("#case-C-001"):]
    assert "(known)" in row[:row.index("</tr>")]
    row = table[table.index("#case-C-002"):]
    assert "(known)" not in row[:row.index("</tr>")]


# ------------------------------------------------------------------- 4. -m tierbed under pytest


def _args(*args: str) -> list[str]:
    extra = ["-p", "conformance.pytest_plugin"] if os.environ.get("PYTEST_DISABLE_PLUGIN_AUTOLOAD") else []
    return [*extra, "-p", "no:cacheprovider", *args]


def test_marker_tierbed_selects_only_the_catalog_items(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_own="def test_own():\n    pass\n")
    both = pytester.runpytest(*_args("--tierbed-backend=sim", "--tierbed-cases=REG-006", "--strict-markers",
                                     "--collect-only", "-q"))
    both.stdout.fnmatch_lines(["test_own.py::test_own", "tierbed-sim::REG-006"])
    only = pytester.runpytest(*_args("--tierbed-backend=sim", "--tierbed-cases=REG-006", "--strict-markers",
                                     "-m", "tierbed", "--collect-only", "-q"))
    only.stdout.fnmatch_lines(["tierbed-sim::REG-006"])
    assert "test_own" not in only.stdout.str()
    own = pytester.runpytest(*_args("--tierbed-backend=sim", "--tierbed-cases=REG-006", "-m", "not tierbed",
                                    "--collect-only", "-q"))
    own.stdout.fnmatch_lines(["test_own.py::test_own"])
    assert "REG-006" not in own.stdout.str()
