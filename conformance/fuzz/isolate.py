"""One real-runtime run in a process of its own, with a wall-clock limit.

The real runtime starts processes of its own and can hang in native code; a fuzzer that waits
on it would stop. Each example's backend run happens in a child process that leads a new
session, so on timeout (or when the fuzzer is interrupted) the whole group — the runtime's own
workers included — is killed, and the example's outcome is TIMEOUT: a finding, not a stuck run.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from typing import Any

from conformance.fuzz.oracle import Outcome


def _child(conn: Any, text: str, backend: str, seed: int) -> None:
    os.setsid()  # lead a group: the parent kills the runtime's processes with ours
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)  # the runtime's own chatter does not belong in the fuzzer's summary
    os.dup2(devnull, 2)
    try:
        from conformance.fuzz.oracle import observe_text

        out: Any = observe_text(text, backend, seed, outputs=True)
    except BaseException as exc:  # the harness failed, not the runtime: still an answer
        out = Outcome(backend, "CRASH", f"harness: {type(exc).__name__}: {exc}"[:400])
    try:
        conn.send(out)
    finally:
        conn.close()


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def observe(text: str, backend: str, seed: int, timeout_s: float) -> Outcome:
    """:func:`conformance.fuzz.oracle.observe_text` in a child process; TIMEOUT or CRASH when it does not answer."""
    from conformance.runner import process_context

    ctx = process_context()  # the fork server the conformance runner uses: children start warm
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(child, text, backend, seed), daemon=False)
    proc.start()
    child.close()
    deadline = time.monotonic() + timeout_s
    try:
        if parent.poll(max(0.0, deadline - time.monotonic())):
            try:
                out: Outcome = parent.recv()
            except EOFError:
                proc.join(5)
                return Outcome(backend, "CRASH", f"the run's process died (exit code {proc.exitcode})")
            proc.join(10)
            return out
        if not proc.is_alive():
            return Outcome(backend, "CRASH", f"the run's process died (exit code {proc.exitcode})")
        return Outcome(backend, "TIMEOUT", f"no result within {timeout_s:g}s: the run was killed")
    finally:
        if proc.pid is not None:
            _kill_group(proc.pid)
        proc.join(5)
        parent.close()


__all__ = ["observe"]
