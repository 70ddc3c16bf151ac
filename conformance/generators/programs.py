"""Hypothesis strategies for what runs on a topology: callables, tensors and programs of submits.

A program is drawn for every orchestrating Worker (the root, and each local child its parent
submits to): chip submits, groups, SUB submits (reference goldens on the host and built-in
``noop`` / ``fail`` / ``slow`` callables), submits to child programs and remote callables,
nested scopes and orchestrator ``alloc`` intermediates.

Two kinds of program come out:

- **honest** ones tag every argument as the callable really uses it, and keep to the rules under
  which the final bytes do not depend on timing. Upstream ``docs/orchestrator.md`` §7
  "TensorMap" → "Semantics": INPUT and INOUT look up the last producer, OUTPUT, INOUT and
  OUTPUT_EXISTING insert; nothing tracks readers. So a tensor is first written with OUTPUT only
  when nothing has touched it, rewritten only with INOUT and only when no reader of its old
  value is pending, and read only once written. Their outputs are checked against the reference
  executor (sequential program order).
- **chaos** ones tag as drawn (any tag, repeated tensors within a task): the final bytes may
  race, but outcomes, error classes (an overlapping write is rejected at submit,
  ``docs/buffer-abi.md``) and dependency order are still fixed by the spec.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hypothesis import strategies as st

from conformance.generators.limits import ELEMENTWISE, Limits
from conformance.generators.topologies import walk

TAGS = ("INPUT", "OUTPUT", "INOUT", "OUTPUT_EXISTING", "NO_DEP")
WRITE_TAGS = ("OUTPUT", "OUTPUT_EXISTING")
SHAPES = ([16], [4, 8], [2, 3, 4])
BUILTINS = ("noop", "fail", "slow")
REMOTE_TARGETS = ("noop", "fail", "chain")


@dataclass
class _TState:
    """What the honest rules need to know about one tensor name."""

    readable: bool = True  # holds defined bytes (a fresh alloc does not)
    written: bool = False  # some task of this program inserted it
    readers: int = 0  # reads since the last write
    read: bool = False  # ever read here (for a child program's parameter directions)
    first: str | None = None  # "read" or "write": the first access here


@dataclass
class _Callable:
    name: str
    kind: str  # chip | sub | builtin | remote | program
    sig: tuple[str, ...]


@dataclass
class _Ctx:
    draw: st.DrawFn
    lim: Limits
    honest: bool
    node: dict[str, Any]
    shape: list[int]
    callables: list[_Callable]
    children: list[tuple[dict[str, Any], _Callable | None]]  # local child with its program, or remote
    env: dict[str, _TState] = field(default_factory=dict)
    allocs: list[str] = field(default_factory=list)
    alloc_names: list[int] = field(default_factory=lambda: [0])
    failing: bool = False


# ------------------------------------------------------------------------------------------ arguments


def _honest_pick(ctx: _Ctx, direction: str, used: set[str]) -> str | None:
    free = [n for n in ctx.env if n not in used]
    if direction == "IN":
        ok = [n for n in free if ctx.env[n].readable]
    elif direction == "OUT":
        ok = [n for n in free if not ctx.env[n].written and ctx.env[n].readers == 0]
    else:  # INOUT
        ok = [n for n in free if ctx.env[n].readable and ctx.env[n].readers == 0]
    return ctx.draw(st.sampled_from(ok)) if ok else None


def _touch(st_: _TState, how: str) -> None:
    if st_.first is None:
        st_.first = how
    if how == "read":
        st_.readers += 1
        st_.read = True
    else:
        st_.written, st_.readers, st_.readable = True, 0, True


def _args(ctx: _Ctx, sig: tuple[str, ...], shared: set[str] | None = None) -> list[dict[str, Any]] | None:
    """Arguments for a callable of directions ``sig``; None when the honest rules leave no choice.

    ``shared``: the tensors the task's other members name (a group is one task: in an honest program its
    members name disjoint tensors, so no two of them write one buffer).
    """
    draw = ctx.draw
    out: list[dict[str, Any]] = []
    if not ctx.honest:
        named: set[str] = set()
        for d in sig:
            if d == "SCALAR":
                out.append({"scalar": draw(st.sampled_from([0, 1, 2, 0.5, -3]))})
                continue
            pool = sorted(ctx.env) if ctx.lim.overlaps else sorted(set(ctx.env) - named)
            if not pool:
                return None
            else:
                name = draw(st.sampled_from(pool))
                named.add(name)
                tag = draw(st.sampled_from(TAGS)) if draw(st.integers(0, 2)) == 2 else \
                    {"IN": "INPUT", "OUT": "OUTPUT", "INOUT": "INOUT"}[d]
                out.append({"tensor": name, "tag": tag})
        return out
    used: set[str] = shared if shared is not None else set()
    touched: list[tuple[str, str]] = []
    for d in sig:
        if d == "SCALAR":
            out.append({"scalar": draw(st.sampled_from([0, 1, 2, 0.5, -3]))})
            continue
        name = _honest_pick(ctx, d, used)
        if name is None:
            return None
        used.add(name)
        tag = "INPUT" if d == "IN" else "INOUT" if d == "INOUT" else draw(st.sampled_from(WRITE_TAGS))
        out.append({"tensor": name, "tag": tag})
        if d != "OUT":  # INOUT reads the old bytes too
            touched.append((name, "read"))
        if d != "IN":
            touched.append((name, "write"))
    for name, how in touched:  # reads before writes: one task, one access each
        if how == "read":
            _touch(ctx.env[name], how)
    for name, how in touched:
        if how == "write":
            _touch(ctx.env[name], how)
    return out


# ------------------------------------------------------------------------------------------ steps


def _step(ctx: _Ctx, depth: int) -> dict[str, Any] | None:
    draw, node = ctx.draw, ctx.node
    chips = len(node.get("device_ids") or []) if node["level"] == 3 else 0
    chip = [c for c in ctx.callables if c.kind == "chip"]
    subs = [c for c in ctx.callables if c.kind in ("sub", "builtin")]
    remote = [c for c in ctx.callables if c.kind == "remote"]
    kinds: list[str] = []
    if chips and chip:
        kinds += ["chip", "chip", "group"]
    if subs:
        kinds += ["sub", "sub", "sub_group"]
    if ctx.children:
        kinds += ["child", "child"]
    if remote and len([c for c, p in ctx.children if p is None]) >= 1:
        kinds += ["remote_group"]
    if depth < ctx.lim.max_scope_depth:
        kinds.append("scope")
    if ctx.lim.alloc:
        kinds.append("alloc")
    if not kinds:
        return None
    kind = draw(st.sampled_from(kinds))
    if kind == "chip":
        c = draw(st.sampled_from(chip))
        args = _args(ctx, c.sig)
        return None if args is None else {"kind": "next_level", "callable": c.name,
                                          "worker": draw(st.integers(0, chips - 1)), "args": args}
    if kind == "group":
        c = draw(st.sampled_from(chip))
        workers = draw(st.permutations(range(chips)))[:draw(st.integers(1, chips))]
        members = []
        named: set[str] = set()
        for w in workers:  # one task: the honest state is shared by its members
            a = _args(ctx, c.sig, named)
            if a is None:
                return None
            members.append({"worker": w, "args": a})
        return {"kind": "group", "callable": c.name, "members": members}
    if kind == "sub":
        c = draw(st.sampled_from(subs))
        sig = c.sig if c.kind == "sub" else tuple(draw(st.lists(st.just("IN"), max_size=2)))
        args = _args(ctx, sig)
        if args is None:
            return None
        if c.name.endswith("_fail"):
            ctx.failing = True
        return {"kind": "sub", "callable": c.name, "args": args}
    if kind == "sub_group":
        c = draw(st.sampled_from(subs))
        n = draw(st.integers(1, max(1, int(node.get("num_sub_workers") or 1))))
        members = []
        named = set()
        for _ in range(n):  # one task: the honest state is shared by its members
            sig = c.sig if c.kind == "sub" else tuple(draw(st.lists(st.just("IN"), max_size=2)))
            a = _args(ctx, sig, named)
            if a is None:
                return None
            members.append({"args": a})
        if c.name.endswith("_fail"):
            ctx.failing = True
        return {"kind": "sub_group", "callable": c.name, "members": members}
    if kind == "child":
        child, prog = draw(st.sampled_from(ctx.children))
        if prog is not None:
            args = _args(ctx, prog.sig)
            return None if args is None else {"kind": "next_level", "worker": child["name"], "args": args}
        if not remote:
            return None
        c = draw(st.sampled_from(remote))
        step: dict[str, Any] = {"kind": "next_level", "callable": c.name, "worker": child["name"]}
        if c.name.endswith("_chain"):
            step["args"] = [{"scalar": draw(st.integers(1, 3))}]
        if c.name.endswith("_fail"):
            ctx.failing = True
        return step
    if kind == "remote_group":
        kids = [c["name"] for c, p in ctx.children if p is None]
        c = draw(st.sampled_from(remote))
        members = draw(st.permutations(kids))[:draw(st.integers(1, len(kids)))]
        if c.name.endswith("_fail"):
            ctx.failing = True
        return {"kind": "group", "callable": c.name, "members": [{"worker": m} for m in members]}
    if kind == "scope":
        mark = len(ctx.allocs)
        inner = _steps(ctx, depth + 1, max(1, ctx.lim.max_steps // 2))
        for name in ctx.allocs[mark:]:  # a scope's allocs end with it (docs/orchestrator.md §8b)
            ctx.env.pop(name, None)
        del ctx.allocs[mark:]
        return {"scope": inner}
    name = f"tmp{ctx.alloc_names[0]}"  # alloc
    ctx.alloc_names[0] += 1
    ctx.env[name] = _TState(readable=False)
    ctx.allocs.append(name)
    return {"alloc": name, "shape": list(ctx.shape), "dtype": "float32"}


def _steps(ctx: _Ctx, depth: int, budget: int) -> list[dict[str, Any]]:
    out = []
    for _ in range(ctx.draw(st.integers(0 if depth else min(2, budget), budget))):
        for _attempt in range(3):  # a kind whose arguments the rules cannot fill: draw another
            s = _step(ctx, depth)
            if s is not None:
                out.append(s)
                break
    return out


# ------------------------------------------------------------------------------------------ callables


def _callables_for(draw: st.DrawFn, lim: Limits, node: dict[str, Any]) -> tuple[list[dict[str, Any]],
                                                                                  list[_Callable]]:
    """The callables registered on ``node`` (scenario entries, and what its program may submit)."""
    name = node["name"]
    entries: list[dict[str, Any]] = []
    handles: list[_Callable] = []
    chips = node["level"] == 3 and bool(node.get("device_ids"))
    if chips:
        for k in draw(st.lists(st.sampled_from(lim.kernels), min_size=1, max_size=3, unique=True)):
            entries.append({"name": f"{name}_{k}", "kernel": k, "worker": name})
            handles.append(_Callable(f"{name}_{k}", "chip", ELEMENTWISE[k]))
        if draw(st.integers(0, 3)) == 3:  # a second registration of one kernel: its own handle
            k = entries[0]["kernel"]
            entries.append({"name": f"{name}_{k}_again", "kernel": k, "worker": name})
            handles.append(_Callable(f"{name}_{k}_again", "chip", ELEMENTWISE[k]))
    if node.get("num_sub_workers"):
        for k in draw(st.lists(st.sampled_from(lim.kernels), max_size=2, unique=True)):
            entries.append({"name": f"{name}_{k}_host", "kernel": k, "worker": name, "runs_on": "sub"})
            handles.append(_Callable(f"{name}_{k}_host", "sub", ELEMENTWISE[k]))
        if lim.builtins:
            for b in draw(st.lists(st.sampled_from(BUILTINS), max_size=2, unique=True)):
                e: dict[str, Any] = {"name": f"{name}_{b}", "worker": name, "builtin": b}
                if b == "slow":
                    e["duration_us"] = float(draw(st.sampled_from([50, 400, 3000])))
                entries.append(e)
                handles.append(_Callable(f"{name}_{b}", "builtin", ()))
    remote_kids = [c for c in node.get("children", []) if c.get("remote")]
    if remote_kids:
        targets = draw(st.lists(st.sampled_from(REMOTE_TARGETS), min_size=1, max_size=2, unique=True))
        for t in targets:
            entries.append({"name": f"{name}_{t}", "worker": name, "remote": t})
            handles.append(_Callable(f"{name}_{t}", "remote", ()))
        if "chain" in targets:  # installed on every session's inner Worker (sim.remote.examples.chain)
            entries.append({"name": f"{name}_inner_add", "kernel": "add", "worker": name})
    return entries, handles


def _directions(env: dict[str, _TState], params: list[str]) -> tuple[str, ...]:
    """A child program's parameter directions, as its parent must tag them (honest programs)."""
    out = []
    for p in params:
        s = env[p]
        if not s.written:
            out.append("IN")
        elif s.first == "write" and not s.read:
            out.append("OUT")
        else:
            out.append("INOUT")
    return tuple(out)


