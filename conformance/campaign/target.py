"""What a campaign runs: a YAML scenario, or ``module:function`` that builds the Worker tree.

A campaign observes: a scenario's ``expect:`` block is not judged, outcomes are classified.

``module:function`` is called as ``function(rt, faults)`` with the backend's runtime-shaped API
(:mod:`conformance.backends`) and the seed's fault plan (the backend's own fault objects); it builds
the Workers -- passing ``faults`` to the root: ``rt.Worker(4, faults=faults, ...)`` -- calls
``init()`` and returns ``(root, orchestration)`` or ``(root, orchestration, args)``. A module that is
not on ``sys.path`` is found relative to the current directory.
"""

from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conformance.campaign.generate import Topology


class CampaignInputError(ValueError):
    """Bad campaign input (scenario, target, invariant, seed range, fault kind); the message names it."""


def load_callable(spec: str, what: str) -> Any:
    """Import ``module:function`` (the current directory is searched too); raise CampaignInputError naming it."""
    if not isinstance(spec, str) or spec.count(":") != 1 or not all(spec.split(":")):
        raise CampaignInputError(f"{what} {spec!r} must be 'module:function'")
    mod_name, attr = spec.split(":")
    cwd = str(Path.cwd())
    if cwd not in sys.path:
        sys.path.append(cwd)
    try:
        mod = importlib.import_module(mod_name)
    except Exception as exc:  # the user's module may fail in any way while importing
        raise CampaignInputError(f"{what} {spec!r}: cannot import {mod_name!r}: {type(exc).__name__}: {exc}") from None
    obj: Any = mod
    for part in attr.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            raise CampaignInputError(f"{what} {spec!r}: {mod_name!r} has no attribute {attr!r}")
    if not callable(obj):
        raise CampaignInputError(f"{what} {spec!r} is a {type(obj).__name__}, not a function")
    return obj


@dataclass
class Built:
    """A target brought up on one backend for one seed."""

    root: Any
    orch: Any
    args: Any = None
    tensors: dict[str, Any] = field(default_factory=dict)


class Target:
    """A campaign target; picklable (it is shipped to Dask workers as its source text or its name)."""

    kind: str = "?"
    name: str = "?"
    fault_space: Any = None
    invariants: tuple[str, ...] = ()

    def build(self, rt: Any, faults: list[dict[str, Any]]) -> Built:
        raise NotImplementedError

    def topology(self) -> Topology:
        raise NotImplementedError


class ScenarioTarget(Target):
    """A YAML scenario; kept as its text so a worker process rebuilds it without the file."""

    kind = "scenario"

    def __init__(self, text: str, file: str) -> None:
        from conformance.scenario import parse_scenario

        self.text, self.file = text, file
        self.scn = parse_scenario(text, file)
        self.name = self.scn.scenario
        self.fault_space = self.scn.fault_space
        self.invariants = tuple(self.scn.invariants)

    def __getstate__(self) -> dict[str, Any]:
        return {"text": self.text, "file": self.file}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["text"], state["file"])  # type: ignore[misc]

    def build(self, rt: Any, faults: list[dict[str, Any]]) -> Built:
        from conformance.scenario import parse_faults
        from conformance.scenario_runner import build

        b = build(rt, self.scn.model_copy(update={"faults": parse_faults(faults)}))
        return Built(b.root, b.orch, None, b.tensors)

    def topology(self) -> Topology:
        from conformance.scenario_runner import remote_ids

        remote = tuple(remote_ids(self.scn.topology))  # names, as a YAML fault names them
        # Every callable is registered before init() and there are no remote memory calls: no CONTROL after it.
        return Topology(remote=remote, local=tuple(_local_scopes_sim(self)), controls=False)


class FunctionTarget(Target):
    """``module:function(rt, faults) -> (root, orch[, args])``."""

    kind = "function"

    def __init__(self, spec: str) -> None:
        self.spec = spec
        self.name = spec
        self.fn = load_callable(spec, "scenario")

    def __getstate__(self) -> dict[str, Any]:
        return {"spec": self.spec}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["spec"])  # type: ignore[misc]

    def build(self, rt: Any, faults: list[dict[str, Any]]) -> Built:
        from conformance.scenario import parse_faults
        from conformance.scenario_runner import backend_fault

        objs = [backend_fault(rt, f, {}) for f in parse_faults(faults)]
        out = self.fn(rt, objs)
        if not isinstance(out, tuple) or len(out) not in (2, 3):
            raise CampaignInputError(f"scenario {self.spec}: must return (root, orchestration) or "
                                     f"(root, orchestration, args), got {type(out).__name__}")
        return Built(out[0], out[1], out[2] if len(out) == 3 else None)

    def topology(self) -> Topology:
        from conformance.backends import get_backend

        rt = get_backend("sim", 0)
        try:
            b = self.build(rt, [])
            remote, local = sim_children(b.root)
            return Topology(remote=tuple(remote), local=tuple(local))
        except CampaignInputError:
            raise
        except Exception as exc:  # the user's function cannot build its tree: bad input, before any seed runs
            raise CampaignInputError(f"scenario {self.spec}: building it on the simulator without faults raised "
                                     f"{type(exc).__name__}: {exc}") from None
        finally:
            rt.close_all()


def sim_children(root: Any) -> tuple[list[int], list[str]]:
    """A built sim tree's remote worker ids and local children's scopes (the fault plan's targets)."""
    from sim.lanes import ChipLane, WorkerLane

    remote: set[int] = set()
    local: list[str] = []
    for w in root._walk():
        if w._remote is not None:
            remote.update(w._remote.specs)
        if w._node is not None and w._level > 2:
            local.extend(lane.scope for lane in w._node.sub_lanes)
            local.extend(lane.scope for lane in w._node.nl_lanes if isinstance(lane, ChipLane | WorkerLane))
    return sorted(remote), local


def _local_scopes_sim(t: ScenarioTarget) -> list[str]:
    from conformance.backends import get_backend

    rt = get_backend("sim", 0)
    try:
        return sim_children(t.build(rt, []).root)[1]
    finally:
        rt.close_all()


def load_target(spec: str | Path) -> Target:
    """A YAML scenario file (``*.yaml`` / ``*.yml``) or ``module:function``."""
    from conformance.scenario import ScenarioError
    from conformance.yamlfile import read_text

    s = str(spec)
    if s.endswith((".yaml", ".yml")) or Path(s).exists():
        try:
            return ScenarioTarget(read_text(s, "scenario", ScenarioError), s)
        except ScenarioError as exc:
            raise CampaignInputError(str(exc)) from None
    return FunctionTarget(s)


__all__ = ["Built", "CampaignInputError", "FunctionTarget", "ScenarioTarget", "Target", "load_callable",
           "load_target", "sim_children"]
