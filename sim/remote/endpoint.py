"""The parent side of a remote L3 worker: its endpoint (command + health lanes) and its lane.

Spec: upstream ``docs/remote-l3-worker-design/protocol.md``:

- "HELLO Payload": the endpoint becomes schedulable only after a HELLO with ``ready_state=READY``
  and matching ``session_id`` / ``worker_id``; before that no TASK is sent (:class:`NotReady`).
- "Frames" / "Ordering": one ordered command lane per endpoint. Requests (TASK, CONTROL,
  SHUTDOWN) take increasing sequence numbers; at most one request is in flight, so a CONTROL
  serializes with TASK; a reply must carry the in-flight request's sequence (and, for
  CONTROL_REPLY, its control name); frames of another session are rejected.
- "Ordering" (health expiry) and ``docs/remote-l3-worker-design.md`` "Session execution rules"
  and "Failure Semantics": an independent health lane; on expiry the in-flight TASK or CONTROL
  receives a fabricated failed reply (``ENDPOINT_FAILURE``), queued requests fail the same way,
  the endpoint leaves the schedulable set for the rest of the session (later HELLO/HEALTH frames
  do not re-admit it), and pending slots whose only eligible target was this endpoint fail
  (their consumers are poisoned NOT_RUN by the normal completion path). Every wait is bounded:
  a request unanswered for ``remote_session_timeout_s`` fails the endpoint the same way.
- "COMPLETION Payload" / "CONTROL_REPLY Payload" (the process exits) and ``buffers-and-transports.md``
  "HCOMM Adapter Contract" (a disconnect becomes a failed reply): when the session's connection
  closes (its process died), the endpoint fails the same way at once, not at health expiry.

Health is modeled only while the parent watches the endpoint -- a request is in flight or queued,
or a submitted task targeting it is not yet terminal. Idle periods are elided (no frames, no
expiry), which changes nothing a user can observe and keeps a finished simulation from running
forever on keep-alives.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from simpy.events import Event, Timeout

from sim.errors import (
    EndpointFailure,
    ErrorClass,
    InvalidArgument,
    InvalidState,
    NotReady,
    ProtocolError,
    SimError,
)
from sim.lanes import Lane
from sim.remote.buffers import check_remote_tensors, remote_task_args
from sim.remote.link import CMD, DOWN, LinkModel, fire_at, foreign_origin
from sim.remote.session import BootstrapManifest, RemoteSession
from sim.remote.wire import (
    CallConfigWire,
    ControlName,
    ControlPayload,
    Frame,
    FrameHeader,
    FrameType,
    ReadyState,
    ShutdownPayload,
    TaskPayload,
    decode_frame,
    decode_header,
    encode_frame,
)
from sim.task import PENDING, READY
from sim.trace import EventKind

if TYPE_CHECKING:
    from sim.node import Node
    from sim.registry import Registration
    from sim.remote.spec import RemoteWorkerSpec
    from sim.task import Task
    from sim.worker import Worker

_U64 = (1 << 64) - 1
Reply = Callable[[str | None, str | None, Any], None]


class EndpointState(enum.Enum):
    NEW = "NEW"
    CONNECTING = "CONNECTING"
    READY = "READY"
    FAILED = "FAILED"
    CLOSED = "CLOSED"


class _Request:
    __slots__ = ("control", "ftype", "label", "on_reply", "payload", "seq")

    def __init__(self, ftype: FrameType, payload: Any, on_reply: Reply, label: str,
                 control: ControlName | None = None) -> None:
        self.ftype = ftype
        self.payload = payload
        self.on_reply = on_reply
        self.label = label
        self.control = control
        self.seq = 0


class RemoteEndpoint:
    """The parent's view of one remote session: state, ordered command lane, health watch."""

    def __init__(self, node: Node, scope: str, worker_id: int, spec: RemoteWorkerSpec, link: LinkModel,
                 command_timeout_us: float) -> None:
        sim = node.sim
        self.sim = sim
        self.env = sim.env
        self.trace = sim.trace
        self.node = node
        self.scope = scope
        self.worker_id = worker_id
        self.spec = spec
        self.host = spec.endpoint
        self.link = link
        self.command_timeout_us = command_timeout_us
        self.health_interval_us = link.link.get("health_interval_us")
        self.health_timeout_us = link.link.get("health_timeout_us")
        self.state = EndpointState.NEW
        self.session: RemoteSession | None = None
        self.session_id = 0
        self.next_seq = 1
        self.inflight: _Request | None = None
        self.queue: deque[_Request] = deque()
        self.pending: list[Task] = []
        self.digests: dict[bytes, int] = {}
        self.saw_not_ready = False
        self.failure: str | None = None
        self.rejected: list[str] = []
        self.last_health = 0.0
        self._health_on = False
        self._health_epoch = 0
        self._on_resolved: Callable[[SimError | None], None] | None = None

    # ------------------------------------------------------------------ start-up

    def open(self, manifest: BootstrapManifest, crash_at: float | None, startup_timeout_us: float,
             on_resolved: Callable[[SimError | None], None], hang_at: float | None = None) -> None:
        """Hand the manifest to the daemon and start the session; ``on_resolved`` reports READY or failure.

        Manifest errors raise at once (the daemon refuses the session before any runner exists).
        ``crash_at`` / ``hang_at``: when the plan's SessionCrash / SessionHang of this session take effect.
        """
        self.session_id = manifest.session_id
        self.session = RemoteSession(self.sim, f"{self.scope}.l3", manifest, self.link, self.receive, crash_at,
                                     self.host, hang_at=hang_at, on_closed=self._connection_closed)
        self.state = EndpointState.CONNECTING
        self._on_resolved = on_resolved
        self.trace.add(self.env.now, EventKind.CONTROL, self.scope, "session", f"open {self.session_id:#x}")
        delay = self.link.bootstrap_us(manifest.wire_size())
        if self.link.reachable_at(self.env.now + delay):
            self.session.start(delay)
        fire_at(self.env, startup_timeout_us, self._startup_expired)

    def _startup_expired(self) -> None:
        if self.state is not EndpointState.CONNECTING:
            return
        if self.saw_not_ready:
            err: SimError = NotReady(f"remote worker {self.worker_id} ({self.host}) reported HELLO NOT_READY and "
                                     f"never READY within the start-up timeout")
        else:
            err = EndpointFailure(f"remote worker {self.worker_id} ({self.host}): no HELLO from the session within "
                                  f"the start-up timeout")
        self.fail(str(err), err)

    def _resolve(self, err: SimError | None) -> None:
        cb, self._on_resolved = self._on_resolved, None
        if cb is not None:
            cb(err)

    # ------------------------------------------------------------------ requests

    def _check_sendable(self, what: str) -> None:
        if self.state is EndpointState.READY:
            return
        if self.state in (EndpointState.NEW, EndpointState.CONNECTING):
            raise NotReady(f"{what} to remote worker {self.worker_id} ({self.host}) before HELLO READY")
        if self.state is EndpointState.FAILED:
            raise EndpointFailure(f"{what} to remote worker {self.worker_id}: the endpoint failed "
                                  f"({self.failure}) and is not schedulable in this session")
        raise InvalidState(f"{what} to remote worker {self.worker_id}: the session is closed")

    def send_task(self, payload: TaskPayload, on_reply: Reply, label: str = "TASK") -> None:
        """Queue a TASK on the ordered command lane (raises NotReady before READY)."""
        self._check_sendable("TASK")
        self._enqueue(_Request(FrameType.TASK, payload, on_reply, label))

    def send_control(self, name: ControlName, command: Any, on_reply: Reply) -> None:
        """Queue a CONTROL on the ordered command lane (raises NotReady before READY)."""
        self._check_sendable(f"CONTROL {name.name}")
        self._enqueue(_Request(FrameType.CONTROL, ControlPayload(name, command), on_reply, name.name, name))

    def _enqueue(self, req: _Request) -> None:
        self.queue.append(req)
        self._pump()
        self.ensure_health()

    def _pump(self) -> None:
        if self.state is not EndpointState.READY or self.inflight is not None or not self.queue:
            return
        req = self.queue.popleft()
        req.seq = self.next_seq
        self.next_seq += 1
        self.inflight = req
        frame = Frame(FrameHeader(req.ftype, self.session_id, self.worker_id, req.seq), req.payload)
        assert self.session is not None
        self.link.send(CMD, DOWN, req.ftype, f"{req.label}#{req.seq}", encode_frame(frame), self.session.receive)
        fire_at(self.env, self.command_timeout_us, lambda: self._command_expired(req))

    def _command_expired(self, req: _Request) -> None:
        if self.inflight is req:
            self.fail(f"{req.ftype.name} seq {req.seq} got no reply within {self.command_timeout_us:g}us")

    # ------------------------------------------------------------------ receiving

    def _reject(self, why: str) -> None:
        self.rejected.append(why)
        self.trace.add(self.env.now, EventKind.FRAME, self.scope, "rejected", why)

    def receive(self, data: bytes) -> None:
        """A frame from the session arrives (command or health lane)."""
        if self.state in (EndpointState.CLOSED, EndpointState.NEW):
            return
        try:
            header = decode_header(data)
            req = self.inflight
            if header.frame_type in (FrameType.COMPLETION, FrameType.CONTROL_REPLY):
                if req is None or header.frame_type is not _REPLY_TYPE[req.ftype]:
                    raise ProtocolError(f"{header.frame_type.name} seq {header.sequence} answers no in-flight "
                                        f"request", field="sequence")
                frame = decode_frame(data, expected_sequence=req.seq, expected_control=req.control)
            else:
                frame = decode_frame(data)
        except ProtocolError as exc:
            self._reject(str(exc))
            return
        h = frame.header
        why = foreign_origin(h, self.session_id, self.worker_id)
        if why is not None:
            self._reject(why)
            return
        ftype = h.frame_type
        if ftype is FrameType.HELLO:
            self._hello(frame.payload)
        elif ftype is FrameType.HEALTH:
            if self.state is EndpointState.READY:
                self.last_health = self.env.now
        elif ftype in (FrameType.COMPLETION, FrameType.CONTROL_REPLY):
            if self.state is not EndpointState.READY:
                self._reject(f"{ftype.name} after the endpoint failed")
                return
            assert req is not None
            self.inflight = None
            p = frame.payload
            if p.error_code:  # type: ignore[union-attr]
                req.on_reply(p.error_message, ErrorClass.TASK_FAILURE.value, p)  # type: ignore[union-attr]
            else:
                req.on_reply(None, None, p)
            self._pump()
        else:
            self._reject(f"{ftype.name} is not a session-to-parent frame")

    def _connection_closed(self) -> None:
        """The session's end of the connection closed (its process exited): end-of-stream on the
        command lane. The endpoint fails at once, as the parent's reader cannot go on
        (``protocol.md`` "COMPLETION Payload" / "CONTROL_REPLY Payload": when the process exits, every
        in-flight request gets a fabricated failure; ``buffers-and-transports.md`` "HCOMM Adapter
        Contract": a disconnect is converted into a failed reply)."""
        if self.state in (EndpointState.NEW, EndpointState.FAILED, EndpointState.CLOSED):
            return
        req = self.inflight
        what = f"the reply to {req.label}#{req.seq}" if req is not None else "a frame"
        self.fail(f"connection closed by the session: socket closed while reading {what} "
                  f"(the session process exited)")

    def _hello(self, p: Any) -> None:
        if self.state is not EndpointState.CONNECTING:
            self.trace.add(self.env.now, EventKind.FRAME, self.scope, "HELLO",
                           f"ignored: endpoint is {self.state.value} (no re-admission in this session)")
            return
        if p.ready_state != ReadyState.READY:
            self.saw_not_ready = True
            return
        self.state = EndpointState.READY
        self.trace.add(self.env.now, EventKind.CONTROL, self.scope, "session", "READY")
        self._resolve(None)

    # ------------------------------------------------------------------ health

    def track(self, task: Task) -> None:
        """A submitted task targets this endpoint: watch the endpoint until it is terminal."""
        self.pending.append(task)
        self.ensure_health()

    def _watching(self) -> bool:
        if self.state is not EndpointState.READY:
            return False
        if self.inflight is not None or self.queue:
            return True
        self.pending = [t for t in self.pending if not t.terminal]
        return bool(self.pending)

    def ensure_health(self) -> None:
        if self._health_on or not self._watching():
            return
        self._health_on = True
        self._health_epoch += 1
        epoch = self._health_epoch
        self.last_health = self.env.now
        fire_at(self.env, self.health_interval_us, lambda: self._health_tick(epoch))
        fire_at(self.env, self.health_timeout_us, lambda: self._health_watchdog(epoch))

    def _stop_health(self) -> None:
        self._health_on = False
        self._health_epoch += 1

    def _health_tick(self, epoch: int) -> None:
        if epoch != self._health_epoch:
            return
        if not self._watching():
            self._stop_health()
            return
        assert self.session is not None
        self.session.send_health()
        fire_at(self.env, self.health_interval_us, lambda: self._health_tick(epoch))

    def _health_watchdog(self, epoch: int) -> None:
        if epoch != self._health_epoch:
            return
        if not self._watching():
            self._stop_health()
            return
        due = self.last_health + self.health_timeout_us
        if self.env.now >= due:
            self.fail(f"health expired: no HEALTH frame for {self.health_timeout_us:g}us")
            return
        fire_at(self.env, due - self.env.now, lambda: self._health_watchdog(epoch))

    # ------------------------------------------------------------------ failure and close

    def fail(self, reason: str, error: SimError | None = None) -> None:
        """Endpoint failure: fabricate failed replies, drop eligibility, fail orphaned pending slots."""
        if self.state in (EndpointState.FAILED, EndpointState.CLOSED):
            return
        was_connecting = self.state is EndpointState.CONNECTING
        self.state = EndpointState.FAILED
        self.failure = reason
        self._stop_health()
        msg = f"ENDPOINT_FAILURE: remote worker {self.worker_id} ({self.host}) session {self.session_id:#x}: {reason}"
        self.trace.add(self.env.now, EventKind.FAIL, self.scope, "endpoint", reason)
        if was_connecting:
            self._resolve(error or EndpointFailure(msg))
        cls = ErrorClass.ENDPOINT_FAILURE.value
        # Slots not yet dispatched first (their only eligible target is gone), then the fabricated
        # replies of the in-flight and queued requests.
        node = self.node
        pending, self.pending = self.pending, []
        for t in pending:
            if t.state is PENDING or t.state is READY:
                t.error = f"{msg} (no eligible worker left for this slot)"
                t.error_class = cls
                node._complete(t)
        requests = ([self.inflight] if self.inflight is not None else []) + list(self.queue)
        self.inflight = None
        self.queue.clear()
        for req in requests:
            req.on_reply(msg, cls, None)
        if node.group_fifo:
            node._dispatch_groups()

    def close(self) -> None:
        """Send SHUTDOWN to a live session and close it; safe to call more than once."""
        if self.state is EndpointState.CLOSED:
            return
        if self.state is EndpointState.NEW:
            self.state = EndpointState.CLOSED
            return
        if self.state is EndpointState.READY and self.session is not None:
            frame = Frame(FrameHeader(FrameType.SHUTDOWN, self.session_id, self.worker_id, self.next_seq),
                          ShutdownPayload())
            self.next_seq += 1
            self.link.send(CMD, DOWN, FrameType.SHUTDOWN, "SHUTDOWN", encode_frame(frame), lambda _d: None)
        if self.session is not None:
            self.session.close()
        self._stop_health()
        self.state = EndpointState.CLOSED
        self.trace.add(self.env.now, EventKind.CONTROL, self.scope, "session", "closed")


