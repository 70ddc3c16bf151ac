"""The HTML report and ``tierbed report``: matrix, evidence, swimlanes, verdict diff, bad input."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from conformance.catalog import load_catalog
from conformance.cli import main
from conformance.html import ReportInputError, load_run, render_html, verdict_diff
from conformance.report import to_json, write_json
from conformance.runner import run_cases

# A nested run with timed tasks, a registration case without tasks, and a remote case the
# reference does not support (so the two runs differ on it).
PATTERN = "LVL-016,REG-006,RSESS-001"


@pytest.fixture(scope="module")
def runs():
    cases = load_catalog().select(PATTERN)
    return [to_json(run_cases(cases, b, jobs=2, timeout_s=60)) for b in ("sim", "reference")]


@pytest.fixture(scope="module")
def page(runs) -> str:
    return render_html(runs)


@pytest.fixture
def run_files(runs, tmp_path: Path) -> list[Path]:
    paths = []
    for data in runs:
        p = tmp_path / f"conformance-{data['run']['backend']}.json"
        p.write_text(json.dumps(data), encoding="utf-8")
        paths.append(p)
    return paths


def test_json_keeps_a_compact_timeline_per_case(runs) -> None:
    sim = {c["id"]: c for c in runs[0]["cases"]}
    tl = sim["LVL-016"]["timeline"]
    assert tl and tl[0]["unit"] == "us" and tl[0]["record"]
    for task_id, worker, start, end, fn, outcome in tl[0]["tasks"]:
        assert isinstance(task_id, str) and isinstance(worker, str) and start <= end
        assert fn and outcome == "COMPLETED"
    assert len({t[1] for t in tl[0]["tasks"]}) >= 2  # several worker scopes, one lane each
    ref = {c["id"]: c for c in runs[1]["cases"]}
    assert ref["LVL-016"]["timeline"][0]["unit"] == "step"
    assert "timeline" not in ref["RSESS-001"]  # optional key: absent when nothing was timed


def test_page_has_every_case_the_matrix_and_a_swimlane(runs, page) -> None:
    for data in runs:
        for c in data["cases"]:
            assert f'id="case-{c["id"]}"' in page
    matrix = page[page.index('id="matrix"'):]
    matrix = matrix[:matrix.index("</table>")]
    assert "<th>sim</th>" in matrix and "<th>reference</th>" in matrix
    assert "predicted (sim)" in matrix and "measured (hw)" in matrix
    row = matrix[matrix.index('href="#case-RSESS-001"'):]
    row = row[:row.index("</tr>")]
    assert 'class="v PASS"' in row and 'class="v NOT_SUPPORTED"' in row
    lvl = page[page.index('id="case-LVL-016"'):]
    lvl = lvl[:lvl.index("</details>")]
    assert "<svg" in lvl and "<rect" in lvl and "l4.w0.chip0" in lvl
    assert "expected" in lvl and "observed" in lvl  # per-case evidence


def test_page_is_self_contained(page) -> None:
    assert "http://" not in page and "https://" not in page
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(?!#)[^"'\s>]""", page)  # only in-page anchors
    assert "<link" not in page and "<script" not in page and "@import" not in page


def test_predicted_time_shown_and_measured_empty_without_hw(page) -> None:
    row = page[page.index('href="#case-LVL-016"'):]
    row = row[:row.index("</tr>")]
    nums = re.findall(r'<td class="num">([^<]*)</td>', row)
    assert len(nums) == 3 and re.search(r"(µs|ms|s)$", nums[0]) and nums[1:] == ["", ""]


def test_old_reports_without_timeline_still_render(runs) -> None:
    old = copy.deepcopy(runs[0])
    for c in old["cases"]:
        c.pop("timeline", None)
    page = render_html([old])
    assert 'id="case-LVL-016"' in page and "<svg" not in page


def test_verdict_diff(runs) -> None:
    assert verdict_diff(runs) == [("RSESS-001", ["PASS", "NOT_SUPPORTED"])]
    assert verdict_diff([runs[0], runs[0]]) == []


def test_cli_report_prints_the_diff_and_writes_the_page(run_files, tmp_path: Path) -> None:
    out = tmp_path / "html"
    res = CliRunner().invoke(main, ["report", *map(str, run_files), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "1 of 3 cases differ" in res.output
    line = next(x for x in res.output.splitlines() if "RSESS-001" in x)
    assert "sim=PASS" in line and "reference=NOT_SUPPORTED" in line
    assert "LVL-016" not in res.output
    assert 'id="matrix"' in (out / "conformance.html").read_text(encoding="utf-8")
    res = CliRunner().invoke(main, ["report", str(run_files[0]), "--out", str(out)])
    assert res.exit_code == 0 and "nothing to compare" in res.output


@pytest.mark.parametrize(("content", "message"), [
    (None, "no such file"),
    ("{not json", "not JSON"),
    (b"\xff\xfe\x00", "not JSON"),
    ("[1, 2]", "not a conformance run report"),
    (json.dumps({"schema": "other/9", "run": {}, "cases": []}), "wrong schema 'other/9'"),
    (json.dumps({"schema": "tierbed.conformance/1", "run": {"backend": "sim"}, "cases": [{"id": "X"}]}),
     "cases[0]"),
])
def test_cli_report_bad_input_errors_cleanly(run_files, tmp_path: Path, content, message) -> None:
    bad = tmp_path / "bad.json"
    if isinstance(content, bytes):
        bad.write_bytes(content)
    elif content is not None:
        bad.write_text(content, encoding="utf-8")
    res = CliRunner().invoke(main, ["report", str(run_files[0]), str(bad), "--out", str(tmp_path / "o")])
    assert res.exit_code == 2, res.output  # invalid input
    assert "Error:" in res.output and str(bad) in res.output and message in res.output
    assert "Traceback" not in res.output and not (tmp_path / "o").exists()
    with pytest.raises(ReportInputError, match=re.escape(message)):
        load_run(bad)


def test_conform_writes_the_html_page_next_to_the_reports(tmp_path: Path) -> None:
    res = CliRunner().invoke(main, ["conform", "--backend", "sim", "--cases", "LVL-016", "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    page = (tmp_path / "conformance-sim.html").read_text(encoding="utf-8")
    assert 'id="case-LVL-016"' in page and "<svg" in page
    data = load_run(tmp_path / "conformance-sim.json")
    assert data["cases"][0]["timeline"]


def test_write_json_roundtrips_through_load_run(tmp_path: Path) -> None:
    cases = load_catalog().select("LVL-016")
    path = write_json(run_cases(cases, "sim"), tmp_path / "r.json")
    assert load_run(path)["cases"][0]["id"] == "LVL-016"
