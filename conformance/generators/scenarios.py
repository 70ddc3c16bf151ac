"""Whole generated scenarios: a topology, its callables and programs, and a fault plan.

Every scenario drawn here is a valid scenario file (``conformance.scenario``): it loads, passes
the semantic checks and replays on every backend its limits were drawn for, so a shrunk failure
is written out as YAML and kept as a test. The generator states no expectations: the simulator
is the oracle, and :mod:`conformance.fuzz` derives them from its run.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from conformance.generators.faults import faults_for
from conformance.generators.limits import Limits, limits_for
from conformance.generators.programs import programs
from conformance.generators.topologies import topologies


@st.composite
def scenarios(draw: st.DrawFn, limits: Limits | str | None = None, *, faults: bool = True,
              name: str = "generated") -> dict[str, Any]:
    """A scenario mapping (the YAML file's content) within ``limits`` (a :class:`Limits` or a backend name).

    ``faults=False`` draws fault-free scenarios only. The mapping carries two keys the format does
    not have, removed by :func:`split_meta`: ``_honest`` (tags follow the callables' real
    directions and the race-free rules, so outputs are comparable) and ``_failing`` (a callable
    that fails on purpose is submitted).
    """
    lim = limits_for(limits) if isinstance(limits, str) else limits or Limits()
    topo = draw(topologies(lim))
    drawn = draw(programs(topo, lim))
    out: dict[str, Any] = {"scenario": name, "topology": topo}
    if drawn.tensors:
        out["tensors"] = drawn.tensors
    if drawn.callables:
        out["callables"] = drawn.callables
    if drawn.unregister:
        out["unregister"] = drawn.unregister
    out["program"] = drawn.program
    plan = draw(faults_for(topo, lim)) if faults and lim.faults and draw(st.booleans()) else []
    if plan:
        out["faults"] = plan
    out["_honest"] = drawn.honest
    out["_failing"] = drawn.failing
    return out


def split_meta(drawn: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The scenario mapping without the generator's ``_`` keys, and those keys."""
    scn = {k: v for k, v in drawn.items() if not k.startswith("_")}
    meta = {k[1:]: v for k, v in drawn.items() if k.startswith("_")}
    return scn, meta


__all__ = ["scenarios", "split_meta"]
