"""Running one generated scenario on a backend, and what the simulator says it should have done.

The simulator is the oracle (``DESIGN.md``: the executable spec). For one scenario this module

- observes a run on any backend (:func:`observe_text`) through the campaign's observer, so the
  same invariants apply: ``no_hang``, ``typed_errors``, ``all_terminal``, ``poison``,
  ``edge_order``, ``clean_close`` (upstream ``docs/scheduler.md`` task states and failure
  propagation, ``docs/orchestrator.md`` TensorMap dependencies,
  ``docs/remote-l3-worker-design.md`` "Failure Semantics");
- states the simulator's run as the scenario's expectations (:func:`expect_from`): the run's
  outcome and error class, every task's outcome, and, for honest fault-free programs, every
  tensor (judged against the reference executor);
- compares two runs (:func:`differences`): outcomes, error classes and task outcomes must be
  equal when nothing in the scenario depends on time; under faults only the invariants are
  compared, as a real runtime's timing is not the model's.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: A task whose outcome the backend cannot see (``RunRecord.metadata["unobserved_tasks"]``): never compared.
UNOBSERVED = "UNOBSERVED"

#: Invariants checked on every run, on every backend (``conformance.campaign.invariants``).
PROPERTIES = ("no_hang", "typed_errors", "all_terminal", "poison", "edge_order", "clean_close")


@dataclass
class Outcome:
    """A compact, picklable account of one run of a scenario."""

    backend: str
    run: str  # OK, ERROR:CLASS, INIT_ERROR:CLASS, HANG, UNTYPED:Type, TIMEOUT, CRASH, NOT_SUPPORTED
    message: str = ""
    tasks: dict[str, str] = field(default_factory=dict)  # task id -> COMPLETED | NOT_RUN | FAILED:CLASS
    violations: dict[str, list[str]] = field(default_factory=dict)
    digest: str = ""
    outputs: dict[str, np.ndarray] = field(default_factory=dict)
    virtual_time_us: float | None = None

    @property
    def outcome(self) -> str:
        return self.run.split(":", 1)[0]


class _KeepTensors:
    """A scenario target that keeps the host tensors of its last build (to read the outputs)."""

    def __init__(self, target: Any) -> None:
        self.inner = target
        self.tensors: dict[str, Any] = {}
        self.rt: Any = None

    def build(self, rt: Any, faults: list[dict[str, Any]]) -> Any:
        b = self.inner.build(rt, faults)
        self.tensors, self.rt = b.tensors, rt
        return b


def _task_word(t: Any) -> str:
    word = t.outcome.value
    return f"{word}:{t.error_class}" if word == "FAILED" and t.error_class else word


def observe_text(text: str, backend: str, seed: int = 0, *, outputs: bool = False,
                 replay: bool = False) -> Outcome:
    """Run scenario YAML ``text`` on ``backend`` in this process and observe it.

    ``outputs`` keeps every tensor's final bytes (functional backends); ``replay`` runs the
    simulator twice and checks the two traces are byte-identical (the ``determinism`` invariant).
    """
    from conformance.campaign.generate import Topology
    from conformance.campaign.invariants import check, resolve
    from conformance.campaign.seedrun import CampaignSpec, observe
    from conformance.campaign.target import ScenarioTarget
    from conformance.fault_space import FaultSpace

    target = ScenarioTarget(text, "<generated>")
    keep = _KeepTensors(target)
    names = PROPERTIES + (("determinism",) if replay else ())
    spec = CampaignSpec(keep, FaultSpace(kinds="none"), Topology(remote=(), local=()), names,  # type: ignore[arg-type]
                        backend=backend)
    faults = [f.model_dump(exclude_none=True) for f in target.scn.faults]
    obs = observe(spec, seed, faults)
    out = Outcome(backend, obs.run.label, obs.run.message, digest=obs.digest, virtual_time_us=obs.virtual_time_us)
    if obs.record is not None:
        out.tasks = {tid: _task_word(t) for tid, t in sorted(obs.record.tasks.items())}
        for tid in obs.record.metadata.get("unobserved_tasks", ()):  # e.g. a real chip task of a failed run
            if tid in out.tasks:
                out.tasks[tid] = UNOBSERVED
    if outputs and keep.rt is not None and obs.run.outcome == "OK":
        out.outputs = {k: np.array(keep.rt.read(v)) for k, v in sorted(keep.tensors.items())}
    if replay and backend == "sim":
        obs.replay_digest = observe(spec, seed, faults).digest
    out.violations = check(resolve(names), obs)
    return out


def output_differences(got: dict[str, np.ndarray], want: dict[str, np.ndarray], scn: Any) -> list[str]:
    """Tensors whose bytes differ beyond the tolerances of scenario ``scn``'s kernels."""
    from conformance.scenario_runner import _tolerance

    out = []
    for name in sorted(want):
        g, w = got.get(name), want[name]
        if g is None:
            out.append(f"tensor {name}: not observed")
            continue
        rtol, atol = _tolerance(scn, w.dtype)
        if g.shape != w.shape or not np.allclose(g, w, rtol=rtol, atol=atol, equal_nan=True):
            err = float(np.nanmax(np.abs(g.astype(np.float64) - w.astype(np.float64)))) if g.shape == w.shape \
                else float("inf")
            out.append(f"tensor {name}: max |error| {err:.3g} against the reference executor")
    return out


