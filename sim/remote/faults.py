"""A seeded, validated fault plan for remote links and sessions.

The plan is data: a tuple of small frozen records, each naming the remote endpoint it hits by
the NEXT_LEVEL worker id ``add_remote_worker`` returned, and the virtual time (us) it takes
effect. It is given to the simulator as ``SimConfig(faults=FaultPlan(...))`` and checked against
the topology at ``init()``. Every fault is recorded as a ``FAULT`` trace event when it is
injected (and again whenever it drops or delays a frame), so a failing seed reads top to bottom.

Fault kinds (the failure modes of upstream ``docs/remote-l3-worker-design/protocol.md``,
"Ordering" -- health expiry, in-flight failure -- and of ``docs/remote-l3-worker-design.md``,
"Failure Semantics"):

- :class:`LinkCut` -- from ``at_us`` on, frames on the link are lost: both lanes, or the health
  lane only (``lanes="health"``);
- :class:`LinkDelay` -- frames sent in ``[start_us, end_us)`` take ``extra_us`` longer;
- :class:`LinkClog` -- frames sent in ``[start_us, end_us)`` queue and leave at ``end_us``, in order;
- :class:`SessionCrash` -- the remote session process dies at ``at_us``: nothing it held runs on
  (its inner Worker's unfinished tasks never start or complete), its sockets close, and the parent
  sees the closed connection one link latency later and fails the endpoint at once (``protocol.md``
  "COMPLETION Payload": if the process exits, the parent fabricates the endpoint failure;
  ``buffers-and-transports.md`` "A2 RoCE HCOMM Profile": disconnects become endpoint failures);
- :class:`SessionHang` -- the remote session process stops at ``at_us`` but stays alive (SIGSTOP):
  it sends nothing, runs nothing, and its sockets stay open, so only health expiry (or a command
  timeout) detects it (``protocol.md`` "Ordering", ``docs/remote-l3-worker-design.md`` "Session
  execution rules");
- :class:`FrameFault` -- drop or delay chosen frames of one frame type: the ``ordinal``-th one
  (1-based, counted per endpoint and type), or each with ``probability`` drawn from the seeded
  stream ``Simulation.stream("faults.<endpoint scope>")``.
- :class:`LocalControlFault` -- a local child (chip, SUB, next-level Worker) fails or leaves
  unconfirmed a REGISTER / UNREGISTER of the local whole-scope install (see :mod:`sim.install`);
  defined by the core, :mod:`sim.control_faults`, and re-exported here.
- :class:`ControlFault` -- the session answers a chosen CONTROL (by name, e.g. ``IMPORT_BUFFER``)
  with an error reply and leaves its state unchanged: the ``ordinal``-th such control on that
  endpoint (1-based), or each with ``probability`` drawn from the seeded stream
  ``Simulation.stream("faults.<session scope>.control")``. A failed CONTROL gets exactly one
  CONTROL_REPLY, as ``protocol.md`` "CONTROL Payload" requires of every CONTROL. With
  ``outcome="timeout"`` the session applies the control but withholds the reply, so the parent's
  command timeout fails the endpoint ("Ordering"). ``control`` also takes the short names
  ``prepare`` / ``commit`` / ``abort`` / ``unregister`` of the register-family controls.
- :class:`~sim.faultpoints.FaultPoint` -- a named fault point inside the model (slow SUB or chip
  task, full heap ring, lost CONTROL reply, late HEALTH or COMPLETION, ...), see
  :mod:`sim.faultpoints`; its ``target`` is a scope-name prefix, checked against the tree at ``init()``.

No wall clock and no global random state are involved: the same plan and seed give the same trace.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from sim.control_faults import (
    CONTROL_OUTCOMES,
    ControlMatcher,
    LocalControlFault,
    check_choice,
    choice_text,
    describe_local,
)
from sim.errors import InvalidArgument
from sim.faultpoints import FaultPoint, describe_point
from sim.remote.wire_base import FrameType

LANES = ("both", "health")
FRAME_ACTIONS = ("drop", "delay")
CONTROL_ALIASES = {"prepare": "PREPARE_REGISTER_CALLABLE", "commit": "COMMIT_REGISTER_CALLABLE",
                   "abort": "ABORT_REGISTER_CALLABLE", "unregister": "UNREGISTER_CALLABLE"}


def _time(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise InvalidArgument(f"{what} must be a finite number of microseconds >= 0, got {value!r}")
    return float(value)


def _worker(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidArgument(f"{what}.worker must be a remote worker id (int >= 0), got {value!r}")
    return value


@dataclass(frozen=True)
class LinkCut:
    """Lose every frame on ``worker``'s link from ``at_us`` on (``lanes``: ``both`` or ``health``)."""

    worker: int
    at_us: float
    lanes: str = "both"

    def __post_init__(self) -> None:
        _worker(self.worker, "LinkCut")
        object.__setattr__(self, "at_us", _time(self.at_us, "LinkCut.at_us"))
        if self.lanes not in LANES:
            raise InvalidArgument(f"LinkCut.lanes must be one of {LANES}, got {self.lanes!r}")


