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
import math
import re
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape

from conformance.report import SCHEMA, selected_ids
from conformance.timeline import LEGACY_UNPLACED, TO_US, UNPLACED, span_us, worker_scope

TEMPLATES = Path(__file__).with_name("templates")
MISSING = "—"

# Swimlane geometry (SVG user units = CSS px): fits a 1,400 px wide window with the page margins.
_LABEL_W, _PLOT_W, _LANE_H, _LANE_GAP, _AXIS_H = 170, 1100, 18, 3, 22
_MAX_LANES = 32
_MIN_BAR_W = 3.0  # a bar never thinner than this, so an instant task stays visible
_CHAR_W = 6.1  # width of one character of the 10 px monospace bar labels
#: Bar colour per task outcome (the legend shows the ones a picture uses); "" for older reports.
OUTCOME_COLORS = {"COMPLETED": "#8cc68a", "FAILED": "#ef7f81", "NOT_RUN": "#c9c9c9", "": "#9dbbdc"}
_OUTCOME_LABELS = {"": "outcome not recorded"}
#: Verdicts that fail a run: in a report of one run, such cases (unless a known departure) are open.
_FAILING = frozenset({"FAIL", "CRASH", "TIMEOUT"})
#: Display units of a time span, by size: (name, microseconds per unit, spans below this use it).
_DISPLAY_UNITS = (("µs", 1.0, 1e3), ("ms", 1e3, 1e6), ("s", 1e6, float("inf")))


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
    """``(ids every run selected, ids only some runs selected)``, each in order of first appearance.

    An interrupted run counts as having selected only the cases it finished: the others have no
    verdict there to differ from.
    """
    selections = [_finished_ids(r) if _interrupted(r) else selected_ids(r) for r in runs]
    order: dict[str, None] = dict.fromkeys(case_order(runs))
    for sel in selections:
        order.update(dict.fromkeys(sel))
    sets = [set(sel) for sel in selections]
    common = [cid for cid in order if all(cid in s for s in sets)]
    return common, [cid for cid in order if not all(cid in s for s in sets)]


def _interrupted(run: dict[str, Any]) -> bool:
    return bool((run.get("run") or {}).get("interrupted"))


def _finished_ids(run: dict[str, Any]) -> list[str]:
    return [c["id"] for c in run.get("cases", [])]


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
    """``(case id, [verdict per run])`` for every compared case (:func:`compared_ids`) whose verdict differs
    (``—`` where a run that was not marked interrupted holds no result for a case it selected)."""
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
    for lab, r in zip(labels, runs, strict=True):
        if _interrupted(r):
            lines.append(f"  {lab} was interrupted: only the {len(_finished_ids(r))} of its "
                         f"{len(selected_ids(r))} selected cases it finished are compared")
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


def _natural(name: str) -> list[Any]:
    """Sort key that orders ``chip2`` before ``chip10``."""
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name)]


def nice_step(span: float, target: int = 8) -> float:
    """A round step (1, 2 or 5 times a power of ten) giving about ``target`` ticks over ``span``."""
    if span <= 0:
        return 1.0
    raw = span / target
    mag = 10 ** math.floor(math.log10(raw))
    return next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw * (1 - 1e-9))


def axis_ticks(span: float, unit: str) -> tuple[list[tuple[float, str]], str]:
    """``([(offset in the data unit, label), ...], axis caption)`` for a span starting at 0; the
    last tick is at or past the span's end.

    Times get round steps in µs, ms or s, chosen by the span; ``step`` (the reference's order of
    execution, no time) gets whole steps."""
    if unit == "step":
        step = max(1.0, nice_step(span))
        n = max(1, math.ceil(span / step - 1e-9))
        return [(i * step, f"{i * step:g}") for i in range(n + 1)], "step (ordinal: the reference has no time)"
    to_us = TO_US.get(unit) or 1.0
    span_us = span * to_us
    name, per, _ = next(u for u in _DISPLAY_UNITS if span_us < u[2])
    step = nice_step(span_us / per)
    decimals = max(0, -math.floor(math.log10(step) + 1e-9))
    n = max(1, math.ceil(span_us / per / step - 1e-9))
    return ([(i * step * per / to_us, f"{i * step:.{decimals}f} {name}") for i in range(n + 1)],
            f"time since the case's first start ({name})")


def _upgrade(task: list[Any]) -> list[Any]:
    """A timeline task row in the current six-column form. Older reports have four columns and name
    a worker the way the backend did (hw: ``w0`` under the task's node, ``(unplaced)`` when not
    observed); the node is read from the task id (``l3:r1:t2``, ``l4.w0:r1:t1``)."""
    if len(task) >= 6:
        return list(task[:6])
    tid, worker = str(task[0]), str(task[1])
    node = tid.split(":", 1)[0] if ":" in tid else ""
    if worker == LEGACY_UNPLACED and node:
        worker = f"{node}{UNPLACED}"
    elif node:
        worker = worker_scope(worker, node)
    return [tid, worker, *task[2:4], "", ""]


def _pack(tasks: list[list[Any]]) -> dict[int, str]:
    """Lanes for tasks whose worker was not observed: per node, each task goes on the first lane
    free at its start (``l3?1``, ``l3?2``, ...). Returns index in ``tasks`` -> lane name."""
    out: dict[int, str] = {}
    free_at: dict[str, list[float]] = {}
    order = sorted(range(len(tasks)), key=lambda i: (tasks[i][2], tasks[i][3], tasks[i][0]))
    for i in order:
        w = tasks[i][1]
        if not (w.endswith(UNPLACED) or w == LEGACY_UNPLACED):
            continue
        node = w[: -len(UNPLACED)] if w.endswith(UNPLACED) else "(unplaced) "
        ends = free_at.setdefault(node, [])
        k = next((j for j, e in enumerate(ends) if e <= tasks[i][2]), len(ends))
        if k == len(ends):
            ends.append(tasks[i][3])
        else:
            ends[k] = tasks[i][3]
        out[i] = f"{node}{UNPLACED}{k + 1}"
    return out


