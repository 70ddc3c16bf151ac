"""Remote buffers: the parent's handle registry, the session's buffer store, TASK sidecars.

Spec: upstream ``docs/remote-l3-worker-design/buffers-and-transports.md``:

- "Public Memory API" / "Required Controls": ``remote_malloc``, ``remote_free``, ``remote_copy_to``,
  ``remote_copy_from``, ``remote_export``, ``remote_import``, ``remote_release_import`` are typed
  CONTROLs (``ALLOC_REMOTE_BUFFER``, ``FREE_REMOTE_BUFFER``, ``COPY_TO_REMOTE``,
  ``COPY_FROM_REMOTE``, ``EXPORT_BUFFER``, ``IMPORT_BUFFER``, ``RELEASE_IMPORT``) on the target
  endpoint's ordered command lane, so they serialize with TASK frames and take the link's time
  (copies carry their bytes in the frame).
- "TaskArgs Sidecar Contract": submit checks each remote tensor's handle against its tag
  (INPUT needs read, OUTPUT / OUTPUT_EXISTING write, INOUT and NO_DEP read+write), its liveness
  and generation, and the selected worker (an owner handle is consumed only on its owner, an
  imported one only on its importer -- upstream ``_remote_data_eligible_worker_ids``); bare host
  tensors never cross to a remote worker, and local workers reject remote refs. Slot references
  are captured at submit and drop when the task is terminal.
- "Release Policy": ``remote_free`` marks the owner handle released and defers
  ``FREE_REMOTE_BUFFER`` while slot refs or imports are live; ``remote_release_import`` defers
  ``RELEASE_IMPORT`` while slot refs are live; a deferred cleanup runs when the last reference
  drops, at the run fence, on the next memory call, or at session shutdown. The seed 001 review
  ("Pending Remote Free Error Handling") adds: a pending free or release whose control fails
  stays pending (and is retried), or becomes ``UNCERTAIN`` when its endpoint failed -- never
  forgotten.
- "Export/Import Handle Semantics" and ``protocol.md`` "Remote Buffer Export and Import Controls":
  an export is sent to the owner and returns an opaque descriptor; an import is sent to the
  importer and creates an importer-local mapping (``import_id``) that keeps the owner identity as
  its dependency key; an in-flight or live import holds the owner's physical free; an import that
  failed with its endpoint holds it for the rest of the session (cleanup uncertain).
- "Simulation Backend": the session keeps real bytes (numpy) for its buffers; an import maps the
  owner's bytes through a simulation-wide window table keyed by an opaque token (the host_tcp
  shared-memory name's stand-in), which only travels inside the private export descriptor.

``protocol.md`` "CONTROL_REPLY Payload" carries only an error code and message; the session puts
the error class first in the message (``[STALE_GENERATION] ...``) so the parent can raise the
matching :mod:`sim.errors` exception. Reserved Remote CommDomain controls are refused by the session
(``NOT_SUPPORTED``), as upstream's split does.
"""

from __future__ import annotations

import re
import weakref
from typing import TYPE_CHECKING, Any

import numpy as np
from simpy.events import Event

from sim.errors import (
    AccessDenied,
    ControlFailure,
    EndpointFailure,
    ErrorClass,
    InvalidArgument,
    InvalidState,
    NotSupported,
    SimError,
    StaleGeneration,
    UncertainState,
    UnknownWorker,
)
from sim.remote.refs import (
    FREED,
    LIVE,
    READ,
    READ_WRITE,
    RELEASED,
    UNCERTAIN,
    WRITE,
    RemoteArgRef,
    RemoteBufferExport,
    RemoteBufferHandle,
    access_flags,
    access_label,
    required_access,
)
from sim.remote.wire import (
    AccessFlags,
    AccessMode,
    AllocRemoteBufferCommand,
    AllocRemoteBufferResult,
    BufferAddressSpace,
    BufferDescriptorWire,
    ControlName,
    CopyFromRemoteCommand,
    CopyFromRemoteResult,
    CopyToRemoteCommand,
    ExportBufferRequest,
    ExportBufferResult,
    FreeRemoteBufferCommand,
    ImportBufferRequest,
    ImportBufferResult,
    ReleaseImportRequest,
    RemoteAddressSpace,
    RemoteTaskArgs,
    RemoteTensorDesc,
    TensorWire,
)
from sim.remote.wire_base import MAX_INLINE_PAYLOAD_BYTES
from sim.tensors import Buffer, Tensor
from sim.trace import EventKind
from sim.types import DataType, TensorArgType

if TYPE_CHECKING:
    from sim.remote.endpoint import RemoteEndpoint
    from sim.remote.session import RemoteSession
    from sim.simulation import Simulation
    from sim.worker import Worker

HOST_TCP = "host_tcp"
COPY_CHUNK_BYTES = 4 * 1024 * 1024  # one COPY_* frame stays well under the 16 MiB frame payload bound
BUFFER_CONTROLS = frozenset({ControlName.ALLOC_REMOTE_BUFFER, ControlName.FREE_REMOTE_BUFFER,
                             ControlName.COPY_TO_REMOTE, ControlName.COPY_FROM_REMOTE, ControlName.EXPORT_BUFFER,
                             ControlName.IMPORT_BUFFER, ControlName.RELEASE_IMPORT})
DOMAIN_CONTROLS = frozenset({ControlName.COMM_INIT, ControlName.ALLOC_DOMAIN, ControlName.RELEASE_DOMAIN,
                             ControlName.COPY_TO_DOMAIN, ControlName.COPY_FROM_DOMAIN})
_ERRORS: dict[str, type[SimError]] = {cls.error_class.value: cls for cls in (
    AccessDenied, ControlFailure, InvalidArgument, InvalidState, NotSupported, StaleGeneration, UnknownWorker)}
