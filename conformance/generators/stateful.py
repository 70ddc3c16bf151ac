"""A hypothesis state machine over the Worker API, with the simulator as the model.

Spec (``DESIGN.md`` "The three jobs as products", spec-driven regression): one
``RuleBasedStateMachine`` drives a backend (the *system under test*, SUT) and the simulator (the
*model*) with the same sequence of Worker API calls -- construct, compose, register, unregister,
init, run, remote memory, close -- and fails on the first call whose outcome differs. The calls and
the outcomes the machine expects follow upstream:

* ``docs/hierarchical-level-runtime.md`` "1. Level Model" and "4. Recursive Composition", seed 000
  "Level rules" and ``python/simpler/worker.py`` (``Worker.init`` / ``run`` / ``close`` lifecycle):
  catalog cases LVL-006..LVL-022;
* ``docs/callable-identity-registration.md`` "Registry Contract", "Runtime Contracts" and
  "Dispatch Contract": REG-006 (second unregister), REG-008 (foreign handle), REG-012/013 (init
  target check);
* ``docs/orchestrator.md`` "2. submit_next_level", "4. submit_sub" and ``docs/scheduler.md``
  "5. Dependency release and PENDING updates" (poison): ORCH-023, ORCH-025;
* ``docs/remote-l3-worker-design/buffers-and-transports.md`` "Buffer Handles", "Public Memory API"
  and "Release Policy": RBUF-001, RBUF-011, RBUF-014, RBUF-017.

Every outcome is compared three ways:

``differential``
    SUT against model: the same status (OK / ERROR), the same error class (``rt.error_class``: the
    simulator's :class:`~sim.errors.ErrorClass`, and on ``hw`` the table of
    :mod:`hw_backend.errors`), the same returned worker ids and, for a run, the same per-task
    outcomes. On ``backend="sim"`` the SUT is a second simulator and this is a determinism check.
``spec``
    a misuse whose error class the spec fixes (each rule below cites its catalog case), checked on
    both sides: on ``sim`` these are the checks that matter.
``invariant``
    after every step: each run's record has every task terminal, every dependency edge respected in
    time, the poison rule (a consumer of a failed or not-run producer is NOT_RUN, with no start
    stamp), run outcome consistent with task outcomes; a closed Worker refuses new work with
    INVALID_STATE; on the simulator, nothing of the remote buffer registry is left at close.

Each step is plain data (``{"op": "register", "worker": 0, "callable": "add"}``), logged as it is
applied, so that a failing sequence is saved (:func:`steps_to_yaml`, :func:`save_steps`), loaded
(:func:`load_steps`, with ``file:line`` errors) and replayed without hypothesis
(:func:`replay_steps`). :func:`run_stateful` runs the machine and returns the shrunk steps.

A backend's listed departures (its expectations file) can be passed as ``known``
(:class:`KnownDeparture`; :data:`HW_KNOWN` for the real runtime 0.1.x): a step that meets one is
tolerated and ends the comparison of that sequence, since the two sides may no longer hold the same
state, so that a run can look past a departure already known.
"""

from __future__ import annotations

import contextlib
import time
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import yaml
from hypothesis import HealthCheck, Phase, Verbosity, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    get_state_machine_test,
    initialize,
    invariant,
    precondition,
    rule,
)
from pydantic import BaseModel, ConfigDict, Field

from conformance.backends import get_backend
from conformance.yamlfile import YamlFileError, compose, read_text, validate
from sim.backend_api import NotSupportedByBackend, RuntimeAPI

Step = dict[str, Any]
#: A backend by name (``sim``, ``reference``, ``hw``), or a factory ``seed -> RuntimeAPI`` (a test's
#: deliberately broken SUT, a backend with options).
Backend = str | Callable[[int], RuntimeAPI]

#: Names of the callables a ``register`` step can name.
CALLABLES = ("add", "sub_noop", "sub_fail", "remote_noop", "remote_fail")
TAGS = ("INPUT", "OUTPUT", "INOUT")
ACCESS = ("read", "write", "readwrite")
#: Host tensors of a run's pool, and their length (float32).
POOL = 4
N = 16
NBYTES = 64
FIRST_PORT = 9400

# Spec citations used by the expectations (catalog case, upstream doc and heading).
LVL_ATTACH = "LVL-013/LVL-014 (hierarchical-level-runtime.md, 4. Recursive Composition)"
LVL_TYPE = "LVL-006/LVL-010 (seed 000, Level rules)"
LVL_INIT = "LVL-020/LVL-022 (python/simpler/worker.py, Worker.init)"
LVL_CLOSE = "LVL-021 (python/simpler/worker.py, Worker.close)"
LVL_RUN = "LVL-018/LVL-019 (python/simpler/worker.py, Worker.run)"
REMOTE_PARENT = "remote-l3-worker-design.md, Worker Identity and Callable Routing (remote L3 needs an L4+ parent)"
CLOSED = "python-api.md, Worker lifecycle (a closed Worker refuses new work)"
REG_TWICE = "REG-006 (callable-identity-registration.md, Registry Contract)"
REG_FOREIGN = "REG-008 (callable-identity-registration.md, Dispatch Contract)"
REG_LIVE = "REG-017 (callable-identity-registration.md, Registry Contract)"
RBUF_INIT = "RBUF-014 (buffers-and-transports.md, Public Memory API)"
RBUF_STALE = "RBUF-011 (buffers-and-transports.md, Buffer Handles)"
RBUF_WRONG = "RBUF-017 (buffers-and-transports.md, Release Policy)"
RBUF_COPY = "RBUF-001 (buffers-and-transports.md, Public Memory API)"
POISON = "ORCH-023/ORCH-025 (scheduler.md, 5. Dependency release and PENDING updates)"


# --------------------------------------------------------------------------------------- callables


def sub_noop(*args: Any) -> None:
    """A SUB callable (``fn(args)``) or next-level orchestration (``fn(o, a, c)``) that does nothing."""


def sub_fail(*args: Any) -> None:
    """A SUB callable that fails on purpose: its task is FAILED and its consumers NOT_RUN."""
    raise RuntimeError("stateful machine: sub callable failed on purpose")


def _target(rt: RuntimeAPI, name: str) -> Any:
    if name == "add":
        return rt.kernel("add")
    if name == "sub_noop":
        return sub_noop
    if name == "sub_fail":
        return sub_fail
    return rt.RemoteCallable(rt.remote_target(name.removeprefix("remote_")))


