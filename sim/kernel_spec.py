"""What a chip kernel must offer the simulator: the kernel contract of an L2 chip.

A *chip kernel* is what an L2 chip executes for one task (``docs/task-flow.md`` §5
"ChipWorker"). Upstream, a chip callable is a ``ChipCallable`` whose signature is a
positional list of ``ArgDirection`` values (``SCALAR``, ``IN``, ``OUT``, ``INOUT``) that
fixes the task-argument order (``docs/user/reference/python-api.md``, "Callables and task
args"). This module holds the simulator's side of that contract:

- :class:`Direction`, the direction of one kernel parameter (mirrors ``ArgDirection``);
- :class:`ChipKernel`, the base class a chip kernel derives from — the simulator registers
  an instance as a chip callable, checks and prices each submit with it and, in functional
  runs, runs it on the chip;
- :class:`KernelArgError`, what a chip kernel raises for arguments of the wrong count, kind,
  shape or dtype (the simulator reports it as ``KERNEL_ARGUMENT`` at submit).

The reference kernels (:class:`reference.kernel.Kernel`) implement this contract; the
simulator imports nothing of theirs.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import Enum
from typing import Any


class Direction(Enum):
    """Direction of one kernel parameter; mirrors upstream ``ArgDirection``."""

    SCALAR = "scalar"
    IN = "in"
    OUT = "out"
    INOUT = "inout"

    @property
    def is_tensor(self) -> bool:
        return self is not Direction.SCALAR

    @property
    def reads(self) -> bool:
        return self in (Direction.IN, Direction.INOUT)

    @property
    def writes(self) -> bool:
        return self in (Direction.OUT, Direction.INOUT)


class KernelArgError(ValueError):
    """A chip kernel was given arguments of the wrong count, kind, shape or dtype."""


class ChipKernel:
    """Base class of a chip kernel: what the simulator registers, checks, prices and runs on a chip.

    A subclass provides:

    - ``name`` (str) and ``params``: the positional parameters in signature order, each with a
      ``name`` (str) and a ``direction`` (:class:`Direction`); tensors are the non-SCALAR ones;
    - ``check(values)``: validate one call's positional values (arrays or shape/dtype specs for
      tensors, numbers for scalars) and raise :class:`KernelArgError` on a mismatch;
    - ``cost(values)``: the call's cost, an object with ``flops`` and ``bytes_moved`` that the
      simulator's roofline turns into time;
    - ``run(values)``: compute on real arrays, writing outputs in place (functional runs).
    """

    __slots__ = ()

    name: str
    params: Sequence[Any]
    #: True for a collective (:class:`sim.comm.collective.CollectiveKernel`): its launches meet the
    #: other ranks of a communication domain instead of running alone.
    collective = False

    def check(self, values: Sequence[Any]) -> None:
        raise NotImplementedError

    def cost(self, values: Sequence[Any]) -> Any:
        raise NotImplementedError

    def run(self, values: Sequence[Any]) -> None:
        raise NotImplementedError
