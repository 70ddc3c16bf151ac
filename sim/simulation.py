"""One simulation: the SimPy environment, profile, seeded randomness, trace and records.

A root Worker creates its :class:`Simulation` at ``init()`` from its :class:`SimConfig` and
elaborates the whole tree into it before virtual time starts (the desmod pattern of
``DESIGN.md``). The simulation never reads the wall clock: every random draw comes from one
seed, split per component by the component's scope name, so one seed gives one trace.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from itertools import chain
from operator import attrgetter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import simpy
from simpy.events import Event, Timeout

from sim.collector import collector_paused
from sim.cost import Profile, load_profile, profile_for_platform
from sim.errors import ErrorClass, InvalidArgument
from sim.faultpoints import FaultPoints
from sim.plugins import remote_plugin
from sim.record import OUTCOMES, CallRecord, Outcome, RunRecord, TaskColumns, TaskTable
from sim.task import TaskKind, TaskState
from sim.trace import Trace

if TYPE_CHECKING:
    from sim.task import Task

DATA_MODES = ("functional", "timing")
MODES = ("conformance", "experiment")


@dataclass(frozen=True)
class SimConfig:
    """Simulator-only settings (the real runtime has no such knobs).

    - ``seed``: the one seed every random stream is split from;
    - ``data_mode``: ``functional`` (numpy arrays, outputs computed) or ``timing``
      (shapes and dtypes only, nothing allocated or computed);
    - ``profile``: a built-in profile name or a TOML path; default: chosen by ``platform``;
    - ``jitter``: relative spread of modeled durations (0 = exact cost model);
    - ``trace``: record the event trace (records and stamps are kept either way);
    - ``backpressure_timeout_us``: how long a blocked ring allocation waits before the
      run fails (upstream's allocator timeout, 10 s);
    - ``faults``: a :class:`sim.remote.faults.FaultPlan` of link and session faults and named fault
      points (:mod:`sim.faultpoints`), or None (the remote layer checks its type, :mod:`sim.plugins`);
    - ``mode``: ``conformance`` (default: only what upstream ships -- the RoCE / HCCS / UB transport
      profiles and Remote CommDomain controls are rejected as NotSupported) or ``experiment``
      (those transports become what-if links timed from ``profile.transports[name]``).
    """

    seed: int = 0
    data_mode: str = "functional"
    profile: str | Path | None = None
    jitter: float = 0.0
    trace: bool = True
    backpressure_timeout_us: float = 10e6
    faults: Any = None
    mode: str = "conformance"

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise InvalidArgument(f"SimConfig.mode must be one of {MODES}, got {self.mode!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise InvalidArgument(f"SimConfig.seed must be a non-negative int, got {self.seed!r}")
        if self.data_mode not in DATA_MODES:
            raise InvalidArgument(f"SimConfig.data_mode must be one of {DATA_MODES}, got {self.data_mode!r}")
        if (isinstance(self.jitter, bool) or not isinstance(self.jitter, int | float)
                or not 0.0 <= self.jitter < 1.0):
            raise InvalidArgument(f"SimConfig.jitter must be a number in [0, 1), got {self.jitter!r}")
        if not isinstance(self.trace, bool):
            raise InvalidArgument(f"SimConfig.trace must be a bool, got {self.trace!r}")
        timeout = self.backpressure_timeout_us
        if (isinstance(timeout, bool) or not isinstance(timeout, int | float)
                or not 0 < timeout < math.inf):  # also rejects NaN
            raise InvalidArgument(f"SimConfig.backpressure_timeout_us must be a finite number > 0, got {timeout!r}")
        if self.faults is not None:
            plugin = remote_plugin()  # the fault plan's vocabulary is the remote layer's (sim.plugins)
            if plugin is None or not plugin.is_fault_plan(self.faults):
                raise InvalidArgument(f"SimConfig.faults must be a FaultPlan, got {type(self.faults).__name__}")


class Simulation:
    """The shared state of one simulated hierarchy."""

    def __init__(self, config: SimConfig, platform: str) -> None:
        self.config = config
        self.env = simpy.Environment()
        name = config.profile if config.profile is not None else profile_for_platform(platform)
        self.profile: Profile = load_profile(name)
        self.platform = platform
        self.functional = config.data_mode == "functional"
        self.jitter = config.jitter
        self.trace = Trace(config.trace)
        self._tasks: list[Task] = []
        self._row_base = 0  # how many tasks earlier records held (see ``task_columns``)
        self._trace_mark = 0
        # Named fault points of the plan (sim.faultpoints); None when it enables none, so each site
        # costs one ``is None`` test.
        self.points: FaultPoints | None = FaultPoints.from_plan(self, config.faults)
        # Which faults took effect since the last record: fault kind (``LinkCut``, ``point:slow_sub``)
        # -> times. Faults that take effect at a set instant (``SessionCrash``) wait in
        # ``_timed_hits`` and count once virtual time has reached them.
        self._hits: dict[str, int] = {}
        self._timed_hits: list[tuple[float, str]] = []

    @property
    def now(self) -> float:
        return self.env.now

    def stream(self, component: str) -> np.random.Generator:
        """The random stream of one component: seeded by (seed, crc32 of its scope name)."""
        return np.random.default_rng([self.config.seed, zlib.crc32(component.encode())])

    def hit(self, kind: str) -> None:
        """Count one effect of a fault of ``kind`` (a frame it lost or delayed, a control it failed, ...)."""
        hits = self._hits
        hits[kind] = hits.get(kind, 0) + 1

    def hit_at(self, at_us: float, kind: str) -> None:
        """Count one effect of ``kind`` once virtual time reaches ``at_us`` (a crash while the run goes on)."""
        self._timed_hits.append((at_us, kind))

    @property
    def fault_hits(self) -> dict[str, int]:
        """Which faults took effect since the last record: kind -> count (kinds as the plan names them,
        ``point:<name>`` for fault points)."""
        timed = self._timed_hits
        if timed:
            now = self.env.now
            due = [k for at, k in timed if at <= now]
            if due:
                self._timed_hits = [(at, k) for at, k in timed if at > now]
                for k in due:
                    self.hit(k)
        return self._hits

    def log_task(self, task: Task) -> None:
        self._tasks.append(task)

    def take_record(self, metadata: dict[str, Any], calls: list[CallRecord]) -> RunRecord:
        """Build the RunRecord of everything since the last one, and start afresh.

        The tasks are taken as columns (:class:`sim.record.TaskColumns`), each read from all task
        slots at once; a :class:`~sim.record.TaskRecord` is built only when a user asks for one.
        """
        with collector_paused():  # the trace's events are all kept
            rec = RunRecord(backend="sim", metadata=dict(metadata))
            rec.metadata["faults_hit"] = {k: v for k, v in sorted(self.fault_hits.items()) if v}
            self._hits = {}
            tasks = [t for t in self._tasks if t.kind is not _ALLOC] if self._has_alloc() else self._tasks
            self._tasks = []
            cols, errors = task_columns(tasks, self._row_base)
            self._row_base += len(tasks)
            del tasks
            rec.tasks = TaskTable(cols)
            rec.errors = errors
            rec.calls = list(calls)
            rec.events = self.trace.since(self._trace_mark)
            self._trace_mark = len(self.trace)
            return rec

    def _has_alloc(self) -> bool:
        return any(t.kind is _ALLOC for t in self._tasks)


_ALLOC = TaskKind.ALLOC
_STATE, _NOT_RUN, _ERROR, _ERROR_CLASS = (attrgetter(a) for a in ("state", "not_run", "error", "error_class"))
_START, _END, _NODE, _KIND, _GROUP = (attrgetter(a) for a in ("start", "end", "node", "kind", "group"))
_CALLABLE, _WORKERS, _RUN, _SEQ = (attrgetter(a) for a in ("callable", "workers", "run", "seq"))
_PRODUCERS, _ROW = attrgetter("producers"), attrgetter("row")
_COMPLETED_STATE = int(TaskState.COMPLETED)
_O_COMPLETED, _O_FAILED, _O_NOT_RUN = (OUTCOMES.index(o) for o in (Outcome.COMPLETED, Outcome.FAILED, Outcome.NOT_RUN))
_KIND_WORDS = [("group" if g else "single") + ("/sub" if k is TaskKind.SUB else "/next_level")
               for k in TaskKind for g in (False, True)]  # code: kind * 2 + group


def _codes(objs: list, by_id: bool) -> tuple[list, np.ndarray]:
    """(the distinct objects in first-seen order, each object's code), by identity or by value."""
    keys = list(map(id, objs)) if by_id else objs
    first = dict(zip(keys, objs, strict=True)) if by_id else dict.fromkeys(objs)
    code = {k: i for i, k in enumerate(first)}
    return (list(first.values()) if by_id else list(first)), np.fromiter(map(code.__getitem__, keys), np.int32,
                                                                           len(keys))


def task_columns(tasks: list[Task], row_base: int) -> tuple[TaskColumns, list[str]]:
    """The tasks as a :class:`TaskColumns` table, and the error class of each failed one, in order.

    ``row_base`` numbers the rows of this table from there on (every task is numbered once, in the
    record that holds it), so that a producer found outside this table is told apart.
    """
    n = len(tasks)
    state = np.fromiter(map(_STATE, tasks), np.int8, n)
    # Only work a parent abandoned can still be running when its run has ended: a remote session's
    # task behind a failed endpoint, or one a crashed or stopped session process froze (it set its own
    # reason). Its end is unknown to the user.
    for i in np.flatnonzero(state < _COMPLETED_STATE).tolist():
        t = tasks[i]
        if t.error_class != ErrorClass.UNCERTAIN_STATE.value or not t.error:
            t.error_class = ErrorClass.UNCERTAIN_STATE.value
            t.error = "still running on an abandoned endpoint when the record was taken"
    not_run = np.fromiter(map(_NOT_RUN, tasks), np.bool_, n)
    errs = list(map(_ERROR, tasks))
    classes = list(map(_ERROR_CLASS, tasks))
    outcome = np.full(n, _O_COMPLETED, np.int8)
    errors: dict[int, tuple[str | None, str]] = {}
    failed_classes: list[str] = []
    if errs.count(None) != n or classes.count(None) != n:
        erred = np.zeros(n, np.bool_)
        for i, (e, c) in enumerate(zip(errs, classes, strict=True)):
            if e is not None or c is not None:
                errors[i] = (c, e or "")
                erred[i] = e is not None
        outcome[erred] = _O_FAILED
    outcome[not_run] = _O_NOT_RUN
    outcome[state < _COMPLETED_STATE] = _O_FAILED
    if errors:
        failed_classes = [c for i, (c, _m) in errors.items() if c and outcome[i] == _O_FAILED]
    del errs, classes
    start = np.array(list(map(_START, tasks)), np.float64)  # None -> NaN
    end = np.array(list(map(_END, tasks)), np.float64)
    start[not_run] = np.nan
    end[not_run] = np.nan
    nodes, node = _codes(list(map(_NODE, tasks)), True)
    kind = np.fromiter(map(_KIND, tasks), np.int8, n) * 2
    kind += np.fromiter(map(_GROUP, tasks), np.int8, n)
    callables, callable_ = _codes(list(map(_CALLABLE, tasks)), True)
    worker_sets, worker_set = _codes(list(map(tuple, map(_WORKERS, tasks))), False)
    runs, run = _codes(list(map(_RUN, tasks)), True)
    seq = np.fromiter(map(_SEQ, tasks), np.int64, n)
    # Producers: every task gets its row number, then each edge reads its producer's.
    for i, t in enumerate(tasks, row_base):
        t.row = i
    lens = np.fromiter(map(len, map(_PRODUCERS, tasks)), np.int64, n)
    prods = list(chain.from_iterable(map(_PRODUCERS, tasks)))
    prow = np.fromiter(map(_ROW, prods), np.int64, len(prods)) - row_base
    outside = np.flatnonzero((prow < 0) | (prow >= n))
    foreign: list[str] = []
    if len(outside):
        keep = np.ones(len(prods), np.bool_)
        names: dict[str, int] = {}
        for j in outside.tolist():
            p = prods[j]
            if p.kind is _ALLOC:  # an alloc slot is no task of the record
                keep[j] = False
                continue
            code = names.get(p.name)
            if code is None:
                code = names[p.name] = len(foreign)
                foreign.append(p.name)
            prow[j] = -1 - code
        if not keep.all():
            consumer = np.repeat(np.arange(n, dtype=np.int64), lens)
            lens = np.bincount(consumer[keep], minlength=n).astype(np.int64)
            prow = prow[keep]
    del prods
    ptr = np.zeros(n + 1, np.int64)
    np.cumsum(lens, out=ptr[1:])
    cols = TaskColumns(
        nodes=[(nd.scope, nd.level) for nd in nodes], kinds=_KIND_WORDS,
        callables=[getattr(c, "name", "") for c in callables], worker_sets=worker_sets,
        runs=[r.prefix for r in runs], node=node, kind=kind, callable=callable_, worker_set=worker_set, run=run,
        seq=seq, outcome=outcome, start=start, end=end, prod_ptr=ptr, prod_idx=prow, foreign=foreign, errors=errors)
    return cols, failed_classes


def fire_at(env: object, delay: float, fn: Callable[[], None]) -> Event:
    """Call ``fn()`` after ``delay`` us of virtual time (one SimPy Timeout, no process)."""
    ev = Timeout(env, max(delay, 0.0))  # type: ignore[arg-type]
    ev.callbacks.append(lambda _e: fn())
    return ev
