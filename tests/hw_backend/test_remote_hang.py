"""The hw backend's ``session_hang``: SIGSTOP of a session's process group, ended by SIGKILL at close.

A hung session on hardware is a stopped process (alive, sockets open, silent): the mapping of the
simulator's ``SessionHang`` (``sim.remote.faults``; upstream ``docs/remote-l3-worker-design/protocol.md``
"Ordering": only health expiry detects it). Runs without the real runtime: the process is a plain
``sleep`` in its own process group.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from hw_backend import remote

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")


def _state(pid: int) -> str:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat[stat.rindex(")") + 2:].split()[0]


def _wait_state(pid: int, want: set[str], timeout_s: float = 5.0) -> str:
    deadline = time.monotonic() + timeout_s
    state = _state(pid)
    while state not in want and time.monotonic() < deadline:
        time.sleep(0.01)
        state = _state(pid)
    return state


class _Relay:
    """Stands in for a BootstrapRelay whose daemon announced one session (pid = process group)."""

    def __init__(self, pid: int) -> None:
        self.sessions = [SimpleNamespace(reply={"pid": pid})]
        self.closed = False

    def close(self) -> None:
        self.closed = True


def test_a_hang_stops_the_session_group_and_close_kills_it_without_waiting() -> None:
    proc = subprocess.Popen(["sleep", "30"], start_new_session=True)
    try:
        sessions = remote.RemoteSessions()
        sessions.relays.append(_Relay(proc.pid))
        assert sessions.hang_session(0)
        assert _wait_state(proc.pid, {"T", "t"}) in ("T", "t")  # stopped, not gone
        assert remote._group_alive(proc.pid)
        t0 = time.monotonic()
        sessions.close(grace_s=3.0)
        assert proc.wait(timeout=5) != 0  # killed while stopped
        assert time.monotonic() - t0 < 3.0  # a stopped session is not given the grace to exit by itself
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_hang_at_start_up_stops_the_announced_session() -> None:
    proc = subprocess.Popen(["sleep", "30"], start_new_session=True)
    try:
        remote._stop_announced(0, {"pid": proc.pid})
        assert _wait_state(proc.pid, {"T", "t"}) in ("T", "t")
        remote._stop_announced(0, {})  # no pid announced: nothing to do, no error
    finally:
        proc.kill()
        proc.wait()


def test_a_session_without_a_pid_cannot_be_hung_yet() -> None:
    sessions = remote.RemoteSessions()
    assert not sessions.hang_session(0)
