"""The SLR3 fault proxy against real loopback sockets: each action happens on the wire, and nothing leaks.

Every test puts a :class:`FaultProxy` between a client socket (the parent's side) and a listening
socket (the session's side), writes frames encoded with tierbed's codec and reads them back whole.
That a frame "never arrives" is shown by order, not by waiting: a later frame is what arrives next.
Timing checks are lower bounds only.
"""

from __future__ import annotations

import json
import os
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from hw_backend.proxy import Action, BootstrapRelay, Direction, FaultProxy, ProxyError, Rule, recv_exact
from sim.errors import ProtocolError
from sim.remote.wire import (
    FRAME_HEADER_BYTES,
    AllocRemoteBufferCommand,
    CallConfigWire,
    CompletionPayload,
    ControlName,
    ControlPayload,
    ControlReplyPayload,
    CopyFromRemoteCommand,
    Frame,
    FrameHeader,
    FrameType,
    HealthPayload,
    RemoteTaskArgs,
    TaskPayload,
    decode_frame,
    decode_header,
    encode_frame,
)

SESSION, WORKER = 0x5EED, 3
TIMEOUT_S = 5.0  # a bound on every blocking socket call, so a broken proxy fails instead of hanging


def task(seq: int) -> bytes:
    return encode_frame(Frame(FrameHeader(FrameType.TASK, SESSION, WORKER, seq),
                              TaskPayload(bytes(range(32)), CallConfigWire(), RemoteTaskArgs(scalars=(seq,)))))


def alloc(seq: int) -> bytes:
    payload = ControlPayload(ControlName.ALLOC_REMOTE_BUFFER, AllocRemoteBufferCommand(64))
    return encode_frame(Frame(FrameHeader(FrameType.CONTROL, SESSION, WORKER, seq), payload))


def copy_from(seq: int) -> bytes:
    payload = ControlPayload(ControlName.COPY_FROM_REMOTE, CopyFromRemoteCommand(WORKER, 1, 1, 0, 8))
    return encode_frame(Frame(FrameHeader(FrameType.CONTROL, SESSION, WORKER, seq), payload))


def health(seq: int) -> bytes:
    return encode_frame(Frame(FrameHeader(FrameType.HEALTH, SESSION, WORKER, seq), HealthPayload()))


def completion(seq: int) -> bytes:
    return encode_frame(Frame(FrameHeader(FrameType.COMPLETION, SESSION, WORKER, seq), CompletionPayload(seq)))


def recv_frame(sock: socket.socket) -> bytes:
    """One whole frame's bytes, cut by the header (the payload itself is not decoded here)."""
    head = recv_exact(sock, FRAME_HEADER_BYTES)
    return head + recv_exact(sock, decode_header(head).payload_bytes)


def seq_of(frame: bytes) -> int:
    return decode_header(frame).sequence


def sees_eof(sock: socket.socket) -> bool:
    """True when the peer has closed (EOF or reset) before sending anything more."""
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


class Rig:
    """A proxy, the session-side listener, and helpers to open parent/session socket pairs through it."""

    def __init__(self, rules: list[Rule], **kw: object) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.server.settimeout(TIMEOUT_S)
        self.proxy = FaultProxy(self.server.getsockname()[:2], rules, name="t", **kw).start()  # type: ignore[arg-type]
        self.sockets: list[socket.socket] = [self.server]

    def pair(self) -> tuple[socket.socket, socket.socket]:
        """(parent socket, session socket) of one proxied connection."""
        parent = socket.create_connection(self.proxy.address, timeout=TIMEOUT_S)
        parent.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        session, _ = self.server.accept()
        session.settimeout(TIMEOUT_S)
        self.sockets += [parent, session]
        return parent, session

    def close(self) -> None:
        self.proxy.close()
        for sock in self.sockets:
            sock.close()


@pytest.fixture
def rig() -> Iterator[Callable[..., Rig]]:
    """Build rigs; on teardown close each one and check that its proxy left no thread running."""
    made: list[Rig] = []

    def make(rules: list[Rule], **kw: object) -> Rig:
        made.append(Rig(rules, **kw))
        return made[-1]

    yield make
    for r in made:
        r.close()
        assert r.proxy.live_threads() == []


