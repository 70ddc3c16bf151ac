"""The HTML report: a self-contained page with the matrix of cases x backends.

``render_html(runs)`` takes one or more run reports (the ``tierbed.conformance/1`` JSON, one column
per run) and gives one page with no network fetch (inline CSS, inline SVG): the verdict matrix,
predicted (sim) and measured (hw) time per case (empty where the backend's run was not given; timing
is a fidelity figure, never a verdict), and per case the evidence (expected vs observed) of every
run and a swimlane picture per observed record with timed tasks (one lane per worker scope, one bar
per task start..end; see :mod:`conformance.timeline`).

``load_run(path)`` reads and checks a run report; ``verdict_diff(runs)`` lists the cases whose
verdict differs between runs, among the cases every run selected (``run.selection``; a case only
some runs selected is counted, not compared: a partial run does not differ from a full one on the
cases it was not asked to run).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape

from conformance.report import SCHEMA, selected_ids
from conformance.timeline import span_us

TEMPLATES = Path(__file__).with_name("templates")
MISSING = "—"

# Swimlane geometry (SVG user units).
_LABEL_W, _PLOT_W, _LANE_H, _LANE_GAP, _AXIS_H = 130, 560, 12, 4, 16
_MAX_LANES = 24
_PALETTE = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#9c755f")


class ReportInputError(ValueError):
    """A run report that cannot be read: the message names the file and what was wrong."""


def load_run(path: Path | str) -> dict[str, Any]:
    """Read a run report and check its shape; raise :class:`ReportInputError` when it is not one."""
    path = Path(path)
    if not path.exists():
        raise ReportInputError(f"{path}: no such file")
    if not path.is_file():
        raise ReportInputError(f"{path}: not a file")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise ReportInputError(f"{path}: not JSON (not UTF-8 text: {exc.reason})") from None
    except json.JSONDecodeError as exc:
        raise ReportInputError(f"{path}: not JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})") from None
    if not isinstance(data, dict):
        raise ReportInputError(f"{path}: not a conformance run report (the JSON is not an object)")
    if data.get("schema") != SCHEMA:
        raise ReportInputError(f"{path}: wrong schema {data.get('schema')!r}, expected {SCHEMA!r}")
    run, cases = data.get("run"), data.get("cases")
    if not isinstance(run, dict) or not isinstance(run.get("backend"), str):
        raise ReportInputError(f"{path}: 'run' must be an object with a 'backend' name")
    if not isinstance(cases, list):
        raise ReportInputError(f"{path}: 'cases' must be a list")
    for i, c in enumerate(cases):
        if not isinstance(c, dict) or not isinstance(c.get("id"), str) or not isinstance(c.get("verdict"), str):
            raise ReportInputError(f"{path}: cases[{i}] must be an object with 'id' and 'verdict'")
    sel = run.get("selection")
    if sel is not None and not (isinstance(sel, dict) and isinstance(sel.get("cases"), list)
                                and all(isinstance(x, str) for x in sel["cases"])):
        raise ReportInputError(f"{path}: 'run.selection' must be an object with a 'cases' list of ids")
    return data


def run_labels(runs: list[dict[str, Any]]) -> list[str]:
    """Column labels: the backend name, numbered when a backend appears more than once."""
    names = [r["run"]["backend"] for r in runs]
    seen: dict[str, int] = {}
    out = []
    for n in names:
        seen[n] = seen.get(n, 0) + 1
        out.append(n if names.count(n) == 1 else f"{n} #{seen[n]}")
    return out


def case_order(runs: list[dict[str, Any]]) -> list[str]:
    """Every case id of every run, in the order of first appearance."""
    order: dict[str, None] = {}
    for r in runs:
        for c in r["cases"]:
            order.setdefault(c["id"], None)
    return list(order)


def compared_ids(runs: list[dict[str, Any]]) -> tuple[list[str], list[str]]:
    """``(ids every run selected, ids only some runs selected)``, each in order of first appearance."""
    selections = [selected_ids(r) for r in runs]
    order: dict[str, None] = dict.fromkeys(case_order(runs))
    for sel in selections:
        order.update(dict.fromkeys(sel))
    sets = [set(sel) for sel in selections]
    common = [cid for cid in order if all(cid in s for s in sets)]
    return common, [cid for cid in order if not all(cid in s for s in sets)]


def diff_rows(runs: list[dict[str, Any]]) -> list[tuple[str, list[tuple[str, str]]]]:
    """``(case id, [(verdict, expectation status) per run])`` for every compared case whose verdict
    differs; the status is ``known``/``stale`` where an expectations file listed it, else ``""``."""
    by_run = [{c["id"]: c for c in r["cases"]} for r in runs]
    out = []
    for cid in compared_ids(runs)[0]:
        cells = [(b[cid]["verdict"], (b[cid].get("expectation") or {}).get("status", "")) if cid in b
                 else (MISSING, "") for b in by_run]
        if len({v for v, _ in cells}) > 1:
            out.append((cid, cells))
    return out


def verdict_diff(runs: list[dict[str, Any]]) -> list[tuple[str, list[str]]]:
    """``(case id, [verdict per run])`` for every case every run selected whose verdict differs (``—``
    where a selected case has no result, e.g. an interrupted run)."""
    return [(cid, [v for v, _ in cells]) for cid, cells in diff_rows(runs)]


def diff_lines(runs: list[dict[str, Any]]) -> list[str]:
    """The verdict diff as text lines; a verdict an expectations file listed is marked ``(known)``
    (or ``(stale)``), as in the matrix."""
    labels = run_labels(runs)
    if len(runs) < 2:
        return [f"verdict diff: one run ({labels[0]}), nothing to compare"]
    diff = diff_rows(runs)
    common, partial = compared_ids(runs)
    head = f"verdict diff ({' vs '.join(labels)}): {len(diff)} of {len(common)} cases differ"
    if partial:
        head += (f" ({len(common)} compared: selected by every run; {len(partial)} selected by only some runs, "
                 "not compared)")
    lines = [head]
    for cid, cells in diff:
        lines.append(f"  {cid:<10} " + "  ".join(f"{lab}={v}" + (f" ({mark})" if mark else "")
                                                 for lab, (v, mark) in zip(labels, cells, strict=True)))
    return lines


# ------------------------------------------------------------------------------------- the view


def _fmt_us(us: float | None) -> str:
    if us is None:
        return ""
    if us >= 1e6:
        return f"{us / 1e6:.3g} s"
    if us >= 1e3:
        return f"{us / 1e3:.3g} ms"
    return f"{us:.3g} µs"


def _short(value: Any, limit: int = 240) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=repr)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _fmt_t(t: float) -> str:
    return f"{t:.6g}"


def swimlane(tl: dict[str, Any]) -> dict[str, Any]:
    """SVG geometry of one record's timeline: lanes (worker scopes) and bars (tasks)."""
    tasks = tl.get("tasks") or []
    lanes = sorted({t[1] for t in tasks})
    hidden = max(0, len(lanes) - _MAX_LANES)
    lanes = lanes[:_MAX_LANES]
    lane_y = {name: _AXIS_H + i * (_LANE_H + _LANE_GAP) for i, name in enumerate(lanes)}
    t0 = min((t[2] for t in tasks), default=0.0)
    t1 = max((t[3] for t in tasks), default=1.0)
    scale = _PLOT_W / (t1 - t0) if t1 > t0 else 0.0
    unit = tl.get("unit", "")
    bars = []
    for task_id, worker, start, end in tasks:
        if worker not in lane_y:
            continue
        x = _LABEL_W + (start - t0) * scale
        w = max(2.0, (end - start) * scale)
        bars.append({"x": round(x, 2), "y": lane_y[worker] + 1, "w": round(min(w, _LABEL_W + _PLOT_W - x + 2), 2),
                     "h": _LANE_H - 2, "color": _PALETTE[lanes.index(worker) % len(_PALETTE)],
                     "title": f"{task_id} on {worker}: {_fmt_t(start)} .. {_fmt_t(end)} {unit}"})
    height = _AXIS_H + len(lanes) * (_LANE_H + _LANE_GAP)
    ticks = [{"x": round(_LABEL_W + f * _PLOT_W, 2), "text": _fmt_t(t0 + f * (t1 - t0)),
              "anchor": ("start", "middle", "middle", "middle", "end")[i]}
             for i, f in enumerate((0.0, 0.25, 0.5, 0.75, 1.0))]
    return {"record": tl.get("record", ""), "unit": unit, "width": _LABEL_W + _PLOT_W + 4, "height": height,
            "label_w": _LABEL_W, "plot_w": _PLOT_W, "axis_h": _AXIS_H,
            "lanes": [{"name": n, "y": lane_y[n] + _LANE_H - 2} for n in lanes], "bars": bars, "ticks": ticks,
            "note": ", ".join(x for x in (f"{hidden} more lanes not drawn" if hidden else "",
                                          f"{tl['truncated']} more tasks not kept" if tl.get("truncated") else "")
                              if x)}


