"""Shrinking a violating seed to a minimal case, and writing it as a file ``tierbed run`` replays.

For each violated invariant the campaign takes its first violating seed and shrinks the seed's
explicit fault plan while that same invariant still fails: drop whole faults, then make each one
simpler (times earlier, delays and windows shorter, the first frame or control instead of a later
one, a point that always fires, a smaller slow-down). Each step keeps the seed, so the simulator's
own draws stay the same. The result is written as a YAML scenario with ``seed:``, explicit
``faults:``, ``invariants:`` and the observed outcome as ``expect:`` (so the file fails on exactly
the invariant), or, for a ``module:function`` target, as a small case file naming the target.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from conformance.campaign.invariants import RAISED, Observation, check
from conformance.campaign.seedrun import CampaignSpec, observe
from conformance.campaign.target import ScenarioTarget

# Numeric fields a step may shrink, and how: toward the window start, toward zero, toward 1.
_TIMES = ("at_us", "start_us")
_SPANS = ("extra_us", "delay_us")


@dataclass
class Shrunk:
    """The smallest plan found that still violates ``invariant``."""

    invariant: str
    seed: int
    faults: list[dict[str, Any]]
    original: int
    runs: int
    observation: Observation
    evidence: list[str]


def _simpler(f: dict[str, Any], lo: float) -> list[dict[str, Any]]:
    """Candidate simplifications of one fault, simplest first."""
    out = []
    for k in _TIMES:
        if k in f and f[k] > lo:
            start = round(lo + (f[k] - lo) / 2, 1) if f[k] - lo > 1 else lo
            c = dict(f, **{k: start})
            if "end_us" in c and c["end_us"] is not None:
                c["end_us"] = round(max(c["end_us"] - (f[k] - start), start + 0.1), 1)
            out.append(c)
    if "end_us" in f and f.get("end_us") is not None and "start_us" in f and f["end_us"] - f["start_us"] > 1:
        out.append(dict(f, end_us=round(f["start_us"] + (f["end_us"] - f["start_us"]) / 2, 1)))
    for k in _SPANS:
        if f.get(k, 0) > 1:
            out.append(dict(f, **{k: round(f[k] / 2, 1)}))
    if f.get("ordinal", 1) > 1:
        out.append(dict(f, ordinal=1))
    if f["type"] == "FaultPoint":
        if f.get("probability", 1.0) < 1.0:
            out.append(dict(f, probability=1.0))
        if f.get("factor", 2.0) > 2.0:
            out.append(dict(f, factor=max(2.0, float(int(f["factor"] / 2)))))
    return out


def _kind(o: Observation, evidence: list[str]) -> tuple[str, bool]:
    """What makes two violations of one invariant the same failure: how the run ended (OK, ERROR, HANG, an
    init() failure, ...) and whether the invariant itself raised. Without it a plan that makes ``init()``
    fail could stand in for one whose tasks fail, through an invariant that raises on the missing record."""
    return o.run.outcome, any(e.startswith(RAISED) for e in evidence)


def shrink(spec: CampaignSpec, seed: int, faults: list[dict[str, Any]], invariant: str, *,
           max_runs: int = 200) -> Shrunk:
    """Greedy delta debugging of ``faults`` for ``seed`` while ``invariant`` stays violated."""
    inv = {invariant: spec.checks()[invariant]}
    runs = 0

    def fails(plan: list[dict[str, Any]]) -> tuple[Observation, list[str]] | None:
        nonlocal runs
        runs += 1
        o = observe(spec, seed, [dict(f) for f in plan], keep_trace=":" in invariant)
        if invariant == "determinism":
            runs += 1
            o.replay_digest = observe(spec, seed, [dict(f) for f in plan]).digest
        ev = check(inv, o).get(invariant)
        if not ev or (kind is not None and _kind(o, ev) != kind):
            return None
        return o, ev

    kind: tuple[str, bool] | None = None
    best = list(faults)
    first = fails(best)
    if first is None:  # not reproducible in isolation: keep the plan as it is
        o = observe(spec, seed, [dict(f) for f in best])
        return Shrunk(invariant, seed, best, len(faults), runs, o, [])
    obs, evidence = first
    kind = _kind(obs, evidence)  # a smaller plan must fail the same way, not merely fail
    lo = spec.space.window_us[0]
    changed = True
    while changed and runs < max_runs:
        changed = False
        for i in range(len(best) - 1, -1, -1):  # drop faults, last first
            if runs >= max_runs:
                break
            cand = best[:i] + best[i + 1:]
            got = fails(cand)
            if got is not None:
                best, (obs, evidence), changed = cand, got, True
        for i in range(len(best)):
            for simpler in _simpler(best[i], lo):
                if runs >= max_runs:
                    break
                cand = [*best[:i], simpler, *best[i + 1:]]
                got = fails(cand)
                if got is not None:
                    best, (obs, evidence), changed = cand, got, True
                    break
    return Shrunk(invariant, seed, best, len(faults), runs, obs, evidence)


def _expect(o: Observation) -> Any:
    if o.run.outcome == "OK":
        return "OK"
    return {"error": o.run.error_class} if o.run.error_class and o.run.outcome in ("ERROR", "HANG") else "OK"


def _header(s: Shrunk, source: str) -> str:
    lines = [f"Shrunk by 'tierbed campaign' from seed {s.seed} of {source}: invariant {s.invariant} violated",
             f"({s.original} faults -> {len(s.faults)}, {s.runs} runs). Replay: tierbed run <this file>"]
    if ":" in s.invariant:
        lines.append(f"({s.invariant.split(':')[0]} must be importable: run from the campaign's directory or set "
                     "PYTHONPATH)")
    lines += [f"evidence: {e}" for e in s.evidence[:5]]
    return "".join(f"# {x}\n" for x in lines)


def write_case(spec: CampaignSpec, s: Shrunk, path: Path, liveness: bool = False) -> Path:
    """Write the shrunk case; for a scenario target, a scenario file (checked to load)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    t = spec.target
    if isinstance(t, ScenarioTarget):
        from conformance.scenario import parse_scenario

        data = yaml.safe_load(t.text)
        data["scenario"] = f"{data['scenario']}-{s.invariant.replace(':', '-').replace('_', '-')}-seed{s.seed}"
        data["seed"] = s.seed
        data["faults"] = [{"type": f["type"], **{k: v for k, v in f.items() if k != "type"}} for f in s.faults]
        data["invariants"] = [s.invariant]
        data["expect"] = {"run": _expect(s.observation)}
        text = _header(s, t.file) + yaml.safe_dump(data, sort_keys=False, default_flow_style=None, width=110)
        parse_scenario(text, str(path))  # a shrunk case that does not load is a bug of ours: fail here
    else:
        data = {"target": t.name, "seed": s.seed, "faults": s.faults, "invariants": [s.invariant],
                "liveness": liveness}
        text = _header(s, t.name) + yaml.safe_dump(data, sort_keys=False, default_flow_style=None, width=110)
    path.write_text(text, encoding="utf-8")
    return path

__all__ = ["Shrunk", "shrink", "write_case"]
