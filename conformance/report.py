"""Reports of a conformance run: JSON (run metadata and every case) and JUnit XML.

The JSON shape (``schema`` = ``tierbed.conformance/1``)::

    {"schema": ..., "run": {backend, version, platform, seed, git_revision, host, ...,
                            "duration_s", "counts": {verdict: n},
                            "selection": {"pattern": "--cases" or null, "cases": [selected ids]}},
     "cases": [{"id", "title", "area", "spec": {"document", "heading"}, "level", "backends",
                "verdict", "summary", "duration_s", "evidence": [...],
                "timeline": [...],     # optional: only for a case whose records have timed tasks
                                       # (shape in conformance.timeline)
                "expectation": {...}}]}  # optional: a listed departure, "known" or "stale"
                                         # (conformance.expectations)

``run.selection`` is what the run was asked to run: the ``--cases`` pattern and the ids it
selected (a case interrupted before it finished is selected but absent from ``cases``). A report
without it (older ones) selected exactly the cases it holds (:func:`selected_ids`).

JUnit XML is written with the standard library's ElementTree (which escapes text and attributes):
one ``testsuite`` per run, one ``testcase`` per case; FAIL/NON_STRICT are ``failure``, CRASH and
TIMEOUT are ``error``, SKIP and NOT_SUPPORTED are ``skipped``; a known departure is ``skipped`` with
its verdict and reason (it is reported, but it is not a new failure).
"""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile
import xml.etree.ElementTree as ET
from functools import cache
from pathlib import Path
from typing import Any

from conformance.judge import Verdict
from conformance.runner import RunResult

SCHEMA = "tierbed.conformance/1"


@cache
def _local_paths() -> tuple[re.Pattern[str], dict[str, str]]:
    """This machine's own directories as they can appear in evidence (tracebacks, log tails), and
    the placeholder of each."""
    names = {os.path.expanduser("~"): "~", tempfile.gettempdir(): "<tmp>", sys.base_prefix: "<python>",
             sys.prefix: "<python>", str(Path(__file__).resolve().parents[1]): "<tierbed>"}
    names = {p: n for p, n in names.items() if p and p != "/"}
    alternatives = "|".join(re.escape(p) for p in sorted(names, key=len, reverse=True))
    return re.compile(rf"({alternatives})(?=[/\\\s'\":,)]|$)"), names


def scrub(value: Any) -> Any:
    """``value`` with this machine's directories replaced by placeholders, so that a report can be
    shared or committed without naming the host's layout."""
    if isinstance(value, str):
        pattern, names = _local_paths()
        return pattern.sub(lambda m: names[m.group(1)], value)
    if isinstance(value, list):
        return [scrub(v) for v in value]
    if isinstance(value, dict):
        return {k: scrub(v) for k, v in value.items()}
    return value


def selection(pattern: str | None, cases: Any) -> dict[str, Any]:
    """The ``run.selection`` entry: the ``--cases`` pattern (None: the whole catalog) and the selected ids."""
    return {"pattern": pattern, "cases": [c.id for c in cases]}


def selected_ids(report: dict[str, Any]) -> list[str]:
    """The case ids a run report was asked to run; for a report without ``run.selection``, its cases."""
    sel = (report.get("run") or {}).get("selection")
    if isinstance(sel, dict) and isinstance(sel.get("cases"), list):
        return [str(c) for c in sel["cases"]]
    return [c["id"] for c in report.get("cases", [])]


def to_json(run: RunResult) -> dict[str, Any]:
    return scrub(_to_json(run))


def _to_json(run: RunResult) -> dict[str, Any]:
    return {
        "schema": SCHEMA,
        "run": {**run.metadata, "backend": run.backend, "seed": run.seed, "duration_s": round(run.duration_s, 3),
                "counts": run.counts(),
                "selection": run.metadata.get("selection") or selection(None, [r.case for r in run.results]),
                "known_departures": len(run.with_expectation("known")),
                "stale_expectations": len(run.with_expectation("stale"))},
        "cases": [{
            "id": r.case.id, "title": r.case.title, "area": r.case.area,
            "spec": {"document": r.case.spec[0], "heading": r.case.spec[1]},
            "level": r.case.level.value, "backends": list(r.case.backends), "verdict": r.verdict.value,
            "summary": r.summary, "duration_s": round(r.duration_s, 4), "evidence": r.evidence,
            **({"timeline": r.timeline} if r.timeline else {}),
            **({"expectation": r.expectation} if r.expectation else {}),
        } for r in run.results],
    }


