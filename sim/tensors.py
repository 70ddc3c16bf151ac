"""Tensors as the runtime sees them: data-bearing views, shared buffers and timing-only specs.

Upstream names a tensor to the runtime by its buffer and byte offset: local TensorMap keys
carry a host pointer (``docs/orchestrator.md`` §2 "Step 3 — tag walk"), shared backings come
from ``Worker.create_buffer`` / ``Worker.make_tensor_arg`` and runtime-owned intermediates
from ``Orchestrator.alloc`` (§8b). The simulator keeps that identity rule — a tensor's
dependency key is its buffer plus byte offset — and adds :class:`TensorSpec`, a shape and
dtype with no data, so timing-only models of large clusters allocate nothing.
"""

from __future__ import annotations

import itertools
import math
from types import SimpleNamespace
from typing import Any

import numpy as np

from sim.errors import InvalidArgument, InvalidState, ResourceExhausted
from sim.types import as_numpy_dtype

_uids = itertools.count(1)


# Normalised shapes by what was passed (a tuple of the dims as given), shared by every spec of
# that shape: normalising costs more than the rest of a TensorSpec. Bounded, as shapes come from
# the user; an equal key (``(2.0,)`` and ``(2,)``) normalises to the same dims.
_SHAPES: dict[tuple, tuple[int, ...]] = {}
_SHAPE_CACHE_MAX = 4096


def shape_tuple(shape: Any, what: str) -> tuple[int, ...]:
    try:
        given = shape if shape.__class__ is tuple else tuple(shape)  # an iterator is read once, here
    except TypeError:  # not iterable: the check below says so
        return _shape_tuple(shape, shape, what)
    try:
        dims = _SHAPES.get(given)
    except TypeError:  # a dim that does not hash: not cached
        return _shape_tuple(given, shape, what)
    if dims is None:
        dims = _shape_tuple(given, shape, what)
        if len(_SHAPES) < _SHAPE_CACHE_MAX:
            _SHAPES[given] = dims
    return dims


def _shape_tuple(given: Any, shape: Any, what: str) -> tuple[int, ...]:
    try:
        dims = tuple(int(d) for d in given)
    except TypeError:
        raise InvalidArgument(f"{what} shape must be a sequence of ints, got {shape!r}") from None
    if any(d < 0 for d in dims):
        raise InvalidArgument(f"{what} shape {dims} has a negative dimension")
    return dims


class TensorSpec:
    """A tensor's shape and dtype without data (timing-only mode).

    A spec is its own engine reference (see :class:`ArgRef`): it carries the dependency
    ``key``, ``shape``, ``dtype`` and ``sig`` and no array, so naming it in a TaskArgs
    allocates nothing.
    """

    __slots__ = ("_uid", "dtype", "key", "name", "shape", "sig")

    array = None  # no data: the engine-reference view of a spec
    remote = False

    def __init__(self, shape: Any, dtype: Any, name: str | None = None) -> None:
        self.shape = shape_tuple(shape, "TensorSpec")
        self.dtype = as_numpy_dtype(dtype)
        self.name = name
        self._uid = next(_uids)
        self.key = self._uid  # a spec names no memory: its unique id is its dependency key
        self.sig = signature_id(self.shape, self.dtype)

    @property
    def source(self) -> TensorSpec:
        """What the user passed: the spec itself."""
        return self

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize

    def __repr__(self) -> str:
        label = f" {self.name!r}" if self.name else ""
        return f"TensorSpec{label}(shape={self.shape}, dtype={self.dtype.name})"


class Buffer:
    """A shared host backing: ``Worker.create_buffer`` or ``Orchestrator.alloc``.

    ``shm.buf`` is a writable memoryview over the bytes, as upstream exposes it; ``array``
    is the same bytes as a numpy ``uint8`` array. In timing-only mode a buffer has no bytes
    (``array is None``) but still names tensors. ``tensor(shapes, dtype)`` builds a
    :class:`Tensor` over it.
    """

    __slots__ = ("_closed", "_uid", "array", "nbytes", "owner", "shm")

    def __init__(self, nbytes: int, *, owner: str, with_data: bool) -> None:
        if isinstance(nbytes, bool) or not isinstance(nbytes, int | np.integer) or nbytes < 0:
            raise InvalidArgument(f"buffer size must be a non-negative int, got {nbytes!r}")
        self.nbytes = int(nbytes)
        self.owner = owner
        try:
            self.array: np.ndarray | None = np.zeros(self.nbytes, dtype=np.uint8) if with_data else None
        except MemoryError:
            raise ResourceExhausted(
                f"buffer size {self.nbytes} bytes: the host cannot allocate it (functional data mode "
                f"backs every buffer with host memory; timing mode allocates none)") from None
        self.shm = SimpleNamespace(buf=memoryview(self.array) if self.array is not None else None)
        self._uid = next(_uids)
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    def tensor(self, shapes: Any, dtype: Any, *, strides: Any = None, byte_offset: int = 0) -> Tensor:
        """A tensor of ``shapes`` x ``dtype`` starting ``byte_offset`` bytes into this buffer."""
        if self._closed:
            raise InvalidState("Buffer.tensor() on a closed buffer")
        if strides is not None:
            raise InvalidArgument("strided tensors are not modeled; pass strides=None")
        return Tensor(self, shape_tuple(shapes, "Buffer.tensor"), as_numpy_dtype(dtype), int(byte_offset))

    def close(self) -> None:
        """Release the backing; idempotent."""
        self._closed = True
        self.shm.buf = None

    def __repr__(self) -> str:
        return f"Buffer(nbytes={self.nbytes}, owner={self.owner!r})"