_TAG = re.compile(r"\[([A-Z_]+)\] ")
_OWNER_INSTANCE = b"\0" * 8


def tagged(exc: BaseException) -> str:
    """An error message with its class first, for a CONTROL_REPLY (see the module docstring)."""
    cls = getattr(exc, "error_class", ErrorClass.CONTROL_FAILURE)
    return f"[{cls.value}] {exc}"


def reply_error(message: str | None, cls: str | None) -> SimError:
    """The exception for a failed CONTROL reply (fabricated endpoint failure or a session error)."""
    text = message or "control failed"
    if cls == ErrorClass.ENDPOINT_FAILURE.value:
        return EndpointFailure(text)
    m = _TAG.search(text)
    return _ERRORS.get(m.group(1) if m else "", ControlFailure)(text)


# ---------------------------------------------------------------------------------------------
# Parent side
# ---------------------------------------------------------------------------------------------


def registry_for(worker: Worker, api: str) -> BufferRegistry:
    """The remote-buffer registry of ``worker`` (created on first use); checks lifecycle state."""
    rs = worker._remote
    if rs is None:
        raise InvalidArgument(f"{api}: this Worker has no remote workers (add_remote_worker)")
    state = worker._state.value
    if state == "NEW":
        raise InvalidState(f"{api} before init(): remote buffers live in started sessions")
    if state == "RUNNING" and api not in ("remote_free", "remote_release_import"):
        raise InvalidState(f"{api} during a run; call it before or between runs (only remote_free and "
                           f"remote_release_import may be called from an orchestration function: they defer)")
    if state not in ("READY", "RUNNING"):
        raise InvalidState(f"{api} on a {state} Worker")
    reg = getattr(rs, "_buffers", None)
    if reg is None:
        reg = rs._buffers = BufferRegistry(worker)
    return reg


