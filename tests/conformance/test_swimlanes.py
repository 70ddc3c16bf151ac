"""The report's swimlanes: tasks on their workers (hw records too), time relative to the case's
first start with round ticks in µs/ms/s, visible reference steps, outcome colours with a legend,
bars labelled by callable, failing cases open in a one-run report, and a page that fits 1,400 px.

The hw records are built as ``hw_backend.adapter`` builds them: monotonic wall seconds, workers
``w<i>`` under the task's node for a next-level group, no workers for a SUB task.
"""

from __future__ import annotations

import itertools
import re

import pytest

from conformance import html
from conformance.report import SCHEMA
from conformance.timeline import case_timeline, record_timeline
from sim.record import Outcome, RunRecord, TaskRecord

T0 = 9167.07253691  # a monotonic clock: large, meaningless on its own


def _task(tid, node, level, kind, fn, start, end, workers=(), outcome=Outcome.COMPLETED):
    return TaskRecord(tid, node, level, kind, fn, outcome, "TASK_FAILURE" if outcome is Outcome.FAILED else None,
                      "", start, end, tuple(workers), ())


def hw_record() -> RunRecord:
    rec = RunRecord("hw", {"platform": "a2a3sim", "clock": "monotonic wall seconds"})
    for t in (
        _task("l4:r1:t1", "l4", 4, "next_level", "node_block", T0, T0 + 0.9, ["w0"]),
        _task("l4:r1:t2", "l4", 4, "next_level", "node_block", T0 + 0.0001, T0 + 0.95, ["w1"]),
        _task("l4.w0:r1:t1", "l4.w0", 3, "sub", "sub_a", T0 + 0.1, T0 + 0.3),
        _task("l4.w0:r1:t2", "l4.w0", 3, "sub", "sub_b", T0 + 0.2, T0 + 0.4, outcome=Outcome.FAILED),  # overlaps t1
        _task("l4.w0:r1:t3", "l4.w0", 3, "sub", "sub_a", T0 + 0.5, T0 + 0.6),
        _task("l4.w1:r1:t1", "l4.w1", 3, "sub", "sub_a", T0 + 0.1, T0 + 0.8),
    ):
        rec.tasks[t.task_id] = t
    return rec


def _labels(s) -> list[str]:
    return [t["text"] for t in s["ticks"]]


def test_hw_tasks_sit_on_their_workers_and_the_axis_is_relative_with_distinct_ticks():
    tl = record_timeline("run", hw_record(), "hw")
    s = html.swimlane(tl)
    lanes = [lane["name"] for lane in s["lanes"]]
    assert "(unplaced)" not in lanes
    # a group member's worker under its node; unobserved SUB workers packed per node, below it
    assert lanes == ["l4.w0", "l4.w0?1", "l4.w0?2", "l4.w1", "l4.w1?1"]
    labels = _labels(s)
    assert len(labels) == len(set(labels)) >= 4
    assert labels[0] in ("0 ms", "0.0 s", "0 s") and all(re.fullmatch(r"[\d.]+ (µs|ms|s)", x) for x in labels)
    assert "9167" not in " ".join(labels)
    assert "first start" in s["caption"]
    bar = next(b for b in s["bars"] if "l4:r1:t1" in b["title"])
    assert bar["x"] == s["label_w"]  # the case's first start is time 0


@pytest.mark.parametrize(("span", "unit", "name", "step"), [
    (480.0, "us", "µs", 100.0), (0.0123, "s", "ms", 2000.0), (3.4, "s", "s", 500000.0), (12345.0, "us", "ms", 2000.0),
])
def test_ticks_are_round_steps_with_a_unit_chosen_by_the_span(span, unit, name, step):
    ticks, caption = html.axis_ticks(span, unit)
    to_us = 1e6 if unit == "s" else 1.0
    offsets = [off * to_us for off, _ in ticks]
    assert offsets[0] == 0 and offsets[-1] >= span * to_us * (1 - 1e-9)
    assert all(x.endswith(" " + name) for _, x in ticks) and f"({name})" in caption
    assert [round(b - a, 6) for a, b in itertools.pairwise(offsets)] == [step] * (len(ticks) - 1)
    assert 3 <= len(ticks) <= 12


