"""The far side of a remote L3 endpoint: the daemon's manifest check and the session runner.

Spec: upstream ``docs/remote-l3-worker-design.md``, "Fork-Safe Remote Process Model" (a daemon
validates the bootstrap manifest and starts one session runner per session; the runner builds
``Worker(level=3)``, finishes its prestart, and only then reports ``HELLO ready_state=READY``)
and "Remote Worker Session" (manifest fields; the TASK path: check session and sequence, decode
``RemoteTaskArgsWire``, look the orchestration function up by hashid, run it on the inner
Worker, answer with one COMPLETION; CONTROL frames answered with one CONTROL_REPLY; "Session
execution rules": one TASK at a time, CONTROL serialized with TASK); ``protocol.md`` "HELLO
Payload", "Frames" (stale ``session_id`` rejected; command ``sequence`` monotonic), "CONTROL
Payload" (register-family controls) and "Ordering". The seed 001 review adds: the bootstrap
manifest is re-validated before READY exactly like dynamic registration (hashid format, import
syntax, recomputed digest, one hashid never bound to two targets), and sessions bind loopback
unless a non-loopback bind is explicitly allowed.

In the simulator the runner is in-process: the inner L3 is a real :class:`sim.worker.Worker`
elaborated into the same :class:`~sim.simulation.Simulation` (its own Node, chip and SUB
lanes), and each ``module:qualname`` target is resolved by importing it. Every frame the
session sends or receives is encoded and decoded with the SLR3 codec. Health frames are emitted
on the parent's request while the parent watches the endpoint (see :mod:`sim.remote.endpoint`).

Process faults (:mod:`sim.remote.faults`): a ``SessionCrash`` is the runner process's death -- at
that instant nothing it held runs on (the inner Worker's unfinished tasks never start or complete;
they are recorded FAILED with UNCERTAIN_STATE, as nobody can learn how far they got), it frees
nothing at a later SHUTDOWN, and its sockets close, so the parent reads end-of-stream one link
latency later (``protocol.md`` "COMPLETION Payload": when the process exits the parent fabricates
the failure). A ``SessionHang`` stops the process the same way but leaves its sockets open: only the
parent's health watch or command timeout can tell.

Remote buffer controls and TASK tensor sidecars are served by :class:`sim.remote.buffers.SessionBuffers`
(see that module). Out of scope here (left for later work): inner-registry controls
(``INNER_L3_WORKER``); Global CommDomain controls are answered with a NOT_SUPPORTED error, as the
upstream split reserves them.
"""

from __future__ import annotations

import importlib
import json
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sim.callable_identity import format_hashid, validate_import_target, verify_import_manifest
from sim.errors import ErrorClass, HashidMismatch, InvalidArgument, NotSupported, ProtocolError, UnknownCallable
from sim.remote.faults import ControlFaults, describe
from sim.remote.link import CMD, HEALTH, UP, LinkModel, fire_at, foreign_origin
from sim.remote.spec import HOST_TCP, is_loopback
from sim.remote.wire import (
    MAX_ERROR_BYTES,
    CallableKind,
    CompletionPayload,
    ControlName,
    ControlPayload,
    ControlReplyPayload,
    Frame,
    FrameHeader,
    FrameType,
    HealthPayload,
    HelloPayload,
    ReadyState,
    RemoteRegistryTarget,
    TaskPayload,
    decode_frame,
    encode_frame,
    python_import_digest,
)
from sim.trace import EventKind

if TYPE_CHECKING:
    from sim.registry import CallableHandle
    from sim.simulation import Simulation
    from sim.worker import Worker

COMM_PROFILE = "sim"


