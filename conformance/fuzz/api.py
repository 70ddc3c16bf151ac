"""``run_fuzz``: the corpus replayed, then a time- and example-bounded search, then the report.

1. Every scenario already in the corpus is checked again on the backend: one that still departs
   is reported (and counts, unless the backend's expectations file accepts it by name); one that
   no longer does is reported as fixed. Their signatures are known, so the search does not
   write them again.
2. The search runs chunks of examples (:func:`conformance.fuzz.search.run_chunk`) on Dask — an
   embedded ``LocalCluster`` by default, a cluster by address, or in this process — until the
   examples or the time budget are used.
3. Each new departure is written to the corpus as a scenario file; ``--out`` gets ``fuzz.json``
   (the summary) and ``examples.parquet`` (one row per example).
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conformance.fuzz.check import Checker
from conformance.fuzz.findings import Kept, read_corpus, replayable, write_finding
from conformance.fuzz.oracle import signature
from conformance.fuzz.search import ChunkResult, Finding, run_chunk
from conformance.generators.limits import Limits, limits_for


class FuzzInputError(ValueError):
    """Bad input to the fuzzer (a corrupt corpus file, an unusable option): exit 2."""


@dataclass
class CorpusCheck:
    """One corpus case checked again."""

    path: str
    name: str
    departs: bool
    lines: list[str]
    known: bool = False  # listed in the backend's expectations file: accepted
    found_on: str | None = None  # the backend it departed on when kept (its found.backend), if recorded


@dataclass
class FuzzReport:
    backend: str
    version: str
    seed: int
    examples: int = 0
    wall_s: float = 0.0
    findings: list[tuple[Finding, Path | None]] = field(default_factory=list)
    corpus: list[CorpusCheck] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)
    stopped_by_budget: bool = False
    interrupted: bool = False
    api: bool = False  # the stateful machine over the Worker API, not generated scenarios
    api_findings: list[tuple[Any, Path | None]] = field(default_factory=list)

    @property
    def failing(self) -> bool:
        """Departures found: new findings, or corpus cases that still depart and nobody accepted."""
        return bool(self.findings or self.api_findings) or any(c.departs and not c.known for c in self.corpus)

    def outcome_counts(self) -> dict[str, int]:
        return dict(sorted(Counter(r["sim_run"].split(":")[0] for r in self.rows).items()))


def _version(backend: str) -> str:
    from conformance.backends import get_backend

    info = get_backend(backend, 0).describe()
    runtime = info.get("runtime_version")
    return f"simpler {runtime} ({info.get('platform')})" if runtime else f"tierbed {info.get('version')}"


def check_corpus(kept: list[Kept], checker: Checker, known_names: set[str]) -> list[CorpusCheck]:
    """Check every corpus case again on the checker's backend; ``known_names``: those an expectations file accepts."""
    from conformance.generators.stateful import replay_steps

    out = []
    for k in kept:
        if k.steps is not None:  # a shrunk API sequence: replayed against the simulator as model
            lines = [str(m) for m in replay_steps(k.steps, checker.backend, checker.seed)]
        else:
            assert k.doc is not None
            judged = bool((k.doc.get("expect") or {}).get("outputs"))  # written only for honest, non-failing programs
            lines = checker.check({**replayable(k.doc), "_honest": judged, "_failing": not judged}).lines
        found_on = ((k.doc or {}).get("found") or {}).get("backend")
        out.append(CorpusCheck(str(k.path), k.name, bool(lines), lines, k.name in known_names, found_on))
    return out


def _known_names(backend: str, files: list[Path], corpus_names: list[str]) -> set[str]:
    """Corpus scenarios the expectations files accept as departures of this backend version."""
    from conformance.backends import get_backend
    from conformance.catalog import load_catalog
    from conformance.expectations import ExpectationsError, backend_version, load_expectations

    ids = [c.id for c in load_catalog()] + corpus_names
    try:
        exp = load_expectations(backend, backend_version(get_backend(backend, 0).describe()), files, case_ids=ids)
    except ExpectationsError as exc:
        raise FuzzInputError(str(exc)) from None
    return set(exp.by_case)


