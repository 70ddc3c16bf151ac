"""Chip callables as the simulator sees them: records of what a script built, not binaries.

Upstream a script compiles kernel and orchestration sources (``simpler_setup.KernelCompiler``)
and wraps the bytes with ``CoreCallable.build`` / ``ChipCallable.build``
(``docs/user/reference/python-api.md``, "Callables and task args"). Under tierbed nothing is
compiled: :class:`BuiltBinary` is ``bytes`` that remember which source (and core type or
runtime) they stand for, and the two ``build`` calls record the signature, the orchestration
function name and the children. :mod:`compat.kernel_map` turns such a record into a reference
kernel when the callable is registered.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

from sim.kernel_spec import Direction


class ArgDirection(IntEnum):
    """One entry of a callable's signature, with upstream's values (``arg_direction.h``)."""

    SCALAR = 0
    IN = 1
    OUT = 2
    INOUT = 3

    @property
    def direction(self) -> Direction:
        """The simulator's :class:`~sim.kernel_spec.Direction` of the same name."""
        return Direction[self.name]


class BuiltBinary(bytes):
    """The stand-in for a compiled object: a short tag, plus where it came from."""

    source_path: str
    kind: str
    detail: str

    def __new__(cls, source_path: str, kind: str, detail: str = "") -> BuiltBinary:
        name = os.path.basename(str(source_path))
        self = super().__new__(cls, f"tierbed-sim:{kind}:{name}:{detail}".encode())
        self.source_path = str(source_path)
        self.kind = kind
        self.detail = detail
        return self

    @property
    def source_name(self) -> str:
        return os.path.basename(self.source_path)


def _signature(signature: Any, api: str) -> tuple[ArgDirection, ...]:
    if isinstance(signature, str | bytes) or not isinstance(signature, Sequence):
        raise TypeError(f"{api}: signature must be a list of ArgDirection")
    out = []
    for i, d in enumerate(signature):
        try:
            out.append(ArgDirection(int(d)))
        except (TypeError, ValueError):
            raise TypeError(f"{api}: signature[{i}] = {d!r} is not an ArgDirection") from None
    return tuple(out)


def _source_of(binary: Any) -> str:
    return binary.source_path if isinstance(binary, BuiltBinary) else ""


@dataclass(frozen=True)
class CoreCallable:
    """One core kernel: its signature and the (recorded) binary it was built from."""

    signature: tuple[ArgDirection, ...]
    binary: bytes
    source_path: str = ""

    @classmethod
    def build(cls, signature: Any, binary: Any) -> CoreCallable:
        return cls(_signature(signature, "CoreCallable.build"), bytes(binary), _source_of(binary))

    @property
    def binary_size(self) -> int:
        return len(self.binary)


@dataclass(frozen=True)
class ChipCallable:
    """A chip callable: orchestration function, its signature and its core children by func_id."""

    signature: tuple[ArgDirection, ...]
    func_name: str
    binary: bytes
    children: tuple[tuple[int, CoreCallable], ...] = ()
    config_name: str = ""
    source_path: str = ""
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @classmethod
    def build(cls, signature: Any, func_name: str, binary: Any, children: Any = (), config_name: str = "",
              **extra: Any) -> ChipCallable:
        if not isinstance(func_name, str) or not func_name:
            raise TypeError("ChipCallable.build: func_name must be a non-empty str")
        kids = []
        for entry in children or ():
            try:
                func_id, core = entry
            except (TypeError, ValueError):
                raise TypeError("ChipCallable.build: children must be (func_id, CoreCallable) pairs") from None
            if not isinstance(core, CoreCallable):
                raise TypeError(f"ChipCallable.build: child {func_id} is not a CoreCallable")
            kids.append((int(func_id), core))
        return cls(_signature(signature, "ChipCallable.build"), func_name, bytes(binary), tuple(kids),
                   config_name, _source_of(binary), dict(extra))

    @property
    def binary_size(self) -> int:
        return len(self.binary) + sum(c.binary_size for _, c in self.children)

    @property
    def source_name(self) -> str:
        return os.path.basename(self.source_path)

    def describe(self) -> str:
        """One line naming the callable: function, orchestration source and children."""
        kids = ", ".join(f"{fid}: {os.path.basename(c.source_path) or '?'}" for fid, c in self.children)
        src = self.source_name or "<binary of unknown source>"
        return f"chip callable {self.func_name!r} (orchestration source {src}; children {{{kids}}})"
