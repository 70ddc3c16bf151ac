"""The case catalog: cases written once as Python functions, keyed by a stable ID.

A case is registered with :func:`case` (or :meth:`Catalog.case` for a private catalog, as the
project's own tests do) and carries what ``DESIGN.md`` "Case catalog" asks of it: a stable ID
(``AREA-NNN``), a one-line title, the upstream document and heading it checks, a level (MUST or
SHOULD) and the backends it applies to. The function receives the backend's
:class:`~conformance.backends.RuntimeAPI` and a :class:`~conformance.context.CaseContext`, drives the
runtime through the first and declares its expectations on the second.

The runner finds a case again in a fresh process from its :meth:`Case.locator`. A locator has one
of two kinds:

- ``function`` (the catalog's cases): ``module.qualname`` is the registered case function itself
  (imported by name, or from ``file``), so a case must be a module-level function;
- ``file`` (cases read from a file, e.g. a corpus of YAML scenarios, :mod:`conformance.corpus`):
  ``module.qualname`` is a *case loader*, a module-level function marked with :func:`case_loader`
  that rebuilds the case from ``file`` (and the locator's ``args``). The catalog never names the
  modules that hold loaders: the locator does, so reading cases from files adds no import here.
"""

from __future__ import annotations

import fnmatch
import importlib
import importlib.util
import inspect
import re
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

ID_RE = re.compile(r"^[A-Z][A-Z0-9]{1,7}-\d{3}$")
ALL_BACKENDS = ("sim", "reference", "hw")
CASE_ATTR = "__conformance_case__"
LOADER_ATTR = "__conformance_case_loader__"
LOCATOR_KINDS = ("function", "file")

#: What a fresh process needs to find a case again: (module, qualname, file, kind, args).
Locator = tuple[str, str, str | None, str, tuple[str, ...]]


class Level(StrEnum):
    """How binding the checked rule is (RFC 2119 words, as the upstream docs use them)."""

    MUST = "MUST"
    SHOULD = "SHOULD"


class CatalogError(ValueError):
    """A case declared wrongly (bad ID, duplicate ID, missing spec reference, ...)."""


@dataclass(frozen=True)
class Case:
    """One registered case and its metadata."""

    id: str
    title: str
    spec: tuple[str, str]  # (upstream document path, heading)
    level: Level
    backends: tuple[str, ...]
    fn: Callable[..., Any] = field(repr=False, compare=False)
    timeout_s: float | None = None
    module: str = ""
    qualname: str = ""
    file: str | None = None
    kind: str = "function"  # how locator() finds it again: "function" or "file" (see the module docstring)
    args: tuple[str, ...] = ()  # a "file" case: what its loader is given after the file

    @property
    def area(self) -> str:
        """The ID's area (``ORCH`` for ``ORCH-001``); ``scenario`` for a case read from a file."""
        return "scenario" if self.kind == "file" else self.id.split("-", 1)[0]

    def applies_to(self, backend: str) -> bool:
        return backend in self.backends

    def spec_text(self) -> str:
        return f"{self.spec[0]} \u00a7 {self.spec[1]}"

    def locator(self) -> Locator:
        """What a fresh process needs to find this case again (:func:`find_case`)."""
        return self.module, self.qualname, self.file, self.kind, self.args


