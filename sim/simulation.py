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
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import simpy
from simpy.events import Event, Timeout

from sim.collector import collector_paused
from sim.cost import Profile, load_profile, profile_for_platform
from sim.errors import InvalidArgument
from sim.faultpoints import FaultPoints
from sim.plugins import remote_plugin
from sim.record import CallRecord, RunRecord, TaskTable
from sim.record_stream import ParquetSink, record_file
from sim.tasklog import TaskLog
from sim.trace import Trace
from sim.trace_stream import TraceSink

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
      (those transports become what-if links timed from ``profile.transports[name]``);
    - ``record_path``: stream the task record to this Parquet file while the run goes on, so that
      memory does not grow with the record (:mod:`sim.record_stream`); later records of the same
      Worker go to ``<stem>-2<suffix>``, ``<stem>-3<suffix>``, ... None (default): kept in memory;
    - ``trace_path``: stream the event trace (needs ``trace=True``) to this Parquet file while the
      run goes on, so that memory does not grow with the trace (:mod:`sim.trace_stream`); the
      record's ``events`` is then empty and its ``metadata["trace_path"]`` names the file; read it
      with ``sim.trace_stream.read_trace`` / ``trace_digest``. Later records of the same Worker go
      to ``<stem>-2<suffix>``, ... None (default): kept in memory.
    """

    seed: int = 0
    data_mode: str = "functional"
    profile: str | Path | None = None
    jitter: float = 0.0
    trace: bool = True
    backpressure_timeout_us: float = 10e6
    faults: Any = None
    mode: str = "conformance"
    record_path: str | Path | None = None
    trace_path: str | Path | None = None

    def __post_init__(self) -> None:
        for name in ("record_path", "trace_path"):
            path = getattr(self, name)
            if path is not None and (not isinstance(path, str | Path) or not str(path)):
                raise InvalidArgument(f"SimConfig.{name} must be a file path or None, got {path!r}")
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
        if self.trace_path is not None and not self.trace:
            raise InvalidArgument("SimConfig.trace_path needs trace=True (there is no trace to stream)")
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
        self._records = 0  # records taken so far
        if config.trace_path is not None:
            self.trace.attach(TraceSink(record_file(config.trace_path, 1)))
        self.log = TaskLog(0, self._sink())  # every task since the last record (sim.tasklog)
        self.task_nodes: dict[Any, None] = {}  # every node that began a run, in that order (sim.livelock)
        self._trace_mark = 0
        # Named fault points of the plan (sim.faultpoints); None when it enables none, so each site
        # costs one ``is None`` test.
        self.points: FaultPoints | None = FaultPoints.from_plan(self, config.faults)
        # Which faults took effect since the last record: fault kind (``LinkCut``, ``point:slow_sub``)
        # -> times. Faults that take effect at a set instant (``SessionCrash``) wait in
        # ``_timed_hits`` and count once virtual time has reached them.
        self._hits: dict[str, int] = {}
        self._timed_hits: list[tuple[float, str]] = []
        # Communication domains and collectives in flight (sim.comm), made by the first allocation.
        self.comm: Any = None

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

    def _sink(self) -> ParquetSink | None:
        """Where the next record streams to (``SimConfig.record_path``), or None."""
        path = self.config.record_path
        return None if path is None else ParquetSink(record_file(path, self._records + 1))

    def log_task(self, task: Task) -> None:
        self.log.add(task)

    @property
    def _tasks(self) -> list[Task]:
        """The task slots the log still holds, in submit order (:meth:`sim.tasklog.TaskLog.live`)."""
        return self.log.live()

    def take_record(self, metadata: dict[str, Any], calls: list[CallRecord]) -> RunRecord:
        """Build the RunRecord of everything since the last one, and start afresh.

        The tasks come as columns (:class:`sim.record.TaskColumns`) from the task log, which wrote each
        task's row as its slot was consumed; a :class:`~sim.record.TaskRecord` is built only when a
        user asks for one.
        """
        with collector_paused():  # the trace's events are all kept
            rec = RunRecord(backend="sim", metadata=dict(metadata))
            rec.metadata["faults_hit"] = {k: v for k, v in sorted(self.fault_hits.items()) if v}
            self._hits = {}
            log = self.log
            cols = log.close()
            self._records += 1
            if log.sink is not None:
                rec.metadata["record_path"] = str(log.sink.path)
            self.log = TaskLog(log.next_row, self._sink())
            rec.tasks = TaskTable(cols)
            rec.errors = log.failed_classes(cols)
            rec.calls = list(calls)
            trace = self.trace
            sink = trace.sink
            if sink is None:
                rec.events = trace.since(self._trace_mark)
            else:  # the record is the fence: all its events go to its file, then the next file starts
                trace.spill(math.inf)
                sink.close()
                rec.events = []
                rec.metadata["trace_path"] = str(sink.path)
                trace.attach(TraceSink(record_file(self.config.trace_path, self._records + 1)))
            self._trace_mark = len(trace)
            return rec


def fire_at(env: object, delay: float, fn: Callable[[], None]) -> Event:
    """Call ``fn()`` after ``delay`` us of virtual time (one SimPy Timeout, no process)."""
    ev = Timeout(env, max(delay, 0.0))  # type: ignore[arg-type]
    ev.callbacks.append(lambda _e: fn())
    return ev
