"""Fixtures shared by the simulator's tests."""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager

import pytest


@contextmanager
def _hard_timeout(seconds: int) -> Iterator[None]:
    """Fail (not hang) if the block runs longer than ``seconds`` of wall time."""

    def fire(_sig, _frame):
        raise TimeoutError(f"still running after {seconds}s: the simulator did not end the run")

    old = signal.signal(signal.SIGALRM, fire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


@pytest.fixture
def hard_timeout() -> Callable[[int], AbstractContextManager[None]]:
    """``with hard_timeout(60): ...`` -- a run that regresses into a hang fails the test instead of CI."""
    return _hard_timeout
