"""The case catalog: cases written once as Python functions, keyed by a stable ID.

A case is registered with :func:`case` (or :meth:`Catalog.case` for a private catalog, as the
project's own tests do) and carries what ``DESIGN.md`` "Case catalog" asks of it: a stable ID
(``AREA-NNN``), a one-line title, the upstream document and heading it checks, a level (MUST or
SHOULD) and the backends it applies to. The function receives the backend's
:class:`~conformance.backends.RuntimeAPI` and a :class:`~conformance.context.CaseContext`, drives the
runtime through the first and declares its expectations on the second.

The runner finds a case again in a fresh process from ``(module, qualname, file)``, so a case must
be a module-level function.
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

    @property
    def area(self) -> str:
        return self.id.split("-", 1)[0]

    def applies_to(self, backend: str) -> bool:
        return backend in self.backends

    def spec_text(self) -> str:
        return f"{self.spec[0]} \u00a7 {self.spec[1]}"

    def locator(self) -> tuple[str, str, str | None]:
        """What a fresh process needs to find this case again."""
        return self.module, self.qualname, self.file


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
        cases = list(self)
        if not pattern:
            return cases
        terms = [t.strip().upper() for t in pattern.split(",") if t.strip()]
        out = []
        for c in cases:
            for t in terms:
                if (any(ch in t for ch in "*?[") and fnmatch.fnmatchcase(c.id, t)) or c.id.startswith(t):
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


def find_case(module: str, qualname: str, file: str | None) -> Case:
    """Re-import the module holding a case (by name, or from its file) and return the case."""
    mod = sys.modules.get(module)
    if mod is None:
        try:
            mod = importlib.import_module(module)
        except ImportError:
            if not file:
                raise
            spec = importlib.util.spec_from_file_location(module, file)
            if spec is None or spec.loader is None:
                raise
            mod = importlib.util.module_from_spec(spec)
            sys.modules[module] = mod
            spec.loader.exec_module(mod)
    obj: Any = mod
    for part in qualname.split("."):
        obj = getattr(obj, part)
    found = getattr(obj, CASE_ATTR, None)
    if found is None:
        raise CatalogError(f"{module}.{qualname} is not a registered case")
    return found
