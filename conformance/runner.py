"""The runner: every case in its own process, with a timeout, and the run goes on.

``run_cases`` starts one process per case (``forkserver`` context, with the backends and the
catalog preloaded in the server so that each fork is cheap), at most ``jobs`` at a time. A case
that does not finish within its timeout is killed (TIMEOUT); a process that dies without
reporting is a CRASH (its exit code is the evidence). Every process is joined before the run
returns, so nothing is left behind.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import os
import tempfile
import time
import traceback
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from conformance.backends import NotSupportedByBackend, get_backend
from conformance.catalog import Case, Locator, find_case, load_catalog
from conformance.expectations import Expectations
from conformance.judge import FAILING, Judgment, Verdict, judge
from conformance.timeline import case_timeline

DEFAULT_TIMEOUT_S = 30.0
PRELOAD = ["numpy", "sim", "sim.remote", "reference", "reference.executor", "conformance.runner",
           "conformance.cases", "conformance.corpus"]


@dataclass
class CaseResult:
    """One case's verdict on one backend."""

    case: Case
    verdict: Verdict
    evidence: list[dict[str, Any]] = field(default_factory=list)
    summary: str = ""
    duration_s: float = 0.0
    outputs: dict[str, Any] = field(default_factory=dict)  # name -> numpy array (functional runs)
    timeline: list[dict[str, Any]] = field(default_factory=list)  # see conformance.timeline
    expectation: dict[str, Any] | None = None  # a listed departure: {"status": "known"|"stale", "reason", ...}

    @property
    def known(self) -> bool:
        """A failure that an expectations file lists for this backend version."""
        return self.expectation is not None and self.expectation["status"] == "known"


@dataclass
class RunResult:
    """A whole run: metadata and every case result, in catalog order."""

    backend: str
    seed: int
    metadata: dict[str, Any]
    results: list[CaseResult]
    duration_s: float

    def counts(self) -> dict[str, int]:
        out = {v.value: 0 for v in Verdict}
        for r in self.results:
            out[r.verdict.value] += 1
        return out

    def failed_must(self) -> list[CaseResult]:
        return [r for r in self.results if r.verdict in FAILING and r.case.level == "MUST" and not r.known]

    def with_expectation(self, status: str) -> list[CaseResult]:
        """The results an expectations file marked ``known`` or ``stale``."""
        return [r for r in self.results if r.expectation is not None and r.expectation["status"] == status]


# ------------------------------------------------------------------------------------- in the child


def execute_case(case: Case, backend: str, seed: int) -> dict[str, Any]:
    """Run one case in this process and judge it; return a picklable result."""
    from conformance.context import CaseContext

    t0 = time.perf_counter()
    rt = get_backend(backend, seed)
    ctx = CaseContext(rt, seed)
    outputs: dict[str, Any] = {}
    try:
        try:
            case.fn(rt, ctx)
        finally:
            rt.close_all()
    except NotSupportedByBackend as exc:
        j = Judgment(Verdict.NOT_SUPPORTED, [{"check": "feature", "label": str(exc), "ok": True,
                                              "level": case.level.value}], str(exc))
    except Exception as exc:
        tb = traceback.format_exc(limit=8)
        j = Judgment(Verdict.FAIL if case.level == "MUST" else Verdict.NON_STRICT,
                     [{"check": "case", "label": "an exception escaped the case", "ok": False, "level": "MUST",
                       "expected": "no unexpected exception", "observed": f"{type(exc).__name__}: {exc}"[:500],
                       "traceback": tb}],
                     f"unexpected {type(exc).__name__}: {exc}"[:300])
    else:
        j = judge(case, ctx)
    for _label, rec in ctx.records:
        for name, value in rec.outputs.items():
            outputs[name] = value
    return {"verdict": j.verdict.value, "evidence": j.evidence, "summary": j.summary,
            "duration_s": time.perf_counter() - t0, "outputs": outputs,
            "timeline": case_timeline(ctx.records, backend)}


