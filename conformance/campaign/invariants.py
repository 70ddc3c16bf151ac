"""The invariants a campaign checks after every seed, and the user's own.

Each built-in invariant reads one :class:`Observation` and returns its evidence: one line per
violation, empty when it holds. They check what the spec promises whatever the faults:

- ``no_hang`` -- the run returns or raises; a modeled livelock or deadlock (``HANG``) or a seed that
  outlived its wall-clock limit is a violation (upstream ``docs/remote-l3-worker-design.md``
  "Failure Semantics": every wait is bounded);
- ``typed_errors`` -- every error the runtime raises carries an error class (no untyped exception);
- ``all_terminal`` -- every task ends COMPLETED, FAILED or NOT_RUN, with stamps that make sense; a task
  is left unknown only behind an endpoint that failed (``docs/scheduler.md``, task states);
- ``poison`` -- no consumer COMPLETED after one of its producers failed or did not run
  (``docs/scheduler.md``, failure propagation);
- ``edge_order`` -- every dependency edge respected: end(producer) <= start(consumer)
  (``docs/orchestrator.md``, TensorMap dependencies);
- ``clean_close`` -- nothing is left after ``close()``: no live session, endpoint, in-flight control or
  remote buffer reading LIVE (``docs/remote-l3-worker-design/buffers-and-transports.md``,
  "Release Policy");
- ``determinism`` -- a replayed seed gives the same trace, byte for byte (checked on a sample);
- ``liveness`` -- in liveness mode, once faults stop, a second run on the same Workers completes or is
  refused with a typed error (TigerBeetle's VOPR liveness mode).

A user invariant is ``module:function`` called as ``function(record, trace)`` with the RunRecord
(None when ``init()`` failed) and the trace text (None where the backend has none). It returns None,
True or an empty list when it holds; False, a string or a list of strings when violated; an
AssertionError's message is a violation too, and any other exception is reported as one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from conformance.campaign.target import CampaignInputError, load_callable
from conformance.fault_space import BUILTIN_INVARIANTS

#: Run outcomes a seed can end in (the row's ``outcome`` column).
OUTCOMES = ("OK", "ERROR", "INIT_ERROR", "HANG", "UNTYPED", "TIMEOUT", "CRASH", "NOT_SUPPORTED")


@dataclass
class RunOutcome:
    """How one ``run()`` (or ``init()``) ended."""

    outcome: str
    error_class: str | None = None
    message: str = ""

    @property
    def label(self) -> str:
        return f"{self.outcome}:{self.error_class}" if self.error_class and self.outcome != "OK" else self.outcome


@dataclass
class Observation:
    """Everything one seed's run showed: the input of every invariant."""

    seed: int
    backend: str
    run: RunOutcome
    record: Any = field(default=None, repr=False)
    trace: str | None = field(default=None, repr=False)
    digest: str = ""
    virtual_time_us: float | None = None
    faults_hit: dict[str, int] = field(default_factory=dict)
    leftovers: list[str] = field(default_factory=list)
    close_error: str | None = None
    second: RunOutcome | None = None  # liveness mode: the run after faults stopped
    replay_digest: str | None = None  # determinism sample: the digest of the replay


Invariant = Callable[[Observation], list[str]]


def no_hang(o: Observation) -> list[str]:
    runs = (("run", o.run), ("second run", o.second))
    return [f"{r}: {x.outcome} {x.message}".strip() for r, x in runs
            if x is not None and x.outcome in ("HANG", "TIMEOUT")]


def typed_errors(o: Observation) -> list[str]:
    runs = (("run", o.run), ("second run", o.second))
    out = [f"{r} raised an untyped {x.error_class}: {x.message}" for r, x in runs
           if x is not None and x.outcome == "UNTYPED"]
    if o.close_error:
        out.append(f"close() raised {o.close_error}")
    return out


def _endpoint_failed(o: Observation) -> bool:
    rec = o.record
    if o.run.error_class in ("ENDPOINT_FAILURE", "UNCERTAIN_STATE"):
        return True
    return any(t.error_class == "ENDPOINT_FAILURE" for t in rec.tasks.values())


