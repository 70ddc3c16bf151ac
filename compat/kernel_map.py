"""The kernel map: which reference kernel a built chip callable stands for.

A chip callable is keyed by its orchestration source's file name and its function name (what
``ChipCallable.build(func_name=..., binary=compile_orchestration(source_path=...))`` recorded,
:mod:`compat.callables`). An entry resolves it to

- ``kernel: NAME`` -- one reference kernel (:func:`reference.get_kernel`), or ``"module:attr"``
  naming a :class:`~sim.kernel_spec.ChipKernel` of the user's own;
- ``params`` + ``steps`` -- a chain of reference kernels (:func:`reference.composite.composite_kernel`);
- ``timing_only: true`` -- a stand-in that computes nothing and costs one pass over its tensors;
- ``collective: NAME`` -- one rank of a collective over a communication domain
  (:class:`sim.comm.collective.CollectiveKernel`): ``params`` names the signature's tensors,
  ``scalars`` the scalars the orchestration appends (one of them, ``ctx``, the rank's
  ``device_ctx``), ``bind`` which params feed the rank-stacked reference kernel ``NAME``
  (``all_reduce``, ``all_to_all``, ... -- axis 0 is the rank) and ``traffic`` how many bytes each
  rank receives (``mesh``, ``alltoall``, ``barrier``); ``sync: onesided`` for a kernel that reads its
  peers' windows without waiting for them (a TLOAD), ``rendezvous`` (the default) otherwise.

Maps are read in this order, a later entry for the same key replacing an earlier one: the
shipped ``kernel_map.yaml`` (upstream's worker examples), the entry-point group
``tierbed.kernel_maps`` (each entry point loads to a file path or to a mapping in the file
format), the files named by ``TIERBED_KERNEL_MAP`` (``os.pathsep``-separated), then files given
to :func:`load_kernel_map` (``tierbed exec --kernel-map``).
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from compat.callables import ArgDirection, ChipCallable
from compat.errors import KernelMapError
from reference.composite import Step, composite_kernel
from reference.kernel import Cost, Kernel, Param
from sim.comm.collective import CollectiveKernel, CollectiveParam
from sim.kernel_spec import ChipKernel, Direction

ENV_VAR = "TIERBED_KERNEL_MAP"
ENTRY_POINT_GROUP = "tierbed.kernel_maps"
BUILTIN = Path(__file__).with_name("kernel_map.yaml")
HOW_TO_MAP = (f"add an entry {{source: <orchestration file name>, function: <func_name>, kernel: <reference kernel>}} "
              f"(or params: + steps:, or timing_only: true) to a YAML kernel map named by {ENV_VAR} or "
              f"`tierbed exec --kernel-map FILE`, or publish one under the entry-point group {ENTRY_POINT_GROUP!r}")

_ENTRY_KEYS = {"source", "function", "kernel", "params", "steps", "timing_only", "flops_per_element", "doc",
               "collective", "scalars", "bind", "ctx", "traffic", "sync"}


@dataclass(frozen=True)
class Entry:
    """One validated map entry; ``origin`` names the file (and index) it came from."""

    source: str
    function: str
    origin: str
    kernel: str | None = None
    params: tuple[str, ...] = ()
    steps: tuple[Step, ...] = ()
    timing_only: bool = False
    flops_per_element: float = 1.0
    collective: str | None = None
    scalars: tuple[str, ...] = ()
    bind: tuple[str, ...] = ()
    ctx: str = ""
    traffic: str = "mesh"
    sync: str = "rendezvous"


def _fail(origin: str, msg: str) -> KernelMapError:
    return KernelMapError(f"kernel map {origin}: {msg}")


def parse_entries(data: Any, origin: str) -> list[Entry]:
    """Validate a loaded map document (``{version: 1, kernels: [...]}``); KernelMapError naming the field."""
    if not isinstance(data, Mapping):
        raise _fail(origin, "the document must be a mapping with a 'kernels' list")
    extra = set(data) - {"version", "kernels"}
    if extra:
        raise _fail(origin, f"unknown top-level key(s) {sorted(extra)}; expected 'version' and 'kernels'")
    if data.get("version", 1) != 1:
        raise _fail(origin, f"version {data.get('version')!r} is not supported (expected 1)")
    items = data.get("kernels") or []
    if not isinstance(items, list):
        raise _fail(origin, "'kernels' must be a list of entries")
    out = []
    for i, item in enumerate(items):
        where = f"{origin} kernels[{i}]"
        if not isinstance(item, Mapping):
            raise _fail(where, "an entry must be a mapping")
        unknown = set(item) - _ENTRY_KEYS
        if unknown:
            raise _fail(where, f"unknown key(s) {sorted(unknown)}; known: {sorted(_ENTRY_KEYS)}")
        for key in ("source", "function"):
            if not isinstance(item.get(key), str) or not item[key]:
                raise _fail(where, f"'{key}' must be a non-empty string")
        forms = [k for k in ("kernel", "steps", "timing_only", "collective") if item.get(k)]
        if len(forms) != 1:
            raise _fail(where, "give exactly one of 'kernel', 'steps' (with 'params'), 'timing_only: true' or "
                               "'collective' (with 'params', 'scalars', 'bind', 'ctx')")
        steps: list[Step] = []
        extra: dict[str, Any] = {}
        if "collective" in item:
            extra = _collective_fields(item, where)
        elif any(k in item for k in ("scalars", "bind", "ctx", "traffic", "sync")):
            raise _fail(where, "'scalars', 'bind', 'ctx', 'traffic' and 'sync' go with 'collective'")
        elif "steps" in item:
            params = item.get("params")
            if not isinstance(params, list) or not all(isinstance(p, str) for p in params):
                raise _fail(where, "'steps' needs 'params': the callable's argument names in signature order")
            if not isinstance(item["steps"], list):
                raise _fail(where, "'steps' must be a list")
            for j, s in enumerate(item["steps"]):
                if (not isinstance(s, Mapping) or not isinstance(s.get("kernel"), str)
                        or not isinstance(s.get("tensors"), list) or set(s) - {"kernel", "tensors", "scalars"}):
                    raise _fail(f"{where} steps[{j}]", "a step is {kernel: NAME, tensors: [...], scalars: [...]}")
                scalars = s.get("scalars") or []
                if not isinstance(scalars, list) or not all(isinstance(x, int | float) for x in scalars):
                    raise _fail(f"{where} steps[{j}]", "'scalars' must be a list of numbers")
                steps.append(Step(s["kernel"], tuple(str(t) for t in s["tensors"]), tuple(scalars)))
        elif "params" in item:
            raise _fail(where, "'params' goes with 'steps' or 'collective'")
        fpe = item.get("flops_per_element", 1.0)
        if isinstance(fpe, bool) or not isinstance(fpe, int | float) or fpe < 0:
            raise _fail(where, "'flops_per_element' must be a number >= 0")
        if item.get("kernel") is not None and not isinstance(item["kernel"], str):
            raise _fail(where, "'kernel' must be a string")
        out.append(Entry(source=os.path.basename(item["source"]), function=item["function"], origin=where,
                         kernel=item.get("kernel"), params=tuple(item.get("params") or ()), steps=tuple(steps),
                         timing_only=bool(item.get("timing_only")), flops_per_element=float(fpe), **extra))
    return out


def _names(item: Mapping[str, Any], key: str, where: str) -> tuple[str, ...]:
    value = item.get(key)
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise _fail(where, f"'{key}' must be a list of names")
    return tuple(value)


def _collective_fields(item: Mapping[str, Any], where: str) -> dict[str, Any]:
    """The checked fields of a ``collective:`` entry (names only; the kernel is built at resolve)."""
    from sim.comm.collective import SYNC, TRAFFIC

    if not isinstance(item["collective"], str):
        raise _fail(where, "'collective' must name a rank-stacked reference kernel (e.g. all_reduce)")
    params, scalars, bind = _names(item, "params", where), _names(item, "scalars", where), _names(item, "bind", where)
    names = params + scalars
    if len(set(names)) != len(names):
        raise _fail(where, f"'params' and 'scalars' repeat a name: {list(names)}")
    for b in bind:
        if b not in params:
            raise _fail(where, f"'bind' names {b!r}, which is not one of 'params' {list(params)}")
    ctx = item.get("ctx")
    if ctx not in scalars:
        raise _fail(where, f"'ctx' must name one of 'scalars' {list(scalars)} (the device_ctx), got {ctx!r}")
    traffic = item.get("traffic", "mesh")
    if traffic not in TRAFFIC:
        raise _fail(where, f"'traffic' must be one of {sorted(TRAFFIC)}, got {traffic!r}")
    sync = item.get("sync", "rendezvous")
    if sync not in SYNC:
        raise _fail(where, f"'sync' must be one of {list(SYNC)}, got {sync!r}")
    return {"collective": item["collective"], "scalars": scalars, "bind": bind, "ctx": ctx, "traffic": traffic,
            "sync": sync}


def _read(path: Path) -> list[Entry]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise KernelMapError(f"kernel map {path}: cannot read it ({exc.strerror or exc})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise KernelMapError(f"kernel map {path}: not valid YAML ({exc})") from None
    return parse_entries(data, str(path))


def _entry_point_maps() -> list[Entry]:
    out: list[Entry] = []
    for ep in sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        try:
            obj = ep.load()
        except Exception as exc:
            raise KernelMapError(f"kernel map entry point {ep.name!r} ({ep.value}) failed to load: {exc}") from None
        if callable(obj):
            obj = obj()
        if isinstance(obj, str | os.PathLike):
            out.extend(_read(Path(obj)))
        else:
            out.extend(parse_entries(obj, f"entry point {ep.name!r}"))
    return out


class KernelMap:
    """Entries by (source file name, function name), and the kernels built from them (cached)."""

    def __init__(self, entries: Iterable[Entry] = ()) -> None:
        self.entries: dict[tuple[str, str], Entry] = {}
        self._built: dict[tuple[str, str, tuple[int, ...]], ChipKernel] = {}
        for e in entries:
            self.entries[(e.source, e.function)] = e

    def resolve(self, callable_: ChipCallable) -> ChipKernel:
        """The kernel ``callable_`` stands for; KernelMapError naming the kernel source and how to map it."""
        key = (callable_.source_name, callable_.func_name)
        entry = self.entries.get(key)
        if entry is None:
            raise KernelMapError(f"{callable_.describe()} is not in the kernel map; {HOW_TO_MAP}")
        sig = tuple(int(d) for d in callable_.signature)
        cache_key = (*key, sig)
        kernel = self._built.get(cache_key)
        if kernel is None:
            kernel = self._built[cache_key] = self._build(entry, callable_)
        return kernel

    def _build(self, entry: Entry, c: ChipCallable) -> ChipKernel:
        where = f"{c.describe()} (map entry {entry.origin})"
        if entry.timing_only:
            return _stand_in(c, entry.flops_per_element)
        if entry.collective:
            return _collective(entry, c, where)
        if entry.steps:
            if len(entry.params) != len(c.signature):
                raise KernelMapError(f"{where}: the entry names {len(entry.params)} params, the callable's "
                                     f"signature has {len(c.signature)}")
            try:
                return composite_kernel(f"{c.func_name}@{c.source_name}",
                                        [(p, d.direction) for p, d in zip(entry.params, c.signature, strict=True)],
                                        entry.steps)
            except ValueError as exc:
                raise KernelMapError(f"{where}: {exc}") from None
        kernel = _named_kernel(entry.kernel or "", where)
        want = [d.direction for d in c.signature]
        got = [p.direction for p in kernel.params]
        if want != got:
            raise KernelMapError(f"{where}: kernel {kernel.name!r} has parameters "
                                 f"[{', '.join(f'{p.name}:{p.direction.name}' for p in kernel.params)}] but the "
                                 f"callable's signature is [{', '.join(d.name for d in c.signature)}]")
        return kernel


def _named_kernel(name: str, where: str) -> ChipKernel:
    if ":" in name:
        module, _, attr = name.partition(":")
        try:
            obj: Any = importlib.import_module(module)
            for part in attr.split("."):
                obj = getattr(obj, part)
        except (ImportError, AttributeError) as exc:
            raise KernelMapError(f"{where}: cannot import kernel {name!r}: {exc}") from None
        if not isinstance(obj, ChipKernel):
            raise KernelMapError(f"{where}: {name!r} is a {type(obj).__name__}, not a ChipKernel")
        return obj
    from reference import get_kernel

    try:
        return get_kernel(name)
    except Exception as exc:
        raise KernelMapError(f"{where}: {exc}") from None


def _collective(entry: Entry, c: ChipCallable, where: str) -> ChipKernel:
    """One rank of a collective: the callable's tensors, then its scalars, over a rank-stacked kernel."""
    if len(entry.params) != len(c.signature):
        raise KernelMapError(f"{where}: the entry names {len(entry.params)} params, the callable's signature "
                             f"has {len(c.signature)}")
    op = _named_kernel(entry.collective or "", where)
    params = [CollectiveParam(p, d.direction) for p, d in zip(entry.params, c.signature, strict=True)]
    params += [CollectiveParam(s, Direction.SCALAR) for s in entry.scalars]
    names = [p.name for p in params]
    try:
        return CollectiveKernel(f"{c.func_name}@{c.source_name}[{op.name}]", params, op,
                                [names.index(b) for b in entry.bind], names.index(entry.ctx), entry.traffic,
                                entry.sync)
    except ValueError as exc:
        raise KernelMapError(f"{where}: {exc}") from None