class BufferRegistry:
    """The parent's view of every remote buffer handle one Worker issued."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.rs = worker._remote
        self.sim: Simulation = worker.simulation
        self.trace = self.sim.trace
        self.scope = worker._scope
        self.handles: list[RemoteBufferHandle] = []
        self.exports: dict[tuple[int, int], ExportBufferResult] = {}
        self.pending: list[RemoteBufferHandle] = []  # released, cleanup not yet confirmed, in request order
        self.inflight: dict[int, Event] = {}  # id(handle) -> reply event of its outstanding cleanup control
        self.closing = False  # close() has waited for every reply: settling sends nothing more
        for ep in self.rs.endpoints.values():
            ep.buffers = self

    # -------------------------------------------------------------------------------- plumbing

    def _endpoint(self, wid: Any, api: str) -> RemoteEndpoint:
        if isinstance(wid, bool) or not isinstance(wid, int | np.integer):
            raise InvalidArgument(f"{api}: worker must be a remote worker id (int), got {wid!r}")
        ep = self.rs.endpoints.get(int(wid))
        if ep is None:
            raise UnknownWorker(f"{api}: worker {wid} is not a remote worker of this Worker "
                                f"(remote worker ids: {sorted(self.rs.endpoints) or 'none'})")
        return ep

    def _send(self, ep: RemoteEndpoint, name: ControlName, command: Any) -> tuple[Event, dict[str, Any]]:
        """Queue one CONTROL; the event fires with the reply (``out['error']`` set on failure)."""
        ev = Event(self.sim.env)
        out: dict[str, Any] = {"error": None, "result": None}

        def reply(err: str | None, cls: str | None, payload: Any) -> None:
            if err is not None:
                out["error"] = reply_error(err, cls)
            else:
                out["result"] = payload.result
            ev.succeed()

        try:
            ep.send_control(name, command, reply)
        except SimError as exc:
            out["error"] = exc
            ev.succeed()
        return ev, out

    def _wait(self, events: list[Event]) -> None:
        pending = [e for e in events if not e.triggered]
        if pending:
            self.sim.env.run(until=self.sim.env.all_of(pending))

    def _call(self, ep: RemoteEndpoint, name: ControlName, command: Any) -> Any:
        ev, out = self._send(ep, name, command)
        self._wait([ev])
        if out["error"] is not None:
            raise out["error"]
        return out["result"]

    def _logged(self, api: str, subject: str, fn: Any) -> Any:
        try:
            value = fn()
        except SimError as exc:
            self.worker._log_call(api, subject, False, exc)
            raise
        self.worker._log_call(api, subject, True)
        return value

    def _own(self, handle: Any, api: str, *, imported: bool | None) -> RemoteBufferHandle:
        if not isinstance(handle, RemoteBufferHandle):
            raise InvalidArgument(f"{api} expects a RemoteBufferHandle, got {type(handle).__name__}")
        if handle._space is RemoteAddressSpace.HOST_INLINE:
            raise InvalidArgument(f"{api}: a HOST_INLINE handle names no remote allocation")
        if handle._registry is not self:
            raise InvalidArgument(f"{api}: the handle was issued by another Worker")
        if imported is False and handle.is_imported:
            raise InvalidArgument(f"{api} expects an owner handle (remote_malloc); this one is imported -- use "
                                  f"remote_release_import for imported handles")
        if imported is True and not handle.is_imported:
            raise InvalidArgument(f"{api} expects an imported handle (remote_import); use remote_free for owner "
                                  f"handles")
        return handle

    @staticmethod
    def _live(handle: RemoteBufferHandle, api: str) -> None:
        if handle._state is not LIVE:
            raise StaleGeneration(f"{api}: buffer {handle._buffer_id} generation {handle._generation} on worker "
                                  f"{handle._worker_id} is {handle._state}; the handle is stale")

    @staticmethod
    def _range(offset: Any, nbytes: Any, limit: int, api: str, *, positive: bool = False) -> tuple[int, int]:
        for what, v in (("offset", offset), ("nbytes", nbytes)):
            if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < 0:
                raise InvalidArgument(f"{api}: {what} must be an int >= 0, got {v!r}")
        if positive and nbytes == 0:
            raise InvalidArgument(f"{api}: nbytes must be > 0")
        if offset + nbytes > limit:
            raise InvalidArgument(f"{api}: range [{offset}, {offset + nbytes}) exceeds the handle's {limit} bytes")
        return int(offset), int(nbytes)

    # -------------------------------------------------------------------------------- public calls

    def malloc(self, worker: Any, nbytes: Any) -> RemoteBufferHandle:
        api = "remote_malloc"

        def go() -> RemoteBufferHandle:
            ep = self._endpoint(worker, api)
            if isinstance(nbytes, bool) or not isinstance(nbytes, int | np.integer) or nbytes <= 0:
                raise InvalidArgument(f"{api}: nbytes must be a positive int, got {nbytes!r}")
            self.flush()
            res: AllocRemoteBufferResult = self._call(ep, ControlName.ALLOC_REMOTE_BUFFER,
                                                      AllocRemoteBufferCommand(int(nbytes)))
            if res.worker_id != ep.worker_id or res.nbytes != nbytes:
                raise ControlFailure(f"{api}: worker {ep.worker_id} answered for worker {res.worker_id} / "
                                     f"{res.nbytes} bytes")
            h = RemoteBufferHandle._mint(registry=self, worker_id=ep.worker_id, owner_worker_id=ep.worker_id,
                                         buffer_id=res.buffer_id, generation=res.generation, nbytes=res.nbytes,
                                         space=RemoteAddressSpace.REMOTE_DEVICE, access=READ_WRITE)
            self.handles.append(h)
            return h

        return self._logged(api, f"w{worker}", go)

    def copy_to(self, handle: Any, host: Any, nbytes: Any, offset: Any) -> None:
        api = "remote_copy_to"

        def go() -> None:
            h = self._own(handle, api, imported=False)
            self._live(h, api)
            start, size = self._range(offset, nbytes, h._nbytes, api)
            data = _host_bytes(host, size, api, writable=False)
            ep = self._endpoint(h._worker_id, api)
            events = []
            for pos in range(0, size, COPY_CHUNK_BYTES):
                chunk = bytes(data[pos:pos + COPY_CHUNK_BYTES])
                events.append(self._send(ep, ControlName.COPY_TO_REMOTE, CopyToRemoteCommand(
                    h._worker_id, h._buffer_id, h._generation, start + pos, chunk)))
            self._wait([e for e, _ in events])
            for _, out in events:
                if out["error"] is not None:
                    raise out["error"]

        self._logged(api, _label(handle), go)

    def copy_from(self, handle: Any, host: Any, nbytes: Any, offset: Any) -> None:
        api = "remote_copy_from"

        def go() -> None:
            h = self._own(handle, api, imported=False)
            self._live(h, api)
            start, size = self._range(offset, nbytes, h._nbytes, api)
            dest = _host_bytes(host, size, api, writable=True)
            ep = self._endpoint(h._worker_id, api)
            events = []
            for pos in range(0, size, COPY_CHUNK_BYTES):
                n = min(COPY_CHUNK_BYTES, size - pos)
                events.append((pos, *self._send(ep, ControlName.COPY_FROM_REMOTE, CopyFromRemoteCommand(
                    h._worker_id, h._buffer_id, h._generation, start + pos, n))))
            self._wait([e for _, e, _ in events])
            for _, _, out in events:
                if out["error"] is not None:
                    raise out["error"]
            for pos, _, out in events:
                res: CopyFromRemoteResult = out["result"]
                dest[pos:pos + len(res.data)] = np.frombuffer(res.data, dtype=np.uint8)

        self._logged(api, _label(handle), go)

    def export(self, handle: Any, offset: Any, nbytes: Any, access: Any, transport_profile: Any) -> RemoteBufferExport:
        api = "remote_export"

        def go() -> RemoteBufferExport:
            h = self._own(handle, api, imported=False)
            self._live(h, api)
            size = h._nbytes - offset if nbytes is None and isinstance(offset, int) else nbytes
            start, size = self._range(offset, size, h._nbytes, api, positive=True)
            flags = access_flags(access)
            if flags & ~h._access:
                raise AccessDenied(f"{api}: {access_label(flags)} access is not granted by the handle "
                                   f"({access_label(h._access)}); an export can only narrow access")
            ep = self._endpoint(h._worker_id, api)
            check_transport_profile(transport_profile, ep.spec.transport, self.sim.config.mode, api)
            res: ExportBufferResult = self._call(ep, ControlName.EXPORT_BUFFER, ExportBufferRequest(
                h._worker_id, h._buffer_id, h._generation, start, size, AccessFlags(flags), transport_profile))
            self.exports[(res.owner_worker_id, res.export_id)] = res
            return RemoteBufferExport._mint(self, res, h)

        return self._logged(api, _label(handle), go)

    def import_(self, exported: Any, worker: Any, access: Any) -> RemoteBufferHandle:
        api = "remote_import"

        def go() -> RemoteBufferHandle:
            if not isinstance(exported, RemoteBufferExport):
                raise InvalidArgument(f"{api} expects a RemoteBufferExport from remote_export, got "
                                      f"{type(exported).__name__}")
            wire = getattr(exported, "_wire", None)
            owner = getattr(exported, "_owner_handle", None)
            issued = self.exports.get((getattr(wire, "owner_worker_id", -1), getattr(wire, "export_id", -1)))
            if getattr(exported, "_registry", None) is not self or issued is None or issued != wire or \
                    not isinstance(owner, RemoteBufferHandle) or owner._registry is not self or \
                    (owner._worker_id, owner._buffer_id, owner._generation) != \
                    (wire.owner_worker_id, wire.buffer_id, wire.generation):
                raise InvalidArgument(f"{api}: the export descriptor was not issued by this Worker's remote_export "
                                      f"or was altered; it is rejected")
            if owner._state is not LIVE:
                raise StaleGeneration(f"{api}: the exported buffer {owner._buffer_id} generation "
                                      f"{owner._generation} is {owner._state}")
            ep = self._endpoint(worker, api)
            flags = int(wire.access_flags) if access is None else access_flags(access)
            if flags & ~int(wire.access_flags):
                raise AccessDenied(f"{api}: requested {access_label(flags)} access is not a subset of the "
                                   f"export's {access_label(int(wire.access_flags))}")
            owner._import_refs += 1  # the owner's physical free waits for this import (and its release)
            ev, out = self._send(ep, ControlName.IMPORT_BUFFER, ImportBufferRequest(
                ep.worker_id, AccessFlags(flags), wire))
            self._wait([ev])
            err = out["error"]
            if err is not None:
                if isinstance(err, EndpointFailure):
                    # Whether the mapping exists cannot be known: keep the owner's free held (uncertain).
                    owner._uncertain_imports += 1
                    self.trace.add(self.sim.now, EventKind.CONTROL, self.scope, "import_uncertain",
                                   f"{_label(owner)} on w{ep.worker_id}")
                else:
                    owner._import_refs -= 1
                    self.flush()
                raise err
            res: ImportBufferResult = out["result"]
            h = RemoteBufferHandle._mint(registry=self, worker_id=ep.worker_id, owner_worker_id=res.owner_worker_id,
                                         buffer_id=res.buffer_id, generation=res.generation, nbytes=res.nbytes,
                                         space=RemoteAddressSpace(res.address_space), access=int(res.access_flags),
                                         import_id=res.import_id, offset=res.offset, owner=owner)
            self.handles.append(h)
            return h

        return self._logged(api, f"w{worker}", go)

    def free(self, handle: Any) -> None:
        self._release(handle, "remote_free", imported=False)

    def release_import(self, handle: Any) -> None:
        self._release(handle, "remote_release_import", imported=True)

    def _release(self, handle: Any, api: str, *, imported: bool) -> None:
        def go() -> None:
            h = self._own(handle, api, imported=imported)
            if h._state is LIVE:
                h._state = RELEASED
                self.pending.append(h)
                self.trace.add(self.sim.now, EventKind.CONTROL, self.scope, api, f"{_label(h)} released")
            elif h not in self.pending:
                return  # already freed (or uncertain): idempotent
            self.flush()
            if self.worker._state.value == "RUNNING":
                return  # inside a run nothing waits: the task replies and the run fence finish the cleanup
            ev = self.inflight.get(id(h))
            if ev is not None:
                self._wait([ev])
            if h._state is UNCERTAIN:
                raise UncertainState(f"{api}: {_label(h)}: cleanup could not be confirmed ({h._error})")
            if h._state is RELEASED and h._error is not None and id(h) not in self.inflight and self._ready(h):
                raise h._error  # the control failed; the cleanup stays pending and is retried

        self._logged(api, _label(handle), go)

    # -------------------------------------------------------------------------------- deferred cleanup

    @staticmethod
    def _ready(h: RemoteBufferHandle) -> bool:
        if h.live_slot_refs():
            return False
        return h.is_imported or (h._import_refs == 0 and h._uncertain_imports == 0)

    def kick(self) -> None:
        """A remote task finished: start any cleanup whose last reference just drained (no waiting)."""
        if self.pending:
            self.flush()

    def flush(self, tried: set[int] | None = None) -> list[Event]:
        """Send the cleanup control of every pending handle that has no live reference left."""
        events = []
        for h in list(self.pending):
            if id(h) in self.inflight or not self._ready(h) or (tried is not None and id(h) in tried):
                continue
            if tried is not None:
                tried.add(id(h))
            ep = self.rs.endpoints[h._worker_id]
            if ep.state.value in ("FAILED", "CLOSED"):
                self._settle(h, UNCERTAIN, EndpointFailure(f"worker {h._worker_id} is {ep.state.value}"))
                continue
            if h.is_imported:
                name = ControlName.RELEASE_IMPORT
                cmd: Any = ReleaseImportRequest(h._worker_id, h._owner_worker_id, h._buffer_id, h._generation,
                                                h._import_id)
            else:
                name = ControlName.FREE_REMOTE_BUFFER
                cmd = FreeRemoteBufferCommand(h._worker_id, h._buffer_id, h._generation)
            ev, out = self._send(ep, name, cmd)
            self.inflight[id(h)] = ev
            events.append(ev)
            ev.callbacks.append(lambda _e, h=h, out=out: self._cleanup_done(h, out["error"]))
        return events

    def _cleanup_done(self, h: RemoteBufferHandle, err: SimError | None) -> None:
        self.inflight.pop(id(h), None)
        if err is None:
            self._settle(h, FREED, None)
        elif isinstance(err, EndpointFailure):
            self._settle(h, UNCERTAIN, err)
        else:
            h._error = err  # stays RELEASED and pending; retried at the next flush
            self.trace.add(self.sim.now, EventKind.CONTROL, self.scope, "cleanup_failed", f"{_label(h)}: {err}")

    def _settle(self, h: RemoteBufferHandle, state: str, err: SimError | None) -> None:
        h._state = state
        h._error = err
        if h in self.pending:
            self.pending.remove(h)
        what = "import released" if h.is_imported else "freed"
        self.trace.add(self.sim.now, EventKind.CONTROL, self.scope, "remote_buffer",
                       f"{_label(h)} {what if state is FREED else 'UNCERTAIN: ' + str(err)}")
        owner = h._owner
        if h.is_imported and owner is not None:
            owner._import_refs -= 1
            if state is not FREED:
                owner._uncertain_imports += 1  # the mapping may still exist: the owner's free stays held
            if owner in self.pending and not self.closing:
                self.flush()

    def fence(self) -> None:
        """Run-fence cleanup: send what can be sent and wait for the replies (bounded by the command timeout)."""
        tried: set[int] = set()  # one attempt per handle per fence: a failing control stays pending
        while True:
            events = self.flush(tried) + list(self.inflight.values())
            if not events:
                return
            self._wait(events)

    def close(self) -> None:
        """``close()`` before SHUTDOWN: every handle ends FREED (confirmed) or UNCERTAIN (not confirmed).

        Handles the user still holds are released by close itself, importer mappings before owner
        allocations. Then every cleanup control is sent and its reply waited for, in dependency order:
        an owner's FREE_REMOTE_BUFFER goes only after each of its imports' RELEASE_IMPORT was confirmed
        (``buffers-and-transports.md`` "Release Policy": physical free waits until imports have
        drained; "HCOMM Adapter Contract": a control returns only on its reply or on a timeout or
        disconnect turned into a failed reply; ``docs/remote-l3-worker-design.md`` "Buffer
        Lifecycle"). A handle is marked FREED only on its confirmation. What stays unconfirmed -- its
        endpoint failed, its control failed again, or it waits on an import that could not be
        released -- is UNCERTAIN with the reason; the SHUTDOWN that follows may free it, but no reply
        ever says so.
        """
        live = [h for h in self.handles if h._state is LIVE]
        for h in [h for h in live if h.is_imported] + [h for h in live if not h.is_imported]:
            h._state = RELEASED
            self.pending.append(h)
            self.trace.add(self.sim.now, EventKind.CONTROL, self.scope, "close", f"{_label(h)} released")
        self.fence()
        # Past the fence no reply will be waited for, so settling what is left must not send a control
        # (an import settled UNCERTAIN would otherwise retry its owner's failed free, never answered).
        self.closing = True
        for h in list(self.pending):
            if h not in self.pending:
                continue  # settled as a side effect of an earlier one
            ep = self.rs.endpoints[h._worker_id]
            if h._error is not None:
                err: SimError = h._error
            elif ep.state.value != "READY":
                err = EndpointFailure(f"worker {h._worker_id} is {ep.state.value}")
            elif h.live_slot_refs():
                err = UncertainState(f"{_label(h)} is still referenced by a task that is not terminal")
            else:
                err = UncertainState(f"{_label(h)}: an import of it could not be released, so its free was "
                                     f"never sent")
            self._settle(h, UNCERTAIN, err)


def _label(h: Any) -> str:
    if not isinstance(h, RemoteBufferHandle):
        return "?"
    if h.is_imported:
        return f"w{h._worker_id}:import{h._import_id}(w{h._owner_worker_id}:b{h._buffer_id}g{h._generation})"
    return f"w{h._worker_id}:b{h._buffer_id}g{h._generation}"


def _host_bytes(host: Any, nbytes: int, api: str, *, writable: bool) -> np.ndarray:
    """A flat uint8 view of a host object (numpy array, bytes-like, sim Tensor or Buffer)."""
    if isinstance(host, Tensor | Buffer):
        host = host.array
    if isinstance(host, np.ndarray):
        if not host.flags.c_contiguous:
            raise InvalidArgument(f"{api}: the host array must be C-contiguous")
        flat = host.reshape(-1).view(np.uint8)
    elif isinstance(host, bytes | bytearray | memoryview):
        flat = np.frombuffer(host, dtype=np.uint8)
    else:
        raise InvalidArgument(f"{api}: host memory must be a numpy array, bytes-like object, Tensor or Buffer, got "
                              f"{type(host).__name__}")
    if flat.size < nbytes:
        raise InvalidArgument(f"{api}: the host object holds {flat.size} bytes, fewer than nbytes={nbytes}")
    if writable and not flat.flags.writeable:
        raise InvalidArgument(f"{api}: the host destination is read-only")
    return flat


def check_transport_profile(profile: Any, advertised: str, mode: str, api: str) -> None:
    """Conformance mode serves host_tcp only; experiment mode the owner's (what-if) transport."""
    if not isinstance(profile, str) or not profile:
        raise InvalidArgument(f"{api}: transport_profile must be a non-empty string, got {profile!r}")
    if profile in ("roce", "hccs", "ub") and mode != "experiment":
        raise NotSupported(f"{api}: transport profile {profile!r} (HCOMM) is not implemented; use {HOST_TCP!r}, "
                           f"or SimConfig(mode='experiment') for a what-if link")
    if profile != advertised:
        raise InvalidArgument(f"{api}: transport profile {profile!r} is not the one the owner's session advertises "
                              f"({advertised!r})")


# ---------------------------------------------------------------------------------------------
# Submit path (parent)
# ---------------------------------------------------------------------------------------------


def check_remote_tensors(worker: Worker, eps: list[RemoteEndpoint], args_list: Any, api: str) -> None:
    """Every tensor of a remote submit is a live, eligible RemoteTensorRef whose handle grants its tag."""
    from sim.task_args import TaskArgs

    reg = getattr(worker._remote, "_buffers", None)
    for i, args in enumerate(args_list):
        if not isinstance(args, TaskArgs) or not args._refs:
            continue
        ep = eps[i] if len(eps) == len(args_list) else eps[0]
        where = f"member {i} " if len(args_list) > 1 else ""
        inline = 0
        for j, (ref, tag) in enumerate(zip(args._refs, args._tags, strict=True)):
            if type(ref) is not RemoteArgRef:
                raise InvalidArgument(
                    f"{api}: {where}tensor argument {j} is a local tensor; a remote worker takes remote data only "
                    f"(RemoteTensorRef over remote_malloc + remote_copy_to, or RemoteTensorRef.host_inline)")
            src = ref.source
            h = src.handle
            if src.is_inline:
                granted = READ
                inline += src.nbytes
            else:
                if h._state is not LIVE:
                    raise StaleGeneration(f"{api}: {where}tensor argument {j}: buffer {h._buffer_id} generation "
                                          f"{h._generation} is {h._state}")
                if reg is None or h._registry is not reg:
                    raise InvalidArgument(f"{api}: {where}tensor argument {j}: the handle was issued by another "
                                          f"Worker")
                granted = h._access
            need = required_access(tag)
            if need & ~granted:
                raise AccessDenied(f"{api}: {where}tensor argument {j} tagged {TensorArgType(tag).name} needs "
                                   f"{access_label(need)} access; its handle grants {access_label(granted)} "
                                   f"(access_flags={granted})")
            if not src.is_inline and h._worker_id != ep.worker_id:
                kind = "imported on" if h.is_imported else "owned by"
                raise InvalidArgument(f"{api}: {where}tensor argument {j}: its buffer is {kind} remote worker "
                                      f"{h._worker_id}, so a task on worker {ep.worker_id} cannot use it; import it "
                                      f"there (remote_export + remote_import) first")
        if inline > MAX_INLINE_PAYLOAD_BYTES:
            raise InvalidArgument(f"{api}: {where}HOST_INLINE payloads total {inline} bytes, over the "
                                  f"{MAX_INLINE_PAYLOAD_BYTES}-byte inline arena")


def capture_slot_refs(task: Any) -> None:
    """Submit: every remote handle the task names holds a slot reference until the task is terminal."""
    for m in task.members:
        for ref in m[0]:
            h = ref.source.handle
            if h._registry is not None and task not in h._slot_tasks:
                h._slot_tasks.append(task)


_ACCESS_MODE = {TensorArgType.INPUT: AccessMode.READ, TensorArgType.OUTPUT: AccessMode.WRITE,
                TensorArgType.OUTPUT_EXISTING: AccessMode.WRITE}


def remote_task_args(member: tuple) -> RemoteTaskArgs:
    """``RemoteTaskArgsWire`` of one member: REMOTE_SIDECAR tensor records, descriptors, inline arena."""
    refs, scalars, _values, tags = member
    if not refs:
        return RemoteTaskArgs(scalars=tuple(scalars))
    tensors = []
    descs = []
    arena = bytearray()
    for ref, tag in zip(refs, tags, strict=True):
        src = ref.source
        h = src.handle
        n = src.nbytes
        dims = src.shape
        strides = tuple(int(np.prod(dims[k + 1:], dtype=np.int64)) for k in range(len(dims)))
        if src.is_inline:
            desc = RemoteTensorDesc(RemoteAddressSpace.HOST_INLINE, nbytes=n, inline_payload_offset=len(arena),
                                    inline_payload_len=n)
            arena += src._payload
            ids = (0, 1)
        else:
            window = h.is_imported
            desc = RemoteTensorDesc(h._space, h._owner_worker_id, h._buffer_id, h._offset + src.offset, n,
                                    rkey_or_token=h._import_id if window else 0, generation=h._generation)
            ids = (h._buffer_id, h._generation)
        space = BufferAddressSpace.DEVICE if h._space is RemoteAddressSpace.REMOTE_DEVICE else BufferAddressSpace.HOST
        buf = BufferDescriptorWire(_OWNER_INSTANCE, ids[0], ids[1], space,
                                   _ACCESS_MODE.get(tag, AccessMode.READWRITE), n)
        tensors.append(TensorWire(buf, dims, strides, DataType.from_numpy(src.dtype)))
        descs.append(desc)
    return RemoteTaskArgs(tuple(tensors), tuple(descs), tuple(scalars), bytes(arena))


# ---------------------------------------------------------------------------------------------
# Session side
# ---------------------------------------------------------------------------------------------

# Exported windows of one simulation, by opaque token: the in-process stand-in for host_tcp's
# shared-memory segments. Only the owner session adds and removes entries.
_WINDOWS: weakref.WeakKeyDictionary[Any, dict[bytes, Buffer]] = weakref.WeakKeyDictionary()


class _Owned:
    __slots__ = ("buf", "generation", "nbytes", "tokens")

    def __init__(self, buf: Buffer, generation: int, nbytes: int) -> None:
        self.buf = buf
        self.generation = generation
        self.nbytes = nbytes
        self.tokens: list[bytes] = []


class _Mapping:
    __slots__ = ("access", "buf", "buffer_id", "generation", "nbytes", "offset", "owner")

    def __init__(self, owner: int, buffer_id: int, generation: int, offset: int, nbytes: int, access: int,
                 buf: Buffer) -> None:
        self.owner = owner
        self.buffer_id = buffer_id
        self.generation = generation
        self.offset = offset
        self.nbytes = nbytes
        self.access = access
        self.buf = buf


class SessionBuffers:
    """The buffer and import registry of one remote session: real bytes, ids, generations, windows."""

    def __init__(self, session: RemoteSession) -> None:
        self.session = session
        self.worker_id = session.worker_id
        self.functional = session.sim.functional
        self.owned: dict[int, _Owned] = {}  # buffer_id -> live allocation
        self.generations: dict[int, int] = {}  # buffer_id -> last generation issued
        self.free_ids: list[int] = []  # freed ids, reused under a new generation
        self.next_id = 1
        self.exports: dict[int, tuple[int, int]] = {}  # export_id -> (buffer_id, generation)
        self.next_export = 1
        self.imports: dict[int, _Mapping] = {}
        self.released_imports: set[tuple[int, int, int, int]] = set()
        self.next_import = 1
        self.freed: list[tuple[float, int, int]] = []  # (virtual time, buffer_id, generation): physical frees
        self.windows = _WINDOWS.setdefault(session.sim, {})

    def _trace(self, subject: str, detail: str) -> None:
        s = self.session
        s.trace.add(s.env.now, EventKind.CONTROL, s.scope, subject, detail)

    def _entry(self, buffer_id: int, generation: int, what: str) -> _Owned:
        e = self.owned.get(buffer_id)
        if e is None or e.generation != generation:
            if e is not None or buffer_id in self.generations:
                raise StaleGeneration(f"{what}: buffer {buffer_id} generation {generation} is not live "
                                      f"(live generation: {e.generation if e else 'none'})")
            raise InvalidArgument(f"{what}: buffer {buffer_id} is unknown on worker {self.worker_id}")
        return e

    def _mine(self, wid: int, what: str) -> None:
        if wid != self.worker_id:
            raise InvalidArgument(f"{what} names worker {wid}, but this session is worker {self.worker_id}")

    def apply(self, name: ControlName, cmd: Any) -> Any:
        """Apply one buffer CONTROL; raise (tagged message) to answer it with an error."""
        try:
            return self._apply(name, cmd)
        except SimError as exc:
            raise RuntimeError(tagged(exc)) from None

    def _apply(self, name: ControlName, cmd: Any) -> Any:
        what = name.name
        if name is ControlName.ALLOC_REMOTE_BUFFER:
            bid = self.free_ids.pop(0) if self.free_ids else self._new_id()
            gen = self.generations.get(bid, 0) + 1
            self.generations[bid] = gen
            buf = Buffer(cmd.nbytes, owner=self.session.scope, with_data=self.functional)
            self.owned[bid] = _Owned(buf, gen, cmd.nbytes)
            self._trace("alloc", f"b{bid}g{gen} {cmd.nbytes}B")
            return AllocRemoteBufferResult(self.worker_id, bid, gen, cmd.nbytes)
        if name is ControlName.FREE_REMOTE_BUFFER:
            self._mine(cmd.owner_worker_id, what)
            e = self.owned.get(cmd.buffer_id)
            if e is None or e.generation != cmd.generation:
                return None  # already freed: idempotent by (buffer_id, generation)
            del self.owned[cmd.buffer_id]
            for token in e.tokens:
                self.windows.pop(token, None)
            self.exports = {k: v for k, v in self.exports.items() if v != (cmd.buffer_id, cmd.generation)}
            e.buf.close()
            self.free_ids.append(cmd.buffer_id)
            self.freed.append((self.session.env.now, cmd.buffer_id, cmd.generation))
            self._trace("physical_free", f"b{cmd.buffer_id}g{cmd.generation}")
            return None
        if name is ControlName.COPY_TO_REMOTE:
            self._mine(cmd.worker_id, what)
            e = self._entry(cmd.buffer_id, cmd.generation, what)
            if cmd.offset + len(cmd.data) > e.nbytes:
                raise InvalidArgument(f"{what}: range exceeds the {e.nbytes}-byte buffer")
            if e.buf.array is not None:
                e.buf.array[cmd.offset:cmd.offset + len(cmd.data)] = np.frombuffer(cmd.data, dtype=np.uint8)
            return None
        if name is ControlName.COPY_FROM_REMOTE:
            self._mine(cmd.worker_id, what)
            e = self._entry(cmd.buffer_id, cmd.generation, what)
            if cmd.offset + cmd.nbytes > e.nbytes:
                raise InvalidArgument(f"{what}: range exceeds the {e.nbytes}-byte buffer")
            raw = e.buf.array
            data = raw[cmd.offset:cmd.offset + cmd.nbytes].tobytes() if raw is not None else bytes(cmd.nbytes)
            return CopyFromRemoteResult(data)
        if name is ControlName.EXPORT_BUFFER:
            self._mine(cmd.owner_worker_id, what)
            e = self._entry(cmd.buffer_id, cmd.generation, what)
            if cmd.nbytes == 0 or cmd.offset + cmd.nbytes > e.nbytes:
                raise InvalidArgument(f"{what}: range [{cmd.offset}, {cmd.offset + cmd.nbytes}) is empty or exceeds "
                                      f"the {e.nbytes}-byte buffer")
            advertised = self.session.manifest.transport
            if cmd.transport_profile not in ("", advertised):
                raise InvalidArgument(f"{what}: transport profile {cmd.transport_profile!r} is not advertised by "
                                      f"this session ({advertised!r})")
            eid = self.next_export
            self.next_export += 1
            self.exports[eid] = (cmd.buffer_id, cmd.generation)
            token = f"sim-window/{self.session.session_id:x}/{eid}".encode()
            self.windows[token] = e.buf
            e.tokens.append(token)
            return ExportBufferResult(self.worker_id, cmd.buffer_id, cmd.generation, RemoteAddressSpace.REMOTE_WINDOW,
                                      cmd.offset, cmd.nbytes, eid, cmd.access_flags, rkey_or_token=eid,
                                      transport_profile=advertised, transport_descriptor=token)
        if name is ControlName.IMPORT_BUFFER:
            self._mine(cmd.importer_worker_id, what)
            d = cmd.export_desc
            if d.transport_profile != self.session.manifest.transport:
                raise InvalidArgument(f"{what}: export profile {d.transport_profile!r} is not this session's")
            buf = self.windows.get(d.transport_descriptor)
            if buf is None or buf.closed:
                raise StaleGeneration(f"{what}: the exported window of buffer {d.buffer_id} generation "
                                      f"{d.generation} on worker {d.owner_worker_id} is gone")
            req = int(cmd.requested_access_flags)
            if req == 0 or req & ~int(d.access_flags):
                raise AccessDenied(f"{what}: requested access {req} is not a non-empty subset of {int(d.access_flags)}")
            iid = self.next_import
            self.next_import += 1
            self.imports[iid] = _Mapping(d.owner_worker_id, d.buffer_id, d.generation, d.offset, d.nbytes, req, buf)
            self._trace("import", f"import{iid} of w{d.owner_worker_id}:b{d.buffer_id}g{d.generation}")
            return ImportBufferResult(self.worker_id, d.owner_worker_id, d.buffer_id, d.generation, iid,
                                      d.address_space, d.offset, d.nbytes, AccessFlags(req), rkey_or_token=iid,
                                      transport_profile=d.transport_profile)
        if name is ControlName.RELEASE_IMPORT:
            self._mine(cmd.importer_worker_id, what)
            key = (cmd.owner_worker_id, cmd.buffer_id, cmd.generation, cmd.import_id)
            m = self.imports.get(cmd.import_id)
            if m is None:
                if key in self.released_imports:
                    return None  # a repeated release of the same mapping is idempotent
                raise InvalidArgument(f"{what}: import {cmd.import_id} is unknown")
            if (m.owner, m.buffer_id, m.generation) != key[:3]:
                raise InvalidArgument(f"{what}: import {cmd.import_id} maps another buffer")
            del self.imports[cmd.import_id]
            self.released_imports.add(key)
            self._trace("release_import", f"import{cmd.import_id}")
            return None
        raise NotSupported(f"{what} is not a buffer control")  # pragma: no cover - callers route by name

    def _new_id(self) -> int:
        bid = self.next_id
        self.next_id += 1
        return bid

    def materialize(self, args: RemoteTaskArgs) -> list[Tensor]:
        """The tensors a remote orchestration function receives: views over this session's live backings."""
        out = []
        for i, (tensor, desc) in enumerate(zip(args.tensors, args.remote_desc, strict=True)):
            where = f"remote_desc[{i}]"
            if desc is None:
                raise InvalidArgument(f"{where}: a remote TASK tensor requires a sidecar descriptor")
            if desc.nbytes != tensor.buffer.nbytes:
                raise InvalidArgument(f"{where}: nbytes {desc.nbytes} differs from the tensor's {tensor.buffer.nbytes}")
            dtype = DataType(tensor.dtype).numpy
            if desc.address_space == RemoteAddressSpace.HOST_INLINE:
                start = desc.inline_payload_offset
                buf = Buffer(desc.nbytes, owner=self.session.scope, with_data=self.functional)
                if buf.array is not None:
                    buf.array[:] = np.frombuffer(args.inline_payload[start:start + desc.nbytes], dtype=np.uint8)
                out.append(buf.tensor(tensor.shapes, dtype))
                continue
            if desc.address_space == RemoteAddressSpace.REMOTE_DEVICE:
                if desc.owner_worker_id != self.worker_id:
                    raise InvalidArgument(f"{where}: names worker {desc.owner_worker_id}'s buffer without an import")
                e = self._entry(desc.buffer_id, desc.generation, where)
                lo, hi, buf = 0, e.nbytes, e.buf
            else:
                m = self.imports.get(desc.rkey_or_token)
                if m is None or (m.owner, m.buffer_id) != (desc.owner_worker_id, desc.buffer_id):
                    raise InvalidArgument(f"{where}: names no live import on worker {self.worker_id}")
                if m.generation != desc.generation:
                    raise StaleGeneration(f"{where}: stale generation {desc.generation}; the import maps "
                                          f"{m.generation}")
                lo, hi, buf = m.offset, m.offset + m.nbytes, m.buf
            if desc.offset < lo or desc.offset + desc.nbytes > hi:
                raise InvalidArgument(f"{where}: range [{desc.offset}, {desc.offset + desc.nbytes}) is outside the "
                                      f"handle's [{lo}, {hi})")
            out.append(buf.tensor(tensor.shapes, dtype, byte_offset=desc.offset))
        return out

    def shutdown(self) -> None:
        """SHUTDOWN: importer mappings first, then the session's own allocations (recorded in the trace)."""
        for iid in sorted(self.imports):
            self._trace("release_import", f"import{iid} at shutdown")
        self.imports.clear()
        for bid in sorted(self.owned):
            e = self.owned.pop(bid)
            for token in e.tokens:
                self.windows.pop(token, None)
            e.buf.close()
            self.freed.append((self.session.env.now, bid, e.generation))
            self._trace("physical_free", f"b{bid}g{e.generation} at shutdown")


def reject_domain_control(name: ControlName) -> None:
    """Remote CommDomain controls are reserved in this protocol split (and not modeled as what-ifs)."""
    raise RuntimeError(tagged(NotSupported(f"{name.name}: Remote CommDomain controls are reserved and not "
                                           f"implemented by the session")))


__all__ = ["BUFFER_CONTROLS", "DOMAIN_CONTROLS", "WRITE", "BufferRegistry", "SessionBuffers", "registry_for"]