def _redirect_output(log_path: str) -> None:
    """Send this process's stdout and stderr (file descriptors, so native code's too) to ``log_path``."""
    import sys

    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    for stream in (sys.stdout, sys.stderr):
        if stream is not None:
            stream.flush()
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)


def _child(conn: multiprocessing.connection.Connection, locator: Locator, backend: str,
           seed: int, log_path: str | None = None) -> None:
    if log_path is not None:
        _redirect_output(log_path)
    try:
        case = find_case(*locator)
        result = execute_case(case, backend, seed)
    except BaseException as exc:
        result = {"verdict": Verdict.CRASH.value, "summary": f"harness error: {type(exc).__name__}: {exc}",
                  "evidence": [{"check": "harness", "label": "case could not be run", "ok": False, "level": "MUST",
                                "observed": traceback.format_exc(limit=8)}], "duration_s": 0.0, "outputs": {}}
    try:
        conn.send(result)
    except Exception as exc:
        conn.send({**result, "outputs": {}, "summary": f"{result['summary']} (outputs not sent: {exc})"})
    conn.close()


# ------------------------------------------------------------------------------------- in the parent


_CTX: Any = None


def process_context() -> Any:
    """The multiprocessing context every isolated run uses: a fork server with :data:`PRELOAD` imported
    (children start warm), or spawn where there is no fork server."""
    return _context()


def _context() -> Any:
    global _CTX
    if _CTX is None:
        method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
        _CTX = multiprocessing.get_context(method)
        if method == "forkserver":
            _CTX.set_forkserver_preload(PRELOAD)
    return _CTX


@dataclass
class _Running:
    case: Case
    proc: Any
    conn: Any
    start: float
    deadline: float
    result: dict[str, Any] | None = None


def run_cases(cases: Sequence[Case], backend: str, *, seed: int = 0, jobs: int = 1,
              timeout_s: float = DEFAULT_TIMEOUT_S,
              progress: Callable[[CaseResult], None] | None = None,
              expectations: Expectations | None = None) -> RunResult:
    """Run ``cases`` on ``backend``, each in its own process; never stops early, except on Ctrl-C, which
    returns the cases that finished (``metadata["interrupted"]`` set) after stopping those still running.

    Each case's stdout and stderr (the runtime's own logging included) go to a log file, not to the
    terminal; the tail of it is evidence when the case does not PASS. ``expectations`` marks the
    results of listed departures ``known`` or ``stale`` (:mod:`conformance.expectations`).
    """
    rt = get_backend(backend, seed)  # typed BackendUnavailable for hw / unknown names
    meta = collect_metadata(rt.describe(), seed)
    if expectations is not None:
        meta["expectations"] = list(expectations.files)
    logs = tempfile.TemporaryDirectory(prefix="tierbed-case-logs-")
    t_run = time.perf_counter()
    ctx = _context()
    results: dict[str, CaseResult] = {}
    queue = [c for c in cases]
    running: list[_Running] = []
    jobs = max(1, int(jobs))

    def finish(r: CaseResult) -> None:
        if r.verdict in FAILING or r.verdict is Verdict.NON_STRICT:
            tail = _log_tail(os.path.join(logs.name, f"{r.case.id}.log"))
            if tail:
                r.evidence.append({"check": "log", "label": "the case process's output (last lines)", "ok": True,
                                   "level": r.case.level.value, "observed": tail})
        if expectations is not None:
            r.expectation = expectations.classify(r.case.id, r.verdict.value)
        results[r.case.id] = r
        if progress is not None:
            progress(r)

    for c in list(queue):
        if not c.applies_to(backend):
            queue.remove(c)
            finish(CaseResult(c, Verdict.SKIP, [{"check": "applicability", "ok": True, "level": c.level.value,
                                                 "label": f"case applies to {', '.join(c.backends)}"}],
                              f"not applicable to {backend}"))
    interrupted = False
    try:
        while queue or running:
            while queue and len(running) < jobs:
                c = queue.pop(0)
                parent, child = ctx.Pipe(duplex=False)
                p = ctx.Process(target=_child, args=(child, c.locator(), backend, seed,
                                                     os.path.join(logs.name, f"{c.id}.log")),
                                name=f"case-{c.id}", daemon=True)
                p.start()
                child.close()
                now = time.monotonic()
                running.append(_Running(c, p, parent, now, now + (c.timeout_s or timeout_s)))
            waitables = [r.conn for r in running if r.result is None and r.conn is not None]
            waitables += [r.proc.sentinel for r in running]
            next_deadline = min(r.deadline for r in running)
            multiprocessing.connection.wait(waitables, timeout=max(0.0, next_deadline - time.monotonic()))
            now = time.monotonic()
            for r in list(running):
                if r.result is None and r.conn is not None and r.conn.poll():
                    try:
                        r.result = r.conn.recv()
                    except (EOFError, OSError):
                        r.conn.close()
                        r.conn = None
                done = not r.proc.is_alive()
                if r.result is not None or done:
                    r.proc.join(timeout=5)
                    if r.proc.is_alive():
                        r.proc.kill()
                        r.proc.join()
                    running.remove(r)
                    if r.conn is not None:
                        r.conn.close()
                    finish(_from_child(r))
                elif now >= r.deadline:
                    r.proc.kill()
                    r.proc.join()
                    running.remove(r)
                    if r.conn is not None:
                        r.conn.close()
                    finish(CaseResult(r.case, Verdict.TIMEOUT,
                                      [{"check": "timeout", "label": "case did not finish in time", "ok": False,
                                        "level": r.case.level.value, "expected": f"<= {r.deadline - r.start:.1f}s",
                                        "observed": "killed"}],
                                      f"killed after {r.deadline - r.start:.1f}s", now - r.start))
    except KeyboardInterrupt:
        interrupted = True
    finally:
        for r in running:  # interrupted: leave nothing behind
            r.proc.kill()
            r.proc.join()
        logs.cleanup()
    if interrupted:
        meta["interrupted"] = True
    ordered = [results[c.id] for c in cases if c.id in results]
    return RunResult(backend, seed, meta, ordered, time.perf_counter() - t_run)