def swimlane(tl: dict[str, Any], origin: float | None = None) -> dict[str, Any]:
    """SVG geometry of one record's timeline: lanes (workers) and bars (tasks).

    Time runs from ``origin`` (the case's first start; default this record's), in round ticks.
    Bars are coloured by outcome and labelled with the callable where the label fits. Tasks whose
    worker was not observed are packed onto ``<node>?n`` lanes. Reference steps are ordinal: a
    task at step ``s`` fills ``[s, s + 1)``."""
    unit = tl.get("unit", "")
    ordinal = unit == "step"
    raw = [_upgrade(t) for t in tl.get("tasks") or []]
    packed = _pack(raw)
    tasks = [[t[0], packed.get(i, t[1]), t[2], t[3] + 1 if ordinal else t[3], t[4] or "", t[5] or ""]
             for i, t in enumerate(raw)]
    lanes = sorted({t[1] for t in tasks}, key=_natural)
    hidden = max(0, len(lanes) - _MAX_LANES)
    lanes = lanes[:_MAX_LANES]
    lane_y = {name: _AXIS_H + i * (_LANE_H + _LANE_GAP) for i, name in enumerate(lanes)}
    t0 = min((t[2] for t in tasks), default=0.0) if origin is None else origin
    span = max((t[3] for t in tasks), default=t0 + 1.0) - t0
    ticks, caption = axis_ticks(span, unit)
    span = max(span, ticks[-1][0])  # the axis ends on its last tick
    scale = _PLOT_W / span if span > 0 else 0.0
    bars, used = [], set()
    for task_id, worker, start, end, fn, outcome in tasks:
        if worker not in lane_y:
            continue
        x = _LABEL_W + (start - t0) * scale
        w = min(max(_MIN_BAR_W, (end - start) * scale), _LABEL_W + _PLOT_W - x + _MIN_BAR_W)
        used.add(outcome)
        shown_end = end - 1 if ordinal else end
        when = (f"step {_fmt_t(start)}" + (f" .. {_fmt_t(shown_end)}" if shown_end != start else "")) if ordinal \
            else f"{_fmt_t(start - t0)} .. {_fmt_t(end - t0)} {unit} after the case's first start"
        short = fn.rsplit(".", 1)[-1]  # ``outer.<locals>.inner`` -> ``inner``; the title has it all
        label = short if short and len(short) * _CHAR_W + 6 <= w else ""
        bars.append({"x": round(x, 2), "y": lane_y[worker] + 1, "w": round(w, 2), "h": _LANE_H - 2,
                     "color": OUTCOME_COLORS.get(outcome, OUTCOME_COLORS[""]), "label": label,
                     "tx": round(x + 3, 2), "ty": lane_y[worker] + _LANE_H - 5,
                     "title": f"{fn or task_id} ({task_id}) on {worker}: {outcome or 'outcome not recorded'}, "
                              f"{when}"})
    height = _AXIS_H + len(lanes) * (_LANE_H + _LANE_GAP) + 2
    tick_rows = []
    for i, (off, text) in enumerate(ticks):
        x = _LABEL_W + off * scale
        anchor = "start" if i == 0 else ("end" if x > _LABEL_W + _PLOT_W - 20 else "middle")
        tick_rows.append({"x": round(x, 2), "text": text, "anchor": anchor})
    notes = [f"{hidden} more lanes not drawn" if hidden else "",
             f"{tl['truncated']} more tasks not kept" if tl.get("truncated") else "",
             f"?n lanes: {'workers' if len(packed) > 1 else 'worker'} not observed, tasks packed by time"
             if packed else ""]
    return {"record": tl.get("record", ""), "unit": unit, "caption": caption, "width": _LABEL_W + _PLOT_W + 8,
            "height": height, "label_w": _LABEL_W, "plot_w": _PLOT_W, "axis_h": _AXIS_H,
            "lanes": [{"name": n, "y": lane_y[n] + _LANE_H - 5, "band": lane_y[n]} for n in lanes],
            "lane_h": _LANE_H, "bars": bars, "ticks": tick_rows,
            "legend": [{"name": _OUTCOME_LABELS.get(o, o), "color": OUTCOME_COLORS[o]}
                       for o in OUTCOME_COLORS if o in used],
            "note": ", ".join(x for x in notes if x)}


def case_origin(timeline: list[dict[str, Any]]) -> float | None:
    """The first start of any task of a case's records (its swimlanes' time 0)."""
    starts = [t[2] for tl in timeline for t in tl.get("tasks") or []]
    return min(starts) if starts else None


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
                            "swimlanes": [swimlane(tl, case_origin(c.get("timeline", [])))
                                          for tl in c.get("timeline", []) if tl.get("tasks")]})
        rows.append({"id": cid, "title": first.get("title", ""), "level": first.get("level", ""),
                     "spec": f"{spec.get('document', '')} § {spec.get('heading', '')}" if spec else "",
                     "cells": cells, "differs": cid in diff_ids,
                     "open": cid in diff_ids or (len(runs) == 1 and any(
                         v in _FAILING and mark != "known" for v, mark in cells)),
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
