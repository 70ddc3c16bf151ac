"""Hypothesis strategies for Worker trees: the ``topology:`` block of a scenario.

Spec: upstream ``docs/hierarchical-level-runtime.md`` §4 "Recursive Composition" (an L(n)
Worker composes L(n-1) children; L3 holds chips and SUB workers) and
``docs/remote-l3-worker-design.md`` "Topology" (an L4 may reach an L3 through a session:
``add_remote_worker``). Zero is a legal count everywhere the format allows it: an L3 with no
chips, no SUB workers, an L4 with no children.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from conformance.generators.limits import Limits


@st.composite
def topologies(draw: st.DrawFn, limits: Limits | None = None, *, min_level: int = 3) -> dict[str, Any]:
    """A ``topology:`` mapping: a root of level ``min_level..limits.max_level`` and its subtree.

    Names are ``n0`` (the root), ``n1``, ... in depth-first order, so a shrunk tree keeps stable
    names. Remote L3 children appear only under an L4 and only when ``limits.remote``.
    """
    lim = limits or Limits()
    level = draw(st.integers(min_level, max(min_level, lim.max_level)))
    counter = [0]

    def node(lvl: int, parent_level: int | None) -> dict[str, Any]:
        name = f"n{counter[0]}"
        counter[0] += 1
        out: dict[str, Any] = {"name": name, "level": lvl}
        if lvl == 3:
            remote = lim.remote and parent_level == 4 and draw(st.integers(0, 2)) == 2
            low = 0 if lim.zero_workers and not remote else 1
            chips = draw(st.integers(low, lim.max_chips))
            out["device_ids"] = list(range(chips))
            subs = draw(st.integers(0, lim.max_subs))
            if subs:
                out["num_sub_workers"] = subs
            if remote:
                out["remote"] = True
            return out
        low = 0 if lim.zero_workers else 1
        n = draw(st.integers(low, lim.max_children))
        out["children"] = [node(lvl - 1, lvl) for _ in range(n)]
        return out

    return node(level, None)


def walk(topology: dict[str, Any]) -> list[tuple[dict[str, Any], dict[str, Any] | None]]:
    """Every node of a topology mapping with its parent, depth first (the root first)."""
    out: list[tuple[dict[str, Any], dict[str, Any] | None]] = []
    stack: list[tuple[dict[str, Any], dict[str, Any] | None]] = [(topology, None)]
    while stack:
        n, parent = stack.pop()
        out.append((n, parent))
        stack.extend((c, n) for c in reversed(n.get("children", [])))
    return out


__all__ = ["topologies", "walk"]
