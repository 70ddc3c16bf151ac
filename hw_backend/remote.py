"""Remote L3 sessions on the real runtime: daemons on loopback, a fault relay in front of each, real faults.

Models what ``docs/remote-l3-worker-design.md`` ("Remote Worker Session", "Failure Semantics") and
``docs/remote-l3-worker-design/protocol.md`` ("Frames", "Ordering") describe, against the shipped
transport: the parent bootstraps each session through a ``simpler-remote-worker`` daemon
(``python -m simpler.remote_l3_worker``), which forks a session that listens on a command lane and a
health lane. A case names a remote L3 by a logical endpoint (``127.0.0.1:9000``); the hw backend
starts one daemon per logical endpoint on a free loopback port (or uses the daemon the user names in
:data:`ENDPOINT_ENV`), and always puts a :class:`~hw_backend.proxy.BootstrapRelay` in front of it, so
both lanes of every session pass through fault proxies: the frames they carry are evidence, and a
case's faults become proxy rules or a signal to the session's process group.

Faults (``rt.fault(kind, ...)``, the same kinds as the sim's ``FaultPlan``), on hw:

- ``frame_drop(worker, frame_type, ordinal)``: DROP the ``ordinal``-th frame of that type on the lane
  that carries it (HEALTH on the health lane, the rest on the command lane), in either direction; the
  real session sends a single HELLO, so every HELLO ordinal drops that one;
- ``control_error(control, worker, ordinal)``: the ``ordinal``-th CONTROL of that name is answered
  with an error CONTROL_REPLY and never reaches the session;
- ``link_cut(worker, lanes)``: CLOSE the chosen lanes (``both`` or ``health``) at the first frame
  after start-up (``at_us`` has no wall-clock meaning here: the cut comes at the first TASK on the
  command lane, or the first HEALTH after that on the health lane);
- ``link_delay(worker, extra_us)``: DELAY every TASK by ``extra_us``;
- ``session_crash(worker, at_us)``: SIGKILL the session's process group: during start-up when
  ``at_us`` is 0 (as soon as the daemon announces it, before the parent connects), else right after
  the orchestration function that submits to it returns (its tasks are in flight or queued).
- ``session_hang(worker, at_us)``: SIGSTOP the session's process group at the same two moments: the
  session stays alive with its sockets open but sends and runs nothing, so only the parent's health
  watch or command timeout can fail the endpoint. :meth:`RemoteSessions.close` kills a stopped
  session (SIGKILL ends a stopped process) without waiting for it to exit on its own.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hw_backend.proxy import Action, BootstrapRelay, Direction, Rule

#: ``host:port`` of a daemon the user runs; when set, every logical endpoint goes to it.
ENDPOINT_ENV = "TIERBED_HW_REMOTE_ENDPOINT"
DAEMON_START_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class HwFault:
    """A fault a case asked for, in the sim's vocabulary, bound to a remote worker index."""

    kind: str
    worker: int
    params: dict[str, Any] = field(default_factory=dict)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_listening(port: int, proc: subprocess.Popen[bytes], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"remote worker daemon exited with code {proc.returncode} before listening")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"remote worker daemon did not listen on 127.0.0.1:{port} within {timeout_s}s")