def _kind(name: str) -> str:
    return "chip" if name == "add" else "remote" if name.startswith("remote_") else "python"


# --------------------------------------------------------------------------------------- outcomes


@dataclass(frozen=True)
class Outcome:
    """How one step ended on one side: ``OK`` (with a value) or ``ERROR`` (with its class)."""

    status: str  # OK, ERROR, UNSUPPORTED
    error: str | None = None
    value: Any = None
    tasks: tuple[tuple[str, str], ...] | None = None  # a run: (task id, outcome[:class]) in id order
    message: str = ""

    def key(self) -> tuple[Any, ...]:
        return (self.status, self.error, self.value, self.tasks)

    def __str__(self) -> str:
        text = self.status if self.error is None else f"{self.status} {self.error}"
        if self.value is not None:
            text += f" -> {self.value!r}"
        if self.tasks is not None:
            text += " tasks{" + ", ".join(f"{t}: {o}" for t, o in self.tasks) + "}"
        return text


@dataclass(frozen=True)
class Mismatch:
    """A difference found at step ``step`` (0-based index in the step list)."""

    step: int
    op: str
    kind: str  # differential, spec, invariant
    sut: str
    model: str
    detail: str = ""

    def __str__(self) -> str:
        text = f"step {self.step} ({self.op}): {self.kind}: SUT {self.sut} / model {self.model}"
        return f"{text}: {self.detail}" if self.detail else text


class StatefulFailure(AssertionError):
    """A step whose outcome the SUT, the model or the spec disagree on."""

    def __init__(self, mismatches: list[Mismatch]) -> None:
        self.mismatches = list(mismatches)
        super().__init__("; ".join(str(m) for m in mismatches))


class StepError(ValueError):
    """A step that names something the sequence never made (a hand-edited file, a bad index)."""


@dataclass
class StatefulResult:
    """What :func:`run_stateful` found: no steps when nothing failed."""

    backend: str
    seed: int
    examples: int
    steps: list[Step] = field(default_factory=list)
    message: str = ""
    mismatches: list[Mismatch] = field(default_factory=list)
    elapsed_s: float = 0.0

    @property
    def failed(self) -> bool:
        return bool(self.message)


# --------------------------------------------------------------------------------------- one side


class Side:
    """One runtime driven by steps; holds the objects its calls returned, indexed as steps name them."""

    def __init__(self, rt: RuntimeAPI) -> None:
        self.rt = rt
        self.workers: list[Any] = []
        self.handles: list[Any] = []
        self.buffers: list[Any] = []
        self.exports: list[Any] = []
        self.last_record: Any = None

    def apply(self, step: Step) -> Outcome:
        op = step["op"]
        try:
            value = getattr(self, f"_{op}")(step)
        except NotSupportedByBackend as exc:
            return Outcome("UNSUPPORTED", message=str(exc))
        except _RunOutcome as ro:
            return ro.outcome
        except Exception as exc:
            return Outcome("ERROR", self.rt.error_class(exc), message=str(exc))
        return value if isinstance(value, Outcome) else Outcome("OK", value=value)

    # -- construction and composition
    def _worker(self, s: Step) -> None:
        kw: dict[str, Any] = {"num_sub_workers": s["num_sub_workers"]}
        if s["level"] == 3:
            kw["device_ids"] = list(range(s["device_ids"]))
        self.workers.append(self.rt.Worker(s["level"], **kw))

    def _add_worker(self, s: Step) -> int:
        return int(self.workers[s["parent"]].add_worker(self.workers[s["child"]]))

    def _add_remote_worker(self, s: Step) -> int:
        spec = self.rt.RemoteWorkerSpec(f"127.0.0.1:{s['port']}", "a2a3sim", device_ids=(0,))
        return int(self.workers[s["worker"]].add_remote_worker(spec))

    # -- registration
    def _register(self, s: Step) -> None:
        w = self.workers[s["worker"]]
        target = _target(self.rt, s["callable"])
        h = w.register(target, workers=list(s["workers"])) if s.get("workers") is not None else w.register(target)
        self.handles.append(h)

    def _unregister(self, s: Step) -> None:
        self.workers[s["worker"]].unregister(self.handles[s["handle"]])

    # -- lifecycle
    def _init(self, s: Step) -> None:
        self.workers[s["worker"]].init()

    def _close(self, s: Step) -> None:
        self.workers[s["worker"]].close()

    # -- runs
    def _run(self, s: Step) -> Outcome:
        rt = self.rt
        w = self.workers[s["worker"]]
        pool = [np.full(N, i + 1, np.float32) for i in range(POOL)]
        tasks = [(self.handles[t["handle"]], t) for t in s["tasks"]]

        def orch(o: Any, _a: Any, _c: Any) -> None:
            for h, t in tasks:
                ta = rt.TaskArgs()
                for idx, tag in t["tensors"]:
                    ta.add_tensor(pool[idx], rt.TensorArgType[tag])
                if t["submit"] == "sub":
                    o.submit_sub(h, ta)
                else:
                    o.submit_next_level(h, ta, worker=t["worker"])

        error: str | None = None
        message = ""
        try:
            w.run(orch)
        except NotSupportedByBackend:
            raise
        except Exception as exc:
            error, message = rt.error_class(exc), str(exc)
        try:
            rec = w.take_record()
        except Exception:
            rec = None
        self.last_record = rec
        outcomes = None
        if rec is not None:
            outcomes = tuple(sorted((tid, t.outcome.value if t.error_class is None or t.outcome.value != "FAILED"
                                     else f"FAILED:{t.error_class}") for tid, t in rec.tasks.items()))
        raise _RunOutcome(Outcome("OK" if error is None else "ERROR", error, tasks=outcomes, message=message))

    # -- remote memory
    def _remote_malloc(self, s: Step) -> None:
        self.buffers.append(self.workers[s["worker"]].remote_malloc(worker=s["remote"], nbytes=NBYTES))

    def _remote_free(self, s: Step) -> None:
        self.workers[s["worker"]].remote_free(self.buffers[s["buffer"]])

    def _remote_copy_to(self, s: Step) -> None:
        self.workers[s["worker"]].remote_copy_to(self.buffers[s["buffer"]], np.full(N, s["fill"], np.float32),
                                                 NBYTES)

    def _remote_copy_from(self, s: Step) -> float | str:
        got = np.zeros(N, np.float32)
        self.workers[s["worker"]].remote_copy_from(self.buffers[s["buffer"]], got, NBYTES)
        return float(got[0]) if bool(np.all(got == got[0])) else f"mixed crc32={zlib.crc32(got.tobytes()):08x}"

    def _remote_export(self, s: Step) -> None:
        self.exports.append(self.workers[s["worker"]].remote_export(self.buffers[s["buffer"]], access=s["access"]))

    def _remote_import(self, s: Step) -> None:
        self.buffers.append(self.workers[s["worker"]].remote_import(self.exports[s["export"]], worker=s["remote"]))

    def _remote_release_import(self, s: Step) -> None:
        self.workers[s["worker"]].remote_release_import(self.buffers[s["buffer"]])

    def probe_closed(self, index: int) -> list[tuple[str, Outcome]]:
        """What a closed root answers to new work (``run`` and ``register``)."""
        w = self.workers[index]
        out = []
        for name, call in (("run", lambda: w.run(lambda o, a, c: None)), ("register", lambda: w.register(sub_noop))):
            try:
                call()
                out.append((name, Outcome("OK")))
            except NotSupportedByBackend as exc:
                out.append((name, Outcome("UNSUPPORTED", message=str(exc))))
            except Exception as exc:
                out.append((name, Outcome("ERROR", self.rt.error_class(exc), message=str(exc))))
        return out

    def close_all(self) -> None:
        self.rt.close_all()


