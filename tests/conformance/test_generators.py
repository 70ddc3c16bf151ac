"""The packaged scenario generators: every draw is a valid scenario, and every edge case is reachable.

Spec of the format: ``conformance/scenario.py``; of the topology rules: upstream
``docs/hierarchical-level-runtime.md`` §4; of the tag rules honest programs keep:
``docs/orchestrator.md`` §7 "TensorMap" → "Semantics".
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings

from conformance.fuzz.oracle import observe_text, output_differences
from conformance.generators.limits import HW_FAULTS, limits_for
from conformance.generators.scenarios import scenarios, split_meta
from conformance.generators.topologies import walk
from conformance.scenario import parse_scenario
from conformance.scenario_runner import golden_outputs

QUICK = settings(max_examples=60, database=None, deadline=None, suppress_health_check=list(HealthCheck))


def _text(drawn: dict[str, Any]) -> str:
    return yaml.safe_dump(split_meta(drawn)[0], sort_keys=False)


def _steps(scn: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for prog in scn["program"].values():
        stack = list(prog["steps"] if isinstance(prog, dict) else prog)
        while stack:
            s = stack.pop()
            out.append(s)
            stack.extend(s.get("scope", []))
    return out


def _tasks_args(scn: dict[str, Any]) -> list[list[dict[str, Any]]]:
    """Every task's tensor args (a group's members together)."""
    out = []
    for s in _steps(scn):
        if "kind" in s:
            args = list(s.get("args", []))
            for m in s.get("members", []):
                args += m.get("args", [])
            out.append([a for a in args if "tensor" in a])
    return out


@pytest.mark.parametrize("backend", ["sim", "reference", "hw"])
def test_every_draw_is_a_valid_scenario_within_the_backends_limits(backend: str) -> None:
    lim = limits_for(backend)

    @QUICK
    @given(scenarios(backend))
    def check(drawn: dict[str, Any]) -> None:
        scn = parse_scenario(_text(drawn), "<drawn>")  # raises ScenarioError naming the field if not
        kernels = {c.kernel for c in scn.callables if c.kernel is not None}
        assert kernels <= set(lim.kernels) | {"add"}  # add: the remote chain target's inner kernel
        assert {f.type for f in scn.faults} <= set(lim.faults)
        if not lim.remote:
            assert not scn.has_remote()
        if backend == "hw":
            assert {f.type for f in scn.faults} <= set(HW_FAULTS)
            assert scn.topology.level <= lim.max_level
            for s in _steps(drawn):  # no overlapping writes: a known departure of the real runtime (ORCH-048)
                for args in [s.get("args", [])] + [m.get("args", []) for m in s.get("members", [])]:
                    names = [a["tensor"] for a in args if "tensor" in a]
                    assert len(set(names)) == len(names), s

    check()


EDGE_CASES = {
    "an L3 with no chips": lambda d: any(n["level"] == 3 and n.get("device_ids") == [] for n, _ in walk(d["topology"])),
    "an L4 with no children": lambda d: any(n["level"] >= 4 and n.get("children") == []
                                            for n, _ in walk(d["topology"])),
    "no SUB workers anywhere": lambda d: all(not n.get("num_sub_workers") for n, _ in walk(d["topology"])),
    "a remote L3": lambda d: any(n.get("remote") for n, _ in walk(d["topology"])),
    "a level-5 root": lambda d: d["topology"]["level"] == 5,
    "an empty root program": lambda d: d["program"][d["topology"]["name"]] == [],
    "a tensor repeated within one task": lambda d: any(
        len({a["tensor"] for a in args}) < len(args) for args in _tasks_args(d)),
    "every tag": lambda d: {a["tag"] for args in _tasks_args(d) for a in args} >= {
        "INPUT", "OUTPUT", "INOUT", "OUTPUT_EXISTING", "NO_DEP"},
    "a group": lambda d: any(s.get("kind") == "group" for s in _steps(d)),
    "a sub group": lambda d: any(s.get("kind") == "sub_group" for s in _steps(d)),
    "a nested scope": lambda d: any(any("scope" in t for t in s.get("scope", [])) for s in _steps(d)),
    "an alloc": lambda d: any("alloc" in s for s in _steps(d)),
    "a nested orchestration": lambda d: any(isinstance(p, dict) and p.get("params") for p in d["program"].values()),
    "a failing callable": lambda d: any(c.get("builtin") == "fail" or c.get("remote") == "fail"
                                        for c in d.get("callables", [])),
    "a slow callable": lambda d: any(c.get("builtin") == "slow" for c in d.get("callables", [])),
    "a duplicate registration": lambda d: any(c["name"].endswith("_again") for c in d.get("callables", [])),
    "a registration after init": lambda d: any(c.get("after_init") for c in d.get("callables", [])),
    "an unregister before init": lambda d: any(u["when"] == "before_init" for u in d.get("unregister", [])),
    "a fault point": lambda d: any(f["type"] == "FaultPoint" for f in d.get("faults", [])),
    "a session crash": lambda d: any(f["type"] == "SessionCrash" for f in d.get("faults", [])),
    "a dropped frame": lambda d: any(f["type"] == "FrameFault" for f in d.get("faults", [])),
    "a chaos program": lambda d: not d["_honest"],
}


def test_the_generator_reaches_every_edge_case() -> None:
    """One pass of draws reaches each edge case (a generator that lost one fails here, naming it)."""
    reached: dict[str, int] = {}

    # Derandomized: the same 600 draws every run, so a miss is the generator's and never the dice's.
    @settings(max_examples=600, database=None, deadline=None, suppress_health_check=list(HealthCheck),
              derandomize=True)
    @given(scenarios("sim"))
    def draw(drawn: dict[str, Any]) -> None:
        for name, pred in EDGE_CASES.items():
            if pred(drawn):
                reached[name] = reached.get(name, 0) + 1

    draw()
    missing = sorted(set(EDGE_CASES) - set(reached))
    assert not missing, f"never drawn in 600 examples: {missing}"


def test_honest_programs_write_each_tensor_race_free() -> None:
    """No tensor of an honest root program is first written by OUTPUT after it was read or written."""

    @settings(max_examples=400, database=None, deadline=None, suppress_health_check=list(HealthCheck))
    @given(scenarios("reference"))
    def check(drawn: dict[str, Any]) -> None:
        if not drawn["_honest"]:
            return
        root = drawn["program"][drawn["topology"]["name"]]
        touched: set[str] = set()
        stack = list(reversed(root))
        while stack:
            s = stack.pop()
            if "scope" in s:
                stack.extend(reversed(s["scope"]))
                continue
            args = [a for a in s.get("args", []) + [x for m in s.get("members", []) for x in m.get("args", [])]
                    if "tensor" in a]
            assert len({a["tensor"] for a in args}) == len(args), "an honest task names a tensor once"
            for a in args:
                if a["tag"] in ("OUTPUT", "OUTPUT_EXISTING"):
                    assert a["tensor"] not in touched, f"{a['tensor']} rewritten with {a['tag']}"
                assert a["tag"] != "NO_DEP"
            touched |= {a["tensor"] for a in args}

    check()


def test_honest_fault_free_programs_compute_what_the_reference_executor_computes() -> None:
    """The simulator's functional run of a generated honest program equals sequential program order."""
    checked = [0]

    @settings(max_examples=40, database=None, deadline=None, suppress_health_check=list(HealthCheck))
    @given(scenarios(limits_for("reference").with_(chaos=0.0, builtins=False, registration=False), faults=False))
    def check(drawn: dict[str, Any]) -> None:
        text = _text(drawn)
        got = observe_text(text, "sim", outputs=True)
        assert not got.violations, got.violations
        assert got.outcome == "OK", (got.run, got.message, text)
        scn = parse_scenario(text, "<drawn>")
        assert not output_differences(got.outputs, golden_outputs(scn, 0), scn)
        checked[0] += 1

    check()
    assert checked[0] == 40


@pytest.mark.parametrize("chaos", [0.0, 1.0])
def test_a_chaos_share_of_zero_or_one_is_exact(chaos: float) -> None:
    """Limits(chaos=0.0) draws honest programs only and chaos=1.0 none (a draw of exactly 1.0 once made a
    chaos=0.0 program chaotic)."""
    from hypothesis import strategies as st

    from conformance.generators.programs import programs
    from conformance.generators.topologies import topologies

    lim = limits_for("reference").with_(chaos=chaos)

    @settings(max_examples=300, database=None, deadline=None, suppress_health_check=list(HealthCheck),
              derandomize=True)
    @given(st.data())
    def check(data: st.DataObject) -> None:
        assert data.draw(programs(data.draw(topologies(lim)), lim)).honest is (chaos == 0.0)

    check()