@dataclass(frozen=True)
class BootstrapManifest:
    """What the parent hands the daemon to open one session (design doc "Remote Worker Session").

    ``remote_task_dispatcher`` holds ``(hashid, "module:qualname")`` pairs; ``inner_chip_callables``
    holds ``(hashid, reference Kernel)`` pairs installed on the inner L3 Worker during prestart.
    """

    session_id: int
    worker_id: int
    parent_worker_level: int
    platform: str
    runtime: str = "tensormap_and_ringbuffer"
    device_ids: tuple[int, ...] = ()
    num_sub_workers: int = 0
    transport: str = HOST_TCP
    listen_host: str = "127.0.0.1"
    allow_non_loopback_bind: bool = False
    remote_worker_level: int = 3
    remote_task_dispatcher: tuple[tuple[str, str], ...] = ()
    inner_chip_callables: tuple[tuple[str, Any], ...] = ()

    def wire_size(self) -> int:
        """Bytes of the manifest on the daemon channel (a JSON document upstream)."""
        doc = {"session_id": self.session_id, "worker_id": self.worker_id, "platform": self.platform,
               "runtime": self.runtime, "device_ids": list(self.device_ids),
               "num_sub_workers": self.num_sub_workers, "transport": self.transport,
               "listen_host": self.listen_host, "dispatcher": [list(e) for e in self.remote_task_dispatcher],
               "inner": [h for h, _ in self.inner_chip_callables]}
        return len(json.dumps(doc, sort_keys=True).encode())


def validate_manifest(m: BootstrapManifest, *, what_if_transports: bool = False) -> dict[bytes, Any]:
    """The daemon's check of a manifest, before any runner exists; returns digest -> descriptor.

    Raises :class:`InvalidArgument` (field errors, relative or ``<locals>`` targets, malformed
    hashids, a non-loopback bind without the opt-in, a repeated hashid) or
    :class:`HashidMismatch` (a hashid that does not name its target -- which is also how one
    hashid bound to two targets fails).
    """
    from sim.cost import profile_for_platform

    if not isinstance(m, BootstrapManifest):
        raise InvalidArgument(f"bootstrap manifest must be a BootstrapManifest, got {type(m).__name__}")
    if isinstance(m.session_id, bool) or not isinstance(m.session_id, int) or m.session_id <= 0:
        raise InvalidArgument(f"manifest session_id must be a non-zero positive int, got {m.session_id!r}")
    if isinstance(m.worker_id, bool) or not isinstance(m.worker_id, int) or m.worker_id < 0:
        raise InvalidArgument(f"manifest worker_id must be >= 0, got {m.worker_id!r}")
    if m.remote_worker_level != 3:
        raise InvalidArgument(f"manifest remote_worker_level must be 3, got {m.remote_worker_level!r}")
    if not isinstance(m.parent_worker_level, int) or m.parent_worker_level < 4:
        raise InvalidArgument(f"manifest parent_worker_level must be >= 4, got {m.parent_worker_level!r}")
    if m.transport != HOST_TCP and not (what_if_transports and m.transport in ("roce", "hccs", "ub")):
        raise NotSupported(f"the session daemon serves only the {HOST_TCP!r} transport, got {m.transport!r}")
    profile_for_platform(m.platform)
    if not is_loopback(m.listen_host) and not m.allow_non_loopback_bind:
        raise InvalidArgument(
            f"manifest asks the session to listen on non-loopback address {m.listen_host!r}; sessions bind "
            f"loopback unless allow_non_loopback_session_bind=True is set on the RemoteWorkerSpec")
    if not isinstance(m.remote_task_dispatcher, tuple):
        raise InvalidArgument("manifest remote_task_dispatcher must be a tuple of (hashid, target) pairs")
    seen: dict[str, str] = {}
    for entry in m.remote_task_dispatcher:
        if isinstance(entry, tuple) and len(entry) == 2 and isinstance(entry[0], str):
            h = entry[0].removeprefix("sha256:")
            if h in seen and seen[h] != entry[1]:
                raise HashidMismatch(f"manifest binds hashid {entry[0]} to two targets: {seen[h]!r} and "
                                     f"{entry[1]!r}")
            seen[h] = entry[1]
    return verify_import_manifest(m.remote_task_dispatcher)


def load_import_target(target: str) -> Callable[..., Any]:
    """Import ``module:qualname`` in-process and return the callable it names."""
    module_name, qualname = validate_import_target(target)
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise InvalidArgument(f"import target {target!r}: cannot import module {module_name!r}: {exc}") from None
    for part in qualname.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise InvalidArgument(f"import target {target!r}: {module_name} has no attribute path "
                                  f"{qualname!r}") from None
    if not callable(obj):
        raise InvalidArgument(f"import target {target!r} is not callable")
    return obj


