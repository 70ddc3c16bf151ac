"""What the adapter observes inside a SUB process.

SUB callables and nested orchestration functions run in forked children of the real runtime, so the
adapter registers a :class:`SubProbe` around each Python callable. The probe takes the last scalar of
its task args as a dispatch token (the adapter appends it at submit time and hides it from the
callable), gives the callable a view with numpy tensors (:class:`ArgsView`), and writes one small
JSON file per invocation -- wall-clock start and end (``time.monotonic``, one clock for every process
of the host), the exception and its error class, if any, and for a nested orchestration the tasks it
submitted -- into the observation directory of the process that created the
Worker. The probe finds that directory through the environment (:data:`OBS_DIR_ENV`, set before the
Worker forks its children), never through state of its own: the probe is pickled into the
callable's registration payload, and a per-process path in it would give the same function a
different hashid in every process. A file is written to a
temporary name and renamed, so the parent never reads a half-written observation; files survive the
child dying after the write, and a missing file means the task never started.
"""

from __future__ import annotations

import atexit
import itertools
import json
import os
import shutil
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

#: The real runtime's DataType values (``simpler.task_interface.DataType``) -> numpy dtypes.
DTYPE_BY_VALUE = {0: np.float32, 1: np.float16, 2: np.int32, 3: np.int16, 4: np.int8, 5: np.uint8, 7: np.int64,
                  8: np.uint64, 9: np.uint16, 10: np.uint32}


class ArgsView:
    """A SUB callable's args as the cases use them: ``tensor(i)`` (a numpy view or None), ``scalar(i)``."""

    def __init__(self, mapped: Any, scalars: tuple[int, ...]) -> None:
        self._mapped = mapped
        self._scalars = scalars
        self._views: list[np.ndarray] = []

    def tensor_count(self) -> int:
        return len(self._mapped)

    def scalar_count(self) -> int:
        return len(self._scalars)

    def scalar(self, i: int) -> int:
        return self._scalars[i]

    def tensor(self, i: int) -> np.ndarray | None:
        if i >= len(self._mapped):
            return None
        arg = self._mapped[i]
        dt = np.dtype(DTYPE_BY_VALUE.get(int(arg.dtype), np.uint8))
        count = int(np.prod(arg.shapes)) if len(arg.shapes) else 1
        view = np.frombuffer(arg.buffer, dtype=dt, count=count).reshape(tuple(arg.shapes))
        self._views.append(view)
        return view

    def release(self) -> None:
        self._views.clear()


class OrchArgsView(ArgsView):
    """A nested orchestration function's args: ``tensor(i)`` is the runtime's own tensor, to be passed
    on to the next submit as it is (the data stays in the shared buffer it already lives in)."""

    def tensor(self, i: int) -> Any:
        return self._mapped.tensor(i) if i < self._mapped.tensor_count() else None


#: Scalars the adapter appends to a next-level submit at L4 and above: the serial of the child
#: Worker it targets, and the dispatch token (last).
ORCH_TRAILER = 2


class SubProbe:
    """A registered wrapper around a Python callable that reports each invocation to the observation
    directory. Its only state is the callable, so its pickled form (and the hashid the runtime derives
    from it) depends on the callable alone.

    Called with one argument it is a SUB callable: the last scalar is the dispatch token. Called with
    ``(orch, args, config)`` it is an orchestration function a parent at L4 or above handed to a child
    Worker: the trailer (:data:`ORCH_TRAILER`) names the child Worker and the token, and the
    callable gets the adapter's orchestrator for that child, so the tasks it submits are named and
    observed too (:mod:`hw_backend.adapter`, ``nested_orchestration``).
    """

    def __init__(self, fn: Any) -> None:
        self.fn = fn

    def __call__(self, *call: Any) -> None:
        if len(call) == 3:
            return self._orchestrate(*call)
        (args,) = call
        scalars = tuple(args.scalar(i) for i in range(args.scalar_count()))
        token, scalars = (scalars[-1], scalars[:-1]) if scalars else (None, scalars)
        view = ArgsView(args, scalars)
        with observed(token):
            try:
                self.fn(view)
            finally:
                view.release()

    def _orchestrate(self, orch: Any, args: Any, config: Any) -> None:
        if _nested_runner is None:
            raise RuntimeError("tierbed hw adapter: a nested orchestration in a process where the adapter "
                               "(hw_backend.adapter) registered no runner")
        scalars = tuple(args.scalar(i) for i in range(args.scalar_count()))
        if len(scalars) < ORCH_TRAILER:
            raise RuntimeError("tierbed hw adapter: a nested orchestration call without its dispatch trailer")
        (serial, token), scalars = scalars[-ORCH_TRAILER:], scalars[:-ORCH_TRAILER]
        with observed(token) as extra:
            _nested_runner(self.fn, orch, OrchArgsView(args, scalars), config, int(serial), extra)


