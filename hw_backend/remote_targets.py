"""Remote L3 orchestration functions the hw backend's cases send to real sessions (``RemoteCallable`` targets).

A ``RemoteCallable("module:qualname")`` is imported by the session (``docs/remote-l3-worker-design.md``,
"Worker Identity and Callable Routing"), so these live in an importable module. They mirror the sim's
standard targets (``sim.remote.examples``) where the real runtime can run them without chip kernels,
and report each invocation to the adapter's observation directory (its path travels in the
environment to the daemon and its sessions), so the parent's record sees the remote task start, end
and fail. The adapter appends ``(run, worker serial, token)`` as the last scalars of every next-level
submit at L4 and above (:data:`hw_backend.probe.ORCH_TRAILER`).
"""

from __future__ import annotations

from typing import Any

from hw_backend.probe import ORCH_TRAILER, observed


def _token(args: Any) -> int | None:
    n = args.scalar_count() if args is not None else 0
    return int(args.scalar(n - 1)) if n >= ORCH_TRAILER else None


def noop(orch: Any, args: Any, config: Any) -> None:
    """Does nothing: the remote task completes."""
    with observed(_token(args)):
        pass


def fail(orch: Any, args: Any, config: Any) -> None:
    """Raises: the remote task fails (the parent sees a task failure)."""
    with observed(_token(args)):
        raise RuntimeError("remote orchestration task failed on purpose")
