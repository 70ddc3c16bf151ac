"""Run a script written for the real runtime, unchanged, on the simulator.

:func:`exec_script` is ``tierbed exec``: the script runs as ``__main__`` with
``sys.argv = [SCRIPT, *ARGS]`` and its directory first on ``sys.path`` (as ``python SCRIPT``
would), the import hook (:mod:`compat.hook`) serving ``simpler`` and ``simpler_setup``, and a
:class:`~compat.session.Session` giving every Worker it builds the simulator settings. The
script's output goes where it would; its exit status is returned (``sys.exit(n)`` gives ``n``,
an uncaught exception prints its traceback and gives 1). Afterwards the trace of every root
Worker that was brought up (Perfetto JSON + fixed-column text) and their RunRecords (JSON) are
written where asked, also when the script failed.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import os
import runpy
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from compat.hook import facade_imports
from compat.session import Session, session_scope


class ExecUsageError(ValueError):
    """The script or an option cannot be used (missing file, bad directory, ...)."""


def _exit_code(code: Any) -> int:
    if code is None:
        return 0
    if isinstance(code, int) and not isinstance(code, bool):
        return code
    print(code, file=sys.stderr)
    return 1


def _print_script_traceback(exc: BaseException, script: Path) -> None:
    """The traceback as ``python SCRIPT`` would print it: from the script's first frame on."""
    tb = exc.__traceback__
    target = str(script.resolve())
    while tb is not None and str(Path(tb.tb_frame.f_code.co_filename).resolve()) != target:
        tb = tb.tb_next
    traceback.print_exception(type(exc), exc, tb or exc.__traceback__)


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, enum.Enum):
        return obj.value
    if isinstance(obj, np.ndarray):
        return {"shape": list(obj.shape), "dtype": str(obj.dtype)}
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
    if isinstance(obj, set | frozenset | tuple):
        return list(obj)
    return repr(obj)


def _label(i: int, worker: Any) -> str:
    return f"w{i}-L{worker.level}"


def write_traces(session: Session, out_dir: Path) -> list[Path]:
    """Each root Worker's trace as ``<label>.perfetto.json`` and ``<label>.trace.txt``; the paths written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for i, w in enumerate(session.roots()):
        trace = w.sim_worker.simulation.trace
        p = out_dir / f"{_label(i, w)}.perfetto.json"
        p.write_text(json.dumps(trace.to_perfetto()), encoding="utf-8")
        t = out_dir / f"{_label(i, w)}.trace.txt"
        t.write_text(trace.text(), encoding="utf-8")
        written += [p, t]
    return written


def take_records(session: Session, script: str) -> list[dict[str, Any]]:
    """The RunRecord of each root Worker, as plain data (outputs as shape/dtype only)."""
    out = []
    for i, w in enumerate(session.roots()):
        rec = w.sim_worker.take_record(script=script, worker=_label(i, w))
        out.append(json.loads(json.dumps(dataclasses.asdict(rec), default=_jsonable)))
    return out


def exec_script(path: str | os.PathLike, argv: Sequence[str] = (), *, profile: str | os.PathLike | None = None,
                seed: int = 0, data_mode: str = "functional", faults: Any = None,
                trace_out: str | os.PathLike | None = None, record_out: str | os.PathLike | None = None,
                kernel_maps: Sequence[str | os.PathLike] = ()) -> int:
    """Run ``path`` as ``__main__`` on the simulator; return its exit status (see the module docstring).

    ``faults`` is a :class:`sim.remote.faults.FaultPlan` (or a sequence of its fault records);
    ``kernel_maps`` are extra kernel-map files (:mod:`compat.kernel_map`).
    """
    script = Path(path)
    if not script.is_file():
        raise ExecUsageError(f"script not found: {script}")
    if data_mode not in ("functional", "timing"):
        raise ExecUsageError(f"data mode must be 'functional' or 'timing', got {data_mode!r}")
    if faults is not None and not hasattr(faults, "faults"):
        from sim.remote.faults import FaultPlan

        faults = FaultPlan(tuple(faults))
    session = Session(seed=seed, data_mode=data_mode, profile=profile, faults=faults,
                      kernel_map_files=tuple(str(k) for k in kernel_maps))
    session.kernel_map()  # a broken map file is a usage error, reported before the script starts
    saved_argv, saved_path = sys.argv, list(sys.path)
    sys.argv = [str(script), *argv]
    sys.path.insert(0, str(script.resolve().parent))
    code = 0
    try:
        with session_scope(session), facade_imports():
            try:
                runpy.run_path(str(script), run_name="__main__")
            except SystemExit as exc:
                code = _exit_code(exc.code)
            except KeyboardInterrupt:
                code = 130
            except BaseException as exc:
                _print_script_traceback(exc, script)
                code = 1
    finally:
        sys.argv = saved_argv
        sys.path[:] = saved_path
        sys.stdout.flush()
        if trace_out is not None:
            write_traces(session, Path(trace_out))
        if record_out is not None:
            out = Path(record_out)
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps({"script": str(script), "argv": list(argv), "seed": seed,
                                       "data_mode": data_mode, "records": take_records(session, str(script))},
                                      indent=1, default=_jsonable) + "\n", encoding="utf-8")
    return code
