"""The kernel contract every reference kernel follows.

A *kernel* is what an L2 chip executes for one task. Upstream, a chip callable
is a ``ChipCallable`` whose signature is a positional list of ``ArgDirection``
values (``SCALAR``, ``IN``, ``OUT``, ``INOUT``) that fixes the task-argument
order (``docs/user/reference/python-api.md``, "Callables and task args").
tierbed's reference kernels keep that shape: a kernel declares positional
:class:`Param` entries with a direction, and is called with one value per
parameter in that order — numpy arrays for tensors, Python numbers for scalars.

The simulator defines what a chip kernel must offer (:mod:`sim.kernel_spec`:
``Direction``, the ``ChipKernel`` base class, ``KernelArgError``); :class:`Kernel`
subclasses ``ChipKernel``, and ``Direction`` is re-exported here.

Each kernel provides:

- ``run``: the fast (numba) implementation, writing its outputs in place;
- ``golden``: a plain-numpy implementation written for obviousness;
- ``check``: validation of shapes/dtypes (anything with ``.shape`` and
  ``.dtype`` works, so timing-only runs check specs without data);
- ``cost``: a :class:`Cost` (flops, bytes read, bytes written) that the
  simulator's roofline turns into time;
- ``tolerance``: the (rtol, atol) to compare against the golden, per dtype.

Checks come in two layers. ``check`` looks only at the signature — argument
kinds, shapes, dtypes and scalar values — so it works on timing-only specs and
at submit time, before any producer has filled the buffers. ``check_data``
validates tensor *contents* that the fast path relies on for memory safety
(block ids, routing indices, permutations: the numba kernels do not
bounds-check); ``run`` and ``golden`` call both, right before computing.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from reference.errors import KernelArgError
from sim.kernel_spec import ChipKernel, Direction


@dataclass(frozen=True, slots=True)
class Param:
    """One positional kernel parameter."""

    name: str
    direction: Direction


class ShapedLike(Protocol):
    """Anything that has a shape and a dtype: an ndarray or a timing-only spec."""

    @property
    def shape(self) -> tuple[int, ...]: ...

    @property
    def dtype(self) -> np.dtype: ...


@dataclass(frozen=True, slots=True)
class Cost:
    """What a kernel invocation costs, for the simulator's roofline."""

    flops: float
    bytes_read: int
    bytes_written: int

    @property
    def bytes_moved(self) -> int:
        return self.bytes_read + self.bytes_written


def nbytes_of(spec: ShapedLike) -> int:
    """Bytes occupied by a shaped value (array or spec)."""
    n = 1
    for d in spec.shape:
        n *= int(d)
    return n * np.dtype(spec.dtype).itemsize


@dataclass(frozen=True)
class Kernel(ChipKernel):
    """A named reference kernel (see the module docstring for the contract).

    ``check_fn`` receives the positional values (arrays/specs for tensors,
    numbers for scalars) and raises :class:`KernelArgError` naming the
    offending parameter; ``cost_fn`` receives the same values. ``run_fn`` and
    ``golden_fn`` receive real arrays and write outputs in place.
    ``data_check_fn`` (optional) receives real arrays and validates their contents.
    ``dtypes`` lists the element types of the kernel's primary input that
    ``check_fn`` accepts (other parameters follow from it, see each kernel's doc).
    """

    name: str
    params: tuple[Param, ...]
    run_fn: Callable[..., None]
    golden_fn: Callable[..., None]
    check_fn: Callable[..., None]
    cost_fn: Callable[..., Cost]
    tolerances: dict[str, tuple[float, float]]
    doc: str = ""
    dtypes: tuple[str, ...] = ()
    data_check_fn: Callable[..., None] | None = None

    def _arity(self, values: Sequence[Any]) -> None:
        if len(values) != len(self.params):
            names = ", ".join(p.name for p in self.params)
            raise KernelArgError(
                f"kernel {self.name!r} takes {len(self.params)} arguments ({names}), got {len(values)}"
            )

    def check(self, values: Sequence[Any]) -> None:
        """Validate argument count, kinds, shapes and dtypes; raise on mismatch."""
        self._arity(values)
        for p, v in zip(self.params, values, strict=True):
            # numpy scalars carry .shape/.dtype too, but they are scalars.
            is_scalar = isinstance(v, numbers.Number | np.generic)
            has_shape = hasattr(v, "shape") and hasattr(v, "dtype") and not is_scalar
            if p.direction.is_tensor and not has_shape:
                raise KernelArgError(
                    f"kernel {self.name!r}: parameter {p.name!r} must be a tensor, got {type(v).__name__}"
                )
            if not p.direction.is_tensor and not is_scalar:
                raise KernelArgError(
                    f"kernel {self.name!r}: parameter {p.name!r} must be a scalar, got {type(v).__name__}"
                )
        self.check_fn(*values)

    def check_data(self, values: Sequence[Any]) -> None:
        """Validate the contents of real arrays (indices in range, ...); needs data, not specs."""
        self._arity(values)
        for p, v in zip(self.params, values, strict=True):
            if p.direction.is_tensor and not isinstance(v, np.ndarray):
                raise KernelArgError(
                    f"kernel {self.name!r}: parameter {p.name!r} has no data ({type(v).__name__}); "
                    "running a kernel needs numpy arrays"
                )
        if self.data_check_fn is not None:
            self.data_check_fn(*values)

    def cost(self, values: Sequence[Any]) -> Cost:
        """Cost descriptor for these arguments (arrays or shape/dtype specs).

        The arguments are checked first, so a bad signature is a
        :class:`KernelArgError` rather than a nonsensical cost.
        """
        self.check(values)
        return self.cost_fn(*values)

    def run(self, values: Sequence[Any]) -> None:
        """Run the fast implementation; outputs are written in place."""
        self.check(values)
        self.check_data(values)
        self.run_fn(*values)

    def bind(self, tensors: Sequence[Any], scalars: Sequence[Any]) -> list[Any]:
        """The positional values of this kernel: its tensor params from ``tensors``, its scalars from ``scalars``
        (each in order), as a task's args deliver them separately."""
        values: list[Any] = []
        ti = si = 0
        for p in self.params:
            if p.direction is Direction.SCALAR:
                values.append(scalars[si])
                si += 1
            else:
                values.append(tensors[ti])
                ti += 1
        return values

    def golden(self, values: Sequence[Any]) -> None:
        """Run the plain-numpy golden; outputs are written in place."""
        self.check(values)
        self.check_data(values)
        self.golden_fn(*values)

    def tolerance(self, dtype: Any) -> tuple[float, float]:
        """(rtol, atol) for comparing an output of ``dtype`` with the golden."""
        key = np.dtype(dtype).name
        if key not in self.tolerances:
            raise KernelArgError(f"kernel {self.name!r} has no tolerance for dtype {key}")
        return self.tolerances[key]