# The adapter (which builds on this module) registers how a nested orchestration runs, so the probe calls
# it without importing the adapter. The runtime's child processes are forked from the one that did.
_nested_runner: Callable[..., None] | None = None


def set_nested_runner(fn: Callable[..., None]) -> None:
    """Install the function that runs a nested orchestration (``hw_backend.adapter.nested_orchestration``)."""
    global _nested_runner
    _nested_runner = fn


class observed:
    """Times the body and writes its observation (start, end, error and its class, pid, and whatever
    the body put in ``extra``) under ``token``, also when the body raises."""

    def __init__(self, token: Any) -> None:
        self.token = token
        self.extra: dict[str, Any] = {}

    def __enter__(self) -> dict[str, Any]:
        self.start = time.monotonic()
        return self.extra

    def __exit__(self, et: Any, exc: BaseException | None, tb: Any) -> None:
        from hw_backend.errors import error_class

        end = time.monotonic()
        obs_dir = os.environ.get(OBS_DIR_ENV) or _OBS_DIR
        if self.token is None or not obs_dir:
            return
        data = {"start": self.start, "end": end, "pid": os.getpid(), **self.extra,
                "error": f"{type(exc).__name__}: {exc}" if exc is not None else None,
                "error_class": error_class(exc) if exc is not None else None,
                "trace": "".join(traceback.format_exception(exc, limit=4)) if exc is not None else ""}
        write_observation(obs_dir, int(self.token), data)


_TOKENS = itertools.count(1)
_OBS_DIR: str | None = None
_OBS_DIR_PID: int | None = None
#: The environment variable through which SUB children find the observation directory.
OBS_DIR_ENV = "TIERBED_HW_OBS_DIR"


def next_token() -> int:
    """A dispatch token unique on the host while the case runs: the process id in the high bits, since
    nested orchestrations submit from forked children whose counters start from the parent's."""
    return (os.getpid() << 32) | next(_TOKENS)


def observation_dir() -> str:
    """This process's observation directory (one for every Worker, so that the same callable registered
    on two Workers has the same registration payload and hence the same hashid). It is published in
    :data:`OBS_DIR_ENV` for the SUB children; a directory inherited from another process (a forked
    parent, or the environment) is never reused, since tokens are only unique within one process."""
    global _OBS_DIR, _OBS_DIR_PID
    if _OBS_DIR is None or os.getpid() != _OBS_DIR_PID:
        _OBS_DIR = tempfile.mkdtemp(prefix="tierbed-hw-")
        _OBS_DIR_PID = os.getpid()
        atexit.register(_remove_if_owner, _OBS_DIR, _OBS_DIR_PID)
    os.environ[OBS_DIR_ENV] = _OBS_DIR
    return _OBS_DIR


def _remove_if_owner(path: str, pid: int) -> None:
    if os.getpid() == pid:  # a forked child inherits the atexit hook but does not own the directory
        shutil.rmtree(path, True)


def write_observation(obs_dir: str, token: int, data: dict[str, Any]) -> None:
    path = Path(obs_dir) / f"{token}.json"
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


def read_observation(obs_dir: str, token: int) -> dict[str, Any] | None:
    path = Path(obs_dir) / f"{token}.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None