def write_json(run: RunResult, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(to_json(run), indent=2, default=repr) + "\n", encoding="utf-8")
    return path


def to_junit(run: RunResult) -> ET.ElementTree:
    counts = run.counts()
    known = run.with_expectation("known")
    n_known = {v: sum(1 for r in known if r.verdict == v) for v in Verdict}
    failures = counts[Verdict.FAIL] + counts[Verdict.NON_STRICT] - n_known[Verdict.FAIL] - n_known[Verdict.NON_STRICT]
    errors = counts[Verdict.CRASH] + counts[Verdict.TIMEOUT] - n_known[Verdict.CRASH] - n_known[Verdict.TIMEOUT]
    skipped = counts[Verdict.SKIP] + counts[Verdict.NOT_SUPPORTED] + sum(
        n_known[v] for v in (Verdict.FAIL, Verdict.NON_STRICT, Verdict.CRASH, Verdict.TIMEOUT))
    suite = ET.Element("testsuite", {
        "name": f"tierbed-conformance-{run.backend}", "tests": str(len(run.results)), "failures": str(failures),
        "errors": str(errors), "skipped": str(skipped), "time": f"{run.duration_s:.3f}",
        "timestamp": str(run.metadata.get("started", "")), "hostname": str(run.metadata.get("host", "")),
    })
    props = ET.SubElement(suite, "properties")
    for key in ("backend", "version", "platform", "seed", "git_revision"):
        ET.SubElement(props, "property", {"name": key, "value": str(run.metadata.get(key, ""))})
    for r in run.results:
        tc = ET.SubElement(suite, "testcase", {
            "classname": f"{run.backend}.{r.case.area}", "name": f"{r.case.id} {r.case.title}",
            "time": f"{r.duration_s:.4f}"})
        detail = "\n".join(
            f"[{e.get('level', '')}] {e.get('check', '')} {e.get('label', '')}: expected {e.get('expected')!r}, "
            f"observed {e.get('observed')!r}" + (f" ({e['message']})" if e.get("message") else "")
            for e in r.evidence if not e.get("ok", True))
        spec = f"{r.case.level.value} {r.case.spec_text()}"
        if r.known:
            ET.SubElement(tc, "skipped", {"message": f"known departure ({r.verdict.value}): "
                                                     f"{r.expectation['reason']}"}).text = scrub(f"{spec}\n{detail}")
        elif r.verdict in (Verdict.FAIL, Verdict.NON_STRICT):
            el = ET.SubElement(tc, "failure", {"type": r.verdict.value, "message": scrub(r.summary or r.verdict.value)})
            el.text = scrub(f"{spec}\n{detail}")
        elif r.verdict in (Verdict.CRASH, Verdict.TIMEOUT):
            el = ET.SubElement(tc, "error", {"type": r.verdict.value, "message": scrub(r.summary or r.verdict.value)})
            el.text = scrub(f"{spec}\n{detail}")
        elif r.verdict in (Verdict.SKIP, Verdict.NOT_SUPPORTED):
            ET.SubElement(tc, "skipped", {"message": scrub(f"{r.verdict.value}: {r.summary}")})
        ET.SubElement(tc, "system-out").text = spec
    ET.indent(suite)
    return ET.ElementTree(suite)


def write_junit(run: RunResult, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    to_junit(run).write(path, encoding="utf-8", xml_declaration=True)
    return path


def write_reports(run: RunResult, out_dir: Path) -> tuple[Path, Path]:
    """``conformance-<backend>.json`` and ``conformance-<backend>.junit.xml`` in ``out_dir``."""
    return (write_json(run, out_dir / f"conformance-{run.backend}.json"),
            write_junit(run, out_dir / f"conformance-{run.backend}.junit.xml"))