def kinds(proxy: FaultProxy) -> list[tuple[str, int | None]]:
    return [(e.kind, e.sequence) for e in proxy.events]


# --- pass-through -------------------------------------------------------------------------------
def test_without_rules_frames_pass_byte_identical_both_ways(rig) -> None:
    r = rig([])
    parent, session = r.pair()
    sent = [task(1), alloc(2), copy_from(3)]
    parent.sendall(b"".join(sent))
    assert [recv_frame(session) for _ in sent] == sent
    session.sendall(completion(1) + health(1))
    assert recv_frame(parent) == completion(1) and recv_frame(parent) == health(1)
    assert r.proxy.events == ()
    counts = r.proxy.frame_counts()
    assert counts[(Direction.TO_SESSION, FrameType.CONTROL)] == 2
    assert counts[(Direction.TO_PARENT, FrameType.HEALTH)] == 1


def test_a_frame_sent_byte_by_byte_is_reassembled_and_still_matched(rig) -> None:
    r = rig([Rule(Action.DROP, frame_type="TASK", sequence=1)])
    parent, session = r.pair()
    for frame in (task(1), alloc(2)):
        for i in range(len(frame)):
            parent.sendall(frame[i : i + 1])
            if i % 16 == 0:
                time.sleep(0.001)  # let the proxy see genuinely partial reads
    assert recv_frame(session) == alloc(2)
    assert kinds(r.proxy) == [("drop", 1)]


# --- the actions --------------------------------------------------------------------------------
def test_drop_to_session_loses_only_the_chosen_frame(rig) -> None:
    r = rig([Rule(Action.DROP, direction="to_session", frame_type=FrameType.TASK, nth=2)])
    parent, session = r.pair()
    parent.sendall(task(1) + task(2) + task(3))
    assert [seq_of(recv_frame(session)) for _ in range(2)] == [1, 3]
    [event] = r.proxy.events
    assert (event.kind, event.direction, event.frame_type, event.sequence, event.rule) == (
        "drop", Direction.TO_SESSION, FrameType.TASK, 2, 0)


def test_drop_to_parent_loses_a_health_frame(rig) -> None:
    r = rig([Rule(Action.DROP, direction=Direction.TO_PARENT, frame_type="health", sequence=2)])
    parent, session = r.pair()
    session.sendall(health(1) + health(2) + health(3))
    assert [seq_of(recv_frame(parent)) for _ in range(2)] == [1, 3]
    assert kinds(r.proxy) == [("drop", 2)]


def test_delay_holds_the_frame_and_the_frames_behind_it(rig) -> None:
    r = rig([Rule(Action.DELAY, frame_type="TASK", sequence=1, delay_ms=300)])
    parent, session = r.pair()
    t0 = time.monotonic()
    parent.sendall(task(1) + task(2))
    first = recv_frame(session)
    waited = time.monotonic() - t0
    assert seq_of(first) == 1 and seq_of(recv_frame(session)) == 2
    assert waited >= 0.3
    assert kinds(r.proxy) == [("delay", 1)]


def test_close_shuts_both_sides_and_the_frame_is_not_delivered(rig) -> None:
    r = rig([Rule(Action.CLOSE, frame_type="CONTROL", control="ALLOC_REMOTE_BUFFER")])
    parent, session = r.pair()
    parent.sendall(task(1) + alloc(2) + task(3))
    assert seq_of(recv_frame(session)) == 1
    assert sees_eof(session)  # neither the CONTROL nor anything after it
    assert sees_eof(parent)
    assert kinds(r.proxy) == [("close", 2)]


def test_corrupt_header_version_is_what_the_receiver_rejects(rig) -> None:
    r = rig([Rule(Action.CORRUPT, direction="to_parent", frame_type="COMPLETION", offset="header.version",
                  data=(7).to_bytes(4, "little"))])
    parent, session = r.pair()
    session.sendall(completion(4))
    got = parent.recv(64)
    with pytest.raises(ProtocolError) as info:
        decode_frame(got)
    assert info.value.field == "header.version"
    assert got[:4] == completion(4)[:4] and got[8:] == completion(4)[8:]  # only the chosen field changed
    assert kinds(r.proxy) == [("corrupt", 4)]


