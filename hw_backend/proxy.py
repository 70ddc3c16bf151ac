"""A frame-aware TCP fault proxy for the real remote-L3 (SLR3) transport.

Spec: upstream ``docs/remote-l3-worker-design/protocol.md`` -- "Frames" (the 40-byte versioned
header by which the byte stream is cut into frames; reply frames carry the sequence of the request
they answer), "COMPLETION Payload" and "CONTROL_REPLY Payload" (the shape of an error reply the
parent accepts), "Ordering" (one ordered command lane per endpoint, health on an independent lane).
Transport facts follow the shipped host_tcp code (``python/simpler/remote_l3_session.py``,
``src/common/hierarchical/remote_endpoint.cpp``): a session listens on two TCP ports, one for the
command lane (HELLO first, then TASK / CONTROL requests and their COMPLETION / CONTROL_REPLY) and
one for the health lane (a stream of empty HEALTH frames towards the parent). Each port is proxied
by its own :class:`FaultProxy`; one proxy accepts any number of connections and proxies each one
independently (the parent opens a second, short command connection to deliver SHUTDOWN at close).

Every frame is cut with :func:`sim.remote.wire.decode_header` and decoded with
:func:`sim.remote.wire.decode_frame` (tierbed's codec; no second parser here). The first
:class:`Rule` in the list that matches a frame decides what happens to it:

- ``DROP``: the frame is not forwarded;
- ``DELAY``: the frame is forwarded ``delay_ms`` later; later frames in the same direction wait
  behind it, as they would on one TCP stream;
- ``CLOSE``: the frame is not forwarded and both sockets of that connection are shut down;
- ``CORRUPT``: bytes at ``offset`` (a frame offset, or a header field name such as ``"version"``)
  are overwritten with ``data`` or XOR-ed with ``xor``, and the frame is forwarded;
- ``REPLY_ERROR``: a TASK or CONTROL request is swallowed and the sender gets the matching error
  reply: COMPLETION, or CONTROL_REPLY with the request's control name and version, carrying the
  request's session id, worker id and sequence, a non-zero ``error_code`` and no result.

Bytes that do not decode never crash the proxy. A bad header (wrong magic, version, frame type,
flags or length) means frame boundaries are lost: the event is recorded and that direction of the
connection turns into a plain byte relay (no more rules), so the receiving peer judges the bytes
itself. A good header with a payload that does not decode is recorded and the frame is forwarded
unchanged; rules that need the payload (a ``control`` filter, ``REPLY_ERROR``) do not match it.

Every applied action, undecodable frame and connection failure is appended to an ordered event log
(:attr:`FaultProxy.events`). Rule counters (``nth``) and the seeded draws (``probability``) are kept
per proxy, in the order the proxy sees matching frames.

The parent does not learn the two session ports from any SLR3 frame (HELLO carries none): the
remote worker daemon announces them in its JSON reply to the bootstrap manifest, on a separate
connection framed as ``uint32`` little-endian length + UTF-8 JSON. :class:`BootstrapRelay` stands
in for the daemon's address, passes the manifest through unchanged, puts a command-lane and a
health-lane :class:`FaultProxy` in front of the ports the daemon announces, and rewrites those
addresses in the reply, so the real parent reaches its session only through the proxies.
"""

from __future__ import annotations

import contextlib
import enum
import json
import math
import random
import select
import socket
import struct
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sim.errors import InvalidArgument, InvalidState, ProtocolError
from sim.remote.wire import (
    FRAME_HEADER_BYTES,
    HEADER_FIELD_OFFSETS,
    MAX_ERROR_BYTES,
    CompletionPayload,
    ControlName,
    ControlPayload,
    ControlReplyPayload,
    Frame,
    FrameHeader,
    FrameType,
    TaskPayload,
    decode_frame,
    decode_header,
    encode_frame,
)

__all__ = ["Action", "BootstrapRelay", "Direction", "FaultProxy", "ProxyError", "ProxyEvent", "RelayedSession", "Rule"]

_I32_MIN, _I32_MAX = -(1 << 31), (1 << 31) - 1
_RECV_BYTES = 1 << 16
_MAX_BOOTSTRAP_BYTES = 16 * 1024 * 1024  # the daemon's own bound on a manifest or reply


class ProxyError(InvalidArgument):
    """A fault rule or proxy setting that cannot be applied; the message names the bad field."""