def _signal_group(pid: int, sig: int) -> None:
    """Signal a process group that may already be gone (then there is nothing to do)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def _group_alive(pgid: int) -> bool:
    """Whether a process of group ``pgid`` still runs (a zombie its parent has not reaped does not)."""
    if Path("/proc/self").is_dir():
        return bool(_group_members(pgid))
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def _mapped_shm(pid: int) -> set[str]:
    """The POSIX shared-memory files process ``pid`` has mapped (none where /proc cannot tell)."""
    try:
        maps = Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return set()
    return {line[line.index("/dev/shm/"):] for line in maps.splitlines()
            if "/dev/shm/" in line and not line.endswith("(deleted)")}


def _pids() -> list[int]:
    try:
        return [int(d.name) for d in Path("/proc").iterdir() if d.name.isdigit()]
    except OSError:
        return []


def _group_members(pgid: int) -> list[int]:
    """The processes of group ``pgid`` that have not exited (zombies left out), read from /proc."""
    members = []
    for pid in _pids():
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        state, _ppid, pgrp = stat[stat.rindex(")") + 2:].split()[:3]  # fields 3-5; comm may hold ") "
        if int(pgrp) == pgid and state != "Z":
            members.append(pid)
    return members


def _crash_group(pgid: int) -> None:
    """SIGKILL a session's process group, then unlink the shared memory only it had mapped.

    The crash is the fault under test; the segments a killed process can no longer unlink are
    not, and would outlive every run on the host. A segment another live process still maps is
    left alone.
    """
    members = _group_members(pgid)
    segments = set().union(*map(_mapped_shm, members))
    _signal_group(pgid, signal.SIGKILL)
    if not segments:
        return
    deadline = time.monotonic() + 5.0  # a killed process's mappings go before it becomes a zombie
    while any(map(_mapped_shm, members)) and time.monotonic() < deadline:
        time.sleep(0.01)
    for path in sorted(segments - set().union(*map(_mapped_shm, _pids()))):
        with contextlib.suppress(OSError):
            os.unlink(path)


def _kill_announced(_n: int, reply: dict[str, Any]) -> None:
    """A session crash during start-up: the session the daemon just forked dies before its HELLO."""
    with contextlib.suppress(KeyError, TypeError, ValueError):
        _crash_group(int(reply["pid"]))


def _stop_announced(_n: int, reply: dict[str, Any]) -> None:
    """A session hang during start-up: the session the daemon just forked stops before its HELLO."""
    with contextlib.suppress(KeyError, TypeError, ValueError):
        _signal_group(int(reply["pid"]), signal.SIGSTOP)


def rules_for(faults: Sequence[HwFault]) -> tuple[list[Rule], list[Rule]]:
    """(command-lane rules, health-lane rules) for one session's faults."""
    command: list[Rule] = []
    health: list[Rule] = []
    for f in faults:
        p = f.params
        if f.kind == "frame_drop":
            ftype = str(p["frame_type"]).upper()
            # The real session sends one HELLO, already READY (the sim models the not-ready one before
            # it), so any HELLO ordinal means that one.
            nth = 1 if ftype == "HELLO" else int(p.get("ordinal", 1))
            (health if ftype == "HEALTH" else command).append(Rule(Action.DROP, frame_type=ftype, nth=nth))
        elif f.kind == "control_error":
            command.append(Rule(Action.REPLY_ERROR, direction=Direction.TO_SESSION, frame_type="CONTROL",
                                control=str(p["control"]), nth=int(p.get("ordinal", 1)),
                                error_message=f"tierbed fault: {p['control']} failed on purpose"))
        elif f.kind == "link_cut":
            if p.get("lanes", "both") == "both":
                command.append(Rule(Action.CLOSE, direction=Direction.TO_SESSION, frame_type="TASK", nth=1))
            health.append(Rule(Action.CLOSE, frame_type="HEALTH", nth=1))
        elif f.kind == "link_delay":
            command.append(Rule(Action.DELAY, direction=Direction.TO_SESSION, frame_type="TASK",
                                delay_ms=float(p["extra_us"]) / 1000.0))
    return command, health