def test_reference_steps_have_a_visible_width_and_say_they_are_ordinal():
    tl = {"record": "run", "unit": "step",
          "tasks": [["l3:r1:t1", "l3.sub0", 0.0, 0.0, "f", "COMPLETED"], ["l3:r1:t2", "l3.sub0", 1.0, 1.0, "g",
                                                                          "COMPLETED"],
                    ["l3:r1:t3", "l3.chip0", 2.0, 2.0, "add", "COMPLETED"]]}
    s = html.swimlane(tl)
    assert "ordinal" in s["caption"]
    assert all(b["w"] >= s["plot_w"] / 4 for b in s["bars"])  # a step is a slot, not a zero-width mark
    assert _labels(s)[:3] == ["0", "1", "2"]


def test_bars_are_coloured_by_outcome_labelled_by_callable_and_have_a_legend():
    tl = record_timeline("run", hw_record(), "hw")
    s = html.swimlane(tl)
    failed = next(b for b in s["bars"] if "l4.w0:r1:t2" in b["title"])
    done = next(b for b in s["bars"] if "l4:r1:t1" in b["title"])
    assert failed["color"] == html.OUTCOME_COLORS["FAILED"] != done["color"] == html.OUTCOME_COLORS["COMPLETED"]
    assert done["label"] == "node_block"  # wide enough for its callable
    assert {x["name"] for x in s["legend"]} == {"COMPLETED", "FAILED"}
    assert s["lane_h"] >= 16


def _run(verdicts: dict[str, str], known: tuple[str, ...] = ()) -> dict:
    cases = []
    for cid, v in verdicts.items():
        c = {"id": cid, "title": cid, "level": "MUST", "verdict": v,
             "evidence": [{"ok": v == "PASS", "level": "MUST", "check": "outcome", "label": "x",
                           "expected": "COMPLETED", "observed": "COMPLETED" if v == "PASS" else "FAILED"}],
             "timeline": case_timeline([("run", hw_record())], "hw")}
        if cid in known:
            c["expectation"] = {"status": "known", "file": "f.yaml", "reason": "r"}
        cases.append(c)
    return {"schema": SCHEMA, "run": {"backend": "hw"}, "cases": cases}


def test_one_run_report_opens_failing_cases_only():
    page = html.render_html([_run({"A-1": "PASS", "A-2": "FAIL", "A-3": "CRASH", "A-4": "FAIL"}, known=("A-4",))])
    opened = set(re.findall(r'<details id="case-([\w-]+)" open>', page))
    assert opened == {"A-2", "A-3"}
    page = html.render_html([_run({"A-1": "PASS", "A-2": "FAIL"}), _run({"A-1": "PASS", "A-2": "FAIL"})])
    assert " open>" not in page  # several runs: only cases that differ are open


def test_page_fits_1400px_and_ok_cells_do_not_wrap():
    page = html.render_html([_run({"A-1": "PASS", "A-2": "FAIL"})])
    widths = [float(w) for w in re.findall(r'<svg class="lanes" width="([\d.]+)"', page)]
    assert widths and max(widths) <= 1400 - 2 * 20 - 2 * 16  # body and run margins
    css = page[page.index("<style>"):page.index("</style>")]
    assert re.search(r"svg\.lanes \{[^}]*max-width: 100%", css)
    assert re.search(r"\.ev \{ width: 100%; \}", css) and "max-width: 40em" not in css
    assert re.search(r"\.nw \{[^}]*white-space: nowrap", css)
    assert '<td class="nw">yes</td>' in page and '<td class="nw">NO</td>' in page


def test_reports_written_before_the_worker_columns_render_per_node_lanes():
    legacy = {"record": "run", "unit": "s", "tasks": [
        ["l4:r1:t1", "w0", T0, T0 + 1.0], ["l4.w0:r1:t2", "(unplaced)", T0 + 0.5, T0 + 0.6],
        ["l4.w0:r1:t3", "(unplaced)", T0 + 0.55, T0 + 0.7]]}
    s = html.swimlane(legacy)
    assert [lane["name"] for lane in s["lanes"]] == ["l4.w0", "l4.w0?1", "l4.w0?2"]
    assert {x["name"] for x in s["legend"]} == {"outcome not recorded"}
