"""One seed, one fault plan: drawing explicit faults from a :class:`~conformance.fault_space.FaultSpace`.

The plan is a list of plain mappings in the scenario format's ``faults:`` vocabulary
(:mod:`conformance.scenario`), so it is at once what the simulator runs, what a Parquet row
stores, and what a shrunk case writes back as YAML. Draws come from numpy generators seeded by
the campaign seed alone (one for the fault kinds, one for the fault points), so one seed gives one
plan on every machine, and switching points on or off leaves the drawn kinds unchanged.

Swizzle-clog is FoundationDB's: a random subset of the remote links is clogged one at a time and
unclogged in another random order, so partial partitions come and go while work is in flight.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from conformance.fault_space import LOCAL_KINDS, REMOTE_KINDS, FaultSpace

#: Frame types and CONTROL names a frame or control fault may pick (upstream
#: ``docs/remote-l3-worker-design/protocol.md`` "Frames" and "CONTROL Payload"); the reserved
#: CommDomain controls are left out, since no scenario can send them.
FRAME_TYPES = ("HELLO", "TASK", "CONTROL", "CONTROL_REPLY", "COMPLETION", "HEALTH")
CONTROLS = ("UNREGISTER_CALLABLE", "PREPARE_REGISTER_CALLABLE", "COMMIT_REGISTER_CALLABLE",
            "ABORT_REGISTER_CALLABLE", "PREPARE_CALLABLE", "ALLOC_REMOTE_BUFFER", "FREE_REMOTE_BUFFER",
            "COPY_TO_REMOTE", "COPY_FROM_REMOTE", "EXPORT_BUFFER", "IMPORT_BUFFER", "RELEASE_IMPORT")
_POINT_PROBABILITIES = (0.1, 0.5, 1.0)
#: What only a CONTROL sent after init() can trigger.
CONTROL_KINDS = frozenset({"control_error", "control_timeout", "local_control_error", "local_control_timeout"})
CONTROL_POINTS = frozenset({"control_reply_lost"})


@dataclass(frozen=True)
class Topology:
    """What faults can target: remote workers (how a fault names each) and local children's scopes.

    ``controls`` is False for a target that sends no CONTROL after ``init()`` (a YAML scenario registers
    everything before it and has no remote memory calls): control and local-control faults, and the
    ``control_reply_lost`` point, could never take effect there, so they are not drawn.
    """

    remote: tuple[int | str, ...] = ()
    local: tuple[str, ...] = ()
    controls: bool = True


@dataclass(frozen=True)
class Plan:
    """The faults of one seed, and the campaign kinds they were drawn as (swizzle_clog is several LinkClogs)."""

    faults: tuple[dict[str, Any], ...]
    kinds: tuple[str, ...]

    def points(self) -> tuple[str, ...]:
        return tuple(f["name"] for f in self.faults if f["type"] == "FaultPoint")


def _t(x: float) -> float:
    return round(float(x), 1)


def _draw(kind: str, rng: np.random.Generator, space: FaultSpace, topo: Topology, end: float) -> list[dict[str, Any]]:
    lo, hi = space.window_us[0], min(space.window_us[1], end)
    at = _t(rng.uniform(lo, hi))
    span = _t(rng.uniform(1.0, space.max_delay_us))
    if kind in LOCAL_KINDS:
        target = topo.local[int(rng.integers(len(topo.local)))]
        return [{"type": "LocalControlFault", "target": target,
                 "control": ("register", "unregister")[int(rng.integers(2))], "ordinal": int(rng.integers(1, 3)),
                 "outcome": "error" if kind == "local_control_error" else "timeout"}]
    if kind == "swizzle_clog":
        n = int(rng.integers(1, len(topo.remote) + 1))
        links = [topo.remote[i] for i in rng.permutation(len(topo.remote))[:n]]
        gap = max(span / (2 * n), 1.0)
        starts = {w: _t(at + i * gap) for i, w in enumerate(links)}
        last = at + (n - 1) * gap
        return [{"type": "LinkClog", "worker": links[j], "start_us": starts[links[j]],
                 "end_us": _t(last + (i + 1) * gap)} for i, j in enumerate(rng.permutation(n))]
    worker = topo.remote[int(rng.integers(len(topo.remote)))]
    if kind in ("link_cut", "health_cut"):
        return [{"type": "LinkCut", "worker": worker, "at_us": at, "lanes": "both" if kind == "link_cut" else "health"}]
    if kind == "link_delay":
        return [{"type": "LinkDelay", "worker": worker, "start_us": at, "extra_us": span,
                 "end_us": _t(at + rng.uniform(1.0, space.max_delay_us * 4))}]
    if kind == "link_clog":
        return [{"type": "LinkClog", "worker": worker, "start_us": at, "end_us": _t(at + span)}]
    if kind == "session_crash":
        return [{"type": "SessionCrash", "worker": worker, "at_us": at}]
    if kind == "session_hang":
        return [{"type": "SessionHang", "worker": worker, "at_us": at}]
    if kind in ("frame_drop", "frame_delay"):
        f: dict[str, Any] = {"type": "FrameFault", "worker": worker,
                             "frame_type": FRAME_TYPES[int(rng.integers(len(FRAME_TYPES)))],
                             "action": "drop" if kind == "frame_drop" else "delay", "ordinal": int(rng.integers(1, 5))}
        if kind == "frame_delay":
            f["delay_us"] = span
        return [f]
    assert kind in ("control_error", "control_timeout"), kind
    return [{"type": "ControlFault", "worker": worker, "control": CONTROLS[int(rng.integers(len(CONTROLS)))],
             "ordinal": int(rng.integers(1, 4)), "outcome": "error" if kind == "control_error" else "timeout"}]


def usable_kinds(space: FaultSpace, topo: Topology) -> list[str]:
    """The space's kinds that this topology can host (remote kinds need a remote worker, ...)."""
    return [k for k in space.kind_list()
            if ((k in REMOTE_KINDS and topo.remote) or (k in LOCAL_KINDS and topo.local))
            and (topo.controls or k not in CONTROL_KINDS)]