def _evidence_rows(evidence: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for e in evidence:
        rows.append({"ok": bool(e.get("ok", True)), "level": e.get("level", ""), "check": e.get("check", ""),
                     "label": e.get("label", ""),
                     "expected": _short(e["expected"]) if "expected" in e else "",
                     "observed": _short(e["observed"]) if "observed" in e else "",
                     "message": _short(e.get("message") or e.get("reason") or e.get("traceback") or "", 600)})
    return rows


def build_view(runs: list[dict[str, Any]], labels: list[str] | None = None) -> dict[str, Any]:
    """Everything the template shows, computed from the run reports."""
    labels = labels or run_labels(runs)
    by_run = [{c["id"]: c for c in r["cases"]} for r in runs]
    sim_i = next((i for i, r in enumerate(runs) if r["run"]["backend"] == "sim"), None)
    hw_i = next((i for i, r in enumerate(runs) if r["run"]["backend"] == "hw"), None)
    diff = diff_rows(runs)
    diff_ids = {cid for cid, _ in diff}
    partial = compared_ids(runs)[1]
    rows = []
    for cid in case_order(runs):
        first = next(b[cid] for b in by_run if cid in b)
        spec = first.get("spec") or {}
        predicted = span_us(by_run[sim_i][cid].get("timeline", [])) if sim_i is not None and cid in by_run[sim_i] \
            else None
        measured = span_us(by_run[hw_i][cid].get("timeline", [])) if hw_i is not None and cid in by_run[hw_i] \
            else None
        cells, details = [], []
        for lab, b in zip(labels, by_run, strict=True):
            c = b.get(cid)
            exp = (c or {}).get("expectation") or {}
            cells.append((c["verdict"] if c else MISSING, exp.get("status", "")))
            if c is None:
                continue
            details.append({"label": lab, "verdict": c["verdict"], "summary": c.get("summary", ""), "expectation": exp,
                            "duration_s": c.get("duration_s"), "evidence": _evidence_rows(c.get("evidence", [])),
                            "swimlanes": [swimlane(tl) for tl in c.get("timeline", []) if tl.get("tasks")]})
        rows.append({"id": cid, "title": first.get("title", ""), "level": first.get("level", ""),
                     "spec": f"{spec.get('document', '')} § {spec.get('heading', '')}" if spec else "",
                     "cells": cells, "differs": cid in diff_ids,
                     "predicted": _fmt_us(predicted), "measured": _fmt_us(measured),
                     "ratio": f"{measured / predicted:.2f}" if predicted and measured else "",
                     "details": details})
    columns = []
    for lab, r in zip(labels, runs, strict=True):
        meta = r["run"]
        columns.append({"label": lab, "counts": {k: v for k, v in (meta.get("counts") or {}).items() if v},
                        "meta": [(k, meta[k]) for k in ("backend", "version", "runtime_version", "platform", "seed",
                                                         "git_revision", "started", "duration_s", "known_departures",
                                                         "stale_expectations") if meta.get(k) is not None]})
    return {"columns": columns, "rows": rows, "diff": diff if len(runs) > 1 else None,
            "not_compared": len(partial), "labels": labels}


def render_html(runs: list[dict[str, Any]], labels: list[str] | None = None) -> str:
    """The self-contained HTML page for one or more run reports."""
    env = Environment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=select_autoescape(["html"]),
                      trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
    return env.get_template("report.html").render(**build_view(runs, labels))


def write_html(runs: list[dict[str, Any]], path: Path, labels: list[str] | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_html(runs, labels), encoding="utf-8")
    return path