class RemoteSessions:
    """The daemons and relays of one case: started on demand, all stopped by :meth:`close`."""

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        self._daemons: dict[str, tuple[subprocess.Popen[bytes] | None, tuple[str, int]]] = {}
        self.relays: list[BootstrapRelay] = []
        self._stopped: set[int] = set()  # relay indices whose session a session_hang stopped

    def attach(self, logical: str, faults: Sequence[HwFault] = ()) -> int:
        """Start a relay (with ``faults`` as its rules) in front of the daemon of logical endpoint
        ``logical``; return its index (one session per relay, in attach order)."""
        daemon = self._daemon(logical)
        command, health = rules_for(faults)
        crash_at_start = any(f.kind == "session_crash" and not float(f.params.get("at_us", 0.0)) for f in faults)
        hang_at_start = any(f.kind == "session_hang" and not float(f.params.get("at_us", 0.0)) for f in faults)
        on_session = _kill_announced if crash_at_start else _stop_announced if hang_at_start else None
        relay = BootstrapRelay(daemon, command, health, seed=self.seed, on_session=on_session).start()
        self.relays.append(relay)
        if hang_at_start and not crash_at_start:
            self._stopped.add(len(self.relays) - 1)
        return len(self.relays) - 1

    def endpoint(self, index: int) -> str:
        return self.relays[index].endpoint

    def _daemon(self, logical: str) -> tuple[str, int]:
        given = os.environ.get(ENDPOINT_ENV)
        if given:
            host, _, port = given.rpartition(":")
            return host, int(port)
        if logical not in self._daemons:
            port = _free_port()
            # The daemon imports the remote orchestration targets (hw_backend.remote_targets) and the
            # probe's observation directory travels in the environment, as for SUB children.
            proc = subprocess.Popen([sys.executable, "-m", "simpler.remote_l3_worker", "--host", "127.0.0.1",
                                     "--port", str(port)], stdin=subprocess.DEVNULL, start_new_session=True)
            try:
                _wait_listening(port, proc, DAEMON_START_TIMEOUT_S)
            except RuntimeError:
                self._stop(proc)
                raise
            self._daemons[logical] = (proc, ("127.0.0.1", port))
        return self._daemons[logical][1]

    def session_pid(self, index: int) -> int | None:
        """The pid the daemon announced for the session of relay ``index``, if it has started."""
        sessions = self.relays[index].sessions if index < len(self.relays) else []
        pid = sessions[0].reply.get("pid") if sessions else None
        return int(pid) if pid else None

    def kill_session(self, index: int) -> bool:
        """SIGKILL the process group of the ``index``-th session (see :func:`_crash_group`); False when
        it has no pid yet."""
        pid = self.session_pid(index)
        if pid is None:
            return False
        _crash_group(pid)
        return True

    def hang_session(self, index: int) -> bool:
        """SIGSTOP the process group of the ``index``-th session (alive, silent); False when it has no
        pid yet."""
        pid = self.session_pid(index)
        if pid is None:
            return False
        _signal_group(pid, signal.SIGSTOP)
        self._stopped.add(index)
        return True

    def _lanes(self) -> list[tuple[int, str, Any]]:
        return [(i, lane, proxy) for i, r in enumerate(self.relays) for s in r.sessions
                for lane, proxy in (("command", s.command), ("health", s.health))]

    def events(self) -> list[dict[str, Any]]:
        """Every proxy event (applied faults, failures) of every session, as JSON-ready evidence."""
        return [{"session": i, "lane": lane, **{k: getattr(v, "name", v) for k, v in vars(e).items()}}
                for i, lane, proxy in self._lanes() for e in proxy.events]

    def frame_counts(self) -> dict[tuple[int, str, str, str], int]:
        """Whole frames seen, by (session, lane, direction, frame type)."""
        return {(i, lane, d.name, ft.name): n for i, lane, proxy in self._lanes()
                for (d, ft), n in proxy.frame_counts().items()}

    @staticmethod
    def _stop(proc: subprocess.Popen[bytes]) -> None:
        _signal_group(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            _signal_group(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)

    def close(self, grace_s: float = 5.0) -> None:
        """Stop every relay, every session still alive, then every daemon this object started.

        A session its Worker closed is still unlinking its shared memory as it exits; it gets
        ``grace_s`` to finish before it is killed, or its segments would outlive it.
        """
        deadline = time.monotonic() + grace_s
        for i in range(len(self.relays)):
            pid = self.session_pid(i)
            while pid is not None and i not in self._stopped and _group_alive(pid) and time.monotonic() < deadline:
                time.sleep(0.02)
            self.kill_session(i)  # a session whose parent already closed it is gone: nothing to kill
        for relay in self.relays:
            relay.close()
        for proc, _addr in self._daemons.values():
            if proc is not None:
                self._stop(proc)
        self.relays.clear()
        self._daemons.clear()
        self._stopped.clear()
