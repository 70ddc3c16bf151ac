"""One seed of a campaign: draw its plan, bring the target up, run, observe, close, check invariants.

Everything here runs inside a Dask worker (or the plain in-process loop) and returns a plain
row (:func:`run_seed`), so a seed's result is the same wherever it ran. The simulator is a pure
function of (target, seed, plan): the digest of its trace identifies the run, and a replay must
reproduce it byte for byte.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conformance.campaign.generate import Plan, Topology, draw_plan, label
from conformance.campaign.invariants import Invariant, Observation, RunOutcome, check, resolve
from conformance.campaign.target import Target
from conformance.fault_space import FaultSpace
from sim.trace import write_trace_text


@dataclass
class CampaignSpec:
    """Everything a worker needs to run any seed of one campaign (picklable)."""

    target: Target
    space: FaultSpace
    topology: Topology
    invariants: tuple[str, ...]
    backend: str = "sim"
    liveness: bool = False
    determinism_every: int = 50  # replay one seed in this many (0: never)
    seed_timeout_s: float = 60.0
    base_faults: tuple[dict[str, Any], ...] = ()  # the scenario's own faults: in every seed's plan
    _resolved: dict[str, Invariant] | None = field(default=None, repr=False, compare=False)

    def __getstate__(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["_resolved"] = None
        return d

    def checks(self) -> dict[str, Invariant]:
        if self._resolved is None:
            self._resolved = resolve(self.invariants)
        return self._resolved

    def plan(self, seed: int) -> Plan:
        drawn = draw_plan(self.space, self.topology, seed, liveness=self.liveness)
        return Plan(tuple(dict(f) for f in self.base_faults) + drawn.faults, drawn.kinds)


def _outcome(rt: Any, exc: BaseException | None, init: bool = False) -> RunOutcome:
    from conformance.backends import NotSupportedByBackend

    if exc is None:
        return RunOutcome("OK")
    if isinstance(exc, NotSupportedByBackend):  # the backend cannot do what the plan asks: no verdict
        return RunOutcome("NOT_SUPPORTED", None, str(exc)[:400])
    cls = rt.error_class(exc)
    msg = str(exc).splitlines()[0][:400] if str(exc) else type(exc).__name__
    if cls.startswith("UNMAPPED:"):
        return RunOutcome("UNTYPED", type(exc).__name__, msg)
    if cls == "HANG":
        return RunOutcome("HANG", cls, msg)
    return RunOutcome("INIT_ERROR" if init else "ERROR", cls, msg)


def sim_leftovers(root: Any) -> list[str]:
    """What a closed simulated tree still holds: open endpoints or sessions, queued controls, live buffers."""
    out: list[str] = []
    for w in root._walk():
        rs = w._remote
        if rs is None:
            continue
        for wid, ep in sorted(rs.endpoints.items()):
            if ep.state.value not in ("CLOSED",):
                out.append(f"endpoint {ep.scope} (worker {wid}) is {ep.state.value}")
            if ep.inflight is not None or ep.queue:
                out.append(f"endpoint {ep.scope} still has {int(ep.inflight is not None) + len(ep.queue)} "
                           f"request(s) in flight or queued")
            if ep.session is not None and not ep.session.closed:
                out.append(f"session {ep.session.scope} is still open")
        reg = getattr(rs, "_buffers", None)
        if reg is not None:
            for h in reg.handles:
                if h.state in ("LIVE", "RELEASED"):
                    out.append(f"remote buffer {h!r} reads {h.state}")
            if reg.inflight:
                out.append(f"{len(reg.inflight)} remote cleanup control(s) still unanswered")
    return out


def observe(spec: CampaignSpec, seed: int, faults: list[dict[str, Any]], *, keep_trace: bool = False,
            trace_dir: Path | None = None) -> Observation:
    """Run ``spec.target`` once on ``spec.backend`` with ``faults``; observe everything the invariants read."""
    from conformance.backends import get_backend
    from conformance.campaign import host

    before = host.snapshot() if spec.backend != "sim" else None
    rt = get_backend(spec.backend, seed)
    obs = Observation(seed, spec.backend, RunOutcome("OK"))
    try:
        built = None
        try:
            built = spec.target.build(rt, faults)
        except Exception as exc:  # the runtime under test may raise anything at init: classify it
            obs.run = _outcome(rt, exc, init=True)
        root = built.root if built is not None else _initialized_root(rt)
        if root is None:  # nothing came up: there is nothing to record or close
            return obs
        if built is not None:
            try:
                root.run(built.orch, built.args)
                obs.run = RunOutcome("OK")
            except Exception as exc:  # classify, never propagate: a failing runtime is what we observe
                obs.run = _outcome(rt, exc)
        record = root.take_record()
        if built is not None and spec.liveness and obs.run.outcome in ("OK", "ERROR"):
            sim = getattr(root, "simulation", None) if rt.name == "sim" else None
            if sim is not None and sim.now < spec.space.heal_us:
                sim.env.run(until=spec.space.heal_us)
            try:
                root.run(built.orch, built.args)
                obs.second = RunOutcome("OK")
            except Exception as exc:
                obs.second = _outcome(rt, exc)
            second = root.take_record()
            record.tasks.update(second.tasks)
            record.calls.extend(second.calls)
            record.metadata.update({k: v for k, v in second.metadata.items() if k != "faults_hit"})
            hits = dict(record.metadata.get("faults_hit") or {})
            for k, v in (second.metadata.get("faults_hit") or {}).items():
                hits[k] = hits.get(k, 0) + v
            record.metadata["faults_hit"] = dict(sorted(hits.items()))
        obs.record = record
        obs.faults_hit = dict(record.metadata.get("faults_hit") or {})
        obs.virtual_time_us = record.metadata.get("virtual_time_us")
        if rt.supports("trace"):
            text = root.simulation.trace.text()
            obs.digest = hashlib.sha256(text.encode()).hexdigest()
            if keep_trace:
                obs.trace = text
            if trace_dir is not None:
                trace_dir.mkdir(parents=True, exist_ok=True)
                root.simulation.trace.write_perfetto(trace_dir / "trace.perfetto.json", record.edges())
                write_trace_text(trace_dir / "trace.txt", text)
        try:
            root.close()
        except Exception as exc:  # a typed close failure leaves state behind; an untyped one is a bug
            cls = rt.error_class(exc)
            if cls.startswith("UNMAPPED:"):
                obs.close_error = f"{type(exc).__name__}: {exc}"
            else:
                obs.leftovers.append(f"close() failed with {cls}: {exc}")
        if rt.name == "sim":
            obs.leftovers.extend(sim_leftovers(root))
        return obs
    finally:
        rt.close_all()
        if before is not None:  # a real runtime leaves processes and shared memory, not model state
            obs.leftovers.extend(host.leftovers(before))


def _initialized_root(rt: Any) -> Any:
    """The root Worker a build left initialized when a later step of it failed (a remote memory call, say):
    its record and its close are still observed. None when init() itself failed."""
    for w in rt.workers:
        if getattr(w, "_parent", None) is None:
            return w if getattr(getattr(w, "_state", None), "value", None) == "READY" else None
    return None


def _wants_trace(spec: CampaignSpec) -> bool:
    return any(":" in n for n in spec.invariants)


def run_seed(spec: CampaignSpec, seed: int) -> dict[str, Any]:
    """One seed, as a Parquet row (plain Python values only)."""
    t0 = time.perf_counter()
    plan = spec.plan(seed)
    faults = [dict(f) for f in plan.faults]
    obs = observe(spec, seed, faults, keep_trace=_wants_trace(spec))
    checked = bool(spec.determinism_every) and seed % spec.determinism_every == 0 and spec.backend == "sim" \
        and "determinism" in spec.invariants
    if checked:
        obs.replay_digest = observe(spec, seed, [dict(f) for f in plan.faults]).digest
    violations = check(spec.checks(), obs)
    return row(seed, plan, obs, violations, checked, time.perf_counter() - t0)


def row(seed: int, plan: Plan, obs: Observation, violations: dict[str, list[str]], checked: bool,
        wall_s: float) -> dict[str, Any]:
    rec = obs.record
    counts = rec.outcome_counts() if rec is not None else {"COMPLETED": 0, "FAILED": 0, "NOT_RUN": 0}
    classes = sorted({t.error_class for t in rec.tasks.values() if t.error_class}) if rec is not None else []
    return {
        "seed": seed,
        "outcome": obs.run.outcome,
        "run": obs.run.label,
        "error_class": obs.run.error_class,
        "message": obs.run.message,
        "second_run": obs.second.label if obs.second is not None else None,
        "faults": [label(f) for f in plan.faults],
        "fault_plan": json.dumps(list(plan.faults), sort_keys=True),
        "kinds": list(plan.kinds),
        "points": list(plan.points()),
        "faults_hit": json.dumps(obs.faults_hit, sort_keys=True),
        "task_error_classes": classes,
        "tasks": sum(counts.values()),
        "completed": counts["COMPLETED"],
        "failed": counts["FAILED"],
        "not_run": counts["NOT_RUN"],
        "violations": list(violations),
        "evidence": json.dumps(violations),
        "virtual_time_us": float(obs.virtual_time_us) if obs.virtual_time_us is not None else None,
        "digest": obs.digest,
        "determinism_checked": checked,
        "wall_s": round(wall_s, 6),
    }


def crash_row(seed: int, spec: CampaignSpec, outcome: str, message: str) -> dict[str, Any]:
    """The row of a seed that killed its worker (CRASH) or outlived its wall-clock limit (TIMEOUT)."""
    plan = spec.plan(seed)
    obs = Observation(seed, spec.backend, RunOutcome(outcome, None, message))
    violations = {"no_hang": [f"run: {outcome} {message}"]} if outcome == "TIMEOUT" and "no_hang" in spec.invariants \
        else {"crash": [message]} if outcome == "CRASH" else {}
    return row(seed, plan, obs, violations, False, 0.0)


__all__ = ["CampaignSpec", "crash_row", "observe", "row", "run_seed", "sim_leftovers"]