_REPLY_TYPE = {FrameType.TASK: FrameType.COMPLETION, FrameType.CONTROL: FrameType.CONTROL_REPLY,
               FrameType.SHUTDOWN: None}


class RemoteLane(Lane):
    """The NEXT_LEVEL lane of a remote worker id: dispatch becomes a TASK frame on the endpoint."""

    __slots__ = ("endpoint",)
    remote = True  # the lane kind the core checks (sim.plugins)

    def __init__(self, node: Node, scope: str, index: int, endpoint: RemoteEndpoint) -> None:
        super().__init__(node, scope, index, False)
        self.endpoint = endpoint

    def launch(self, task: Task, member: int, t: float) -> None:
        ev = Timeout(self.env, t - self.env.now, (task, member))
        ev.callbacks.append(self._send)

    def _send(self, ev: Event) -> None:
        task, member = ev._value
        now = self.env.now
        if task.start is None or now < task.start:
            task.start = now
        if self.trace.enabled:
            self.trace.add(now, EventKind.START, self.scope, task.name)
        c = task.config
        cfg = CallConfigWire(c.aicpu_thread_num, c.enable_chip_swimlane, c.enable_dump_args, c.enable_pmu,
                             c.enable_dep_gen, c.enable_scope_stats, c.output_prefix)
        payload = TaskPayload(task.callable.descriptor.digest, cfg, remote_task_args(task.members[member]))
        try:
            self.endpoint.send_task(payload, lambda err, cls, _p: self._reply(task, err, cls), task.name)
        except SimError as exc:
            self._reply(task, str(exc), exc.error_class.value)

    def _reply(self, task: Task, err: str | None, cls: str | None) -> None:
        end = self.env.now
        if task.end is None or end > task.end:
            task.end = end
        if self.trace.enabled:
            self.trace.add(end, EventKind.END, self.scope, task.name, "ok" if err is None else "error")
        self.node.member_done(task, self, err, cls)
        buffers = getattr(self.endpoint, "buffers", None)
        if buffers is not None:  # slot references may have drained: deferred remote frees can go
            buffers.kick()