@dataclass
class Drawn:
    """A drawn set of callables, tensors and programs for one topology."""

    tensors: list[dict[str, Any]]
    callables: list[dict[str, Any]]
    unregister: list[dict[str, Any]]
    program: dict[str, Any]
    honest: bool
    failing: bool


@st.composite
def programs(draw: st.DrawFn, topology: dict[str, Any], limits: Limits | None = None) -> Drawn:
    """Tensors, callables and a program for every orchestrating Worker of ``topology``."""
    lim = limits or Limits()
    honest = draw(st.floats(0, 1, exclude_max=True)) < 1 - lim.chaos  # shrinks toward honest; chaos=0: always
    shape = list(draw(st.sampled_from(SHAPES)))
    ntensors = draw(st.integers(1, lim.max_tensors))
    inits = ("zeros", "ones", "arange", "random")
    tensors = []
    for i in range(ntensors):
        init = draw(st.sampled_from(inits))
        tensors.append({"name": f"t{i}", "shape": list(shape),
                        **({"init": {"random": i}} if init == "random" else {} if init == "zeros" else
                           {"init": init})})
    callables: list[dict[str, Any]] = []
    program: dict[str, Any] = {}
    failing = False
    child_progs: dict[str, _Callable] = {}
    order = walk(topology)
    for node, parent in reversed(order):  # children first: a parent submits to its children's programs
        if node.get("remote"):
            continue
        entries, handles = _callables_for(draw, lim, node)
        callables += entries
        kids: list[tuple[dict[str, Any], _Callable | None]] = [
            (c, None if c.get("remote") else child_progs.get(c["name"])) for c in node.get("children", [])]
        kids = [(c, p) for c, p in kids if p is not None or c.get("remote")]
        ctx = _Ctx(draw, lim, honest, node, shape, handles, kids)
        if parent is None:
            ctx.env = {t["name"]: _TState() for t in tensors}
            program[node["name"]] = _steps(ctx, 0, lim.max_steps)
        else:
            params = [f"p{i}" for i in range(draw(st.integers(0, 3)))]
            ctx.env = {p: _TState() for p in params}
            steps = _steps(ctx, 0, max(1, lim.max_steps // 2))
            program[node["name"]] = {"params": params, "steps": steps} if params else steps
            sig = _directions(ctx.env, params) if honest else tuple("INOUT" for _ in params)
            child_progs[node["name"]] = _Callable(node["name"], "program", sig)
        failing = failing or ctx.failing
    unregister = _registration(draw, lim, callables)
    # A program that submits an unregistered handle fails (UNKNOWN_CALLABLE): no outputs to compare.
    failing = failing or bool(unregister)
    return Drawn(tensors, callables, unregister, program, honest, failing)


def _registration(draw: st.DrawFn, lim: Limits, callables: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mark some callables as registered after ``init()``; pick a handle or two to unregister.

    Spec: upstream ``docs/callable-identity-registration.md`` "Local Control Contract" (a callable
    registered after init is installed before it runs) and "Registry" (unregister releases one
    handle; a later submit of it is UNKNOWN_CALLABLE).
    """
    if not lim.registration or not callables:
        return []
    local = [c for c in callables if c.get("remote") is None or lim.backend == "sim"]
    for c in local:
        if draw(st.integers(0, 5)) == 5:
            c["after_init"] = True
    out = []
    if draw(st.integers(0, 4)) == 4:
        c = draw(st.sampled_from(callables))
        when = "after_init" if c.get("after_init") else draw(st.sampled_from(["before_init", "after_init"]))
        out.append({"callable": c["name"], "when": when})
    return out


__all__ = ["BUILTINS", "REMOTE_TARGETS", "SHAPES", "TAGS", "Drawn", "programs"]