def test_corrupt_payload_byte_is_flipped_and_still_forwarded(rig) -> None:
    # COMPLETION payload starts with its own copy of the sequence; flipping it breaks the header match.
    r = rig([Rule(Action.CORRUPT, frame_type="COMPLETION", offset=FRAME_HEADER_BYTES, xor=0x01)])
    parent, session = r.pair()
    session.sendall(completion(4))
    got = recv_frame(parent)
    assert got[FRAME_HEADER_BYTES] == completion(4)[FRAME_HEADER_BYTES] ^ 0x01
    with pytest.raises(ProtocolError) as info:
        decode_frame(got)
    assert info.value.field == "completion.sequence"


def test_reply_error_answers_a_control_the_session_never_sees(rig) -> None:
    r = rig([Rule(Action.REPLY_ERROR, control="ALLOC_REMOTE_BUFFER", error_code=5)])
    parent, session = r.pair()
    parent.sendall(alloc(7) + task(8))
    reply = decode_frame(recv_frame(parent), expected_sequence=7, expected_control=ControlName.ALLOC_REMOTE_BUFFER)
    assert (reply.header.frame_type, reply.header.session_id, reply.header.worker_id, reply.header.sequence) == (
        FrameType.CONTROL_REPLY, SESSION, WORKER, 7)
    assert isinstance(reply.payload, ControlReplyPayload)
    assert reply.payload.error_code == 5 and reply.payload.result is None
    assert reply.payload.error_message == "fault proxy: injected ALLOC_REMOTE_BUFFER failure (worker_id=3 sequence=7)"
    assert seq_of(recv_frame(session)) == 8  # the next thing the session sees is the TASK
    assert kinds(r.proxy) == [("reply_error", 7)]


def test_reply_error_to_a_task_is_a_failed_completion(rig) -> None:
    r = rig([Rule(Action.REPLY_ERROR, frame_type="TASK", nth=1, error_message="injected")])
    parent, session = r.pair()
    parent.sendall(task(1) + task(2))
    reply = decode_frame(recv_frame(parent), expected_sequence=1)
    assert reply.header.frame_type is FrameType.COMPLETION
    assert reply.payload == CompletionPayload(1, 1, "injected")
    assert seq_of(recv_frame(session)) == 2


def test_the_default_task_error_names_worker_hashid_and_sequence(rig) -> None:
    r = rig([Rule(Action.REPLY_ERROR, frame_type="TASK")])
    parent, _session = r.pair()
    parent.sendall(task(4))
    reply = decode_frame(recv_frame(parent), expected_sequence=4)
    assert reply.payload == CompletionPayload(
        4, 1, f"fault proxy: injected TASK failure (worker_id=3 sequence=4 hashid={bytes(range(32)).hex()})")


def test_nth_counts_only_frames_that_pass_the_filters_and_first_rule_wins(rig) -> None:
    r = rig([
        Rule(Action.DELAY, frame_type="CONTROL", sequence=1, delay_ms=1),
        Rule(Action.DROP, control=ControlName.COPY_FROM_REMOTE, nth=2),
    ])
    parent, session = r.pair()
    # seq 1 is taken by the first rule, so it is not counted by the second; TASKs and ALLOC never are.
    parent.sendall(copy_from(1) + task(2) + copy_from(3) + alloc(4) + copy_from(5) + copy_from(6))
    assert [seq_of(recv_frame(session)) for _ in range(5)] == [1, 2, 3, 4, 6]
    assert kinds(r.proxy) == [("delay", 1), ("drop", 5)]
    assert [e.rule for e in r.proxy.events] == [0, 1]


def test_probability_draws_repeat_for_the_same_seed(rig) -> None:
    def dropped(seed: int) -> list[int]:
        r = rig([Rule(Action.DROP, frame_type="HEALTH", probability=0.5)], seed=seed)
        parent, session = r.pair()
        session.sendall(b"".join(health(i) for i in range(1, 41)) + completion(99))
        got = set()
        while (seq := seq_of(recv_frame(parent))) != 99:
            got.add(seq)
        assert not got & {e.sequence for e in r.proxy.events}
        return [e.sequence for e in r.proxy.events]

    first = dropped(11)
    assert first == dropped(11)
    assert 0 < len(first) < 40
    assert dropped(12) != first