def run_fuzz(backend: str = "sim", *, examples: int = 200, seed: int = 0, time_budget_s: float | None = None,
             corpus: Path | None = None, out: Path | None = None, limits: Limits | None = None,
             timeout_s: float = 60.0, inline: bool = False, scheduler: str | None = None,
             workers: int | None = None, chunk: int | None = None, faults: bool = True,
             expectations: list[Path] | None = None, api: bool = False,
             on_chunk: Callable[[ChunkResult, FuzzReport], None] | None = None) -> FuzzReport:
    """Fuzz ``backend``; see the module docstring. ``examples``: the total over all chunks."""
    t0 = time.perf_counter()
    lim = limits or limits_for(backend)
    checker = Checker(backend, seed, timeout_s)
    rep = FuzzReport(backend, _version(backend), seed)
    known: set[str] = set()
    kept: list[Kept] = []
    if corpus is not None:
        from conformance.yamlfile import YamlFileError

        try:
            kept = read_corpus(corpus)
        except YamlFileError as exc:  # a corrupt corpus file: named with its line, before anything runs
            raise FuzzInputError(str(exc)) from None
    # Expectations files are read (a bad one is bad input) even when no corpus case is there to accept.
    names = _known_names(backend, list(expectations or []), [k.name for k in kept]) if kept or expectations \
        else set()
    if kept:
        rep.corpus = check_corpus(kept, checker, names)
        known |= {signature(c.lines) for c in rep.corpus if c.departs}
        known |= {k.signature for k in kept if k.signature}
    if api:
        _api_search(rep, examples, seed, time_budget_s, corpus, known)
        rep.wall_s = time.perf_counter() - t0
        if out is not None:
            write_outputs(rep, out)
        return rep
    deadline = time.time() + time_budget_s if time_budget_s else None
    size = chunk or (5 if backend == "hw" else 50)
    seeds = [seed * 100_003 + i for i in range((examples + size - 1) // size)]
    counts = [min(size, examples - i * size) for i in range(len(seeds))]
    by = f"tierbed fuzz {_tierbed_version()}"

    def take(res: ChunkResult) -> None:
        rep.rows += res.rows
        rep.examples += len(res.rows)
        rep.stopped_by_budget |= res.stopped
        for f in res.findings:
            if f.signature in known:
                continue  # a parallel chunk found it first
            known.add(f.signature)
            path = write_finding(f, corpus, backend, rep.version, by=by) if corpus is not None else None
            rep.findings.append((f, path))
        if on_chunk is not None:
            on_chunk(res, rep)

    try:
        if inline or len(seeds) == 1:
            for s, n in zip(seeds, counts, strict=True):
                take(run_chunk(checker, lim, s, n, frozenset(known), deadline, faults=faults))
        else:
            _run_dask(checker, lim, seeds, counts, known, deadline, faults, scheduler, workers, take)
    except KeyboardInterrupt:
        rep.interrupted = True
    rep.wall_s = time.perf_counter() - t0
    if out is not None:
        write_outputs(rep, out)
    return rep


@dataclass
class ApiFinding:
    """A shrunk API sequence on which the backend departs from the simulator (``tierbed fuzz --api``)."""

    signature: str
    lines: list[str]
    steps: list[dict[str, Any]]
    flaky: bool = False


def _api_search(rep: FuzzReport, examples: int, seed: int, time_budget_s: float | None, corpus: Path | None,
                known: set[str]) -> None:
    """The stateful machine over the Worker API (``conformance.generators.stateful``), as one search."""
    import hashlib

    from conformance.generators.stateful import HW_KNOWN, run_stateful, steps_to_yaml

    res = run_stateful(rep.backend, examples=examples, seed=seed, time_budget_s=time_budget_s,
                       known=HW_KNOWN if rep.backend == "hw" else ())
    rep.examples = res.examples
    rep.api = True
    if not res.failed:
        return
    lines = [str(m) for m in res.mismatches] or [res.message.splitlines()[0][:300]]
    kinds = sorted({f"{m.op}:{m.kind}:{m.sut}:{m.model}" for m in res.mismatches}) or lines
    sig = hashlib.sha256("\n".join(kinds).encode()).hexdigest()[:12]
    path = None
    if corpus is not None and sig not in known:
        corpus.mkdir(parents=True, exist_ok=True)
        path = corpus / f"fuzz-{rep.backend}-api-{sig}.yaml"
        found = {"backend": rep.backend, "version": rep.version,
                 "note": f"tierbed fuzz --api, seed {seed}, signature {sig}: {lines[0][:200]}"}
        tmp = path.with_suffix(".yaml.tmp")
        tmp.write_text(f"# Replay: tierbed run --backend {rep.backend} {path.name}\n" + steps_to_yaml(res.steps, found),
                       encoding="utf-8")
        tmp.replace(path)
    if sig not in known:
        rep.api_findings.append((ApiFinding(sig, lines, list(res.steps)), path))


def _run_dask(checker: Checker, lim: Limits, seeds: list[int], counts: list[int], known: set[str],
              deadline: float | None, faults: bool, scheduler: str | None, workers: int | None,
              take: Callable[[ChunkResult], None]) -> None:
    from distributed import as_completed

    from conformance.campaign.execute import dask_client

    n = workers or (1 if checker.backend == "hw" else os.cpu_count() or 1)
    with dask_client(scheduler, n) as client:
        futs = [client.submit(run_chunk, checker, lim, s, c, frozenset(known), deadline, faults=faults, pure=False)
                for s, c in zip(seeds, counts, strict=True)]
        try:
            for fut in as_completed(futs):
                take(fut.result())
                fut.release()
        except KeyboardInterrupt:
            client.cancel(futs)
            raise


def _tierbed_version() -> str:
    import importlib.metadata

    try:
        return importlib.metadata.version("tierbed")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def write_outputs(rep: FuzzReport, out: Path) -> tuple[Path, Path]:
    """``fuzz.json`` (the summary) and ``examples.parquet`` (one row per example) in ``out``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    out.mkdir(parents=True, exist_ok=True)
    summary = {
        "backend": rep.backend, "version": rep.version, "seed": rep.seed, "examples": rep.examples,
        "wall_s": round(rep.wall_s, 3), "examples_per_s": round(rep.examples / rep.wall_s, 3) if rep.wall_s else None,
        "stopped_by_budget": rep.stopped_by_budget, "interrupted": rep.interrupted,
        "sim_outcomes": rep.outcome_counts(),
        "findings": [{"signature": f.signature, "file": str(p) if p else None, "lines": f.lines,
                      "tasks": len(f.checked.spec.tasks), "shrink_calls": f.shrink_calls, "flaky": f.flaky}
                     for f, p in rep.findings]
        + [{"signature": f.signature, "file": str(p) if p else None, "lines": f.lines, "api_calls": len(f.steps)}
           for f, p in rep.api_findings],
        "mode": "api" if rep.api else "scenarios",
        "corpus": [c.__dict__ for c in rep.corpus],
    }
    js = out / "fuzz.json"
    js.write_text(json.dumps(summary, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    pq_path = out / "examples.parquet"
    pq.write_table(pa.Table.from_pylist(rep.rows) if rep.rows else pa.table({"example": pa.array([], pa.int64())}),
                   pq_path)
    return js, pq_path


def describe(rep: FuzzReport, stream: Any = None) -> None:
    """The summary a person reads at the end of a run."""
    s = stream or sys.stdout
    rate = rep.examples / rep.wall_s if rep.wall_s else 0.0
    print(f"tierbed fuzz: backend {rep.backend} ({rep.version}), seed {rep.seed}: {rep.examples} examples in "
          f"{rep.wall_s:.1f}s ({rate:.1f}/s)" + (", stopped by the time budget" if rep.stopped_by_budget else "")
          + (", interrupted" if rep.interrupted else ""), file=s)
    if rep.api:
        print("  mode        the stateful machine over the Worker API (the simulator as model)", file=s)
    if rep.rows:
        print("  simulator   " + ", ".join(f"{k} {v}" for k, v in rep.outcome_counts().items()), file=s)
    for c in rep.corpus:
        if c.departs:
            state = "departs (accepted in the expectations file)" if c.known else "still departs"
        elif c.found_on not in (None, rep.backend):  # kept from another backend: holding here says nothing of it
            state = f"holds on {rep.backend} (kept from backend {c.found_on}; replay it there)"
        else:
            state = "no longer departs: the fix can be kept as a regression test, or the file removed"
        print(f"  corpus      {c.name}: {state}" + (f": {c.lines[0][:160]}" if c.departs else ""), file=s)
    for f, p in rep.findings:
        print(f"  DEPARTURE   {f.lines[0][:200]}" + (" (flaky: not seen again on replay)" if f.flaky else ""), file=s)
        for line in f.lines[1:4]:
            print(f"              {line[:200]}", file=s)
        print(f"              {len(f.checked.spec.tasks)} tasks after shrinking; "
              + (f"kept as {p}" if p else "not kept (no --corpus)"), file=s)
    for f, p in rep.api_findings:
        print(f"  DEPARTURE   {f.lines[0][:200]}", file=s)
        print(f"              {len(f.steps)} API calls after shrinking; "
              + (f"kept as {p}" if p else "not kept (no --corpus)"), file=s)
    if not rep.findings and not rep.api_findings:
        print("  no new departure found", file=s)


__all__ = ["CorpusCheck", "FuzzInputError", "FuzzReport", "check_corpus", "describe", "run_fuzz", "write_outputs"]