class Direction(enum.Enum):
    """Which way a frame travels through the proxy."""

    TO_SESSION = "to_session"  # from the accepted (parent) socket to the upstream (session)
    TO_PARENT = "to_parent"  # from the upstream (session) back to the parent


class Action(enum.Enum):
    """What a matching rule does to the frame."""

    DROP = "drop"
    DELAY = "delay"
    CLOSE = "close"
    CORRUPT = "corrupt"
    REPLY_ERROR = "reply_error"


_CONTROL_FRAMES = (FrameType.CONTROL, FrameType.CONTROL_REPLY)
_REQUESTS = (FrameType.TASK, FrameType.CONTROL)


def _member(cls: type[enum.Enum], value: Any, what: str) -> Any:
    """``value`` as a member of ``cls``: a member, its name (any case) or, for Direction/Action, its value."""
    if isinstance(value, cls):
        return value
    if isinstance(value, str):
        key = value.strip().upper()
        if key in cls.__members__:
            return cls.__members__[key]
        for member in cls:
            if isinstance(member.value, str) and member.value == value.strip().lower():
                return member
    elif isinstance(value, int) and not isinstance(value, bool) and issubclass(cls, enum.IntEnum):
        with contextlib.suppress(ValueError):
            return cls(value)
    names = ", ".join(cls.__members__)
    raise ProxyError(f"{what}: unknown {cls.__name__} {value!r}; expected one of {names}")


def _rules(rules: Sequence[Rule], what: str) -> tuple[Rule, ...]:
    for i, rule in enumerate(rules):
        if not isinstance(rule, Rule):
            raise ProxyError(f"{what}[{i}] must be a Rule, got {type(rule).__name__}")
    return tuple(rules)


