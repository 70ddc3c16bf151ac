"""Hypothesis strategies for fault plans: the ``faults:`` block of a scenario.

The vocabulary is the scenario format's (``conformance.scenario``), which models the failure
modes of upstream ``docs/remote-l3-worker-design/protocol.md`` "Ordering" (health expiry,
in-flight failure) and ``docs/remote-l3-worker-design.md`` "Failure Semantics"; ``FaultPoint``
switches on one of the simulator's named sites (``sim.faultpoints``). Link, session and frame
faults need a remote L3; a plan for a topology without one draws fault points only.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from conformance.generators.limits import Limits
from conformance.generators.topologies import walk
from sim.faultpoints import FAULT_POINTS

#: Frame types a FrameFault may name (``conformance.campaign.generate.FRAME_TYPES``'s wire words).
FRAME_TYPES = ("HELLO", "TASK", "CONTROL", "CONTROL_REPLY", "COMPLETION", "HEALTH")
_TIMES = st.sampled_from([0.0, 50.0, 200.0, 1000.0, 5000.0, 20000.0])
_SPANS = st.sampled_from([10.0, 100.0, 1000.0, 5000.0])


@st.composite
def faults_for(draw: st.DrawFn, topology: dict[str, Any], limits: Limits | None = None, *,
               max_faults: int = 2) -> list[dict[str, Any]]:
    """0..``max_faults`` faults that fit ``topology`` and the backend's fault vocabulary."""
    lim = limits or Limits()
    remote = [n["name"] for n, _ in walk(topology) if n.get("remote")]
    names = [n["name"] for n, _ in walk(topology)]
    kinds = [k for k in lim.faults if remote or k == "FaultPoint"]
    if not kinds:
        return []
    out = []
    for _ in range(draw(st.integers(0, max_faults))):
        kind = draw(st.sampled_from(kinds))
        if kind == "FaultPoint":
            f: dict[str, Any] = {"type": kind, "name": draw(st.sampled_from(sorted(FAULT_POINTS)))}
            if draw(st.booleans()):
                f["target"] = draw(st.sampled_from(names))
            if draw(st.booleans()):
                f["probability"] = draw(st.sampled_from([0.1, 0.5]))
            out.append(f)
            continue
        w = draw(st.sampled_from(remote))
        if kind in ("LinkCut", "SessionCrash", "SessionHang"):
            f = {"type": kind, "worker": w, "at_us": draw(_TIMES)}
            if kind == "LinkCut" and draw(st.integers(0, 3)) == 3:
                f["lanes"] = "health"
        elif kind == "LinkDelay":
            start = draw(_TIMES)
            f = {"type": kind, "worker": w, "start_us": start, "extra_us": draw(_SPANS)}
            if draw(st.booleans()):
                f["end_us"] = start + draw(_SPANS)
        elif kind == "LinkClog":
            start = draw(_TIMES)
            f = {"type": kind, "worker": w, "start_us": start, "end_us": start + draw(_SPANS)}
        else:  # FrameFault
            f = {"type": kind, "worker": w, "frame_type": draw(st.sampled_from(FRAME_TYPES)),
                 "ordinal": draw(st.integers(1, 3))}
            if draw(st.booleans()) and lim.backend == "sim":
                f["action"] = "delay"
                f["delay_us"] = draw(_SPANS)
        out.append(f)
    return out


__all__ = ["FRAME_TYPES", "faults_for"]
