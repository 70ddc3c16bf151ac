"""Judgment: from a case's expectations and RunRecords to a verdict with evidence.

A check the backend cannot observe (its record says so: producers not observed, or a task whose
outcome it cannot see) is neither passed nor failed; a case left with such checks and no failure is
NOT_SUPPORTED, naming them. Checks (``DESIGN.md`` "The observables"): outputs against the golden
with the kernel's dtype-aware tolerance (``Kernel.tolerance(dtype)``); task outcome classes; every
dependency edge of every observed record respected in the observed order
(``RunRecord.order_violations()``); call outcomes and error classes; any other declared value.
Verdicts follow ``DESIGN.md`` "Case catalog".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np

from conformance.catalog import Case, Level
from conformance.context import CaseContext, Expectation, _equal


class Verdict(StrEnum):
    PASS = "PASS"
    FAIL = "FAIL"
    NON_STRICT = "NON_STRICT"
    NOT_SUPPORTED = "NOT_SUPPORTED"
    SKIP = "SKIP"
    CRASH = "CRASH"
    TIMEOUT = "TIMEOUT"


#: Verdicts that fail a run when the case is a MUST.
FAILING = frozenset({Verdict.FAIL, Verdict.CRASH, Verdict.TIMEOUT})


@dataclass
class Judgment:
    verdict: Verdict
    evidence: list[dict[str, Any]] = field(default_factory=list)
    summary: str = ""


def _jsonable(v: Any) -> Any:
    if isinstance(v, np.ndarray):
        flat = v.ravel()[:8]
        try:
            head: list[Any] = [float(x) for x in flat.astype(np.float64)]
        except (TypeError, ValueError):
            head = [str(x) for x in flat]
        return {"shape": list(v.shape), "dtype": v.dtype.name, "head": head}
    if isinstance(v, tuple | list):
        return [_jsonable(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if v is None or isinstance(v, bool | int | float | str):
        return v
    return repr(v)


def _compare_output(e: Expectation) -> tuple[bool, dict[str, Any]]:
    info: dict[str, Any] = {"rtol": e.extra.get("rtol"), "atol": e.extra.get("atol")}
    if e.observed is None:
        info["reason"] = "output not recorded"
        return False, info
    g, o = np.asarray(e.expected), np.asarray(e.observed)
    if g.shape != o.shape or g.dtype != o.dtype:
        info["reason"] = f"shape/dtype {o.shape}/{o.dtype} != golden {g.shape}/{g.dtype}"
        return False, info
    gf, of = g.astype(np.float64), o.astype(np.float64)
    rtol, atol = e.extra["rtol"], e.extra["atol"]
    close = np.isclose(of, gf, rtol=rtol, atol=atol, equal_nan=True)
    err = np.abs(of - gf)
    info["max_abs_error"] = float(np.nanmax(err)) if err.size else 0.0
    info["mismatches"] = int(close.size - int(close.sum()))
    return bool(close.all()), info


def check(e: Expectation) -> tuple[bool, dict[str, Any]]:
    if e.kind == "output":
        return _compare_output(e)
    return _equal(e.expected, e.observed), {}


def judge(case: Case, ctx: CaseContext) -> Judgment:
    """The verdict of one finished case (no exception escaped it)."""
    evidence: list[dict[str, Any]] = []
    must_failed = should_failed = 0
    unobservable: list[str] = []
    for e in ctx.expectations:
        if e.extra.get("unobservable"):
            # Neither a pass nor a failure: the backend cannot see this; the case cannot PASS on it.
            unobservable.append(f"{e.label} ({e.extra['unobservable']})")
            evidence.append({"check": e.kind, "label": e.label, "expected": _jsonable(e.expected),
                             "observed": "not observable", "ok": True, "level": "SHOULD" if e.should else "MUST",
                             "message": e.extra["unobservable"]})
            continue
        ok, info = check(e)
        item = {"check": e.kind, "label": e.label, "expected": _jsonable(e.expected),
                "observed": _jsonable(e.observed), "ok": ok, "level": "SHOULD" if e.should else "MUST"}
        if "message" in e.extra:
            item["message"] = e.extra["message"]
        item.update(info)
        evidence.append(item)
        if not ok:
            if e.should:
                should_failed += 1
            else:
                must_failed += 1
    for label, rec in ctx.records:
        bad = rec.order_violations()
        evidence.append({"check": "order", "label": f"{label}: dependency edges respected",
                         "expected": [], "observed": [list(b) for b in bad], "ok": not bad, "level": "MUST",
                         "edges": len(rec.edges())})
        if bad:
            must_failed += 1
    if not evidence:
        return Judgment(Verdict.FAIL, [{"check": "case", "label": "the case declared no expectation",
                                        "ok": False, "level": "MUST"}], "no expectation declared")
    failed = [x for x in evidence if not x["ok"]]
    summary = "; ".join(f"{x['label']}: expected {x.get('expected')!r}, observed {x.get('observed')!r}"
                        for x in failed[:3])
    if must_failed:
        verdict = Verdict.FAIL if case.level is Level.MUST else Verdict.NON_STRICT
    elif should_failed:
        verdict = Verdict.NON_STRICT
    elif unobservable:
        verdict = Verdict.NOT_SUPPORTED
        summary = "not observable on this backend: " + "; ".join(unobservable[:3])
    else:
        verdict = Verdict.PASS
    return Judgment(verdict, evidence, summary)