def _seconds(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < math.inf:
        raise ProxyError(f"{what} must be a positive finite number of seconds, got {value!r}")
    return float(value)


def _int(value: Any, what: str, lo: int, hi: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < lo or (hi is not None and value > hi):
        bound = f">= {lo}" if hi is None else f"in [{lo}, {hi}]"
        raise ProxyError(f"{what} must be an integer {bound}, got {value!r}")
    return value


@dataclass(frozen=True)
class Rule:
    """One fault: which frames it matches and what it does to them.

    Filters (``None`` matches anything): ``direction``; ``frame_type`` (member or name);
    ``control`` (a control name; only CONTROL / CONTROL_REPLY frames carry one); ``sequence`` (the
    header sequence); ``nth`` (fire only on the nth frame that passes the other filters, 1-based);
    ``probability`` (fire on each such frame with this chance, drawn from the proxy's seeded stream).
    Action parameters: ``delay_ms`` (DELAY); ``offset``, ``data``, ``xor`` (CORRUPT: overwrite
    ``data`` at ``offset``, or XOR one byte at ``offset`` with ``xor`` when ``data`` is empty; bytes
    past the frame end are skipped); ``error_code``, ``error_message`` (REPLY_ERROR).
    """

    action: Action
    direction: Direction | None = None
    frame_type: FrameType | None = None
    control: ControlName | None = None
    sequence: int | None = None
    nth: int | None = None
    probability: float = 1.0
    delay_ms: float = 0.0
    offset: int | str = 0
    data: bytes = b""
    xor: int = 0xFF
    error_code: int = 1
    error_message: str = ""

    def __post_init__(self) -> None:
        put = object.__setattr__
        action = _member(Action, self.action, "Rule.action")
        put(self, "action", action)
        if self.direction is not None:
            put(self, "direction", _member(Direction, self.direction, "Rule.direction"))
        if self.frame_type is not None:
            put(self, "frame_type", _member(FrameType, self.frame_type, "Rule.frame_type"))
        if self.control is not None:
            put(self, "control", _member(ControlName, self.control, "Rule.control"))
            if self.frame_type is not None and self.frame_type not in _CONTROL_FRAMES:
                raise ProxyError(f"Rule.control needs frame_type CONTROL or CONTROL_REPLY, not {self.frame_type.name}")
        if self.sequence is not None:
            _int(self.sequence, "Rule.sequence", 0)
        if self.nth is not None:
            _int(self.nth, "Rule.nth", 1)
        p = self.probability
        if isinstance(p, bool) or not isinstance(p, int | float) or not 0 < p <= 1:
            raise ProxyError(f"Rule.probability must be a number in (0, 1], got {p!r}")
        if self.nth is not None and p != 1:
            raise ProxyError("Rule.nth and Rule.probability < 1 cannot be combined")
        d = self.delay_ms
        if isinstance(d, bool) or not isinstance(d, int | float) or not math.isfinite(d) or d < 0:
            raise ProxyError(f"Rule.delay_ms must be a finite number of milliseconds >= 0, got {d!r}")
        if action is Action.DELAY and d == 0:
            raise ProxyError("Rule.delay_ms must be > 0 for a DELAY rule")
        if action is not Action.DELAY and d != 0:
            raise ProxyError(f"Rule.delay_ms only applies to DELAY, not {action.name}")
        self._check_corrupt(action)
        self._check_reply(action)

    def _check_corrupt(self, action: Action) -> None:
        offset = self.offset
        if isinstance(offset, str):
            name = offset.removeprefix("header.")
            if name not in HEADER_FIELD_OFFSETS:
                fields = ", ".join(HEADER_FIELD_OFFSETS)
                raise ProxyError(f"Rule.offset: unknown header field {offset!r}; expected one of {fields}")
            object.__setattr__(self, "offset", HEADER_FIELD_OFFSETS[name])
        else:
            _int(offset, "Rule.offset", 0)
        if not isinstance(self.data, bytes | bytearray):
            raise ProxyError(f"Rule.data must be bytes, got {type(self.data).__name__}")
        object.__setattr__(self, "data", bytes(self.data))
        _int(self.xor, "Rule.xor", 1, 0xFF)
        if action is not Action.CORRUPT and (self.offset or self.data or self.xor != 0xFF):
            raise ProxyError(f"Rule.offset/data/xor only apply to CORRUPT, not {action.name}")

    def _check_reply(self, action: Action) -> None:
        if action is Action.REPLY_ERROR:
            if self.direction is Direction.TO_PARENT:
                raise ProxyError("REPLY_ERROR answers a request, so Rule.direction must be TO_SESSION")
            object.__setattr__(self, "direction", Direction.TO_SESSION)
            if self.control is not None and self.frame_type is None:
                object.__setattr__(self, "frame_type", FrameType.CONTROL)
            if self.frame_type not in _REQUESTS:
                got = "any frame type" if self.frame_type is None else self.frame_type.name
                raise ProxyError(f"REPLY_ERROR needs Rule.frame_type TASK or CONTROL (a request), got {got}")
        elif self.error_code != 1 or self.error_message:
            raise ProxyError(f"Rule.error_code/error_message only apply to REPLY_ERROR, not {action.name}")
        _int(self.error_code, "Rule.error_code", _I32_MIN, _I32_MAX)
        if self.error_code == 0:
            raise ProxyError("Rule.error_code must be non-zero (zero means success)")
        if not isinstance(self.error_message, str) or len(self.error_message.encode("utf-8")) > MAX_ERROR_BYTES:
            raise ProxyError(f"Rule.error_message must be a str of at most {MAX_ERROR_BYTES} UTF-8 bytes")

    def matches(self, direction: Direction, header: FrameHeader, control: ControlName | None) -> bool:
        """Whether a frame passes this rule's filters (``nth`` and ``probability`` aside)."""
        if self.direction is not None and direction is not self.direction:
            return False
        if self.frame_type is not None and header.frame_type is not self.frame_type:
            return False
        if self.control is not None and control is not self.control:
            return False
        return self.sequence is None or header.sequence == self.sequence


@dataclass(frozen=True)
class ProxyEvent:
    """One entry of the event log: an applied action, an undecodable frame, or a connection failure.

    ``kind`` is an :class:`Action` value, or ``"undecodable"``, ``"truncated"`` (a connection ended
    inside a frame), ``"upstream_failed"``, ``"io_failed"``. ``at_s`` is seconds since the proxy
    started (monotonic clock); ``connection`` numbers accepted connections from 1.
    """

    index: int
    at_s: float
    proxy: str
    connection: int
    direction: Direction | None
    kind: str
    rule: int | None = None
    frame_type: FrameType | None = None
    control: ControlName | None = None
    sequence: int | None = None
    detail: str = ""


@dataclass
class _Conn:
    """One accepted connection and its upstream twin; fds are closed once both pumps have finished."""

    number: int
    client: socket.socket
    upstream: socket.socket | None = None
    aborted: threading.Event = field(default_factory=threading.Event)
    pumps_left: int = 2
    mu: threading.Lock = field(default_factory=threading.Lock)
    client_send: threading.Lock = field(default_factory=threading.Lock)
    upstream_send: threading.Lock = field(default_factory=threading.Lock)

    def send(self, sock: socket.socket, data: bytes) -> None:
        # The reply-error path writes to the parent socket from the other pump; frames must not interleave.
        with self.client_send if sock is self.client else self.upstream_send:
            sock.sendall(data)

    @property
    def finished(self) -> bool:
        with self.mu:
            return self.pumps_left == 0

    def abort(self) -> None:
        """Shut both sockets down (both peers see EOF); the pumps then finish and the fds are closed."""
        self.aborted.set()
        for sock in (self.client, self.upstream):
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def pump_done(self) -> None:
        with self.mu:
            self.pumps_left -= 1
            last = self.pumps_left == 0
        if last:
            self.close_fds()

    def close_fds(self) -> None:
        for sock in (self.client, self.upstream):
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.close()


class FaultProxy:
    """A loopback TCP proxy to ``upstream`` that applies ``rules`` to SLR3 frames in both directions.

    Use as a context manager (or :meth:`start` / :meth:`close`). ``port=0`` binds an ephemeral port;
    :attr:`address` is what the parent must connect to. ``io_timeout_s`` bounds the upstream connect
    and every send, ``join_timeout_s`` bounds :meth:`close`; ``poll_s`` is how often idle threads look
    at the stop flag.
    """

    def __init__(
        self,
        upstream: tuple[str, int],
        rules: Sequence[Rule] = (),
        *,
        seed: int = 0,
        name: str = "proxy",
        host: str = "127.0.0.1",
        port: int = 0,
        io_timeout_s: float = 10.0,
        join_timeout_s: float = 5.0,
        poll_s: float = 0.05,
    ) -> None:
        if not (isinstance(upstream, tuple) and len(upstream) == 2 and isinstance(upstream[0], str)):
            raise ProxyError(f"FaultProxy.upstream must be a (host, port) tuple, got {upstream!r}")
        _int(upstream[1], "FaultProxy.upstream port", 1, 65535)
        _int(port, "FaultProxy.port", 0, 65535)
        self._io_timeout_s = _seconds(io_timeout_s, "FaultProxy.io_timeout_s")
        self._join_timeout_s = _seconds(join_timeout_s, "FaultProxy.join_timeout_s")
        self._poll_s = _seconds(poll_s, "FaultProxy.poll_s")
        self.rules = _rules(rules, "FaultProxy.rules")
        self.upstream = upstream
        self.name = name
        self._bind = (host, port)
        self._rngs = [random.Random(f"{seed}:{i}") for i in range(len(self.rules))]
        self._hits = [0] * len(self.rules)
        self._mu = threading.Lock()
        self._changed = threading.Condition(self._mu)
        self._events: list[ProxyEvent] = []
        self._frames: Counter[tuple[Direction, FrameType]] = Counter()
        self._conns: list[_Conn] = []
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()
        self._listener: socket.socket | None = None
        self._started = 0.0
        self._accepted = 0

    # --- lifecycle ------------------------------------------------------------------------------
    def start(self) -> FaultProxy:
        """Bind, listen and start accepting; returns ``self``."""
        if self._listener is not None or self._stop.is_set():
            raise InvalidState(f"FaultProxy {self.name!r} can be started once")
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            listener.bind(self._bind)
            listener.listen(16)
        except OSError:
            listener.close()
            raise
        self._listener = listener
        self._started = time.monotonic()
        self._spawn(self._accept_loop, f"{self.name}-accept")
        return self

    def close(self) -> None:
        """Stop accepting, shut every connection down, join every thread and close every socket."""
        self._stop.set()
        with self._mu:
            conns = list(self._conns)
        for conn in conns:
            conn.abort()
        deadline = time.monotonic() + self._join_timeout_s
        # Re-read the list: a connection thread may still start its second pump while this runs.
        while (live := self.live_threads()) and time.monotonic() < deadline:
            live[0].join(max(0.0, deadline - time.monotonic()))
        if self._listener is not None:
            self._listener.close()
        for conn in conns:  # normally already closed by their pumps; this covers a pump that did not finish
            conn.close_fds()

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- observation ----------------------------------------------------------------------------
    @property
    def address(self) -> tuple[str, int]:
        """The (host, port) the proxy listens on."""
        if self._listener is None:
            raise InvalidState(f"FaultProxy {self.name!r} is not started")
        host, port = self._listener.getsockname()[:2]
        return host, port

    @property
    def events(self) -> tuple[ProxyEvent, ...]:
        """The event log so far, in order."""
        with self._mu:
            return tuple(self._events)

    @property
    def accepted(self) -> int:
        """How many connections the proxy has accepted."""
        with self._mu:
            return self._accepted

    def frame_counts(self) -> dict[tuple[Direction, FrameType], int]:
        """Whole frames seen so far (forwarded or not), by direction and frame type."""
        with self._mu:
            return dict(self._frames)

    def live_threads(self) -> list[threading.Thread]:
        """Threads this proxy started that are still running (empty after a clean :meth:`close`)."""
        with self._mu:
            return [t for t in self._threads if t.is_alive()]

    def wait_for(
        self, predicate: Callable[[ProxyEvent], bool], count: int = 1, timeout_s: float = 5.0
    ) -> list[ProxyEvent]:
        """Block until ``count`` events satisfy ``predicate``; raises ``TimeoutError`` naming what was seen."""
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while True:
                hits = [e for e in self._events if predicate(e)]
                remaining = deadline - time.monotonic()
                if len(hits) >= count or remaining <= 0:
                    break
                self._changed.wait(remaining)
        if len(hits) < count:
            raise TimeoutError(f"{self.name}: {len(hits)} of {count} events after {timeout_s}s; log: {self.events}")
        return hits

    # --- internals ------------------------------------------------------------------------------
    def _spawn(self, target: Callable[..., None], name: str, *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        with self._mu:
            self._threads = [t for t in self._threads if t.is_alive()]
            self._threads.append(thread)
        thread.start()

    def _record(self, conn: int, direction: Direction | None, kind: str, **kw: Any) -> None:
        with self._changed:
            at = time.monotonic() - self._started
            self._events.append(ProxyEvent(len(self._events), at, self.name, conn, direction, kind, **kw))
            self._changed.notify_all()

    def _accept_loop(self) -> None:
        listener = self._listener
        assert listener is not None
        listener.settimeout(self._poll_s)
        while not self._stop.is_set():
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._mu:
                if self._stop.is_set():
                    client.close()
                    return
                self._accepted += 1
                conn = _Conn(self._accepted, client)
                self._conns = [c for c in self._conns if not c.finished]
                self._conns.append(conn)
            self._spawn(self._open, f"{self.name}-c{conn.number}-{Direction.TO_PARENT.value}", conn)

    def _open(self, conn: _Conn) -> None:
        """Connect upstream, then run the session->parent pump here and the other one in a new thread."""
        try:
            conn.upstream = socket.create_connection(self.upstream, timeout=self._io_timeout_s)
        except OSError as exc:
            self._record(conn.number, None, "upstream_failed", detail=f"{self.upstream}: {exc}")
            conn.abort()
            conn.pumps_left = 1
            conn.pump_done()
            return
        for sock in (conn.client, conn.upstream):
            sock.settimeout(self._io_timeout_s)  # bounds sendall; recv is only called once poll says readable
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self._stop.is_set():
            conn.abort()
        self._spawn(self._pump, f"{self.name}-c{conn.number}-{Direction.TO_SESSION.value}", conn, Direction.TO_SESSION)
        self._pump(conn, Direction.TO_PARENT)

    def _pump(self, conn: _Conn, direction: Direction) -> None:
        assert conn.upstream is not None
        src, dst = (conn.client, conn.upstream) if direction is Direction.TO_SESSION else (conn.upstream, conn.client)
        poller = select.poll()
        poller.register(src, select.POLLIN)
        buf = bytearray()
        relay = False  # frame boundaries lost: forward bytes as they come
        try:
            while not conn.aborted.is_set():
                if not poller.poll(self._poll_s * 1000):
                    continue
                chunk = src.recv(_RECV_BYTES)
                if not chunk:
                    break
                if relay:
                    conn.send(dst, chunk)
                    continue
                buf += chunk
                relay = self._drain(conn, direction, buf, dst)
                if conn.aborted.is_set():
                    return
            if buf and not conn.aborted.is_set():
                self._record(conn.number, direction, "truncated", detail=f"{len(buf)} byte(s) of an unfinished frame")
                conn.send(dst, bytes(buf))
            with contextlib.suppress(OSError):
                dst.shutdown(socket.SHUT_WR)  # pass the half-close on
        except OSError as exc:
            if not conn.aborted.is_set():
                self._record(conn.number, direction, "io_failed", detail=f"{type(exc).__name__}: {exc}")
                conn.abort()
        finally:
            conn.pump_done()

    def _drain(self, conn: _Conn, direction: Direction, buf: bytearray, dst: socket.socket) -> bool:
        """Handle every whole frame at the front of ``buf``; True when the stream stopped being SLR3."""
        while len(buf) >= FRAME_HEADER_BYTES:
            try:
                header = decode_header(bytes(buf[:FRAME_HEADER_BYTES]))
            except ProtocolError as exc:
                self._record(conn.number, direction, "undecodable", detail=f"{exc}; relaying raw bytes from here")
                conn.send(dst, bytes(buf))
                buf.clear()
                return True
            size = FRAME_HEADER_BYTES + header.payload_bytes
            if len(buf) < size:
                return False
            frame = bytes(buf[:size])
            del buf[:size]
            if not self._handle(conn, direction, header, frame, dst) or conn.aborted.is_set():
                return False
        return False

    def _select(self, direction: Direction, header: FrameHeader, control: ControlName | None,
                decoded: bool) -> int | None:
        """Index of the first rule that fires on this frame (counting matches as it goes), or None."""
        with self._mu:
            self._frames[(direction, header.frame_type)] += 1
            for i, rule in enumerate(self.rules):
                if not rule.matches(direction, header, control):
                    continue
                if not decoded and rule.action is Action.REPLY_ERROR:
                    continue
                self._hits[i] += 1
                if rule.nth is not None:
                    if self._hits[i] == rule.nth:
                        return i
                elif rule.probability == 1 or self._rngs[i].random() < rule.probability:
                    return i
        return None

    def _handle(self, conn: _Conn, direction: Direction, header: FrameHeader, frame: bytes,
                dst: socket.socket) -> bool:
        """Apply the first firing rule to one whole frame; False when the connection was closed."""
        decoded: Frame | None = None
        try:
            decoded = decode_frame(frame)
        except ProtocolError as exc:
            self._record(conn.number, direction, "undecodable", frame_type=header.frame_type,
                         sequence=header.sequence, detail=f"{exc}; forwarded as framed")
        control = getattr(decoded.payload, "control_name", None) if decoded is not None else None
        i = self._select(direction, header, control, decoded is not None)
        if i is None:
            conn.send(dst, frame)
            return True
        rule = self.rules[i]
        note: dict[str, Any] = {"rule": i, "frame_type": header.frame_type, "control": control,
                                "sequence": header.sequence}
        if rule.action is Action.DROP:
            self._record(conn.number, direction, rule.action.value, **note)
        elif rule.action is Action.DELAY:
            self._record(conn.number, direction, rule.action.value, detail=f"{rule.delay_ms} ms", **note)
            if conn.aborted.wait(rule.delay_ms / 1000.0):
                return False
            conn.send(dst, frame)
        elif rule.action is Action.CLOSE:
            self._record(conn.number, direction, rule.action.value, **note)
            conn.abort()
            return False
        elif rule.action is Action.CORRUPT:
            patched, detail = _corrupt(frame, rule)
            self._record(conn.number, direction, rule.action.value, detail=detail, **note)
            conn.send(dst, patched)
        else:
            assert decoded is not None
            reply = _error_reply(decoded, rule)
            kind = "COMPLETION" if header.frame_type is FrameType.TASK else "CONTROL_REPLY"
            self._record(conn.number, direction, rule.action.value,
                         detail=f"answered with {kind} error_code={rule.error_code}", **note)
            conn.send(conn.client, reply)
        return True


def _corrupt(frame: bytes, rule: Rule) -> tuple[bytes, str]:
    data = bytearray(frame)
    if rule.data:
        patch = rule.data[: max(0, len(data) - rule.offset)]
        data[rule.offset : rule.offset + len(patch)] = patch
        detail = f"wrote {patch.hex() or 'nothing'} at byte {rule.offset} of {len(frame)}"
    elif rule.offset < len(data):
        data[rule.offset] ^= rule.xor
        detail = f"xor {rule.xor:#04x} at byte {rule.offset} of {len(frame)}"
    else:
        detail = f"byte {rule.offset} is past the {len(frame)}-byte frame; nothing changed"
    return bytes(data), detail


def _error_reply(request: Frame, rule: Rule) -> bytes:
    """The error reply the session would send for ``request`` (protocol.md "COMPLETION Payload" / "CONTROL_REPLY").

    The default message names what those headings ask an error message to carry: worker id, the
    callable hashid (TASK) or control name (CONTROL), and the sequence.
    """
    h, payload = request.header, request.payload
    where = f"worker_id={h.worker_id} sequence={h.sequence}"
    if isinstance(payload, TaskPayload):
        where += f" hashid={payload.callable_digest.hex()}"
        message = rule.error_message or f"fault proxy: injected TASK failure ({where})"
        header = FrameHeader(FrameType.COMPLETION, h.session_id, h.worker_id, h.sequence)
        return encode_frame(Frame(header, CompletionPayload(h.sequence, rule.error_code, message)))
    assert isinstance(payload, ControlPayload)
    message = rule.error_message or f"fault proxy: injected {payload.control_name.name} failure ({where})"
    name, version = payload.control_name, payload.control_version
    reply = ControlReplyPayload(h.sequence, name, rule.error_code, message, None, version)
    header = FrameHeader(FrameType.CONTROL_REPLY, h.session_id, h.worker_id, h.sequence)
    return encode_frame(Frame(header, reply))


# --- the daemon bootstrap ---------------------------------------------------------------------------
@dataclass(frozen=True)
class RelayedSession:
    """One session started through a :class:`BootstrapRelay`: what the daemon said, and its two proxies."""

    manifest: dict[str, Any]
    reply: dict[str, Any]  # as the daemon sent it, before the addresses were rewritten
    command: FaultProxy
    health: FaultProxy


def recv_exact(sock: socket.socket, n: int) -> bytes:
    data = bytearray()
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise EOFError(f"bootstrap peer closed after {len(data)} of {n} bytes")
        data += chunk
    return bytes(data)


def _recv_json(sock: socket.socket) -> tuple[bytes, dict[str, Any]]:
    head = recv_exact(sock, 4)
    (size,) = struct.unpack("<I", head)
    if size > _MAX_BOOTSTRAP_BYTES:
        raise ValueError(f"bootstrap message of {size} bytes exceeds {_MAX_BOOTSTRAP_BYTES}")
    body = recv_exact(sock, size)
    return head + body, json.loads(body.decode("utf-8"))


def _json_bytes(obj: dict[str, Any]) -> bytes:
    body = json.dumps(obj, sort_keys=True).encode("utf-8")
    return struct.pack("<I", len(body)) + body


class BootstrapRelay:
    """A stand-in for the remote worker daemon's address that routes every session through fault proxies.

    Give the parent :attr:`endpoint` as ``RemoteWorkerSpec.endpoint``. Each bootstrap connection is
    served in turn (as the daemon does): the manifest goes to ``daemon`` byte for byte; an ``ok`` reply
    gets a command-lane proxy (``command_rules``) and a health-lane proxy (``health_rules``) in front of
    the announced ports, and its ``command_host``/``command_port``/``health_host``/``health_port`` are
    rewritten to them; any other reply is passed back unchanged. :attr:`sessions` lists what was relayed.
    The relay and the daemon must share a host: the parent's manifest names the relay's host as the
    session's listen and connect host.
    """

    def __init__(
        self,
        daemon: tuple[str, int],
        command_rules: Sequence[Rule] = (),
        health_rules: Sequence[Rule] = (),
        *,
        seed: int = 0,
        host: str = "127.0.0.1",
        io_timeout_s: float = 60.0,
        poll_s: float = 0.05,
        on_session: Callable[[int, dict[str, Any]], None] | None = None,
    ) -> None:
        if not (isinstance(daemon, tuple) and len(daemon) == 2 and isinstance(daemon[0], str)):
            raise ProxyError(f"BootstrapRelay.daemon must be a (host, port) tuple, got {daemon!r}")
        _int(daemon[1], "BootstrapRelay.daemon port", 1, 65535)
        self.daemon = daemon
        self._rules = (_rules(command_rules, "command_rules"), _rules(health_rules, "health_rules"))
        self._seed = seed
        self._host = host
        self._io_timeout_s = _seconds(io_timeout_s, "BootstrapRelay.io_timeout_s")
        self._poll_s = _seconds(poll_s, "BootstrapRelay.poll_s")
        self._sessions: list[RelayedSession] = []
        # Called with (session number, the daemon's reply) before the rewritten reply goes to the
        # parent: the moment a fault can kill a session that has started but not yet said HELLO.
        self._on_session = on_session
        self.failures: list[str] = []  # bootstrap connections that could not be relayed, and why
        self._busy: list[socket.socket] = []
        self._mu = threading.Lock()
        self._stop = threading.Event()
        self._listener: socket.socket | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> BootstrapRelay:
        """Listen and start serving bootstrap connections; returns ``self``."""
        if self._listener is not None or self._stop.is_set():
            raise InvalidState("BootstrapRelay can be started once")
        self._listener = socket.create_server((self._host, 0))
        self._listener.settimeout(self._poll_s)
        self._thread = threading.Thread(target=self._serve, name="bootstrap-relay", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop serving, then close every session's proxies (joining their threads)."""
        self._stop.set()
        with self._mu:
            for sock in self._busy:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(self._io_timeout_s)
        if self._listener is not None:
            self._listener.close()
        for session in self.sessions:
            session.command.close()
            session.health.close()

    def __enter__(self) -> BootstrapRelay:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def endpoint(self) -> str:
        """``host:port`` to give the parent as ``RemoteWorkerSpec.endpoint``."""
        if self._listener is None:
            raise InvalidState("BootstrapRelay is not started")
        host, port = self._listener.getsockname()[:2]
        return f"{host}:{port}"

    @property
    def sessions(self) -> list[RelayedSession]:
        """Sessions relayed so far, in order."""
        with self._mu:
            return list(self._sessions)

    def live_threads(self) -> list[threading.Thread]:
        """The relay's own thread and its proxies' threads that are still running."""
        mine = [self._thread] if self._thread is not None and self._thread.is_alive() else []
        return mine + [t for s in self.sessions for p in (s.command, s.health) for t in p.live_threads()]

    def _serve(self) -> None:
        assert self._listener is not None
        while not self._stop.is_set():
            try:
                parent, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with parent:
                try:
                    self._relay(parent)
                except (OSError, EOFError, ValueError, KeyError, TypeError) as exc:
                    # The parent sees its bootstrap connection close, as if the daemon had failed.
                    self.failures.append(f"{type(exc).__name__}: {exc}")
                finally:
                    with self._mu:
                        self._busy.clear()

    def _relay(self, parent: socket.socket) -> None:
        parent.settimeout(self._io_timeout_s)
        with self._mu:
            self._busy.append(parent)
        with socket.create_connection(self.daemon, timeout=self._io_timeout_s) as daemon:
            with self._mu:
                self._busy.append(daemon)
            raw, manifest = _recv_json(parent)
            daemon.sendall(raw)
            raw, reply = _recv_json(daemon)
        if self._stop.is_set():
            return  # closing: the parent sees the connection drop instead of reaching the session unproxied
        if reply.get("ok") is not True:
            parent.sendall(raw)
            return
        n = len(self._sessions) + 1
        command_rules, health_rules = self._rules
        command = FaultProxy((str(reply["command_host"]), int(reply["command_port"])), command_rules,
                             seed=self._seed, name=f"s{n}-command", host=self._host, poll_s=self._poll_s)
        health = FaultProxy((str(reply["health_host"]), int(reply["health_port"])), health_rules,
                            seed=self._seed, name=f"s{n}-health", host=self._host, poll_s=self._poll_s)
        try:
            command.start()
            health.start()
        except OSError:
            command.close()
            health.close()
            raise
        with self._mu:
            self._sessions.append(RelayedSession(manifest, dict(reply), command, health))
        if self._on_session is not None:
            self._on_session(n - 1, dict(reply))
        rewritten = dict(reply)
        rewritten["command_host"], rewritten["command_port"] = command.address
        rewritten["health_host"], rewritten["health_port"] = health.address
        parent.sendall(_json_bytes(rewritten))