def all_terminal(o: Observation) -> list[str]:
    if o.record is None:
        return []
    out = []
    abandoned_ok = None
    stamped = o.backend == "sim"  # the spec stamps every task; a real runtime shows only what it can observe
    for t in o.record.tasks.values():
        if t.outcome.value == "COMPLETED" and stamped and (t.start is None or t.end is None):
            out.append(f"{t.task_id} COMPLETED without a start and an end")
        elif t.start is not None and t.end is not None and t.end < t.start:
            out.append(f"{t.task_id} ended at {t.end} before it started at {t.start}")
        elif t.error_class == "UNCERTAIN_STATE" and "still running" in t.message:
            if abandoned_ok is None:
                abandoned_ok = _endpoint_failed(o)
            if not abandoned_ok:
                out.append(f"{t.task_id} never became terminal, and no endpoint failed")
    return out


def poison(o: Observation) -> list[str]:
    if o.record is None:
        return []
    tasks = o.record.tasks
    out = []
    for p, c in o.record.edges():
        pt, ct = tasks.get(p), tasks.get(c)
        if pt is not None and ct is not None and pt.outcome.value != "COMPLETED" and ct.outcome.value == "COMPLETED":
            out.append(f"{c} COMPLETED although its producer {p} is {pt.outcome.value}"
                       + (f" ({pt.error_class})" if pt.error_class else ""))
    return out


def edge_order(o: Observation) -> list[str]:
    if o.record is None:
        return []
    tasks = o.record.tasks
    return [f"{c} started at {tasks[c].start} before its producer {p} ended at {tasks[p].end}"
            for p, c in o.record.order_violations()]


def clean_close(o: Observation) -> list[str]:
    return [f"left after close(): {x}" for x in o.leftovers]


def determinism(o: Observation) -> list[str]:
    if o.replay_digest is None or o.replay_digest == o.digest:
        return []
    return [f"replaying seed {o.seed} gave trace digest {o.replay_digest[:16]}, the first run {o.digest[:16]}"]


def liveness(o: Observation) -> list[str]:
    s = o.second
    if s is None or s.outcome in ("OK", "ERROR"):
        return []
    return [f"after faults stopped, a second run ended {s.outcome}: {s.message}"]


BUILTIN: dict[str, Invariant] = {
    "no_hang": no_hang, "typed_errors": typed_errors, "all_terminal": all_terminal, "poison": poison,
    "edge_order": edge_order, "clean_close": clean_close, "determinism": determinism, "liveness": liveness,
}
assert tuple(BUILTIN) == BUILTIN_INVARIANTS  # the scenario format checks names against the vocabulary's list


#: How the evidence of a user invariant that raised (not an AssertionError) begins.
RAISED = "the invariant raised"


def _user(spec: str) -> Invariant:
    fn = load_callable(spec, "invariant")

    def check(o: Observation) -> list[str]:
        try:
            got = fn(o.record, o.trace)
        except AssertionError as exc:
            return [str(exc) or "assertion failed"]
        except Exception as exc:  # the user's code: any failure is evidence, never a crash of the campaign
            return [f"{RAISED} {type(exc).__name__}: {exc}"]
        if got is None or got is True or got == []:
            return []
        if got is False:
            return ["returned False"]
        if isinstance(got, str):
            return [got]
        if isinstance(got, list | tuple):
            return [str(x) for x in got]
        return [f"returned {got!r}"]

    return check


def resolve(names: list[str] | tuple[str, ...]) -> dict[str, Invariant]:
    """Invariants by name: built-in names and ``module:function``; CampaignInputError for an unknown one."""
    out: dict[str, Invariant] = {}
    for n in names:
        if n in BUILTIN:
            out[n] = BUILTIN[n]
        elif ":" in n:
            out[n] = _user(n)
        else:
            raise CampaignInputError(f"unknown invariant {n!r}: built-in ones are {', '.join(BUILTIN)}, "
                                     f"or give module:function")
    return out


def check(invariants: dict[str, Invariant], o: Observation) -> dict[str, list[str]]:
    """Name -> evidence, for the invariants that ``o`` violates (in the given order)."""
    out = {}
    for name, inv in invariants.items():
        ev = inv(o)
        if ev:
            out[name] = ev
    return out


__all__ = ["BUILTIN", "OUTCOMES", "Invariant", "Observation", "RunOutcome", "check", "resolve"]