LOG_TAIL_CHARS = 2000


def _log_tail(path: str) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - LOG_TAIL_CHARS))
            return f.read().decode("utf-8", "replace").strip()
    except OSError:
        return ""


def _from_child(r: _Running) -> CaseResult:
    elapsed = time.monotonic() - r.start
    if r.result is None:
        code = r.proc.exitcode
        how = f"signal {-code}" if code is not None and code < 0 else f"exit code {code}"
        return CaseResult(r.case, Verdict.CRASH,
                          [{"check": "process", "label": "case process died without a result", "ok": False,
                            "level": r.case.level.value, "expected": "a result", "observed": how}],
                          f"process died ({how})", elapsed)
    d = r.result
    return CaseResult(r.case, Verdict(d["verdict"]), d["evidence"], d["summary"], d["duration_s"],
                      d.get("outputs", {}), d.get("timeline", []))


def run_catalog(backend: str, pattern: str | None = None, *, seed: int = 0, jobs: int = 1,
                timeout_s: float = DEFAULT_TIMEOUT_S,
                progress: Callable[[CaseResult], None] | None = None,
                expectations: Expectations | None = None) -> RunResult:
    """Run the project's catalog (or the cases matching ``pattern``) on ``backend``."""
    return run_cases(load_catalog().select(pattern), backend, seed=seed, jobs=jobs, timeout_s=timeout_s,
                     progress=progress, expectations=expectations)


def collect_metadata(backend_info: dict[str, Any], seed: int) -> dict[str, Any]:
    import platform
    import subprocess
    from datetime import UTC, datetime

    rev = None
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        out = subprocess.run(["git", "-C", root, "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             check=False)
        if out.returncode == 0:
            rev = out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        rev = None
    return {**backend_info, "seed": seed, "git_revision": rev, "host": platform.node(),
            "os": platform.platform(), "started": datetime.now(UTC).isoformat(timespec="seconds")}


def iter_ids(cases: Iterable[Case]) -> list[str]:
    return [c.id for c in cases]