# --- connections and odd bytes ------------------------------------------------------------------
def test_each_connection_is_proxied_independently(rig) -> None:
    r = rig([Rule(Action.DROP, frame_type="TASK", sequence=1)])
    a_parent, a_session = r.pair()
    b_parent, b_session = r.pair()
    a_parent.sendall(task(1) + task(2))
    b_parent.sendall(task(1) + task(3))
    assert seq_of(recv_frame(a_session)) == 2 and seq_of(recv_frame(b_session)) == 3
    b_session.sendall(health(5))
    a_session.sendall(health(4))
    assert seq_of(recv_frame(a_parent)) == 4 and seq_of(recv_frame(b_parent)) == 5
    assert r.proxy.accepted == 2
    assert sorted(e.connection for e in r.proxy.events) == [1, 2]


def test_half_close_is_passed_on_and_the_reply_still_comes_back(rig) -> None:
    r = rig([])
    parent, session = r.pair()
    parent.sendall(task(1))
    parent.shutdown(socket.SHUT_WR)
    assert seq_of(recv_frame(session)) == 1 and sees_eof(session)
    session.sendall(completion(1))
    assert recv_frame(parent) == completion(1)


def test_bytes_that_are_not_slr3_are_recorded_and_relayed_raw(rig) -> None:
    r = rig([Rule(Action.DROP)])  # would drop every frame, but no frame boundary can be trusted here
    parent, session = r.pair()
    junk = b"GET / HTTP/1.1\r\nHost: example\r\nAccept: */*\r\n\r\n"
    parent.sendall(junk)
    assert recv_exact(session, len(junk)) == junk
    parent.sendall(task(1))  # from now on this direction is a plain relay
    assert recv_frame(session) == task(1)
    [event] = r.proxy.events
    assert event.kind == "undecodable" and "header.magic" in event.detail


def test_a_frame_whose_payload_does_not_decode_is_forwarded_and_framing_goes_on(rig) -> None:
    r = rig([Rule(Action.DROP, frame_type="TASK")])
    parent, session = r.pair()
    bad = bytearray(alloc(1))
    bad[FRAME_HEADER_BYTES : FRAME_HEADER_BYTES + 4] = (99).to_bytes(4, "little")  # no such control name
    parent.sendall(bytes(bad) + task(2) + alloc(3))
    assert recv_frame(session) == bytes(bad)
    assert recv_frame(session) == alloc(3)
    assert kinds(r.proxy) == [("undecodable", 1), ("drop", 2)]
    assert "control.control_name" in r.proxy.events[0].detail


def test_unreachable_upstream_closes_the_parent_socket(rig) -> None:
    with socket.create_server(("127.0.0.1", 0)) as gone:
        port = gone.getsockname()[1]
    with FaultProxy(("127.0.0.1", port), name="dead") as proxy:
        with socket.create_connection(proxy.address, timeout=TIMEOUT_S) as parent:
            assert sees_eof(parent)
        proxy.wait_for(lambda e: e.kind == "upstream_failed")
    assert proxy.live_threads() == []


# --- lifecycle ----------------------------------------------------------------------------------
def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counting open fds needs /proc")
def test_close_joins_threads_releases_the_port_and_every_fd() -> None:
    before = _open_fds()
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(TIMEOUT_S)
    proxy = FaultProxy(server.getsockname()[:2], [Rule(Action.DELAY, frame_type="TASK", delay_ms=60_000)])
    with proxy:
        address = proxy.address
        parent = socket.create_connection(address, timeout=TIMEOUT_S)
        session, _ = server.accept()
        session.settimeout(TIMEOUT_S)
        parent.sendall(task(1))  # a pump is now parked inside a one-minute delay
        proxy.wait_for(lambda e: e.kind == "delay")
        assert len(proxy.live_threads()) == 3  # acceptor + one pump per direction
        t0 = time.monotonic()
    assert time.monotonic() - t0 < 2.0  # close() does not sit out the delay
    assert proxy.live_threads() == []
    assert sees_eof(parent) and sees_eof(session)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(address, timeout=TIMEOUT_S).close()
    for sock in (parent, session, server):
        sock.close()
    assert _open_fds() == before