def usable_points(space: FaultSpace, topo: Topology) -> list[str]:
    """The space's fault points that this topology can reach."""
    return [p for p in space.point_probabilities() if topo.controls or p not in CONTROL_POINTS]


def draw_plan(space: FaultSpace, topo: Topology, seed: int, *, liveness: bool = False) -> Plan:
    """The fault plan of ``seed``: 0..max_faults faults of the usable kinds, then the switched-on points.

    In liveness mode every drawn fault begins before ``space.heal_us`` and every window closes by it.
    """
    kinds_rng = np.random.default_rng([seed, 0xFA17])
    points_rng = np.random.default_rng([seed, 0xB0661F])
    end = space.heal_us if liveness else float("inf")
    usable = usable_kinds(space, topo)
    faults: list[dict[str, Any]] = []
    kinds: list[str] = []
    n = int(kinds_rng.integers(0, space.max_faults + 1)) if usable else 0
    for _ in range(n):
        kind = usable[int(kinds_rng.integers(len(usable)))]
        drawn = _draw(kind, kinds_rng, space, topo, end)
        if liveness:
            drawn = [_heal(f, space.heal_us) for f in drawn]
        faults.extend(drawn)
        kinds.append(kind)
    for name, p in space.point_probabilities().items():
        on = points_rng.random() < p
        prob = _POINT_PROBABILITIES[int(points_rng.integers(len(_POINT_PROBABILITIES)))]
        factor = float(points_rng.integers(2, 21))
        delay = _t(points_rng.uniform(1.0, space.max_delay_us))
        if on and (topo.controls or name not in CONTROL_POINTS):  # drawn either way: later draws stay put
            faults.append({"type": "FaultPoint", "name": name, "probability": prob, "factor": factor,
                           "delay_us": delay})
    return Plan(tuple(faults), tuple(kinds))


def _heal(f: dict[str, Any], heal: float) -> dict[str, Any]:
    """Confine a fault to before ``heal``: it begins before it, and a clog or delay window closes by it."""
    f = dict(f)
    for k in ("at_us", "start_us"):
        if k in f and f[k] >= heal:
            f[k] = _t(max(0.0, heal - 0.2))
    if f["type"] in ("LinkDelay", "LinkClog"):
        f["end_us"] = _t(min(f["end_us"], heal))
        if f["end_us"] <= f["start_us"]:
            f["end_us"] = _t(f["start_us"] + 0.1)
    return f


def label(f: dict[str, Any]) -> str:
    """A short, stable one-line name of a fault mapping, for tables and Parquet rows."""
    t = f["type"]
    if t == "FaultPoint":
        return f"point:{f['name']}(p={f['probability']:g},x{f['factor']:g},{f['delay_us']:g}us)"
    if t == "LocalControlFault":
        return f"LocalControlFault({f['target']},{f['control']}#{f['ordinal']},{f['outcome']})"
    where = f.get("worker")
    if t == "LinkCut":
        return f"LinkCut({where}@{f['at_us']:g},{f.get('lanes', 'both')})"
    if t in ("SessionCrash", "SessionHang"):
        return f"{t}({where}@{f['at_us']:g})"
    if t == "LinkDelay":
        return f"LinkDelay({where},{f['start_us']:g}-{f['end_us']:g},+{f['extra_us']:g})"
    if t == "LinkClog":
        return f"LinkClog({where},{f['start_us']:g}-{f['end_us']:g})"
    if t == "FrameFault":
        extra = f",+{f['delay_us']:g}" if f.get("action") == "delay" else ""
        return f"FrameFault({where},{f['action']} {f['frame_type']}#{f['ordinal']}{extra})"
    return f"ControlFault({where},{f['control']}#{f['ordinal']},{f['outcome']})"


__all__ = ["CONTROLS", "CONTROL_KINDS", "CONTROL_POINTS", "FRAME_TYPES", "Plan", "Topology", "draw_plan", "label",
           "usable_kinds", "usable_points"]
