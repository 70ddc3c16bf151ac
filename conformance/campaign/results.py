"""A campaign's results on disk: one Parquet row per seed, ``summary.json`` with coverage, the HTML page.

``DIR/campaign.json`` records how the campaign was run (target, fault space, invariants, options),
so ``tierbed campaign --replay DIR --seed N`` can run any seed again exactly.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from conformance.fault_space import FAULT_KINDS

ROWS_FILE = "seeds.parquet"
SUMMARY_FILE = "summary.json"
CONFIG_FILE = "campaign.json"


def _schema() -> Any:
    import pyarrow as pa

    s, i, f, b = pa.string(), pa.int64(), pa.float64(), pa.bool_()
    return pa.schema([
        ("seed", i), ("outcome", s), ("run", s), ("error_class", s), ("message", s), ("second_run", s),
        ("faults", pa.list_(s)), ("fault_plan", s), ("kinds", pa.list_(s)), ("points", pa.list_(s)),
        ("faults_hit", s), ("task_error_classes", pa.list_(s)), ("tasks", i), ("completed", i), ("failed", i),
        ("not_run", i), ("violations", pa.list_(s)), ("evidence", s), ("virtual_time_us", f), ("digest", s),
        ("determinism_checked", b), ("wall_s", f),
    ])


def write_rows(rows: list[dict[str, Any]], path: Path) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pylist(sorted(rows, key=lambda r: r["seed"]), schema=_schema())
    tmp = path.with_suffix(".parquet.tmp")
    pq.write_table(table, tmp)
    tmp.replace(path)  # a reader never sees half a file
    return path


def read_rows(path: Path) -> list[dict[str, Any]]:
    import pyarrow.parquet as pq

    return pq.read_table(path).to_pylist()


#: The ``faults_hit`` key (the fault record type) through which each campaign kind takes effect.
HIT_KEY = {"link_cut": "LinkCut", "health_cut": "LinkCut", "link_delay": "LinkDelay", "link_clog": "LinkClog",
           "swizzle_clog": "LinkClog", "session_crash": "SessionCrash", "session_hang": "SessionHang",
           "frame_drop": "FrameFault", "frame_delay": "FrameFault", "control_error": "ControlFault",
           "control_timeout": "ControlFault", "local_control_error": "LocalControlFault",
           "local_control_timeout": "LocalControlFault"}


def _seeds(n: int) -> str:
    return f"{n} seed" + ("" if n == 1 else "s")


def coverage(rows: list[dict[str, Any]], points: list[str], kinds: list[str] | None = None) -> dict[str, Any]:
    """How many seeds drew each fault kind and point and how many it took effect in; outcomes; error classes;
    and what of the space (``kinds`` the topology can host, ``points``) was never exercised."""
    drawn, took, hit, pts_on, pts_hit, outcomes, classes = (Counter() for _ in range(7))
    for r in rows:
        hits = json.loads(r["faults_hit"] or "{}")
        drawn.update(set(r["kinds"]))
        took.update(k for k in set(r["kinds"]) if hits.get(HIT_KEY[k]))
        pts_on.update(set(r["points"]))
        hit.update(k for k in hits if not k.startswith("point:"))
        pts_hit.update(k.split(":", 1)[1] for k in hits if k.startswith("point:"))
        outcomes[r["run"]] += 1
        if r["second_run"]:
            outcomes[f"second {r['second_run']}"] += 1
        classes.update(r["task_error_classes"])
    per_kind = {k: {"seeds_drawn": drawn[k], "seeds_hit": took[k]} for k in FAULT_KINDS}
    point_rows = {p: {"seeds_on": pts_on[p], "seeds_fired": pts_hit[p]} for p in points}
    never = []
    for k in FAULT_KINDS if kinds is None else kinds:
        if not drawn[k]:
            never.append(f"fault kind {k} (never drawn)")
        elif not took[k]:
            never.append(f"fault kind {k} (drawn in {_seeds(drawn[k])}, never took effect)")
    never += [f"fault point {p}" + (f" (on in {_seeds(pts_on[p])}, never fired)" if pts_on[p] else " (never on)")
              for p in points if not pts_hit[p]]
    return {"fault_kinds": per_kind, "faults_hit": dict(sorted(hit.items())), "fault_points": point_rows,
            "outcomes": dict(sorted(outcomes.items())), "task_error_classes": dict(sorted(classes.items())),
            "never_exercised": never}


def summarize(rows: list[dict[str, Any]], *, config: dict[str, Any], points: list[str], interrupted: bool,
              wall_s: float, requested: int, kinds: list[str] | None = None) -> dict[str, Any]:
    by_inv: Counter[str] = Counter()
    for r in rows:
        by_inv.update(r["violations"])
    violating = sorted(r["seed"] for r in rows if r["violations"])
    return {
        "target": config.get("target"),
        "backend": config.get("backend"),
        "seeds": config.get("seeds"),
        "requested": requested,
        "runs": len(rows),
        "interrupted": interrupted,
        "hangs": sum(1 for r in rows if r["outcome"] in ("HANG", "TIMEOUT")),
        "crashes": sum(1 for r in rows if r["outcome"] == "CRASH"),
        "violations": sum(by_inv.values()),
        "by_invariant": dict(sorted(by_inv.items())),
        "violating_seeds": violating,
        "determinism_checked": sum(1 for r in rows if r["determinism_checked"]),
        "wall_s": round(wall_s, 3),
        "seeds_per_s": round(len(rows) / wall_s, 2) if wall_s > 0 else None,
        "coverage": coverage(rows, points, kinds),
    }


def write_json(data: Any, path: Path) -> Path:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


__all__ = ["CONFIG_FILE", "ROWS_FILE", "SUMMARY_FILE", "coverage", "read_rows", "summarize", "write_json",
           "write_rows"]