class _RunOutcome(Exception):
    def __init__(self, outcome: Outcome) -> None:
        super().__init__(str(outcome))
        self.outcome = outcome


# --------------------------------------------------------------------------------------- the model's bookkeeping


@dataclass
class WorkerInfo:
    level: int
    devices: int
    subs: int
    parent: int | None = None
    children: list[int] = field(default_factory=list)
    child_ids: list[int] = field(default_factory=list)  # their NEXT_LEVEL worker ids
    remotes: list[int] = field(default_factory=list)  # remote worker ids
    state: str = "NEW"  # NEW, READY, FAILED, CLOSED (the tree's, kept on every member)


@dataclass
class HandleInfo:
    worker: int
    callable: str
    live: bool = True


@dataclass
class BufferInfo:
    worker: int  # the root whose memory calls made it
    remote: int
    owner: int | None  # None: an owner handle; else the index of its owner buffer (an import)
    released: bool = False
    fill: float | None = None  # what the last full copy_to wrote


@dataclass
class ExportInfo:
    worker: int
    buffer: int


@dataclass(frozen=True)
class KnownDeparture:
    """A listed difference of a backend (an expectations-file entry): ``op`` whose SUT outcome starts
    with ``sut`` and model outcome with ``model`` is tolerated; the sequence is not compared further."""

    op: str
    sut: str
    model: str
    case: str

    def matches(self, op: str, sut: Outcome, model: Outcome) -> bool:
        return op == self.op and str(sut).startswith(self.sut) and str(model).startswith(self.model)


#: The departures of the real runtime 0.1.x the expectations file lists that this machine meets.
HW_KNOWN = (
    KnownDeparture("add_worker", "OK", "ERROR INVALID_WORKER_TYPE", "LVL-008"),  # parent level checked only
)


@dataclass(frozen=True)
class Expect:
    """An outcome the spec fixes: OK (``classes`` empty) or an error of one of ``classes``."""

    classes: tuple[str, ...]
    cite: str

    def admits(self, o: Outcome) -> bool:
        if not self.classes:
            return o.status == "OK"
        return o.status == "ERROR" and o.error in self.classes

    def __str__(self) -> str:
        return "OK" if not self.classes else "ERROR " + "|".join(self.classes)


def _error(cls: str, cite: str) -> Expect:
    return Expect((cls,), cite)


# --------------------------------------------------------------------------------------- harness


