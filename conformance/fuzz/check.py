"""The check one generated scenario gets: the simulator's properties, then the differential run.

``--backend sim``: the run on the simulator must keep every property (``oracle.PROPERTIES``, a
sampled byte-for-byte replay) and, for an honest fault-free program, match the reference
executor tensor for tensor. ``--backend reference`` or ``hw``: the same scenario on that backend
must end as the simulator's run did (outcome, error class, every task), keep the invariants,
and (reference) give the same bytes. A real-runtime run is isolated in its own process with a
wall-clock limit, so a hang is a finding, not a stuck fuzzer.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

import yaml

from conformance.fuzz import isolate
from conformance.fuzz.oracle import Outcome, differences, observe_text, output_differences
from conformance.generators.scenarios import split_meta
from conformance.scenario import parse_scenario
from conformance.scenario_runner import golden_outputs


@dataclass
class Checked:
    """One example's verdict: the lines that say how it departs (empty: it conforms)."""

    scenario: dict[str, Any]
    meta: dict[str, Any]
    text: str
    spec: Outcome
    got: Outcome | None = None
    lines: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)  # tensors whose bytes the expectations judge


def scenario_text(scn: dict[str, Any]) -> str:
    return yaml.safe_dump(scn, sort_keys=False, default_flow_style=None, width=110)


def _in_thread(fn: Any, timeout_s: float, backend: str) -> Outcome:
    """Run ``fn()`` on a daemon thread; past ``timeout_s`` the run is a TIMEOUT (the thread is abandoned)."""
    box: list[Any] = []

    def body() -> None:
        try:
            box.append(fn())
        except BaseException as exc:  # reported as the example's CRASH, never lost
            box.append(exc)

    t = threading.Thread(target=body, daemon=True, name="fuzz-example")
    t.start()
    t.join(timeout_s)
    if not box:
        return Outcome(backend, "TIMEOUT", f"no result within {timeout_s:g}s")
    if isinstance(box[0], BaseException):
        return Outcome(backend, "CRASH", f"{type(box[0]).__name__}: {box[0]}"[:400])
    return box[0]


def has_remote(scn: dict[str, Any]) -> bool:
    stack = [scn["topology"]]
    while stack:
        n = stack.pop()
        if n.get("remote"):
            return True
        stack.extend(n.get("children", []))
    return False


@dataclass
class Checker:
    """Checks examples for one backend; picklable (it runs inside Dask workers)."""

    backend: str = "sim"
    seed: int = 0
    timeout_s: float = 60.0
    replay_every: int = 10  # the simulator's determinism is checked on one example in this many
    count: int = 0

    def check(self, drawn: dict[str, Any]) -> Checked:
        scn, meta = split_meta(drawn)
        text = scenario_text(scn)
        timed = bool(scn.get("faults"))
        comparable = bool(meta.get("honest")) and not timed and not meta.get("failing") and not has_remote(scn)
        self.count += 1
        replay = self.replay_every > 0 and self.count % self.replay_every == 0
        spec = _in_thread(lambda: observe_text(text, "sim", self.seed, outputs=comparable, replay=replay),
                          self.timeout_s, "sim")
        out = Checked(scn, meta, text, spec)
        out.lines = [f"sim {name}: {ev[0]}" for name, ev in spec.violations.items() if ev]
        if spec.outcome in ("TIMEOUT", "CRASH"):
            out.lines.append(f"sim run {spec.run}: {spec.message}"[:300])
            return out
        if comparable and spec.outcome == "OK":
            out.outputs = sorted(spec.outputs)
        scn = parse_scenario(text, "<generated>") if out.outputs else None  # once, for the bytes' judges
        if self.backend == "sim":
            if out.outputs:
                out.lines += [f"sim outputs: {x}" for x in output_differences(
                    spec.outputs, golden_outputs(scn, self.seed), scn)]
            return out
        if self.backend == "reference":
            got = _in_thread(lambda: observe_text(text, "reference", self.seed, outputs=bool(out.outputs)),
                             self.timeout_s, "reference")
        else:
            got = isolate.observe(text, self.backend, self.seed, self.timeout_s)
        out.got = got
        out.lines += differences(spec, got, timed=timed)
        if out.outputs and got.outcome == "OK" and got.outputs:
            out.lines += [f"{self.backend} outputs: {x}" for x in output_differences(got.outputs, spec.outputs, scn)]
        return out


__all__ = ["Checked", "Checker", "has_remote", "scenario_text"]