def submission_failed(o: Outcome) -> bool:
    """The orchestration function raised (a submit was refused), as opposed to a task failing.

    Then the tasks submitted before it that had not started are cancelled (NOT_RUN) and running ones
    finish (``sim.node.Node.begin_run``; upstream ``docs/orchestrator.md`` §8 "Task State Machine"):
    which of them had started is a matter of timing, so only the run's error class is compared.
    """
    return o.outcome == "ERROR" and o.run != "ERROR:TASK_FAILURE"


def differences(spec: Outcome, got: Outcome, *, timed: bool) -> list[str]:
    """How ``got`` departs from the simulator's ``spec`` run; ``timed``: the scenario has faults (compare less)."""
    out = [f"{got.backend} {name}: {ev[0]}" for name, ev in got.violations.items() if ev]
    if got.outcome in ("TIMEOUT", "CRASH", "HANG"):
        out.append(f"{got.backend} run {got.run}: {got.message}"[:300])
        return out
    if timed or got.outcome == "NOT_SUPPORTED":
        return out
    if got.run != spec.run:
        out.append(f"run: spec {spec.run}, {got.backend} {got.run}")
    if submission_failed(spec) or submission_failed(got) or "INIT_ERROR" in (spec.outcome, got.outcome):
        return out  # nothing, or a timing-dependent part of the program, ran: the run's class says it all
    for tid in sorted(set(top_level(spec.tasks)) | set(top_level(got.tasks))):
        a, b = spec.tasks.get(tid, "absent"), got.tasks.get(tid, "absent")
        if a != b and UNOBSERVED not in (a, b):
            out.append(f"task {tid}: spec {a}, {got.backend} {b}")
    a_n, b_n = nested_counts(spec.tasks), nested_counts(got.tasks)
    for scope in sorted(set(a_n) | set(b_n)):
        if a_n.get(scope) != b_n.get(scope) and None not in (a_n.get(scope, {}), b_n.get(scope, {})):
            out.append(f"tasks of {scope}: spec {a_n.get(scope, {})}, {got.backend} {b_n.get(scope, {})}")
    return out


def _scope(tid: str) -> str:
    return tid.split(":", 1)[0]


def top_level(tasks: dict[str, str]) -> dict[str, str]:
    """The root Worker's own tasks (``l4:r1:t2``), whose ids both backends give in submit order."""
    return {t: w for t, w in tasks.items() if "." not in _scope(t)}


def nested_counts(tasks: dict[str, str]) -> dict[str, dict[str, int] | None]:
    """Tasks of nested runs counted by outcome per Worker scope (None: one of them is unobserved).

    A child's run numbers follow the order its requests arrive in, which for independent submits to
    one child is the scheduler's choice: the nested tasks are compared as counts, not by id.
    """
    out: dict[str, dict[str, int] | None] = {}
    for t, w in sorted(tasks.items()):
        sc = _scope(t)
        if "." not in sc:
            continue
        if w == UNOBSERVED or out.get(sc, {}) is None:
            out[sc] = None
            continue
        counts = out.setdefault(sc, {})
        assert counts is not None
        counts[w] = counts.get(w, 0) + 1
    return out


def signature(lines: list[str]) -> str:
    """What a finding is, without the task ids and numbers that differ between examples of one bug."""
    import re

    kinds = sorted({re.sub(r"\b(task) \S+", r"\1", re.sub(r"[-+]?\d[\d.e+-]*", "N", line.split(":", 1)[0]
                                                            if line.startswith(("sim ", "hw ", "reference "))
                                                            else line)) for line in lines})
    return hashlib.sha256("\n".join(kinds).encode()).hexdigest()[:12] if kinds else ""


def summary_words(lines: list[str]) -> str:
    """A one-line description of a finding."""
    return "; ".join(lines[:3])[:300]


def expect_from(spec: Outcome, *, outputs: list[str] | None = None) -> dict[str, Any]:
    """The simulator's run as a scenario ``expect:`` block (what the spec says)."""
    exp: dict[str, Any] = {}
    kind, _, cls = spec.run.partition(":")
    if kind == "INIT_ERROR":  # the program never runs: init() is what the spec judges
        exp["init"] = {"error": cls or kind}
        return exp
    exp["run"] = "OK" if kind == "OK" else {"error": cls or kind}
    if submission_failed(spec):  # which submitted tasks had started is timing: judge the run only
        return exp
    tasks: dict[str, Any] = {}
    for tid, word in top_level(spec.tasks).items():
        w, _, c = word.partition(":")
        tasks[tid] = {"failed": c} if w == "FAILED" and c else w
    if tasks:
        exp["tasks"] = tasks
        exp["exact_tasks"] = len(tasks) == len(spec.tasks)  # nested runs' ids are the scheduler's choice
    if outputs:
        exp["outputs"] = list(outputs)
    return exp


__all__ = [
    "PROPERTIES",
    "UNOBSERVED",
    "Outcome",
    "differences",
    "expect_from",
    "nested_counts",
    "observe_text",
    "output_differences",
    "signature",
    "submission_failed",
    "summary_words",
    "top_level",
]