class Harness:
    """Applies steps to the SUT and the model, checks them, and keeps the plain-data log.

    The model's outcome decides how the bookkeeping (lifecycle states, live handles, buffers)
    advances; the bookkeeping gives the machine its preconditions and the spec expectations.
    """

    def __init__(self, sut: RuntimeAPI, model: RuntimeAPI, known: Iterable[KnownDeparture] = ()) -> None:
        self.sut, self.model = Side(sut), Side(model)
        self.known = tuple(known)
        #: Known departures met (step index, which); after the first, the sides may differ in state,
        #: so the rest of the sequence is not compared (its steps are not applied).
        self.tolerated: list[tuple[int, KnownDeparture]] = []
        self.steps: list[Step] = []
        self.mismatches: list[Mismatch] = []
        self.workers: list[WorkerInfo] = []
        self.handles: list[HandleInfo] = []
        self.buffers: list[BufferInfo] = []
        self.exports: list[ExportInfo] = []
        self.ports = FIRST_PORT
        self.unsupported: list[tuple[Step, str]] = []

    # -- queries the machine uses
    def roots(self) -> list[int]:
        return [i for i, w in enumerate(self.workers) if w.parent is None]

    def root_of(self, i: int) -> int:
        while self.workers[i].parent is not None:
            i = self.workers[i].parent  # type: ignore[assignment]
        return i

    def remote_roots(self) -> list[int]:
        return [i for i in self.roots() if self.workers[i].remotes]

    def new_roots(self, level: int | None = None) -> list[int]:
        return [i for i in self.roots() if self.workers[i].state == "NEW"
                and (level is None or self.workers[i].level == level)]

    def not_new(self) -> list[int]:
        return [i for i, w in enumerate(self.workers) if w.state != "NEW" or w.parent is not None]

    def open_roots(self) -> list[int]:
        return [i for i in self.roots() if self.workers[i].state != "CLOSED"]

    def closed_or_children(self) -> list[int]:
        return [i for i, w in enumerate(self.workers) if w.state == "CLOSED" or w.parent is not None]

    # -- one step
    def step(self, step: Step) -> None:
        """Apply ``step`` to both sides; raise :class:`StatefulFailure` on any mismatch."""
        self._check_refs(step)
        index = len(self.steps)
        if self.tolerated:
            return
        expect = self._expect(step)
        sut = self.sut.apply(step)
        if sut.status == "UNSUPPORTED":  # not a departure: the step is left out of the sequence
            self.unsupported.append((step, sut.message))
            return
        self.steps.append(step)
        model = self.model.apply(step)
        found: list[Mismatch] = []
        op = step["op"]
        # Where a call breaks several rules at once, the spec does not order the checks: any of the
        # classes it admits is right on either side (as RBUF-014 admits two for one misuse).
        either = expect is not None and len(expect.classes) > 1 and expect.admits(sut) and expect.admits(model)
        if sut.key() != model.key() and not either:
            found.append(Mismatch(index, op, "differential", str(sut), str(model),
                                  sut.message if sut.status == "ERROR" else model.message))
        if expect is not None:
            for side, o in (("model", model), ("SUT", sut)):
                if not expect.admits(o):
                    found.append(Mismatch(index, op, "spec", str(sut), str(model),
                                          f"{side} gave {o}, the spec says {expect} ({expect.cite})"
                                          + (f": {o.message}" if o.message else "")))
                    break
        if op == "remote_copy_from":
            want = self.buffers[step["buffer"]].fill
            if want is not None and model.status == "OK":
                for side, o in (("model", model), ("SUT", sut)):
                    if o.status == "OK" and o.value != want:
                        found.append(Mismatch(index, op, "spec", str(sut), str(model),
                                              f"{side} read back {o.value!r}, copy_to wrote {want!r} ({RBUF_COPY})"))
        self._advance(step, model)
        found.extend(self._invariants(index, step, sut, model))
        known = next((k for k in self.known if found and k.matches(op, sut, model)), None)
        if known is not None:
            self.tolerated.append((index, known))
            return
        if found:
            self.mismatches.extend(found)
            raise StatefulFailure(found)

    def _check_refs(self, s: Step) -> None:
        def need(key: str, pool: list[Any]) -> None:
            if key in s and not 0 <= int(s[key]) < len(pool):
                raise StepError(f"step {len(self.steps)} ({s['op']}): {key} {s[key]} does not exist "
                                f"(the sequence made {len(pool)})")

        for key in ("worker", "parent", "child"):
            need(key, self.workers)
        need("handle", self.handles)
        need("buffer", self.buffers)
        need("export", self.exports)
        for t in s.get("tasks", ()):
            if not 0 <= t["handle"] < len(self.handles):
                raise StepError(f"step {len(self.steps)} (run): task handle {t['handle']} does not exist")

    # -- what the spec fixes
    def _expect(self, s: Step) -> Expect | None:
        op = s["op"]
        w = self.workers[s["worker"]] if "worker" in s else None
        if op == "add_worker":
            p, c = self.workers[s["parent"]], self.workers[s["child"]]
            classes: list[str] = []
            if p.state != "NEW" or p.parent is not None or c.state != "NEW" or c.parent is not None:
                classes.append("INVALID_STATE")  # LVL-013, LVL-014
            if s["parent"] == s["child"]:
                classes.append("INVALID_ARGUMENT")
            if p.level == 3 or c.level != p.level - 1:
                classes.append("INVALID_WORKER_TYPE")  # an L3 holds chips, an L4 holds L3s
            return Expect(tuple(classes), f"{LVL_ATTACH}; {LVL_TYPE}") if classes else Expect((), LVL_TYPE)
        if op == "add_remote_worker" and w is not None:
            classes = []
            if w.state != "NEW":
                classes.append("INVALID_STATE")
            if w.level < 4:
                classes.append("INVALID_WORKER_TYPE")
            return Expect(tuple(classes), f"{REMOTE_PARENT}; {LVL_ATTACH}") if classes else None
        if w is None:
            return None
        if op == "register" and w.state == "CLOSED":
            return _error("INVALID_STATE", CLOSED)
        if op == "unregister":
            h = self.handles[s["handle"]]
            broken = [cls for cls, bad in (("INVALID_STATE", w.state == "CLOSED"),
                                           ("FOREIGN_HANDLE", h.worker != s["worker"]),
                                           ("UNKNOWN_CALLABLE", not h.live and h.worker == s["worker"])) if bad]
            if broken:  # several at once: the spec does not order the checks, any of them is right
                cites = {"INVALID_STATE": CLOSED, "FOREIGN_HANDLE": REG_FOREIGN, "UNKNOWN_CALLABLE": REG_TWICE}
                return Expect(tuple(broken), "; ".join(cites[c] for c in broken))
            if w.state in ("NEW", "READY"):
                return Expect((), REG_LIVE)
            return None
        if op == "init":
            if w.parent is not None or w.state != "NEW":
                return _error("INVALID_STATE", LVL_INIT)
            return None
        if op == "close":  # terminal and retryable: a closed Worker closes again as a no-op; a child never
            if w.parent is not None:
                return _error("INVALID_STATE", LVL_CLOSE)
            return Expect((), LVL_CLOSE)
        if op == "run":
            if w.parent is not None or w.state != "READY":
                return _error("INVALID_STATE", LVL_RUN)
            return None
        if op.startswith("remote_"):
            if w.state == "NEW":
                return _error("INVALID_STATE", RBUF_INIT)
            if w.state != "READY":
                return _error("INVALID_STATE", CLOSED)
            b = self.buffers[s["buffer"]] if "buffer" in s else None
            if b is None:
                return None
            if op == "remote_free":
                return _error("INVALID_ARGUMENT", RBUF_WRONG) if b.owner is not None else Expect((), RBUF_STALE)
            if op == "remote_release_import":
                return _error("INVALID_ARGUMENT", RBUF_WRONG) if b.owner is None else None
            if b.owner is None and b.released and op in ("remote_copy_to", "remote_export"):
                return _error("STALE_GENERATION", RBUF_STALE)
        return None

    # -- bookkeeping, from the model's outcome
    def _tree(self, i: int) -> list[int]:
        out = [i]
        for c in self.workers[i].children:
            out.extend(self._tree(c))
        return out

    def _advance(self, s: Step, model: Outcome) -> None:
        op, ok = s["op"], model.status == "OK"
        if op == "worker" and ok:
            self.workers.append(WorkerInfo(s["level"], s["device_ids"], s["num_sub_workers"]))
        elif op == "add_worker" and ok:
            self.workers[s["child"]].parent = s["parent"]
            self.workers[s["parent"]].children.append(s["child"])
            self.workers[s["parent"]].child_ids.append(int(model.value))
        elif op == "add_remote_worker" and ok:
            self.workers[s["worker"]].remotes.append(int(model.value))
        elif op == "register" and ok:
            self.handles.append(HandleInfo(s["worker"], s["callable"]))
        elif op == "unregister" and ok:
            self.handles[s["handle"]].live = False
        elif op == "init":
            w = self.workers[s["worker"]]
            if w.parent is None and w.state == "NEW":
                for i in self._tree(s["worker"]):
                    self.workers[i].state = "READY" if ok else "FAILED"
        elif op == "close" and ok:  # after a failed init too: close is terminal (python/simpler/worker.py)
            for i in self._tree(s["worker"]):
                self.workers[i].state = "CLOSED"
        elif op == "remote_malloc" and ok:
            self.buffers.append(BufferInfo(s["worker"], s["remote"], None))
        elif op == "remote_import" and ok:
            self.buffers.append(BufferInfo(s["worker"], s["remote"], self.exports[s["export"]].buffer))
        elif op in ("remote_free", "remote_release_import") and ok:
            self.buffers[s["buffer"]].released = True
        elif op == "remote_copy_to" and ok:
            self.buffers[s["buffer"]].fill = float(s["fill"])
        elif op == "remote_export" and ok:
            self.exports.append(ExportInfo(s["worker"], s["buffer"]))

    # -- invariants
    def _invariants(self, index: int, s: Step, sut: Outcome, model: Outcome) -> list[Mismatch]:
        found: list[Mismatch] = []
        op = s["op"]
        if op == "run":
            for name, side, o in (("SUT", self.sut, sut), ("model", self.model, model)):
                for problem in record_problems(side.last_record, o):
                    found.append(Mismatch(index, op, "invariant", str(sut), str(model), f"{name}: {problem}"))
        if op == "close" and model.status == "OK" and self.workers[s["worker"]].state == "CLOSED":
            sp, mp = self.sut.probe_closed(s["worker"]), self.model.probe_closed(s["worker"])
            for (call, so), (_, mo) in zip(sp, mp, strict=True):
                for name, o in (("model", mo), ("SUT", so)):
                    if o.status != "UNSUPPORTED" and (o.status, o.error) != ("ERROR", "INVALID_STATE"):
                        found.append(Mismatch(index, op, "invariant", str(so), str(mo),
                                              f"{name}: {call} on a closed Worker gave {o}, the spec says "
                                              f"ERROR INVALID_STATE ({CLOSED})"))
            for name, side in (("SUT", self.sut), ("model", self.model)):
                left = sim_leftovers(side.rt, side.workers[s["worker"]])
                if left:
                    found.append(Mismatch(index, op, "invariant", str(sut), str(model),
                                          f"{name}: left at close: {left}"))
        return found

    def check_objects(self) -> None:
        """Raise :class:`StatefulFailure` when a side holds other counts of objects than the bookkeeping."""
        want = (len(self.workers), len(self.handles), len(self.buffers), len(self.exports))
        for name, side in (("SUT", self.sut), ("model", self.model)):
            got = (len(side.workers), len(side.handles), len(side.buffers), len(side.exports))
            if got != want:
                m = Mismatch(max(len(self.steps) - 1, 0), self.steps[-1]["op"] if self.steps else "-", "invariant",
                             "", "", f"{name} holds (workers, handles, buffers, exports) = {got}, the model's "
                                     f"outcomes account for {want}")
                self.mismatches.append(m)
                raise StatefulFailure([m])

    def close(self) -> None:
        """Close every Worker both sides still hold (best effort)."""
        for side in (self.sut, self.model):
            with contextlib.suppress(Exception):
                side.close_all()