@dataclass(frozen=True)
class LinkDelay:
    """Add ``extra_us`` to every frame sent on ``worker``'s link in ``[start_us, end_us)``."""

    worker: int
    start_us: float
    extra_us: float
    end_us: float = math.inf

    def __post_init__(self) -> None:
        _worker(self.worker, "LinkDelay")
        object.__setattr__(self, "start_us", _time(self.start_us, "LinkDelay.start_us"))
        object.__setattr__(self, "extra_us", _time(self.extra_us, "LinkDelay.extra_us"))
        if self.extra_us <= 0:
            raise InvalidArgument("LinkDelay.extra_us must be > 0")
        if not (self.end_us == math.inf or _time(self.end_us, "LinkDelay.end_us") > self.start_us):
            raise InvalidArgument(f"LinkDelay.end_us must be after start_us, got {self.end_us!r}")


@dataclass(frozen=True)
class LinkClog:
    """Hold every frame sent on ``worker``'s link in ``[start_us, end_us)`` until ``end_us``."""

    worker: int
    start_us: float
    end_us: float

    def __post_init__(self) -> None:
        _worker(self.worker, "LinkClog")
        object.__setattr__(self, "start_us", _time(self.start_us, "LinkClog.start_us"))
        object.__setattr__(self, "end_us", _time(self.end_us, "LinkClog.end_us"))
        if self.end_us <= self.start_us:
            raise InvalidArgument("LinkClog.end_us must be after start_us")


@dataclass(frozen=True)
class SessionCrash:
    """The remote session of ``worker`` dies at ``at_us``."""

    worker: int
    at_us: float

    def __post_init__(self) -> None:
        _worker(self.worker, "SessionCrash")
        object.__setattr__(self, "at_us", _time(self.at_us, "SessionCrash.at_us"))


@dataclass(frozen=True)
class SessionHang:
    """The remote session of ``worker`` stops answering at ``at_us``: alive, silent, idle; sockets open."""

    worker: int
    at_us: float

    def __post_init__(self) -> None:
        _worker(self.worker, "SessionHang")
        object.__setattr__(self, "at_us", _time(self.at_us, "SessionHang.at_us"))


@dataclass(frozen=True)
class FrameFault:
    """Drop or delay frames of ``frame_type`` on ``worker``'s link: one by ordinal, or each by probability."""

    worker: int
    frame_type: str
    action: str = "drop"
    ordinal: int | None = None
    probability: float | None = None
    delay_us: float = 0.0

    def __post_init__(self) -> None:
        _worker(self.worker, "FrameFault")
        if not isinstance(self.frame_type, str | FrameType):
            raise InvalidArgument(f"FrameFault.frame_type must be a frame type name (str or FrameType), "
                                  f"got {type(self.frame_type).__name__} {self.frame_type!r}")
        name = self.frame_type.name if isinstance(self.frame_type, FrameType) else self.frame_type
        if name not in FrameType.__members__:
            raise InvalidArgument(f"FrameFault.frame_type must be one of {', '.join(FrameType.__members__)}, "
                                  f"got {self.frame_type!r}")
        object.__setattr__(self, "frame_type", name)
        if self.action not in FRAME_ACTIONS:
            raise InvalidArgument(f"FrameFault.action must be one of {FRAME_ACTIONS}, got {self.action!r}")
        check_choice("FrameFault", self.ordinal, self.probability, " (which frame)")
        object.__setattr__(self, "delay_us", _time(self.delay_us, "FrameFault.delay_us"))
        if self.action == "delay" and self.delay_us <= 0:
            raise InvalidArgument("FrameFault(action='delay') needs delay_us > 0")
        if self.action == "drop" and self.delay_us:
            raise InvalidArgument("FrameFault(action='drop') takes no delay_us")

    @property
    def type(self) -> FrameType:
        return FrameType[self.frame_type]