class Tensor:
    """A typed view of a :class:`Buffer`: what ``Buffer.tensor`` / ``make_tensor_arg`` return."""

    __slots__ = ("buffer", "byte_offset", "dtype", "shape")

    def __init__(self, buffer: Buffer, shape: tuple[int, ...], dtype: np.dtype, byte_offset: int) -> None:
        nbytes = math.prod(shape) * dtype.itemsize
        if byte_offset < 0 or byte_offset + nbytes > buffer.nbytes:
            raise InvalidArgument(
                f"tensor of {nbytes} bytes at offset {byte_offset} exceeds its buffer of {buffer.nbytes} bytes")
        self.buffer = buffer
        self.shape = shape
        self.dtype = dtype
        self.byte_offset = byte_offset

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize

    @property
    def array(self) -> np.ndarray | None:
        """A numpy view of the tensor's bytes, or None in timing-only mode."""
        raw = self.buffer.array
        if raw is None:
            return None
        return raw[self.byte_offset:self.byte_offset + self.nbytes].view(self.dtype).reshape(self.shape)

    def __repr__(self) -> str:
        return f"Tensor(shape={self.shape}, dtype={self.dtype.name}, offset={self.byte_offset})"


class ArgRef:
    """One tensor argument normalised for the engine: dependency key, data, shape and signature.

    ``sig`` names the (shape, dtype) pair by a small int, so a per-signature memo key is
    cheap to build and hash. A :class:`TensorSpec` serves as its own reference; ``remote``
    marks a reference to remote data (:class:`sim.remote.refs.RemoteArgRef`).
    """

    __slots__ = ("array", "dtype", "key", "shape", "sig", "source")

    remote = False

    def __init__(self, key: Any, array: np.ndarray | None, shape: tuple[int, ...], dtype: np.dtype,
                 source: Any) -> None:
        self.key = key
        self.array = array
        self.shape = shape
        self.dtype = dtype
        self.source = source
        self.sig = signature_id(shape, dtype)

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize


_SIGNATURES: dict[tuple[tuple[int, ...], np.dtype], int] = {}


def signature_id(shape: tuple[int, ...], dtype: np.dtype) -> int:
    """A small int naming one (shape, dtype) pair; equal pairs get equal ids."""
    sig = _SIGNATURES.get((shape, dtype))
    if sig is None:
        sig = _SIGNATURES[(shape, dtype)] = len(_SIGNATURES)
    return sig


def _host_ptr(array: np.ndarray) -> int:
    return int(array.__array_interface__["data"][0])


def normalize_tensor(tensor: Any, index: int) -> ArgRef | TensorSpec:
    """Turn what a user passed to ``TaskArgs.add_tensor`` into an engine reference.

    Raises InvalidArgument naming the argument index and the type when it is not a tensor.
    """
    if type(tensor) is TensorSpec:  # the timing-only hot path first
        return tensor
    if isinstance(tensor, np.ndarray):
        as_numpy_dtype(tensor.dtype)
        # The key is the host address, like upstream's (LOCAL_HOST, ptr) TensorMap key.
        return ArgRef(("host", _host_ptr(tensor)), tensor, tuple(tensor.shape), tensor.dtype, tensor)
    if isinstance(tensor, Tensor):
        if tensor.buffer.closed:
            raise InvalidArgument(f"tensor argument {index} refers to a closed Buffer")
        arr = tensor.array
        key = ("host", _host_ptr(tensor.buffer.array) + tensor.byte_offset) if arr is not None else (
            "buf", tensor.buffer._uid, tensor.byte_offset)
        return ArgRef(key, arr, tensor.shape, tensor.dtype, tensor)
    if isinstance(tensor, TensorSpec):
        return tensor
    hook = getattr(tensor, "_sim_argref", None)  # a RemoteTensorRef (sim.remote.refs): owner-stable key
    if hook is not None:
        return hook(index)
    raise InvalidArgument(
        f"tensor argument {index} must be a numpy array, Tensor, TensorSpec or RemoteTensorRef, "
        f"got {type(tensor).__name__}")