def record_problems(rec: Any, outcome: Outcome) -> list[str]:
    """What a run's RunRecord breaks: terminal outcomes, edge order, the poison rule, run vs tasks."""
    if rec is None:
        return []
    problems: list[str] = []
    tasks = rec.tasks
    for tid, t in tasks.items():
        if t.outcome.value not in ("COMPLETED", "FAILED", "NOT_RUN"):
            problems.append(f"task {tid} is not terminal ({t.outcome.value})")
        if t.outcome.value == "FAILED" and not t.error_class:
            problems.append(f"task {tid} FAILED with no error class")
        bad = [p for p in t.producers if p in tasks and tasks[p].outcome.value in ("FAILED", "NOT_RUN")]
        if bad and t.outcome.value != "NOT_RUN":
            problems.append(f"task {tid} is {t.outcome.value} but its producer {bad[0]} is "
                            f"{tasks[bad[0]].outcome.value} ({POISON})")
        if t.outcome.value == "NOT_RUN" and t.start is not None:
            problems.append(f"task {tid} is NOT_RUN but has a start stamp ({POISON})")
    for p, c in rec.order_violations():
        problems.append(f"edge {p} -> {c}: the consumer started before the producer ended")
    failed = [tid for tid, t in tasks.items() if t.outcome.value == "FAILED"]
    if failed and outcome.status == "OK":
        problems.append(f"run returned OK with failed task {sorted(failed)[0]}")
    return problems


def sim_leftovers(rt: RuntimeAPI, worker: Any) -> str:
    """On the simulator: remote-buffer frees or imports still pending or in flight after close."""
    if rt.name != "sim":
        return ""
    reg = getattr(getattr(worker, "_remote", None), "_buffers", None)
    if reg is None:
        return ""
    parts = []
    if reg.pending:
        parts.append(f"{len(reg.pending)} pending release(s)")
    if reg.inflight:
        parts.append(f"{len(reg.inflight)} control(s) in flight")
    return ", ".join(parts)


# --------------------------------------------------------------------------------------- the machine


@dataclass(frozen=True)
class Limits:
    """How big a generated sequence gets: small on a runtime whose Workers spawn processes."""

    workers: int = 4
    remotes: int = 2
    handles: int = 10
    buffers: int = 8
    tasks: int = 4
    steps: int = 30


SIM_LIMITS = Limits()
HW_LIMITS = Limits(workers=2, remotes=1, handles=4, buffers=3, tasks=3, steps=8)


def limits_for(backend: Backend) -> Limits:
    return HW_LIMITS if backend == "hw" else SIM_LIMITS


def _make_rt(backend: Backend, seed: int) -> RuntimeAPI:
    return get_backend(backend, seed) if isinstance(backend, str) else backend(seed)


def new_harness(backend: Backend, seed: int, known: Iterable[KnownDeparture] = ()) -> Harness:
    """A harness whose SUT is ``backend`` and whose model is the simulator, both seeded ``seed``."""
    return Harness(_make_rt(backend, seed), get_backend("sim", seed), known)


_IDX = st.integers(0, 15)
#: Callables to register, the failing ones less often (a run of nothing but failures shows little).
_CALLABLE = st.sampled_from(["add", "add", "sub_noop", "sub_noop", "sub_fail", "remote_noop", "remote_noop",
                             "remote_fail"])
_MISUSE = st.integers(0, 3)  # 0: pick any Worker / handle, not one the call makes sense on
_TASK = st.tuples(_IDX, _IDX, st.lists(st.tuples(_IDX, st.sampled_from(TAGS)), max_size=2))


