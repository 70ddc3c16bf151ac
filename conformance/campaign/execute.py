"""Running many seeds: on Dask (an embedded ``LocalCluster``, or a cluster by address), or in-process.

Seeds go out in small batches (one Dask task each) so per-task overhead stays far below a seed's
cost. Each seed has a wall-clock limit: a seed that outlives it is recorded TIMEOUT, its worker
process is restarted (the only way to stop a stuck thread) and the rest of its batch is sent again.
A worker process that dies takes its batch with it, and also any task the scheduler had already
queued on that worker (with ``allowed-failures`` 0 those fail at once too; the embedded cluster queues
none, ``worker-saturation`` 1.0, but a cluster by address may). So the seeds of a failed batch are
retried one by one, and a seed whose lone run fails is run alone once more after everything else has
finished, one such run at a time: nothing else is then on the cluster, so its worker can only die of
it. A seed that kills its worker in both lone runs is recorded CRASH. A batch that finished on a
worker that died before its result was fetched is run again by the scheduler, and counts as failed if
that run dies too. Ctrl-C stops the campaign; what finished is returned and written.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from conformance.campaign.seedrun import CampaignSpec, crash_row, run_seed

Row = dict[str, Any]


@dataclass
class BatchResult:
    """What one batch returned: rows, the seeds it did not reach, and whether its worker is stuck."""

    rows: list[Row]
    unfinished: list[int] = field(default_factory=list)
    stuck: bool = False
    worker: str | None = None


def run_batch(spec: CampaignSpec, seeds: Sequence[int]) -> BatchResult:
    """Run ``seeds`` one after another, each under ``spec.seed_timeout_s`` of wall clock."""
    rows: list[Row] = []
    worker = _worker_address()
    _warm_up(spec)
    for i, seed in enumerate(seeds):
        box: list[Any] = []
        # A daemon thread: a seed stuck past its limit must not keep its process from exiting on restart.
        t = threading.Thread(target=_into, args=(box, spec, seed), name=f"tierbed-seed-{seed}", daemon=True)
        t.start()
        t.join(spec.seed_timeout_s)
        if t.is_alive():
            rows.append(crash_row(seed, spec, "TIMEOUT", f"still running after {spec.seed_timeout_s:g}s of wall clock"))
            return BatchResult(rows, list(seeds[i + 1:]), True, worker)
        if isinstance(box[0], BaseException):
            raise box[0]
        rows.append(box[0])
    return BatchResult(rows, [], False, worker)


_WARM: set[str] = set()


def _warm_up(spec: CampaignSpec) -> None:
    """Once per process and target: one fault-free run, so imports and JIT compiles do not count against the
    first seed's wall-clock limit (bounded too, generously)."""
    if spec.target.name in _WARM:
        return
    _WARM.add(spec.target.name)
    t = threading.Thread(target=_quiet_observe, args=(spec,), name="tierbed-warm-up", daemon=True)
    t.start()
    t.join(max(120.0, 10 * spec.seed_timeout_s))


def _quiet_observe(spec: CampaignSpec) -> None:
    from conformance.campaign.seedrun import observe

    with contextlib.suppress(Exception):  # the warm-up only loads code; the seeds report what goes wrong
        observe(spec, 0, [])


def _into(box: list[Any], spec: CampaignSpec, seed: int) -> None:
    try:
        box.append(run_seed(spec, seed))
    except BaseException as exc:  # handed to the batch's thread, which re-raises it there
        box.append(exc)


def _worker_address() -> str | None:
    try:
        from distributed import get_worker

        return get_worker().address
    except (ImportError, ValueError):
        return None


def batches(seeds: Sequence[int], size: int) -> list[list[int]]:
    return [list(seeds[i:i + size]) for i in range(0, len(seeds), size)]