_ACTIVE: list[RemoteSession] = []


def get_inner_handle(hashid: str) -> CallableHandle:
    """Inside a remote orchestration function: the inner L3 handle the manifest installed for ``hashid``."""
    if not _ACTIVE:
        raise InvalidArgument("get_inner_handle() is only valid inside a remote session's orchestration function")
    session = _ACTIVE[-1]
    handle = session.inner_handles.get(hashid)
    if handle is None:
        raise UnknownCallable(f"get_inner_handle: {hashid} is not installed on remote worker {session.worker_id}")
    return handle


def find_inner_handle(name: str) -> CallableHandle:
    """Inside a remote orchestration function: the inner L3 handle of the installed callable named ``name``."""
    if not _ACTIVE:
        raise InvalidArgument("find_inner_handle() is only valid inside a remote session's orchestration function")
    session = _ACTIVE[-1]
    for handle in session.inner_handles.values():
        if handle.name == name:
            return handle
    raise UnknownCallable(f"find_inner_handle: no callable named {name!r} is installed on remote worker "
                          f"{session.worker_id}")


def _bounded(text: str) -> str:
    data = text.encode("utf-8")
    if len(data) <= MAX_ERROR_BYTES:
        return text
    return data[: MAX_ERROR_BYTES - 3].decode("utf-8", "ignore") + "..."


