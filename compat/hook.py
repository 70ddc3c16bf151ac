"""The import hook: ``import simpler`` / ``simpler_setup`` resolve to the simulator facade.

A :class:`FacadeFinder` placed first on ``sys.meta_path`` answers for ``simpler``,
``simpler.*``, ``simpler_setup`` and ``simpler_setup.*`` with the modules under
``compat/simpler`` and ``compat/simpler_setup`` (loaded under the upstream names; they only
re-export :mod:`compat` objects, so a class is the same object under either name). A name the
facade does not provide is not found (``ModuleNotFoundError``), never the installed real
package. The hook exists only between :func:`install` and :func:`uninstall` (or inside
:func:`facade_imports`) in this process: nothing is written anywhere, so other processes and
code that never installs it see the real ``simpler`` (or its absence) as before.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType

ROOTS = ("simpler", "simpler_setup")
_HERE = Path(__file__).parent


def _ours(name: str) -> bool:
    return any(name == r or name.startswith(r + ".") for r in ROOTS)


class FacadeFinder(importlib.abc.MetaPathFinder):
    """Finds the facade module for an upstream module name (see the module docstring)."""

    def find_spec(self, fullname: str, path: object = None, target: ModuleType | None = None
                  ) -> importlib.machinery.ModuleSpec | None:
        if not _ours(fullname):
            return None
        parts = fullname.split(".")
        base = _HERE.joinpath(*parts)
        if base.is_dir() and (base / "__init__.py").is_file():
            return importlib.util.spec_from_file_location(fullname, base / "__init__.py",
                                                          submodule_search_locations=[])
        file = base.with_suffix(".py")
        if len(parts) > 1 and file.is_file():
            return importlib.util.spec_from_file_location(fullname, file)
        return None  # nothing else answers either: the facade packages have an empty search path


_FINDER: FacadeFinder | None = None
_STASHED: dict[str, ModuleType] = {}


def installed() -> bool:
    return _FINDER is not None and _FINDER in sys.meta_path


def _drop_modules() -> dict[str, ModuleType]:
    gone = {n: m for n, m in sys.modules.items() if _ours(n)}
    for n in gone:
        del sys.modules[n]
    return gone


def install() -> None:
    """Put the finder first on ``sys.meta_path``; set aside any ``simpler`` modules already imported."""
    global _FINDER
    if installed():
        return
    _STASHED.clear()
    _STASHED.update(_drop_modules())
    _FINDER = FacadeFinder()
    sys.meta_path.insert(0, _FINDER)
    importlib.invalidate_caches()


def uninstall() -> None:
    """Remove the finder and the facade modules; put back what :func:`install` set aside."""
    global _FINDER
    if _FINDER is not None:
        while _FINDER in sys.meta_path:
            sys.meta_path.remove(_FINDER)
    _FINDER = None
    _drop_modules()
    sys.modules.update(_STASHED)
    _STASHED.clear()
    importlib.invalidate_caches()


@contextmanager
def facade_imports() -> Iterator[None]:
    """The hook for the ``with`` block only."""
    was = installed()
    install()
    try:
        yield
    finally:
        if not was:
            uninstall()
