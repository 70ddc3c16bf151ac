"""The campaign's HTML page: outcome and coverage charts, the violations table, the violating seeds.

Self-contained (inline CSS and SVG, no network fetch), rendered from ``summary.json`` and the rows.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
_BAR_W, _LABEL_W, _ROW_H = 420, 230, 18
_COLORS = {"OK": "#59a14f", "ERROR": "#4e79a7", "INIT_ERROR": "#76b7b2", "HANG": "#e15759", "UNTYPED": "#b07aa1",
           "TIMEOUT": "#e15759", "CRASH": "#9c755f"}


def bars(items: list[tuple[str, float]], *, color: str = "#4e79a7", colors: dict[str, str] | None = None,
         second: list[float] | None = None, second_color: str = "#f28e2b") -> dict[str, Any]:
    """Geometry of a horizontal bar chart (one row per item; an optional second, thinner bar)."""
    top = max([v for _, v in items] + (second or []) + [1])
    rows = []
    for i, (name, v) in enumerate(items):
        c = (colors or {}).get(name.split(":", 1)[0].replace("second ", ""), color)
        w2 = (second[i] / top * _BAR_W) if second is not None else None
        rows.append({"y": i * _ROW_H, "name": name, "value": v, "w": v / top * _BAR_W, "color": c, "w2": w2,
                     "v2": second[i] if second is not None else None})
    return {"rows": rows, "height": max(1, len(items)) * _ROW_H + 4, "label_w": _LABEL_W, "bar_w": _BAR_W,
            "second_color": second_color}


def render(summary: dict[str, Any], rows: list[dict[str, Any]], shrunk: dict[str, str], out_dir: Path) -> str:
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]))
    cov = summary["coverage"]
    outcomes = sorted(cov["outcomes"].items(), key=lambda kv: -kv[1])
    kinds = list(cov["fault_kinds"].items())
    hit_by_type = cov["faults_hit"]
    points = list(cov["fault_points"].items())
    violating = [r for r in rows if r["violations"]]
    first: dict[str, dict[str, Any]] = {}
    for r in sorted(violating, key=lambda r: r["seed"]):
        for v in r["violations"]:
            first.setdefault(v, r)
    table = [{"invariant": name, "count": n, "seed": first[name]["seed"] if name in first else None,
              "evidence": json.loads(first[name]["evidence"]).get(name, [])[:3] if name in first else [],
              "faults": first[name]["faults"] if name in first else [], "shrunk": shrunk.get(name)}
             for name, n in summary["by_invariant"].items()]
    return env.get_template("campaign.html").render(
        s=summary, out_dir=str(out_dir),
        outcome_chart=bars([(k, v) for k, v in outcomes], colors=_COLORS),
        kind_chart=bars([(k, v["seeds_drawn"]) for k, v in kinds], second=[v["seeds_hit"] for _, v in kinds]),
        hit_chart=bars(sorted(hit_by_type.items())),
        point_chart=bars([(k, v["seeds_on"]) for k, v in points], second=[v["seeds_fired"] for _, v in points]),
        table=table, seeds=violating[:300], more=max(0, len(violating) - 300))


def write_page(summary: dict[str, Any], rows: list[dict[str, Any]], shrunk: dict[str, str], out_dir: Path) -> Path:
    path = out_dir / "campaign.html"
    path.write_text(render(summary, rows, shrunk, out_dir), encoding="utf-8")
    return path


__all__ = ["bars", "render", "write_page"]
