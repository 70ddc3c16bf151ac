"""Progress lines for a run whose stderr is not a terminal (CI logs, pipes).

On a terminal a live bar says how far a run is; in a log nothing would appear until the end.
:class:`LineProgress` prints one line when the first result is in, then at most one every
``every_s`` seconds, and always one at the end::

    conform sim: 40/145 cases, 2 failing, ETA 20s

The campaign's :class:`conformance.campaign.execute.Progress` does the same for seeds (with its own
counts); this one is the small, general form: a label, a unit and a count of failing results.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any, TextIO


class LineProgress:
    """``update(failing)`` once per finished item; a line at the first, every ``every_s`` s and the last."""

    def __init__(self, label: str, total: int, *, unit: str = "cases", stream: TextIO | None = None,
                 every_s: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.label, self.total, self.unit = label, total, unit
        self.stream: Any = stream if stream is not None else sys.stderr
        self.every_s = every_s
        self.clock = clock
        self.done = self.failing = 0
        self.t0 = clock()
        self.last: float | None = None
        self.first: float | None = None  # when the first result came in

    def line(self) -> str:
        elapsed = max(self.clock() - self.t0, 1e-9)
        text = f"{self.label}: {self.done}/{self.total} {self.unit}, {self.failing} failing"
        if self.done >= self.total:
            return f"{text}, done in {elapsed:.0f}s"
        # The pace since the first result: the time to it is mostly start-up (imports, process pools), and
        # counting it made the first ETAs several times too long. One result gives no pace yet.
        eta = None
        if self.first is not None and self.done >= 2:
            eta = (self.total - self.done) * (self.clock() - self.first) / (self.done - 1)
        return text + (f", ETA {eta:.0f}s" if eta is not None else "")

    def update(self, failing: bool = False) -> None:
        self.done += 1
        self.failing += bool(failing)
        now = self.clock()
        if self.first is None:
            self.first = now
        if self.last is None or now - self.last >= self.every_s or self.done >= self.total:
            self.last = now
            print(self.line(), file=self.stream, flush=True)
