"""What the adapter observes inside a SUB process.

SUB callables run in forked children of the real runtime, so the adapter registers a
:class:`SubProbe` around each Python callable. The probe takes the last scalar of its task args as a
dispatch token (the adapter appends it at submit time and hides it from the callable), gives the
callable a view with numpy tensors (:class:`ArgsView`), and writes one small JSON file per
invocation -- wall-clock start and end (``time.monotonic``, one clock for every process of the
host) and the exception, if any -- into the observation directory of the process that created the
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


class SubProbe:
    """A registered wrapper around a SUB callable that reports each invocation to the observation
    directory. Its only state is the callable, so its pickled form (and the hashid the runtime derives
    from it) depends on the callable alone."""

    def __init__(self, fn: Any) -> None:
        self.fn = fn

    def __call__(self, args: Any) -> None:
        scalars = tuple(args.scalar(i) for i in range(args.scalar_count()))
        token, scalars = (scalars[-1], scalars[:-1]) if scalars else (None, scalars)
        view = ArgsView(args, scalars)
        start = time.monotonic()
        error: str | None = None
        try:
            self.fn(view)
        except BaseException as exc:
            error = f"{type(exc).__name__}: {exc}"
            raise
        finally:
            end = time.monotonic()
            view.release()
            obs_dir = os.environ.get(OBS_DIR_ENV) or _OBS_DIR
            if token is not None and obs_dir:
                write_observation(obs_dir, int(token), {"start": start, "end": end, "error": error,
                                                             "pid": os.getpid(),
                                                             "trace": traceback.format_exc(limit=4) if error else ""})


_TOKENS = itertools.count(1)
_OBS_DIR: str | None = None
_OBS_DIR_PID: int | None = None
#: The environment variable through which SUB children find the observation directory.
OBS_DIR_ENV = "TIERBED_HW_OBS_DIR"


def next_token() -> int:
    """A dispatch token unique in this process (every Worker of a case shares the observation directory)."""
    return next(_TOKENS)


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
