"""Determinism checking: run one scenario twice with the same seed and compare the traces.

``DESIGN.md`` "Determinism": the simulator is a pure function of (scenario, seed,
parameters), so two runs must give byte-identical traces. :func:`check_determinism` runs a
scenario twice and reports the first differing trace line, if any.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sim.errors import InvalidArgument
from sim.simulation import SimConfig
from sim.trace import Trace, first_difference


@dataclass(frozen=True)
class DeterminismResult:
    """The outcome of running a scenario twice."""

    identical: bool
    digest_a: str
    digest_b: str
    events: int
    first_difference: tuple[int, str, str] | None

    def describe(self) -> str:
        if self.identical:
            return f"deterministic: {self.events} events, trace sha256 {self.digest_a}"
        assert self.first_difference is not None
        i, a, b = self.first_difference
        return f"NOT deterministic: traces first differ at event {i}:\n  run 1: {a}\n  run 2: {b}"


def check_determinism(scenario: Callable[[SimConfig], Trace], config: SimConfig | None = None) -> DeterminismResult:
    """Run ``scenario(config)`` twice; it must build, run and close its Workers and return the trace."""
    cfg = config or SimConfig(jitter=0.05)
    if cfg.trace_path is not None:  # both runs would write one file, and a streaming Trace has no digest
        raise InvalidArgument("check_determinism compares in-memory traces: give it a SimConfig without "
                              "trace_path (to compare streamed runs, compare sim.trace_stream.trace_digest "
                              "of two files)")
    a = scenario(cfg)
    b = scenario(cfg)
    diff = first_difference(a, b)
    return DeterminismResult(diff is None, a.digest(), b.digest(), len(a), diff)