class Catalog:
    """An ordered set of cases with unique IDs."""

    def __init__(self) -> None:
        self._cases: dict[str, Case] = {}

    def case(self, id: str, title: str, *, spec: tuple[str, str], level: Level | str = Level.MUST,
             backends: Iterable[str] = ALL_BACKENDS, timeout_s: float | None = None
             ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Decorator registering ``fn(rt, ctx)`` as case ``id``."""
        if not ID_RE.fullmatch(id):
            raise CatalogError(f"case ID {id!r} is not of the form AREA-NNN (e.g. LVL-001)")
        if not title or "\n" in title:
            raise CatalogError(f"{id}: the title must be one non-empty line")
        if len(spec) != 2 or not all(isinstance(s, str) and s for s in spec):
            raise CatalogError(f"{id}: spec must be (upstream document, heading)")
        lvl = Level(level)
        bks = tuple(backends)
        unknown = [b for b in bks if b not in ALL_BACKENDS]
        if unknown or not bks:
            raise CatalogError(f"{id}: unknown backends {unknown}; known: {', '.join(ALL_BACKENDS)}")

        def register(fn: Callable[..., Any]) -> Callable[..., Any]:
            if "<locals>" in fn.__qualname__:
                raise CatalogError(f"{id}: a case must be a module-level function, got {fn.__qualname__}")
            try:
                file = inspect.getsourcefile(fn)
            except TypeError:
                file = None
            c = Case(id, title, (spec[0], spec[1]), lvl, bks, fn, timeout_s, fn.__module__, fn.__qualname__, file)
            old = self._cases.get(id)
            if old is not None and (old.module, old.qualname) != (c.module, c.qualname):
                raise CatalogError(f"duplicate case ID {id}: {old.module}.{old.qualname} and {c.module}.{c.qualname}")
            self._cases[id] = c
            setattr(fn, CASE_ATTR, c)
            return fn

        return register

    def __iter__(self):
        return iter(sorted(self._cases.values(), key=lambda c: c.id))

    def __len__(self) -> int:
        return len(self._cases)

    def get(self, case_id: str) -> Case:
        try:
            return self._cases[case_id]
        except KeyError:
            raise CatalogError(f"no case {case_id!r}") from None

    def select(self, pattern: str | None = None) -> list[Case]:
        """Cases whose ID matches ``pattern``: comma-separated globs; a term without ``*?[`` is a prefix."""
        return select_cases(self, pattern)


def select_cases(cases: Iterable[Case], pattern: str | None = None) -> list[Case]:
    """The ``cases`` whose ID matches ``pattern`` (comma-separated globs; a term without ``*?[`` is a
    prefix), in order; IDs are matched without regard to case (a catalog ID is upper case, a corpus
    scenario's name usually is not)."""
    cases = list(cases)
    if not pattern:
        return cases
    terms = [t.strip().upper() for t in pattern.split(",") if t.strip()]
    out = []
    for c in cases:
        cid = c.id.upper()
        for t in terms:
            if (any(ch in t for ch in "*?[") and fnmatch.fnmatchcase(cid, t)) or cid.startswith(t):
                out.append(c)
                break
    return out


#: The project's catalog (``conformance.cases`` fills it).
CATALOG = Catalog()
case = CATALOG.case


def load_catalog() -> Catalog:
    """Import every area module and return the project's catalog."""
    importlib.import_module("conformance.cases")
    return CATALOG


def case_loader(fn: Callable[..., Case]) -> Callable[..., Case]:
    """Mark ``fn(file, *args) -> Case`` (a module-level function) as a case loader that a ``file``
    locator may name."""
    if "<locals>" in fn.__qualname__:
        raise CatalogError(f"a case loader must be a module-level function, got {fn.__qualname__}")
    setattr(fn, LOADER_ATTR, True)
    return fn


def _import(module: str, file: str | None) -> Any:
    mod = sys.modules.get(module)
    if mod is not None:
        return mod
    try:
        return importlib.import_module(module)
    except ImportError:
        if not file:
            raise
        spec = importlib.util.spec_from_file_location(module, file)
        if spec is None or spec.loader is None:
            raise
        mod = importlib.util.module_from_spec(spec)
        sys.modules[module] = mod
        spec.loader.exec_module(mod)
        return mod


def find_case(module: str, qualname: str, file: str | None, kind: str = "function", args: tuple[str, ...] = ()
              ) -> Case:
    """Find a case again from its locator (see :meth:`Case.locator`).

    ``function``: re-import the module holding the case (by name, or from its file) and return the
    case registered on ``module.qualname``. ``file``: import the module holding the case loader
    ``module.qualname`` and return ``loader(file, *args)``.
    """
    if kind not in LOCATOR_KINDS:
        raise CatalogError(f"unknown locator kind {kind!r}; known: {', '.join(LOCATOR_KINDS)}")
    obj: Any = _import(module, file if kind == "function" else None)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    if kind == "file":
        if not getattr(obj, LOADER_ATTR, False):
            raise CatalogError(f"{module}.{qualname} is not a case loader")
        if not file:
            raise CatalogError(f"a file locator names no file ({module}.{qualname})")
        found = obj(file, *args)
        if not isinstance(found, Case):
            raise CatalogError(f"case loader {module}.{qualname} returned {type(found).__name__}, not a Case")
        return found
    found = getattr(obj, CASE_ATTR, None)
    if found is None:
        raise CatalogError(f"{module}.{qualname} is not a registered case")
    return found