def _stand_in(c: ChipCallable, flops_per_element: float) -> Kernel:
    """A kernel with the callable's signature that computes nothing and costs one pass over its tensors."""
    params = tuple(Param(f"arg{i}", d.direction) for i, d in enumerate(c.signature))

    def cost(*values: Any) -> Cost:
        rd = wr = 0
        elems = 0
        for p, v in zip(params, values, strict=True):
            if not p.direction.is_tensor:
                continue
            n = int(np.prod(v.shape, dtype=np.int64)) * np.dtype(v.dtype).itemsize
            rd += n if p.direction.reads else 0
            wr += n if p.direction.writes else 0
            elems = max(elems, int(np.prod(v.shape, dtype=np.int64)))
        return Cost(flops=flops_per_element * elems, bytes_read=rd, bytes_written=wr)

    def nothing(*_values: Any) -> None:
        return None

    return Kernel(name=f"{c.func_name}@{c.source_name}[timing-only]", params=params, run_fn=nothing,
                  golden_fn=nothing, check_fn=nothing, cost_fn=cost, tolerances={},
                  doc="timing-only stand-in from the kernel map")


def load_kernel_map(extra_files: Iterable[str | os.PathLike] = (), *, builtin: bool = True,
                    entry_points: bool = True, env: bool = True) -> KernelMap:
    """The shipped map, then entry points, then ``TIERBED_KERNEL_MAP`` files, then ``extra_files``."""
    entries: list[Entry] = []
    if builtin:
        entries.extend(_read(BUILTIN))
    if entry_points:
        entries.extend(_entry_point_maps())
    if env:
        for part in os.environ.get(ENV_VAR, "").split(os.pathsep):
            if part.strip():
                entries.extend(_read(Path(part.strip())))
    for f in extra_files:
        entries.extend(_read(Path(f)))
    return KernelMap(entries)


__all__ = ["BUILTIN", "ENTRY_POINT_GROUP", "ENV_VAR", "ArgDirection", "Entry", "KernelMap", "load_kernel_map",
           "parse_entries"]