def test_address_before_start_and_a_second_start_are_refused() -> None:
    proxy = FaultProxy(("127.0.0.1", 9))
    with pytest.raises(Exception, match="not started"):
        _ = proxy.address
    with proxy, pytest.raises(Exception, match="started once"):
        proxy.start()


# --- bad rules ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"action": "explode"}, "Rule.action"),
        ({"action": "drop", "frame_type": "TASKS"}, "Rule.frame_type"),
        ({"action": "drop", "direction": "sideways"}, "Rule.direction"),
        ({"action": "drop", "control": "ALLOC"}, "Rule.control"),
        ({"action": "drop", "frame_type": "TASK", "control": "ALLOC_REMOTE_BUFFER"}, "Rule.control"),
        ({"action": "drop", "nth": 0}, "Rule.nth"),
        ({"action": "drop", "sequence": -1}, "Rule.sequence"),
        ({"action": "drop", "probability": 0}, "Rule.probability"),
        ({"action": "drop", "nth": 2, "probability": 0.5}, "Rule.nth"),
        ({"action": "delay", "delay_ms": -5}, "Rule.delay_ms"),
        ({"action": "delay", "delay_ms": float("nan")}, "Rule.delay_ms"),
        ({"action": "delay"}, "Rule.delay_ms"),
        ({"action": "drop", "delay_ms": 5}, "Rule.delay_ms"),
        ({"action": "corrupt", "offset": "checksum"}, "Rule.offset"),
        ({"action": "corrupt", "offset": -1}, "Rule.offset"),
        ({"action": "corrupt", "xor": 0}, "Rule.xor"),
        ({"action": "corrupt", "data": "ff"}, "Rule.data"),
        ({"action": "drop", "offset": 3}, "Rule.offset"),
        ({"action": "reply_error"}, "REPLY_ERROR"),
        ({"action": "reply_error", "frame_type": "HEALTH"}, "REPLY_ERROR"),
        ({"action": "reply_error", "frame_type": "TASK", "direction": "to_parent"}, "Rule.direction"),
        ({"action": "reply_error", "frame_type": "TASK", "error_code": 0}, "Rule.error_code"),
        ({"action": "reply_error", "frame_type": "TASK", "error_message": "x" * 5000}, "Rule.error_message"),
        ({"action": "drop", "error_code": 2}, "Rule.error_code"),
    ],
)
def test_bad_rules_raise_proxy_error_naming_the_field(kwargs: dict, named: str) -> None:
    with pytest.raises(ProxyError, match=named.replace(".", r"\.")):
        Rule(**kwargs)


def test_bad_proxy_settings_raise_proxy_error() -> None:
    with pytest.raises(ProxyError, match="upstream"):
        FaultProxy(("127.0.0.1", 0))
    with pytest.raises(ProxyError, match=r"rules\[0\]"):
        FaultProxy(("127.0.0.1", 9), [{"action": "drop"}])  # type: ignore[list-item]
    with pytest.raises(ProxyError, match="io_timeout_s"):
        FaultProxy(("127.0.0.1", 9), io_timeout_s=0)


def test_proxy_error_is_a_tierbed_invalid_argument() -> None:
    from sim.errors import ErrorClass, InvalidArgument

    assert issubclass(ProxyError, InvalidArgument)
    assert ProxyError.error_class is ErrorClass.INVALID_ARGUMENT



# --- the daemon bootstrap relay -----------------------------------------------------------------
def bootstrap_bytes(obj: dict) -> bytes:
    body = json.dumps(obj).encode()
    return struct.pack("<I", len(body)) + body


def recv_bootstrap(sock: socket.socket) -> bytes:
    head = recv_exact(sock, 4)
    return head + recv_exact(sock, struct.unpack("<I", head)[0])


