"""Shared argument checks for kernel signatures.

Every failure is a :class:`KernelArgError` whose message names the kernel, the
parameter and what was wrong, in one format:
``kernel 'rmsnorm': parameter 'weight' has shape (5,); expected (4,) (last dim of x)``.
The checks read only ``.shape`` and ``.dtype`` (plus scalar values), so they
work on timing-only specs as well as on arrays.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, NoReturn

import numpy as np

from reference.errors import KernelArgError

FLOAT_DTYPES = ("float32", "float16", "bfloat16")
INT_DTYPES = ("int32", "int8")
ALL_DTYPES = (*FLOAT_DTYPES, *INT_DTYPES)


def fail(kernel: str, name: str, what: str) -> NoReturn:
    """Raise the library's standard argument error."""
    raise KernelArgError(f"kernel {kernel!r}: parameter {name!r} {what}")


_DTYPE_NAMES: dict[Any, str] = {}


def dtype_name(v: Any) -> str:
    # numpy computes ``dtype.name`` afresh on every access (microseconds); submit-time
    # checks ask for it on every tensor, so remember it per dtype object.
    dt = v.dtype
    name = _DTYPE_NAMES.get(dt)
    if name is None:
        name = _DTYPE_NAMES[dt] = np.dtype(dt).name
    return name


def shape_of(v: Any) -> tuple[int, ...]:
    return tuple(int(d) for d in v.shape)


def numel(shape: tuple[int, ...]) -> int:
    return math.prod(shape)


def require_dtype(kernel: str, name: str, v: Any, allowed: tuple[str, ...]) -> None:
    got = dtype_name(v)
    if got not in allowed:
        want = allowed[0] if len(allowed) == 1 else "one of " + ", ".join(allowed)
        fail(kernel, name, f"has dtype {got}; expected {want}")


def require_shape(kernel: str, name: str, v: Any, shape: tuple[int, ...], why: str = "") -> None:
    got = shape_of(v)
    if got != tuple(shape):
        fail(kernel, name, f"has shape {got}; expected {tuple(shape)}" + (f" ({why})" if why else ""))


def require_ndim(kernel: str, name: str, v: Any, ndim: int, layout: str = "") -> None:
    if len(v.shape) != ndim:
        hint = f" {layout}" if layout else ""
        fail(kernel, name, f"must be {ndim}-D{hint}, got shape {shape_of(v)}")


def require_min_ndim(kernel: str, name: str, v: Any, ndim: int) -> None:
    if len(v.shape) < ndim:
        fail(kernel, name, f"must have at least {ndim} dimension(s), got shape {shape_of(v)}")


def require_same_dtype(kernel: str, names: tuple[str, ...], values: tuple[Any, ...]) -> None:
    first = dtype_name(values[0])
    for n, v in zip(names[1:], values[1:], strict=True):
        if dtype_name(v) != first:
            fail(kernel, n, f"has dtype {dtype_name(v)} but {names[0]!r} has {first}")


def require_real(kernel: str, name: str, value: Any, *, min_value: float | None = None) -> float:
    """A finite real scalar (bools rejected), optionally ``>= min_value``."""
    if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Real):
        fail(kernel, name, f"must be a real number, got {type(value).__name__}")
    v = float(value)
    if not math.isfinite(v):
        fail(kernel, name, f"must be finite, got {v}")
    if min_value is not None and v < min_value:
        fail(kernel, name, f"must be >= {min_value}, got {v}")
    return v


def require_int(kernel: str, name: str, value: Any, lo: int, hi: int, why: str = "") -> int:
    """An integer scalar in ``[lo, hi]`` (bools rejected)."""
    if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Integral):
        fail(kernel, name, f"must be an integer, got {type(value).__name__}")
    v = int(value)
    if not lo <= v <= hi:
        fail(kernel, name, f"must be in [{lo}, {hi}]" + (f" ({why})" if why else "") + f", got {v}")
    return v
