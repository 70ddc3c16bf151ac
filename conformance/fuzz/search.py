"""The search: hypothesis draws scenarios, the checker judges them, a departure is shrunk.

One *chunk* is one hypothesis run with its own seed and example count. A departure locks its
signature (``oracle.signature``) for the rest of the chunk, so shrinking keeps the same bug
instead of wandering to another one; hypothesis replays the smallest failing example last, and
that is the finding. A departure whose signature is already known (found earlier, or kept in
the corpus) is not a new finding: the search goes on. Chunks are independent, so they run
side by side on Dask workers.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, Phase, Verbosity, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis.errors import Flaky

from conformance.fuzz.check import Checked, Checker
from conformance.fuzz.oracle import signature
from conformance.generators.limits import Limits
from conformance.generators.scenarios import scenarios


@dataclass
class Finding:
    """A shrunk departure: the smallest scenario found that still departs the same way."""

    signature: str
    checked: Checked
    chunk_seed: int
    shrink_calls: int = 0
    flaky: bool = False  # it did not depart again when replayed: it shows only sometimes

    @property
    def lines(self) -> list[str]:
        return self.checked.lines


@dataclass
class ChunkResult:
    """What one chunk tried and found; plain data, so it crosses process boundaries."""

    seed: int
    rows: list[dict[str, Any]] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    wall_s: float = 0.0
    stopped: bool = False  # the time budget ended the chunk early


class _Found(Exception):
    def __init__(self, sig: str) -> None:
        super().__init__(sig)
        self.sig = sig


def _row(chunk: int, index: int, c: Checked, sig: str, wall_s: float) -> dict[str, Any]:
    got = c.got
    return {
        "chunk_seed": chunk, "example": index, "sim_run": c.spec.run, "backend_run": got.run if got else None,
        "tasks": len(c.spec.tasks), "faults": len(c.scenario.get("faults", [])),
        "honest": bool(c.meta.get("honest")), "outputs_judged": len(c.outputs), "signature": sig,
        "departure": bool(c.lines), "wall_s": round(wall_s, 6),
    }


def _search(checker: Checker, limits: Limits, run_seed: int, examples: int, seen: set[str], deadline: float | None,
            shrink_s: float, faults: bool, rows: list[dict[str, Any]], chunk_seed: int) -> tuple[int, Finding | None]:
    """One hypothesis run of up to ``examples`` examples: (examples tried, the shrunk finding or None)."""
    locked: dict[str, Any] = {"sig": None, "best": None, "drawn": None, "calls": 0, "since": 0.0}
    tried = [0]
    first = len(rows)

    @settings(max_examples=examples, database=None, deadline=None, derandomize=False,
              suppress_health_check=list(HealthCheck), phases=(Phase.generate, Phase.shrink),
              report_multiple_bugs=False, verbosity=Verbosity.quiet)
    @given(scenarios(limits, faults=faults))
    def prop(drawn: dict[str, Any]) -> None:
        now = time.time()
        if locked["sig"] is None and deadline is not None and now >= deadline:
            return
        if locked["sig"] is not None and now - locked["since"] > shrink_s:
            # Shrinking has had its time: only the smallest failing example so far still fails (hypothesis
            # replays it last to report it); it is not run again, and every other candidate passes.
            if locked["best"] is None or drawn != locked["drawn"]:
                return
        else:
            t = time.perf_counter()
            c = checker.check(drawn)
            sig = signature(c.lines)
            if locked["sig"] is None:
                tried[0] += 1
                rows.append(_row(chunk_seed, first + tried[0] - 1, c, sig, time.perf_counter() - t))
                if c.lines and sig not in seen:
                    locked.update(sig=sig, since=now)
            else:
                locked["calls"] += 1
            if not c.lines or sig != locked["sig"]:
                return
            locked["best"], locked["drawn"] = c, drawn
        raise _Found(locked["sig"])  # one raise site: hypothesis tells failures apart by where they are raised

    try:
        with warnings.catch_warnings():
            # On a Dask worker the worker's own threads draw from the global random module while an example
            # runs; hypothesis would blame the strategy for it.
            warnings.filterwarnings("ignore", message="Do not use the `random` module", category=Warning)
            hypothesis_seed(run_seed)(prop)()
    except _Found as f:
        return tried[0], Finding(f.sig, locked["best"], run_seed, locked["calls"])
    except Flaky:  # a real runtime's departure that a replay did not show again: still a finding
        if locked["best"] is not None:
            return tried[0], Finding(locked["sig"], locked["best"], run_seed, locked["calls"], flaky=True)
    return tried[0], None


def run_chunk(checker: Checker, limits: Limits, chunk_seed: int, examples: int, known: frozenset[str],
              deadline: float | None = None, *, shrink_s: float = 120.0, faults: bool = True) -> ChunkResult:
    """Up to ``examples`` examples from ``chunk_seed``; at most one finding per signature.

    ``deadline`` is a ``time.time()`` after which no new example is checked (shrinking an open
    finding may run ``shrink_s`` past it). After a finding the chunk goes on with the next seed
    until its examples are used.
    """
    t0 = time.perf_counter()
    out = ChunkResult(chunk_seed)
    seen = set(known)
    used = attempt = 0
    while used < examples:
        if deadline is not None and time.time() >= deadline:
            out.stopped = True
            break
        tried, found = _search(checker, limits, chunk_seed * 1_000_003 + attempt, examples - used, seen, deadline,
                               shrink_s, faults, out.rows, chunk_seed)
        attempt += 1
        used += max(tried, 1)
        if found is None:
            break  # hypothesis ran its examples (or ran out of distinct ones) without a new finding
        out.findings.append(found)
        seen.add(found.signature)
    out.wall_s = time.perf_counter() - t0
    return out


__all__ = ["ChunkResult", "Finding", "run_chunk"]
