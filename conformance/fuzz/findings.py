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

from dataclasses import dataclass
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


@dataclass
class Kept:
    """One file of a corpus, read and validated once: a scenario (``doc``) or an API sequence (``steps``)."""

    path: Path
    name: str  # the case name: a scenario's name, an API sequence file's stem
    signature: str | None  # the departure it keeps (found.signature; an API sequence's file name)
    doc: dict[str, Any] | None = None
    steps: list[dict[str, Any]] | None = None


def read_corpus(corpus: Path) -> list[Kept]:
    """Every scenario and API sequence file under ``corpus`` (found as ``conformance.corpus.scenario_files``
    finds them), validated; an absent or empty corpus has none. A corrupt file raises its ``YamlFileError``
    (``file:line: field: message``)."""
    from conformance.corpus import CorpusError, looks_like_sequence, scenario_files
    from conformance.generators.stateful import load_steps
    from conformance.scenario import load_scenario

    try:
        files = scenario_files([corpus])
    except CorpusError:  # one path: absent, or a directory with nothing in it yet
        return []
    out = []
    for p in files:
        if looks_like_sequence(p):  # fuzz-<backend>-api-<signature>.yaml
            out.append(Kept(p, p.stem, p.stem.rsplit("-api-", 1)[-1], steps=load_steps(p)))
            continue
        scn = load_scenario(p)  # the file:line error of a corrupt file, before anything runs
        doc = yaml.safe_load(p.read_text(encoding="utf-8"))
        out.append(Kept(p, scn.scenario, scn.found.signature if scn.found else None, doc=doc))
    return out


def replayable(doc: dict[str, Any]) -> dict[str, Any]:
    """A corpus scenario as the generator would have drawn it: no expectations, invariants or provenance."""
    return {k: v for k, v in doc.items() if k not in ("expect", "invariants", "found", "description", "seed")}


__all__ = ["Kept", "case_name", "finding_document", "read_corpus", "replayable", "write_finding"]
