"""The exec session: simulator settings for every Worker a script makes, and what they produced.

A script written for the real runtime builds ``Worker(level, **config)`` with no simulator
knobs; the session supplies them (seed, data mode, profile, fault plan, kernel map) and keeps
every Worker it built so that ``tierbed exec`` can write their traces and RunRecords once the
script ends. Outside ``tierbed exec`` / :func:`compat.exec_script` a default session applies.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sim import SimConfig

if TYPE_CHECKING:
    from compat.kernel_map import KernelMap


@dataclass
class Session:
    """Settings for the Workers a script builds, and the Workers themselves (in construction order)."""

    seed: int = 0
    data_mode: str = "functional"
    profile: str | Path | None = None
    faults: Any = None
    kernel_map_files: tuple[str, ...] = ()
    workers: list[Any] = field(default_factory=list)
    _kernel_map: KernelMap | None = None

    def sim_config(self) -> SimConfig:
        return SimConfig(seed=self.seed, data_mode=self.data_mode, profile=self.profile, faults=self.faults)

    def kernel_map(self) -> KernelMap:
        if self._kernel_map is None:
            from compat.kernel_map import load_kernel_map

            self._kernel_map = load_kernel_map(self.kernel_map_files)
        return self._kernel_map

    def roots(self) -> list[Any]:
        """The Workers that were brought up as roots (each holds one simulation)."""
        return [w for w in self.workers if w.sim_worker._parent is None and w.sim_worker._sim is not None]


_DEFAULT = Session()
_current: list[Session] = []


def current_session() -> Session:
    """The session of the innermost :func:`session_scope`, else the default one."""
    return _current[-1] if _current else _DEFAULT


@contextmanager
def session_scope(session: Session) -> Iterator[Session]:
    """Make ``session`` current for the ``with`` block."""
    _current.append(session)
    try:
        yield session
    finally:
        _current.pop()
