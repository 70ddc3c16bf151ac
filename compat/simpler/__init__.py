"""``simpler`` as ``tierbed exec`` serves it: the package root of the simulator facade.

Mirrors upstream ``python/simpler/__init__.py``: ``Worker`` and ``task_interface`` resolve
on first access. Everything here is backed by :mod:`compat.runtime` and :mod:`sim`.
"""

import importlib
from typing import Any

__all__ = ["Worker", "task_interface"]

_LAZY_ATTRS = {"Worker": ("worker", "Worker")}
_LAZY_SUBMODULES = ("task_interface",)


def __getattr__(name: str) -> Any:
    if name in _LAZY_ATTRS:
        module, attr = _LAZY_ATTRS[name]
        return getattr(importlib.import_module(f"{__name__}.{module}"), attr)
    if name in _LAZY_SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