@dataclass(frozen=True)
class ControlFault:
    """Fail chosen CONTROLs named ``control`` on ``worker_id``'s session: one by ordinal, or each by probability."""

    control: str
    worker_id: int
    ordinal: int | None = None
    probability: float | None = None
    outcome: str = "error"

    def __post_init__(self) -> None:
        from sim.remote.wire_base import ControlName

        _worker(self.worker_id, "ControlFault")
        if not isinstance(self.control, str | ControlName):
            raise InvalidArgument(f"ControlFault.control must be a control name (str or ControlName), "
                                  f"got {type(self.control).__name__} {self.control!r}")
        name = self.control.name if isinstance(self.control, ControlName) else self.control
        name = CONTROL_ALIASES.get(name, name)
        if self.outcome not in CONTROL_OUTCOMES:
            raise InvalidArgument(f"ControlFault.outcome must be one of {CONTROL_OUTCOMES}, got {self.outcome!r}")
        if name not in ControlName.__members__:
            raise InvalidArgument(f"ControlFault.control must be one of {', '.join(ControlName.__members__)}, "
                                  f"got {self.control!r}")
        object.__setattr__(self, "control", name)
        check_choice("ControlFault", self.ordinal, self.probability, " (which control)")

    @property
    def worker(self) -> int:
        return self.worker_id


class ControlFaults(ControlMatcher):
    """The ControlFaults of one session, matched against the CONTROLs it receives (deterministic per seed)."""

    @classmethod
    def for_session(cls, sim: Any, scope: str, worker_id: int) -> ControlFaults:
        """The plan's ControlFaults for ``worker_id``, drawing from ``faults.<scope>.control``."""
        plan = sim.config.faults
        faults = tuple(f for f in plan.for_worker(worker_id) if isinstance(f, ControlFault)) if plan else ()
        return cls(faults, sim.stream(f"faults.{scope}.control"))


Fault = (LinkCut | LinkDelay | LinkClog | SessionCrash | SessionHang | FrameFault | ControlFault | LocalControlFault
         | FaultPoint)
_KINDS = (LinkCut, LinkDelay, LinkClog, SessionCrash, SessionHang, FrameFault, ControlFault, LocalControlFault,
          FaultPoint)


@dataclass(frozen=True)
class FaultPlan:
    """An ordered set of faults; pass as ``SimConfig(faults=FaultPlan((LinkCut(2, 500.0), ...)))``."""

    faults: tuple[Fault, ...] = ()

    def __post_init__(self) -> None:
        try:
            items = tuple(self.faults)
        except TypeError:
            raise InvalidArgument(f"FaultPlan.faults must be a sequence of faults, got {self.faults!r}") from None
        for i, f in enumerate(items):
            if not isinstance(f, _KINDS):
                raise InvalidArgument(f"FaultPlan.faults[{i}] is a {type(f).__name__}; expected one of "
                                      f"{', '.join(k.__name__ for k in _KINDS)}")
        object.__setattr__(self, "faults", items)

    def for_worker(self, worker: int) -> tuple[Fault, ...]:
        return tuple(f for f in self.faults if getattr(f, "worker", None) == worker)

    def check_workers(self, remote_ids: list[int]) -> None:
        """Reject a fault naming a worker id that is not a remote worker of the topology."""
        for f in self.faults:
            if isinstance(f, LocalControlFault | FaultPoint):
                continue  # checked against the tree's scopes (sim.install.check_local_faults, FaultPoints)
            if f.worker not in remote_ids:
                raise InvalidArgument(f"fault plan: {f!r} names worker {f.worker}, but the remote workers are "
                                      f"{sorted(remote_ids) or 'none'}")


def describe(f: Fault) -> str:
    """A one-line description of a fault for the trace."""
    if isinstance(f, FaultPoint):
        return describe_point(f)
    if isinstance(f, LinkCut):
        return f"link cut ({f.lanes})"
    if isinstance(f, LinkDelay):
        return f"link delay +{f.extra_us:g}us until {f.end_us:g}"
    if isinstance(f, LinkClog):
        return f"link clog until {f.end_us:g}"
    if isinstance(f, SessionCrash):
        return "session crash"
    if isinstance(f, SessionHang):
        return "session hang"
    if isinstance(f, LocalControlFault):
        return describe_local(f)
    if isinstance(f, ControlFault):
        return f"control {f.outcome} {f.control}{choice_text(f)}"
    return f"frame {f.action} {f.frame_type}{choice_text(f)}" + (f" +{f.delay_us:g}us" if f.action == "delay" else "")


def injected_at(f: Fault) -> float:
    """When a fault takes effect (frame faults and fault points: from the start)."""
    if isinstance(f, LinkCut | SessionCrash | SessionHang):
        return f.at_us
    if isinstance(f, LinkDelay | LinkClog):
        return f.start_us
    return 0.0