class FakeDaemon:
    """Answers one bootstrap connection with ``reply`` and keeps the manifest bytes it received."""

    def __init__(self, reply: dict) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.server.settimeout(TIMEOUT_S)
        self.received = b""
        self.reply = bootstrap_bytes(reply)
        self.thread = threading.Thread(target=self._serve)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.server.accept()
        with conn:
            conn.settimeout(TIMEOUT_S)
            self.received = recv_bootstrap(conn)
            conn.sendall(self.reply)

    def close(self) -> None:
        self.thread.join(TIMEOUT_S)
        self.server.close()


def test_relay_rewrites_the_announced_ports_so_both_lanes_go_through_proxies() -> None:
    command_srv = socket.create_server(("127.0.0.1", 0))
    health_srv = socket.create_server(("127.0.0.1", 0))
    for srv in (command_srv, health_srv):
        srv.settimeout(TIMEOUT_S)
    announced = {"ok": True, "pid": 4242, "command_host": "127.0.0.1", "command_port": command_srv.getsockname()[1],
                 "health_host": "127.0.0.1", "health_port": health_srv.getsockname()[1]}
    daemon = FakeDaemon(announced)
    relay = BootstrapRelay(daemon.server.getsockname()[:2],
                           command_rules=[Rule(Action.DROP, frame_type="TASK", nth=1)],
                           health_rules=[Rule(Action.DROP, frame_type="HEALTH", sequence=1)])
    manifest = bootstrap_bytes({"session_id": SESSION, "worker_id": WORKER, "listen_host": "127.0.0.1"})
    opened: list[socket.socket] = []
    try:
        with relay:
            host, port = relay.endpoint.split(":")
            with socket.create_connection((host, int(port)), timeout=TIMEOUT_S) as parent:
                parent.sendall(manifest)
                reply = json.loads(recv_bootstrap(parent)[4:])
            [session] = relay.sessions
            assert daemon.received == manifest and session.manifest["session_id"] == SESSION
            assert session.reply == announced and reply["pid"] == 4242
            assert (reply["command_host"], reply["command_port"]) == session.command.address
            assert (reply["health_host"], reply["health_port"]) == session.health.address
            assert reply["command_port"] != announced["command_port"]
            assert reply["health_port"] != announced["health_port"]

            command = socket.create_connection(session.command.address, timeout=TIMEOUT_S)
            command_peer, _ = command_srv.accept()
            health_lane = socket.create_connection(session.health.address, timeout=TIMEOUT_S)
            health_peer, _ = health_srv.accept()
            opened += [command, command_peer, health_lane, health_peer]
            for sock in opened:
                sock.settimeout(TIMEOUT_S)
            command.sendall(task(1) + task(2))
            health_peer.sendall(health(1) + health(2))
            assert seq_of(recv_frame(command_peer)) == 2
            assert seq_of(recv_frame(health_lane)) == 2
            assert kinds(session.command) == [("drop", 1)] and kinds(session.health) == [("drop", 1)]
        assert relay.live_threads() == []
        assert relay.failures == []
    finally:
        for sock in (*opened, command_srv, health_srv):
            sock.close()
        daemon.close()


def test_relay_passes_a_failed_daemon_reply_back_unchanged() -> None:
    daemon = FakeDaemon({"ok": False, "error": "ValueError: manifest missing platform"})
    try:
        with BootstrapRelay(daemon.server.getsockname()[:2]) as relay:
            host, port = relay.endpoint.split(":")
            with socket.create_connection((host, int(port)), timeout=TIMEOUT_S) as parent:
                parent.sendall(bootstrap_bytes({"session_id": 1}))
                assert recv_bootstrap(parent) == daemon.reply
            assert relay.sessions == []
        assert relay.live_threads() == []
    finally:
        daemon.close()


def test_relay_refuses_bad_rules_and_addresses() -> None:
    with pytest.raises(ProxyError, match=r"health_rules\[1\]"):
        BootstrapRelay(("127.0.0.1", 9), health_rules=[Rule(Action.DROP), "drop"])  # type: ignore[list-item]
    with pytest.raises(ProxyError, match="daemon"):
        BootstrapRelay(("127.0.0.1", 70000))
    with pytest.raises(ProxyError, match=r"BootstrapRelay\.poll_s"):
        BootstrapRelay(("127.0.0.1", 9), poll_s=-1)