def make_machine(backend: Backend = "sim", seed: int = 0, *, limits: Limits | None = None,
                 known: Iterable[KnownDeparture] = ()) -> type[RuleBasedStateMachine]:
    """A state machine class whose SUT is ``backend`` and whose model is the simulator.

    Each instance logs its steps; the class attribute ``last`` is the harness of the latest
    instance (after a failing hypothesis run: the shrunk, replayed example).
    """
    lim = limits or limits_for(backend)
    known_list = tuple(known)

    class WorkerAPIMachine(RuleBasedStateMachine):
        """Worker API calls, each checked against the simulator and the spec (module docstring)."""

        last: Harness | None = None

        def __init__(self) -> None:
            super().__init__()
            self.h = new_harness(backend, seed, known_list)
            type(self).last = self.h

        def teardown(self) -> None:
            self.h.close()

        def pick(self, wanted: list[int], i: int, misuse: int) -> int:
            """Mostly a Worker the call makes sense on; one time in four (or when none fits), any."""
            pool = wanted if wanted and misuse else list(range(len(self.h.workers)))
            return pool[i % len(pool)]

        # -- a starting topology (hierarchical-level-runtime.md, 4. Recursive Composition)
        @initialize(shape=st.sampled_from(["l3", "l4_local", "l4_remote"]), devices=st.integers(0, 2),
                    subs=st.integers(0, 2), remotes=st.integers(1, 2),
                    names=st.lists(_CALLABLE, max_size=3), started=st.booleans())
        def start(self, shape: str, devices: int, subs: int, remotes: int, names: list[str],
                  started: bool) -> None:
            """A root of one of three shapes, a few registrations, and (half the time) ``init()``."""
            if shape == "l3":
                self.h.step({"op": "worker", "level": 3, "device_ids": devices, "num_sub_workers": subs})
            else:
                self.h.step({"op": "worker", "level": 4, "device_ids": 0, "num_sub_workers": subs})
            if shape == "l4_local":
                self.h.step({"op": "worker", "level": 3, "device_ids": devices, "num_sub_workers": 1})
                self.h.step({"op": "add_worker", "parent": 0, "child": 1})
            elif shape == "l4_remote":
                for _ in range(min(remotes, lim.remotes)):
                    self.h.ports += 1
                    self.h.step({"op": "add_remote_worker", "worker": 0, "port": self.h.ports})
            for name in names:
                step: Step = {"op": "register", "worker": 0, "callable": name}
                if _kind(name) == "remote":
                    step["workers"] = list(self.h.workers[0].remotes)
                self.h.step(step)
            if started:
                self.h.step({"op": "init", "worker": 0})

        # -- construct and compose
        @precondition(lambda self: len(self.h.workers) < lim.workers)
        @rule(level=st.sampled_from([3, 4]), devices=st.integers(0, 2), subs=st.integers(0, 2))
        def new_worker(self, level: int, devices: int, subs: int) -> None:
            self.h.step({"op": "worker", "level": level, "device_ids": devices if level == 3 else 0,
                         "num_sub_workers": subs})

        @precondition(lambda self: self.h.new_roots(4) and self.h.new_roots(3))
        @rule(p=_IDX, c=_IDX)
        def add_worker(self, p: int, c: int) -> None:
            parents, children = self.h.new_roots(4), self.h.new_roots(3)
            self.h.step({"op": "add_worker", "parent": parents[p % len(parents)],
                         "child": children[c % len(children)]})

        @precondition(lambda self: len(self.h.workers) >= 2)
        @rule(p=_IDX, c=_IDX)
        def add_worker_any(self, p: int, c: int) -> None:
            # Any pair: wrong levels (LVL-006/010), attached or started Workers (LVL-013/014), itself.
            n = len(self.h.workers)
            child = (p + 1 + c % (n - 1)) % n if c % 8 else p % n  # itself one time in eight
            self.h.step({"op": "add_worker", "parent": p % n, "child": child})

        @precondition(lambda self: self.h.new_roots(4) and sum(len(w.remotes) for w in self.h.workers) < lim.remotes)
        @rule(i=_IDX, misuse=_MISUSE)
        def add_remote_worker(self, i: int, misuse: int) -> None:
            wi = self.pick(self.h.new_roots(4), i, misuse)  # misuse: an L3 parent, a started one
            self.h.ports += 1
            self.h.step({"op": "add_remote_worker", "worker": wi, "port": self.h.ports})

        # -- registration (callable-identity-registration.md)
        @precondition(lambda self: len(self.h.handles) < lim.handles
                      and any(w.state in ("NEW", "READY") for w in self.h.workers))
        @rule(i=_IDX, name=_CALLABLE, misuse=_MISUSE)
        def register(self, i: int, name: str, misuse: int) -> None:
            ws = self.h.workers
            wi = self.pick([k for k, w in enumerate(ws) if w.state in ("NEW", "READY")
                            and (w.remotes if _kind(name) == "remote" else True)], i, misuse)
            step: Step = {"op": "register", "worker": wi, "callable": name}
            if _kind(name) == "remote":
                step["workers"] = list(ws[wi].remotes)
            self.h.step(step)

        @precondition(lambda self: self.h.handles)
        @rule(k=_IDX, misuse=_MISUSE)
        def unregister(self, k: int, misuse: int) -> None:
            k %= len(self.h.handles)
            owner = self.h.handles[k].worker
            wi = (owner + 1) % len(self.h.workers) if misuse == 0 else owner  # sometimes someone else's
            self.h.step({"op": "unregister", "worker": wi, "handle": k})

        # -- lifecycle (python/simpler/worker.py)
        @precondition(lambda self: self.h.new_roots())
        @rule(i=_IDX)
        def init(self, i: int) -> None:
            roots = self.h.new_roots()
            self.h.step({"op": "init", "worker": roots[i % len(roots)]})

        @precondition(lambda self: self.h.not_new())
        @rule(i=_IDX)
        def init_again(self, i: int) -> None:
            # A started, failed or closed Worker, or a child (LVL-020, LVL-022).
            ws = self.h.not_new()
            self.h.step({"op": "init", "worker": ws[i % len(ws)]})

        @precondition(lambda self: self.h.open_roots())
        @rule(i=_IDX)
        def close(self, i: int) -> None:
            roots = self.h.open_roots()
            self.h.step({"op": "close", "worker": roots[i % len(roots)]})

        @precondition(lambda self: self.h.closed_or_children())
        @rule(i=_IDX)
        def close_again(self, i: int) -> None:
            # A closed Worker (LVL-021), or a child (its root closes it).
            ws = self.h.closed_or_children()
            self.h.step({"op": "close", "worker": ws[i % len(ws)]})

        # -- a small orchestration (orchestrator.md, scheduler.md)
        @precondition(lambda self: self.h.handles and any(self.h.workers[k].state == "READY"
                                                          for k in self.h.roots()))
        @rule(i=_IDX, misuse=_MISUSE, picks=st.lists(_TASK, min_size=1, max_size=lim.tasks))
        def run(self, i: int, misuse: int, picks: list[tuple[int, int, list[tuple[int, str]]]]) -> None:
            wi = self.pick([k for k in self.h.roots() if self.h.workers[k].state == "READY"], i, misuse)
            w = self.h.workers[wi]
            own = [k for k, h in enumerate(self.h.handles) if h.worker == wi and (h.live or not misuse)]
            own = own or list(range(len(self.h.handles)))
            tasks: list[Step] = []
            for hk, wk, tens in picks:
                k = own[hk % len(own)]
                kind = _kind(self.h.handles[k].callable)
                if kind == "chip" and w.level == 3:
                    a, b = (tens[0][0] % POOL, tens[-1][0] % POOL) if tens else (0, 0)
                    out = next(x for x in range(POOL) if x not in (a, b))
                    tasks.append({"handle": k, "submit": "next_level", "worker": wk % max(w.devices, 1),
                                  "tensors": [[a, "INPUT"], [b, "INPUT"], [out, "OUTPUT"]]})
                elif kind == "remote":
                    rid = w.remotes[wk % len(w.remotes)] if w.remotes else 0
                    tasks.append({"handle": k, "submit": "next_level", "worker": rid, "tensors": []})
                elif kind == "python":
                    seen: set[int] = set()
                    pairs = []
                    for idx, tag in tens:
                        if idx % POOL not in seen:
                            seen.add(idx % POOL)
                            pairs.append([idx % POOL, tag])
                    if w.child_ids and wk % 2:  # an orchestration function for a local L3 child
                        tasks.append({"handle": k, "submit": "next_level",
                                      "worker": w.child_ids[wk // 2 % len(w.child_ids)], "tensors": pairs})
                    else:
                        tasks.append({"handle": k, "submit": "sub", "tensors": pairs})
                elif misuse == 0:  # a chip kernel where a level-4 Worker has no chips
                    tasks.append({"handle": k, "submit": "next_level", "worker": wk % 2, "tensors": []})
            self.h.step({"op": "run", "worker": wi, "tasks": tasks})

        # -- remote memory (buffers-and-transports.md, Public Memory API)
        @precondition(lambda self: any(self.h.workers[k].state == "READY" for k in self.h.remote_roots())
                      and len(self.h.buffers) < lim.buffers)
        @rule(i=_IDX, r=_IDX)
        def remote_malloc(self, i: int, r: int) -> None:
            roots = self.h.remote_roots()
            ready = [k for k in roots if self.h.workers[k].state == "READY"]
            wi = (ready or roots)[i % len(ready or roots)]
            rem = self.h.workers[wi].remotes
            self.h.step({"op": "remote_malloc", "worker": wi, "remote": rem[r % len(rem)]})

        @precondition(lambda self: self.h.buffers)
        @rule(b=_IDX, op=st.sampled_from(["remote_free", "remote_free", "remote_release_import",
                                          "remote_copy_from"]))
        def remote_release(self, b: int, op: str) -> None:
            b %= len(self.h.buffers)
            self.h.step({"op": op, "worker": self.h.buffers[b].worker, "buffer": b})

        @precondition(lambda self: self.h.buffers)
        @rule(b=_IDX, fill=st.integers(1, 9))
        def remote_copy_to(self, b: int, fill: int) -> None:
            b %= len(self.h.buffers)
            self.h.step({"op": "remote_copy_to", "worker": self.h.buffers[b].worker, "buffer": b,
                         "fill": float(fill)})

        @precondition(lambda self: self.h.buffers)
        @rule(b=_IDX, access=st.sampled_from(ACCESS))
        def remote_export(self, b: int, access: str) -> None:
            b %= len(self.h.buffers)
            self.h.step({"op": "remote_export", "worker": self.h.buffers[b].worker, "buffer": b, "access": access})

        @precondition(lambda self: self.h.exports and len(self.h.buffers) < lim.buffers)
        @rule(e=_IDX, r=_IDX)
        def remote_import(self, e: int, r: int) -> None:
            e %= len(self.h.exports)
            wi = self.h.exports[e].worker
            rem = self.h.workers[wi].remotes
            owner_remote = self.h.buffers[self.h.exports[e].buffer].remote
            others = [x for x in rem if x != owner_remote] or rem
            self.h.step({"op": "remote_import", "worker": wi, "export": e, "remote": others[r % len(others)]})

        @invariant()
        def sides_hold_what_the_model_made(self) -> None:
            # Both sides made exactly the objects the model's outcomes account for (a call that
            # returned OK on one side made its object there too), so every index names the same thing.
            self.h.check_objects()

    WorkerAPIMachine.__name__ = WorkerAPIMachine.__qualname__ = (
        f"WorkerAPIMachine_{backend if isinstance(backend, str) else getattr(backend, '__name__', 'custom')}")
    WorkerAPIMachine.TestCase.settings = machine_settings(lim, examples=20)
    return WorkerAPIMachine


def machine_settings(lim: Limits, *, examples: int) -> settings:
    """Hypothesis settings for the machine: no example database, no deadline, quiet."""
    return settings(max_examples=examples, stateful_step_count=lim.steps, deadline=None, database=None,
                    suppress_health_check=list(HealthCheck), verbosity=Verbosity.quiet, print_blob=False,
                    phases=[p for p in Phase if p is not Phase.explain])  # the step log is the explanation


# --------------------------------------------------------------------------------------- running and replaying


def run_stateful(backend: Backend, *, examples: int, seed: int = 0, time_budget_s: float | None = None,
                 limits: Limits | None = None, known: Iterable[KnownDeparture] = ()) -> StatefulResult:
    """Run the machine for ``examples`` examples, derandomized by ``seed``.

    On a failure, returns the shrunk step list (the log of the last, minimal reproduction) and the
    failure message; otherwise no steps. With ``time_budget_s`` the examples run in chunks and no
    new chunk starts after the budget is spent.
    """
    lim = limits or limits_for(backend)
    name = backend if isinstance(backend, str) else getattr(backend, "__name__", "custom")
    result = StatefulResult(name, seed, 0)
    t0 = time.monotonic()
    chunk = examples if time_budget_s is None else max(1, min(examples, 5))
    part = 0
    while result.examples < examples:
        if time_budget_s is not None and result.examples and time.monotonic() - t0 >= time_budget_s:
            break
        n = min(chunk, examples - result.examples)
        machine = make_machine(backend, seed, limits=lim, known=known)
        test = get_state_machine_test(machine, settings=machine_settings(lim, examples=n))
        hypothesis_seed(seed * 1_000_003 + part)(test)
        part += 1
        try:
            test()
        except Exception as exc:
            last = machine.last
            result.steps = list(last.steps) if last is not None else []
            result.mismatches = list(last.mismatches) if last is not None else []
            result.message = str(exc) or type(exc).__name__
            result.examples += n
            break
        result.examples += n
    result.elapsed_s = time.monotonic() - t0
    return result


def replay_steps(steps: Iterable[Step], backend: Backend = "sim", seed: int = 0,
                 known: Iterable[KnownDeparture] = ()) -> list[Mismatch]:
    """Replay ``steps`` without hypothesis; the mismatches of the first failing step (none: it passes).

    A step that names something the sequence never made raises :class:`StepError`.
    """
    h = new_harness(backend, seed, known)
    try:
        for step in steps:
            try:
                h.step(dict(step))
            except StatefulFailure as exc:
                return exc.mismatches
        return []
    finally:
        h.close()


# --------------------------------------------------------------------------------------- the steps file


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


Index = Annotated[int, Field(ge=0)]
TagName = Literal["INPUT", "OUTPUT", "INOUT", "OUTPUT_EXISTING", "NO_DEP"]


class WorkerStep(_Strict):
    op: Literal["worker"]
    level: Annotated[int, Field(ge=2, le=6)]
    device_ids: Index = 0
    num_sub_workers: Index = 0


class AddWorkerStep(_Strict):
    op: Literal["add_worker"]
    parent: Index
    child: Index


class AddRemoteStep(_Strict):
    op: Literal["add_remote_worker"]
    worker: Index
    port: Annotated[int, Field(gt=0, le=65535)]


class RegisterStep(_Strict):
    op: Literal["register"]
    worker: Index
    callable: Literal["add", "sub_noop", "sub_fail", "remote_noop", "remote_fail"]
    workers: list[Index] | None = None


class HandleStep(_Strict):
    op: Literal["unregister"]
    worker: Index
    handle: Index


class LifecycleStep(_Strict):
    op: Literal["init", "close"]
    worker: Index


class RunTask(_Strict):
    handle: Index
    submit: Literal["sub", "next_level"]
    worker: Index | None = None
    tensors: list[tuple[Annotated[int, Field(ge=0, lt=POOL)], TagName]] = []


class RunStep(_Strict):
    op: Literal["run"]
    worker: Index
    tasks: list[RunTask]


class MallocStep(_Strict):
    op: Literal["remote_malloc"]
    worker: Index
    remote: Index


class BufferStep(_Strict):
    op: Literal["remote_free", "remote_release_import", "remote_copy_from"]
    worker: Index
    buffer: Index


class CopyToStep(_Strict):
    op: Literal["remote_copy_to"]
    worker: Index
    buffer: Index
    fill: float


class ExportStep(_Strict):
    op: Literal["remote_export"]
    worker: Index
    buffer: Index
    access: Literal["read", "write", "readwrite"]


class ImportStep(_Strict):
    op: Literal["remote_import"]
    worker: Index
    export: Index
    remote: Index


AnyStep = Annotated[WorkerStep | AddWorkerStep | AddRemoteStep | RegisterStep | HandleStep | LifecycleStep
                    | RunStep | MallocStep | BufferStep | CopyToStep | ExportStep | ImportStep,
                    Field(discriminator="op")]


class Found(_Strict):
    backend: str | None = None
    version: str | None = None
    note: str | None = None


class StepsFile(_Strict):
    """A saved sequence: ``api_sequence`` (the steps) and optionally where it was ``found``."""

    api_sequence: list[AnyStep]
    found: Found | None = None


class StepsFileError(YamlFileError):
    """A steps file that cannot be used (``file:line: field: message``)."""


def _plain(step: BaseModel) -> Step:
    out = step.model_dump(exclude_none=True)
    for t in out.get("tasks", ()):
        t["tensors"] = [list(p) for p in t["tensors"]]
    return out


def steps_to_yaml(steps: Iterable[Step], found: dict[str, Any] | None = None) -> str:
    """The steps as a small YAML document, one flow mapping per step."""
    lines = ["api_sequence:"]
    for step in steps:
        text = yaml.safe_dump(dict(step), default_flow_style=True, sort_keys=False, width=10_000).strip()
        lines.append(f"  - {text}")
    if len(lines) == 1:
        lines[0] = "api_sequence: []"
    if found:
        lines.append(yaml.safe_dump({"found": dict(found)}, sort_keys=False, default_flow_style=False).rstrip())
    return "\n".join(lines) + "\n"


def save_steps(path: str | Path, steps: Iterable[Step], found: dict[str, Any] | None = None) -> Path:
    p = Path(path)
    p.write_text(steps_to_yaml(steps, found), encoding="utf-8")
    return p


def load_steps_file(path: str | Path) -> StepsFile:
    """Read and validate a steps file; any problem is a :class:`StepsFileError` naming file and line."""
    file = str(path)
    text = read_text(path, "steps", StepsFileError)
    node, data = compose(text, file, StepsFileError)
    if not isinstance(data, dict):
        raise StepsFileError(file, 1, "", "a steps file is a mapping with an 'api_sequence' list")
    return validate(node, data, StepsFile, file, "steps", StepsFileError)


def load_steps(path: str | Path) -> list[Step]:
    """The plain-data steps of a steps file (see :func:`load_steps_file`)."""
    return [_plain(s) for s in load_steps_file(path).api_sequence]


__all__ = ["CALLABLES", "HW_KNOWN", "HW_LIMITS", "SIM_LIMITS", "Backend", "Harness", "KnownDeparture", "Limits",
           "Mismatch", "Outcome", "StatefulFailure", "StatefulResult", "Step", "StepError", "StepsFile",
           "StepsFileError", "load_steps", "load_steps_file", "make_machine", "new_harness", "record_problems",
           "replay_steps", "run_stateful", "save_steps", "steps_to_yaml", "sub_fail", "sub_noop"]