class RemoteSession:
    """One session runner: inner L3 Worker, dispatcher registry, ordered command handling."""

    def __init__(self, sim: Simulation, scope: str, manifest: BootstrapManifest, link: LinkModel,
                 deliver_up: Callable[[bytes], None], crash_at: float | None, host: str, *,
                 hang_at: float | None = None, on_closed: Callable[[], None] | None = None) -> None:
        installed = validate_manifest(manifest, what_if_transports=sim.config.mode == "experiment")
        self.sim = sim
        self.env = sim.env
        self.trace = sim.trace
        self.scope = scope
        self.manifest = manifest
        self.session_id = manifest.session_id
        self.worker_id = manifest.worker_id
        self.link = link
        self.deliver_up = deliver_up
        self.crash_at = crash_at
        self.hang_at = hang_at  # SessionHang: alive but stopped from here on (sim.remote.faults)
        self.on_closed = on_closed  # the parent's end of the connection, told when the socket closes
        self.halted: str | None = None  # "died" / "stopped" once a SessionCrash / SessionHang took effect
        self.host = host
        self.closed = False
        self.busy = False
        self.expected_seq = 1
        self.health_seq = 0
        self.queue: deque[Frame] = deque()
        self.staged: dict[bytes, Callable[..., Any]] = {}
        self.control_faults = ControlFaults.for_session(sim, scope, self.worker_id)
        self.points = (sim.points.bind(scope, "control_reply_lost", "health_late", "task_reply_late")
                       if sim.points is not None else None)  # sim.faultpoints
        self.inner_handles: dict[str, CallableHandle] = {}
        # Prestart: resolve every dispatcher target, build and bring up the inner L3 Worker.
        self.registry: dict[bytes, Callable[..., Any]] = {
            d: load_import_target(desc.fields.target) for d, desc in installed.items()}
        self.inner = self._build_inner(manifest)
        self.node = self.inner._node
        from sim.remote.buffers import SessionBuffers

        self.buffers = SessionBuffers(self)

    def _build_inner(self, m: BootstrapManifest) -> Worker:
        from sim.worker import Worker, _Lifecycle

        config: dict[str, Any] = {"platform": m.platform, "runtime": m.runtime}
        if m.device_ids:
            config["device_ids"] = list(m.device_ids)
        if m.num_sub_workers:
            config["num_sub_workers"] = m.num_sub_workers
        inner = Worker(3, **config)
        for hashid, kernel in m.inner_chip_callables:
            handle = inner.register(kernel)
            if handle.hashid != hashid:
                raise HashidMismatch(f"manifest inner entry {hashid} does not name chip callable "
                                     f"{getattr(kernel, 'name', kernel)!r} (it hashes to {handle.hashid})")
            self.inner_handles[hashid] = handle
        inner._elaborate(self.sim, self.scope)
        inner._set_tree_state(_Lifecycle.READY)
        return inner

    # ------------------------------------------------------------------ liveness

    def alive(self) -> bool:
        now = self.env.now
        return not self.closed and (self.crash_at is None or now < self.crash_at) and \
            (self.hang_at is None or now < self.hang_at)

    def close(self) -> None:
        """SHUTDOWN: the session frees what it holds -- if it is still there to do it (a crashed
        process took everything with it, a stopped one does nothing)."""
        if not self.closed and self.alive():
            self.buffers.shutdown()
        self.closed = True

    def _arm_faults(self) -> None:
        """Schedule the plan's SessionCrash / SessionHang of this session (the process exists from now)."""
        if self.crash_at is not None:
            fire_at(self.env, self.crash_at - self.env.now, self._crash)
        if self.hang_at is not None:
            fire_at(self.env, self.hang_at - self.env.now, self._hang)

    def _crash(self) -> None:
        """SessionCrash: the process dies now. Nothing it held runs on, and its sockets close: the
        parent reads end-of-stream one link latency later (``protocol.md`` "COMPLETION Payload" --
        the parent fabricates the endpoint failure when the process exits)."""
        if self.closed:
            return  # shut down before it could die
        if self.halted is None:
            self._halt("died")
        self.closed = True  # a stopped process that is killed closes its sockets all the same
        if self.on_closed is not None:
            self.link.send_close(CMD, UP, self.on_closed)

    def _hang(self) -> None:
        """SessionHang: the process stops now (SIGSTOP): it runs nothing and sends nothing, but its
        sockets stay open, so only the parent's health watch or command timeout can tell."""
        if self.closed or self.halted is not None:
            return
        self._halt("stopped")

    def _halt(self, how: str) -> None:
        """Freeze everything this process held at this instant.

        The inner Worker's lanes still busy never report their TASK_DONE (their completion events
        are emptied), so nothing further is dispatched there; a blocked heap allocation never
        resumes. Each unfinished inner task keeps the start it had by now (a start stamped later is
        dropped: it never happened) and no end; the record shows it FAILED with UNCERTAIN_STATE, as
        nobody -- parent or user -- can learn how far it got. Trace events the engine had stamped
        ahead of now inside this session's scope are withdrawn (they describe what would have
        happened), except those already handed out in an earlier record.
        """
        now = self.env.now
        self.halted = how
        node = self.node
        for lane in (*node.nl_lanes, *node.sub_lanes):
            if lane.busy:
                lane.completion.callbacks = []  # the leaf's TASK_DONE is never observed
        node.admission.clear()
        node.blocked_since = None
        scope, prefix = self.scope, self.scope + "."
        self.trace.retract(self.sim._trace_mark,
                           lambda e: e[0] > now and (e[2] == scope or e[2].startswith(prefix)))
        why = (f"remote worker {self.worker_id} ({self.host}): the session process {how} at t={now:g}us before "
               f"this task finished; no outcome of it ever reached the parent")
        run = node.run
        for t in (run.tasks if run is not None else ()):
            if t is None or t.terminal:
                continue
            if t.start is not None and t.start > now:
                t.start = None
            t.end = None
            t.error = why
            t.error_class = ErrorClass.UNCERTAIN_STATE.value
        self.trace.add(now, EventKind.FAULT, self.scope, "session", f"process {how}: nothing it held runs on")

    # ------------------------------------------------------------------ sending

    def _send(self, lane: str, frame: Frame, label: str) -> None:
        if not self.alive():
            return
        data = encode_frame(frame)
        self.link.send(lane, UP, frame.header.frame_type, label, data, self.deliver_up)

    def _header(self, ftype: FrameType, seq: int) -> FrameHeader:
        return FrameHeader(ftype, self.session_id, self.worker_id, seq)

    def start(self, delay: float) -> None:
        """The runner is up after ``delay``: HELLO NOT_READY, prestart, then HELLO READY."""
        fire_at(self.env, delay, self._hello)
        self._arm_faults()

    def _hello(self) -> None:
        for state in (ReadyState.NOT_READY, ReadyState.READY):
            payload = HelloPayload(self.session_id, self.worker_id, COMM_PROFILE, 0, state)
            self._send(CMD, Frame(self._header(FrameType.HELLO, 0), payload), f"HELLO {state.name}")

    def send_health(self) -> None:
        self.health_seq += 1
        frame = Frame(self._header(FrameType.HEALTH, self.health_seq), HealthPayload())
        label = f"HEALTH#{self.health_seq}"
        if self.points is not None and (p := self.points.fires("health_late", self.scope, label)) is not None:
            fire_at(self.env, p.delay_us, lambda: self._send(HEALTH, frame, label))  # leaves late
            return
        self._send(HEALTH, frame, label)

    # ------------------------------------------------------------------ receiving

    def _reject(self, why: str) -> None:
        self.trace.add(self.env.now, EventKind.FRAME, self.scope, "rejected", why)

    def receive(self, data: bytes) -> None:
        """A command-lane frame from the parent arrives."""
        if not self.alive():
            self.trace.add(self.env.now, EventKind.FRAME, self.scope, "lost", "session is down")
            return
        try:
            frame = decode_frame(data)
        except ProtocolError as exc:
            self._reject(f"undecodable frame: {exc}")
            return
        h = frame.header
        why = foreign_origin(h, self.session_id, self.worker_id)
        if why is not None:
            self._reject(why)
            return
        if h.frame_type not in (FrameType.TASK, FrameType.CONTROL, FrameType.SHUTDOWN):
            self._reject(f"{h.frame_type.name} is not a parent-to-session command")
            return
        if h.sequence != self.expected_seq:
            self._reject(f"{h.frame_type.name} sequence {h.sequence}, expected {self.expected_seq}")
            return
        self.expected_seq += 1
        self.queue.append(frame)
        self._pump()

    def _pump(self) -> None:
        while self.queue and not self.busy and self.alive():
            frame = self.queue.popleft()
            ftype = frame.header.frame_type
            if ftype is FrameType.TASK:
                self._run_task(frame)
            elif ftype is FrameType.CONTROL:
                self._control(frame)
            else:
                self.trace.add(self.env.now, EventKind.CONTROL, self.scope, "SHUTDOWN", "session closed")
                self.close()

    # ------------------------------------------------------------------ TASK

    def _run_task(self, frame: Frame) -> None:
        from sim.orchestrator import Orchestrator
        from sim.task_args import TaskArgsView
        from sim.types import CallConfig

        seq = frame.header.sequence
        p: TaskPayload = frame.payload  # type: ignore[assignment]
        fn = self.registry.get(p.callable_digest)
        if fn is None:
            self._complete(seq, 1, f"remote worker {self.worker_id} ({self.host}) seq {seq}: callable "
                                   f"{format_hashid(p.callable_digest)} is not registered in REMOTE_TASK_DISPATCHER")
            return
        c = p.config
        cfg = CallConfig(c.aicpu_thread_num, c.enable_chip_swimlane, c.enable_dump_args, c.enable_pmu,
                         c.enable_dep_gen, c.enable_scope_stats, c.output_prefix)
        try:
            tensors = self.buffers.materialize(p.args) if p.args.tensors else []
        except Exception as exc:  # a bad sidecar fails this TASK, not the session
            self._complete(seq, 1, f"remote worker {self.worker_id} ({self.host}) seq {seq}: {exc}")
            return
        view = TaskArgsView(tensors, list(p.args.scalars))
        self.busy = True
        digest = p.callable_digest
        _ACTIVE.append(self)
        try:
            self.node.begin_run(fn, Orchestrator(self.inner), view, cfg,
                                lambda run: self._task_ended(seq, digest, run))
        finally:
            _ACTIVE.pop()

    def _task_ended(self, seq: int, digest: bytes, run: Any) -> None:
        """Fault point ``task_reply_late``: the COMPLETION leaves ``delay_us`` late; the session stays busy."""
        if self.points is not None and (p := self.points.fires("task_reply_late", self.scope,
                                                               f"COMPLETION#{seq}")) is not None:
            fire_at(self.env, p.delay_us, lambda: self._task_done(seq, digest, run))
            return
        self._task_done(seq, digest, run)

    def _task_done(self, seq: int, digest: bytes, run: Any) -> None:
        self.busy = False
        if run.error is not None:
            why = f"{type(run.error).__name__}: {run.error}"
        elif run.failed:
            why = f"task {run.failed[0].name}: {run.failed[0].error}"
        else:
            why = ""
        if why:
            self._complete(seq, 1, f"remote worker {self.worker_id} ({self.host}) callable "
                                   f"{format_hashid(digest)} seq {seq} failed: {why}")
        else:
            self._complete(seq, 0, "")
        self._pump()

    def _complete(self, seq: int, code: int, message: str) -> None:
        frame = Frame(self._header(FrameType.COMPLETION, seq), CompletionPayload(seq, code, _bounded(message)))
        self._send(CMD, frame, f"COMPLETION#{seq}")

    # ------------------------------------------------------------------ CONTROL

    def _control(self, frame: Frame) -> None:
        seq = frame.header.sequence
        p: ControlPayload = frame.payload  # type: ignore[assignment]
        name = ControlName(p.control_name)
        fault = self.control_faults.hit(name.name) if self.control_faults.faults else None
        try:
            if fault is not None:
                self.trace.add(self.env.now, EventKind.FAULT, self.scope, f"{name.name}#{seq}", describe(fault))
                self.sim.hit("ControlFault")
                if fault.outcome == "error":
                    raise RuntimeError(f"injected control fault ({describe(fault)})")
            reply = ControlReplyPayload(seq, name, result=self._apply(name, p.command))
        except Exception as exc:  # the reply carries the failure; the session goes on
            reply = ControlReplyPayload(seq, name, 1, _bounded(
                f"remote worker {self.worker_id} ({self.host}) {name.name} seq {seq}: {exc}"))
        if fault is not None and fault.outcome == "timeout":
            return  # applied, but the reply is withheld: the parent's command timeout decides
        if self.points is not None and self.points.fires("control_reply_lost", self.scope,
                                                         f"{name.name}#{seq}") is not None:
            return  # the same, from fault point ``control_reply_lost``
        self.trace.add(self.env.now, EventKind.CONTROL, self.scope, f"{name.name}#{seq}",
                       "ok" if reply.error_code == 0 else reply.error_message)
        self._send(CMD, Frame(self._header(FrameType.CONTROL_REPLY, seq), reply), f"CONTROL_REPLY#{seq}")

    def _apply(self, name: ControlName, cmd: Any) -> Any:
        from sim.remote.buffers import BUFFER_CONTROLS, DOMAIN_CONTROLS, reject_domain_control

        if name in BUFFER_CONTROLS:
            return self.buffers.apply(name, cmd)
        if name in DOMAIN_CONTROLS:
            reject_domain_control(name)
        if name not in (ControlName.PREPARE_REGISTER_CALLABLE, ControlName.COMMIT_REGISTER_CALLABLE,
                        ControlName.ABORT_REGISTER_CALLABLE, ControlName.UNREGISTER_CALLABLE):
            raise NotSupported(f"{name.name} is not modeled by the simulator's session")
        if cmd.target_registry != RemoteRegistryTarget.REMOTE_TASK_DISPATCHER or \
                cmd.callable_kind != CallableKind.PYTHON_IMPORT:
            raise NotSupported("only REMOTE_TASK_DISPATCHER / PYTHON_IMPORT registrations are modeled")
        digest = cmd.callable_digest
        if name is ControlName.PREPARE_REGISTER_CALLABLE:
            target = cmd.payload.decode("utf-8")
            module, qualname = validate_import_target(target)
            if python_import_digest(module, qualname) != digest:
                raise HashidMismatch(f"{format_hashid(digest)} does not name import target {target!r}")
            self.staged[digest] = load_import_target(target)
        elif name is ControlName.COMMIT_REGISTER_CALLABLE:
            fn = self.staged.pop(digest, None)
            if fn is None:
                raise InvalidArgument(f"COMMIT of {format_hashid(digest)} without a PREPARE")
            self.registry[digest] = fn
        elif name is ControlName.ABORT_REGISTER_CALLABLE:
            self.staged.pop(digest, None)
        elif self.registry.pop(digest, None) is None:
            raise UnknownCallable(f"{format_hashid(digest)} is not registered")