# ---------------------------------------------------------------------- submit-time placement


def remote_endpoints(node: Node, wids: Sequence[int], api: str) -> list[RemoteEndpoint] | None:
    """The endpoints behind ``wids`` if they are all remote, None if all local; mixing is rejected."""
    lanes = node.nl_lanes
    eps = [getattr(lanes[w], "endpoint", None) for w in wids]
    if eps[0] is None and all(e is None for e in eps):
        return None
    if any(e is None for e in eps):
        raise InvalidArgument(f"{api}: workers {list(wids)} mix local and remote NEXT_LEVEL workers; a remote "
                              f"callable runs only on remote workers")
    return eps  # type: ignore[return-value]


def check_remote_submit(worker: Worker, reg: Registration, eps: list[RemoteEndpoint], args_list: Sequence[Any],
                        api: str) -> None:
    """Placement contract for remote targets: eligibility, liveness and argument representability."""
    from sim.task_args import TaskArgs

    eligible = worker._remote.eligible.get(reg.handle._serial, ()) if worker._remote is not None else ()
    for ep in eps:
        if ep.worker_id not in eligible:
            raise InvalidArgument(f"{api}: {reg.name!r} is not registered on remote worker {ep.worker_id} "
                                  f"(eligible workers: {sorted(eligible)})")
        ep._check_sendable(api)
    check_remote_tensors(worker, eps, args_list, api)
    for args in args_list:
        if not isinstance(args, TaskArgs):
            continue  # _member reports the type error
        for s in args._scalars:
            if isinstance(s, bool) or not isinstance(s, int) or not 0 <= s <= _U64:
                raise InvalidArgument(f"{api}: remote TASK scalars are uint64 values, got {s!r}")


def track_remote(eps: list[RemoteEndpoint], task: Task) -> None:
    for ep in eps:
        ep.track(task)
