"""Writing a shrunk departure as a scenario file, and reading back the ones a corpus keeps.

A finding becomes an ordinary scenario (``conformance.scenario``), so ``tierbed run``,
``tierbed conform --scenarios`` and the pytest plugin replay it like any case:

- ``expect:`` is what the spec says — the simulator's run of the same scenario (its outcome,
  every task's outcome, and the tensors the reference executor fixes);
- ``invariants:`` are the properties every run must keep;
- ``found:`` records what the backend did instead, with the backend, its version, the seed and
  the finding's signature (never judged; it is how the corpus knows a departure it already has).

A scenario with faults depends on time, which a real runtime does not share with the model: its
file expects the backend's own outcome and judges the invariants only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from conformance.fuzz.oracle import PROPERTIES, expect_from
from conformance.fuzz.search import Finding


def case_name(backend: str, sig: str) -> str:
    return f"fuzz-{backend}-{sig}"


def finding_document(f: Finding, backend: str, version: str, *, by: str) -> dict[str, Any]:
    """The scenario mapping of a finding (keys in the format's order)."""
    c = f.checked
    doc: dict[str, Any] = {"scenario": case_name(backend, f.signature),
                           "description": f"found by tierbed fuzz --backend {backend}: {c.lines[0]}"[:300]}
    doc.update({k: v for k, v in c.scenario.items() if k not in ("scenario", "description")})
    timed = bool(c.scenario.get("faults"))
    sim_side = backend == "sim" or all(line.startswith("sim ") for line in c.lines)
    basis = c.got if (timed and c.got is not None and c.got.outcome not in ("TIMEOUT", "CRASH")) else c.spec
    doc["expect"] = expect_from(basis, outputs=None if timed else c.outputs)
    if sim_side and not any(line.startswith("sim outputs") for line in c.lines):
        doc["expect"].pop("outputs", None)  # a sim property: the file fails on the invariant, not the bytes
    if backend != "reference":  # invariants are observed on sim and hw (the reference keeps no record of them)
        doc["invariants"] = list(PROPERTIES)
    observed: dict[str, Any] = {"departures": list(c.lines[:20])}
    if c.got is not None:
        observed["run"] = c.got.run
        if c.got.message:
            observed["message"] = c.got.message[:300]
        diff = {t: w for t, w in c.got.tasks.items() if c.spec.tasks.get(t) != w}
        if diff:
            observed["tasks"] = diff
    doc["found"] = {"by": by, "backend": backend, "version": version, "seed": f.chunk_seed,
                    "property": "sim" if sim_side else "differential", "signature": f.signature,
                    "observed": observed}
    if f.flaky:
        doc["found"]["note"] = ("flaky: a replay of this scenario did not depart again; it shows only sometimes "
                                "(accept it with verdicts [FAIL, PASS] if it is known)")
    return doc


def write_finding(f: Finding, corpus: Path, backend: str, version: str, *, by: str) -> Path:
    """Write ``f`` into ``corpus`` as ``fuzz-<backend>-<signature>.yaml``; returns the path."""
    from conformance.fuzz.check import scenario_text

    corpus.mkdir(parents=True, exist_ok=True)
    doc = finding_document(f, backend, version, by=by)
    path = corpus / f"{doc['scenario']}.yaml"
    head = (f"# A departure found by tierbed fuzz on backend {backend} ({version}).\n"
            f"# Replay: tierbed run --backend {backend} {path.name}\n")
    tmp = path.with_suffix(".yaml.tmp")
    tmp.write_text(head + scenario_text(doc), encoding="utf-8")
    tmp.replace(path)  # never a half-written case in the corpus
    return path


def corpus_files(paths: list[Path]) -> list[Path]:
    """The scenario files under ``paths`` (files as given, directories recursively), sorted."""
    out: list[Path] = []
    for p in paths:
        if p.is_dir():
            out += sorted(q for q in p.rglob("*") if q.suffix in (".yaml", ".yml") and q.is_file())
        elif p.exists():
            out.append(p)
    return out


def replayable(doc: dict[str, Any]) -> dict[str, Any]:
    """A corpus scenario as the generator would have drawn it: no expectations, invariants or provenance."""
    return {k: v for k, v in doc.items() if k not in ("expect", "invariants", "found", "description", "seed")}


def read_case(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """A corpus file's mapping and its ``found:`` block, validated as a scenario (ScenarioError on bad input)."""
    from conformance.scenario import load_scenario

    load_scenario(path)  # the file:line error of a corrupt file, before anything runs
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    return doc, dict(doc.get("found") or {})


__all__ = ["case_name", "corpus_files", "finding_document", "read_case", "replayable", "write_finding"]
