"""What a seed on a real runtime may leave on the host: processes, and POSIX shared memory.

Checked around every hw seed (the ``clean_close`` invariant): a child process of this one that is
still alive after the seed's Workers were closed, or a ``/dev/shm`` segment that appeared during the
seed and that no live process maps any more (an orphan: nothing will ever unlink it). Segments that
a concurrent seed's live processes map are not counted, so parallel seeds do not blame each other.
Read from ``/proc`` and psutil; where they cannot tell, nothing is reported.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

SHM = Path("/dev/shm")


@dataclass(frozen=True)
class Snapshot:
    shm: frozenset[str]
    children: frozenset[int]


def _shm() -> frozenset[str]:
    try:
        return frozenset(p.name for p in SHM.iterdir())
    except OSError:
        return frozenset()


def _children() -> list[psutil.Process]:
    try:
        return [c for c in psutil.Process(os.getpid()).children(recursive=True)
                if c.status() != psutil.STATUS_ZOMBIE]
    except psutil.Error:
        return []


def snapshot() -> Snapshot:
    return Snapshot(_shm(), frozenset(c.pid for c in _children()))


def _mapped() -> set[str]:
    out: set[str] = set()
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            maps = (d / "maps").read_text()
        except OSError:
            continue
        out.update(line[line.index("/dev/shm/") + 9:] for line in maps.splitlines() if "/dev/shm/" in line)
    return out


def leftovers(before: Snapshot, grace_s: float = 2.0) -> list[str]:
    """What appeared since ``before`` and is still there after ``grace_s`` (teardown may lag a little)."""
    deadline = time.monotonic() + grace_s
    while True:
        procs = [c for c in _children() if c.pid not in before.children]
        new_shm = sorted(_shm() - before.shm)
        if (not procs and not new_shm) or time.monotonic() >= deadline:
            break
        time.sleep(0.1)
    out = []
    for p in procs:
        try:
            out.append(f"process {p.pid} ({' '.join(p.cmdline()[:3]) or p.name()}) still running")
        except psutil.Error:
            continue
    if new_shm:
        mapped = _mapped()
        out.extend(f"shared memory /dev/shm/{n} left behind, mapped by no process" for n in new_shm if n not in mapped)
    return out


__all__ = ["Snapshot", "leftovers", "snapshot"]