def default_batch(n: int, workers: int) -> int:
    """Small enough to balance and to show progress, large enough to hide per-task overhead."""
    return max(1, min(64, n // max(1, workers * 16)))


def run_inline(spec: CampaignSpec, seeds: Sequence[int], on_row: Callable[[Row], None]) -> bool:
    """Every seed in this process, in order (no Dask); returns True if interrupted."""
    try:
        for seed in seeds:
            res = run_batch(spec, [seed])
            for r in res.rows:
                on_row(r)
    except KeyboardInterrupt:
        return True
    return False


@contextmanager
def dask_client(scheduler: str | None, workers: int | None) -> Iterator[Any]:
    """A client of the cluster at ``scheduler``, or of an embedded LocalCluster (one process per core)."""
    import dask
    from distributed import Client, LocalCluster

    if scheduler:
        client = Client(scheduler, timeout="20s")
        try:
            yield client
        finally:
            client.close()
        return
    n = workers or os.cpu_count() or 1
    # A seed that kills its worker must come back as CRASH at once, not after three retries elsewhere; no
    # task waits in a worker's own queue, where its death would fail it too (saturation 1.0); and a dead
    # worker's nanny restarts it for as long as the campaign runs. (The cluster closes a nanny whose worker
    # is absent 15 s after a death, the default lost-worker-timeout: with seeds crashing every few
    # seconds it could meet the worker dead again, stop it for good and fail the task it was running.)
    with dask.config.set({"distributed.scheduler.allowed-failures": 0, "distributed.worker.daemon": False,
                          "distributed.scheduler.worker-saturation": 1.0, "distributed.deploy.lost-worker-timeout":
                          "1000 days", "logging.distributed": "critical"}):
        # The workers inherit an ignored SIGINT: Ctrl-C on a terminal reaches the whole process group, and
        # it is the driver's to handle (stop, write what finished), not each worker's to die of.
        main = threading.current_thread() is threading.main_thread()
        old = signal.signal(signal.SIGINT, signal.SIG_IGN) if main else None
        try:
            cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None,
                                   silence_logs=50)
        finally:
            if main:
                signal.signal(signal.SIGINT, old)
        client = Client(cluster)
        try:
            yield client
        except KeyboardInterrupt:
            cluster.close(timeout=3)  # an interrupted campaign does not wait for running batches
            raise
        finally:
            client.close(timeout=10)
            cluster.close(timeout=10)


def run_dask(spec: CampaignSpec, seeds: Sequence[int], on_row: Callable[[Row], None], *, scheduler: str | None = None,
             workers: int | None = None, batch: int | None = None) -> bool:
    """Every seed on Dask; ``on_row`` gets each row as it arrives. Returns True if interrupted (Ctrl-C)."""
    from distributed import as_completed

    with dask_client(scheduler, workers) as client:
        nworkers = max(1, len(client.scheduler_info().get("workers", {})) or (workers or 1))
        size = batch or default_batch(len(seeds), nworkers)
        pending: dict[Any, list[int]] = {}

        def submit(group: list[int], singly: bool = False) -> Any:
            # The spec travels with each task (a few KB): a scattered copy would be lost with a dying worker.
            fut = client.submit(run_batch, spec, group, pure=False, retries=0)
            pending[fut] = group
            ac.add(fut)
            if singly:
                alone.add(fut)
            return fut

        def confirm_next() -> None:
            # A second lone run goes out only when nothing else is in flight: beside any other task (a first
            # lone run of another crasher, say) a dying worker would fail it too, and it would be no proof.
            if waiting and not pending:
                confirming.add(submit([waiting.pop(0)], singly=True))

        alone: set[Any] = set()       # lone runs of a seed
        confirming: set[Any] = set()  # the second lone run in flight, if any (then the only task)
        waiting: list[int] = []       # seeds whose lone run failed, in line for their second, run last
        seen: set[int] = set()
        ac = as_completed()
        for g in batches(seeds, size):
            submit(g)
        try:
            for fut in ac:
                group = pending.pop(fut)
                lone, second = fut in alone, fut in confirming
                alone.discard(fut)
                confirming.discard(fut)
                res, exc = _outcome(fut)
                if res is None:
                    if second:
                        seen.add(group[0])
                        on_row(crash_row(group[0], spec, "CRASH", f"its worker process died, twice running it alone "
                                         f"({type(exc).__name__}: {str(exc)[:200]})"))
                    elif lone or len(group) == 1:
                        waiting.append(group[0])  # it, or a seed run beside it on the same worker, killed it
                    else:
                        for s in group:  # find which seed killed the worker
                            submit([s], singly=True)
                    confirm_next()
                    continue
                fut.release()  # else restarting its worker would make the scheduler compute it again
                for r in res.rows:
                    if r["seed"] not in seen:  # a batch recomputed after a worker loss repeats its seeds
                        seen.add(r["seed"])
                        on_row(r)
                if res.stuck and res.worker:
                    try:
                        client.restart_workers([res.worker], timeout=60, raise_for_error=False)
                    except Exception as exc:  # the cluster decides; going on is what matters
                        print(f"campaign: could not restart stuck worker {res.worker}: {exc}", file=sys.stderr)
                if res.unfinished:
                    submit(res.unfinished)
                confirm_next()
        except KeyboardInterrupt:
            if scheduler is None:
                raise  # dask_client kills the embedded workers; run_campaign writes what finished
            client.cancel(list(pending))  # one call: futures cancelled one by one cost a round trip each
            return True
        return False


def _outcome(fut: Any) -> tuple[BatchResult | None, BaseException | None]:
    """A finished batch's result, or the error that ended it: its worker died running it, or (a finished
    batch) died holding the result before it was fetched, and the rerun the scheduler then started died
    too. Fetching waits for that rerun, so no other batch is taken up meanwhile."""
    if fut.status == "error":
        return None, fut.exception()
    try:
        return fut.result(), None
    except Exception as exc:  # the rerun of a lost result died (KilledWorker), as a batch run once would
        return None, exc


class Progress:
    """A live bar with counts and ETA on a terminal; a line every ``every_s`` seconds otherwise."""

    def __init__(self, total: int, *, stream: Any = None, every_s: float = 10.0, enabled: bool = True) -> None:
        self.total, self.done, self.violating, self.hangs = total, 0, 0, 0
        self.stream = stream or sys.stderr
        self.every_s = every_s
        self.enabled = enabled
        self.t0 = self.last = time.monotonic()
        self.bar = None
        if enabled and getattr(self.stream, "isatty", lambda: False)():
            from tqdm import tqdm

            self.bar = tqdm(total=total, file=self.stream, unit="seed", dynamic_ncols=True, desc="campaign")

    def update(self, r: Row) -> None:
        self.done += 1
        self.violating += bool(r["violations"])
        self.hangs += r["outcome"] in ("HANG", "TIMEOUT")
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.set_postfix(violating=self.violating, hangs=self.hangs, refresh=False)
            self.bar.update(1)
            return
        now = time.monotonic()
        if self.done == 1:  # the rate counts from the first result, not from the cluster's start-up
            self.t0 = self.last = now
            return
        if now - self.last >= self.every_s or self.done == self.total:
            self.last = now
            rate = (self.done - 1) / max(now - self.t0, 1e-9)
            eta = (self.total - self.done) / rate if rate else 0.0
            print(f"campaign: {self.done}/{self.total} seeds ({100 * self.done / self.total:.0f}%), "
                  f"{self.violating} violating, {self.hangs} hangs, {rate:.1f} seeds/s since the first, "
                  f"ETA {eta:.0f}s",
                  file=self.stream, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


__all__ = ["BatchResult", "Progress", "batches", "dask_client", "default_batch", "run_batch", "run_dask",
           "run_inline"]
