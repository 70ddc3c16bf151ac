"""Public remote-buffer values: :class:`RemoteBufferHandle`, :class:`RemoteBufferExport`, :class:`RemoteTensorRef`.

Spec: upstream ``docs/remote-l3-worker-design/buffers-and-transports.md`` -- "Buffer Handles"
(owner allocations and imported mappings; ``buffer_id`` reused only under a new ``generation``),
"Public Memory API" (handles, never bare pointers; the export descriptor is opaque and exposes no
transport key), "TaskArgs Sidecar Contract" (``TaskArgs.add_tensor(RemoteTensorRef(...), tag)`` is
the one way to pass remote data; the tag's access needs are checked against the handle's grant),
"Export/Import Handle Semantics" and "Dependency Keys"; ``docs/remote-l3-worker-design.md``,
"Remote TaskArgs Representation" (the dependency key is the owner-stable
``(owner_worker_id, buffer_id, generation, offset)``, so owner and imported views of one range
share a TensorMap entry); ``protocol.md`` "RemoteTensorDesc" (``offset + nbytes`` inside the
handle; ``HOST_INLINE`` payload bounds). The seed 001 review fixes the rest: no public
``RemoteTaskArgs`` wrapper, access flags enforced per tag, opaque export descriptors that user
code cannot forge.

Values here are opaque: constructors are guarded (only :class:`sim.worker.Worker`'s ``remote_*``
calls and :meth:`RemoteTensorRef.host_inline` mint them), and neither attributes nor ``repr``
expose a transport key, address, window token or descriptor. Their lifetime bookkeeping lives in
:mod:`sim.remote.buffers`.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np

from sim.errors import InvalidArgument, StaleGeneration
from sim.remote.wire_base import MAX_INLINE_PAYLOAD_BYTES, MAX_TENSOR_DIMS, RemoteAddressSpace
from sim.tensors import ArgRef
from sim.types import DataType, TensorArgType, as_numpy_dtype

READ = 1
WRITE = 2
READ_WRITE = READ | WRITE

LIVE = "LIVE"  # usable
RELEASED = "RELEASED"  # free / release requested; physical free or teardown not yet confirmed
FREED = "FREED"  # physical free (owner) or mapping teardown (import) confirmed
UNCERTAIN = "UNCERTAIN"  # the free / release control could not be confirmed (endpoint failed)

_TOKEN = object()
_inline_ids = itertools.count(1)


def access_flags(access: Any) -> int:
    """``"read"`` / ``"write"`` / ``"readwrite"`` (or the bit mask 1..3) as access bits."""
    if isinstance(access, str):
        word = access.strip().lower().replace("_", "").replace("-", "")
        flags = {"read": READ, "r": READ, "write": WRITE, "w": WRITE, "readwrite": READ_WRITE,
                 "rw": READ_WRITE}.get(word)
        if flags is None:
            raise InvalidArgument(f"remote buffer access must be 'read', 'write' or 'readwrite', got {access!r}")
        return flags
    if isinstance(access, bool) or not isinstance(access, int) or not 0 < access <= READ_WRITE:
        raise InvalidArgument(f"remote buffer access flags must be 1 (read), 2 (write) or 3, got {access!r}")
    return int(access)


def access_label(flags: int) -> str:
    return {READ: "read", WRITE: "write", READ_WRITE: "readwrite"}.get(flags, f"{flags:#x}")


def required_access(tag: TensorArgType) -> int:
    """The access a tag needs ("TaskArgs Sidecar Contract"): NO_DEP skips dependencies, not access."""
    if tag is TensorArgType.INPUT:
        return READ
    if tag is TensorArgType.OUTPUT or tag is TensorArgType.OUTPUT_EXISTING:
        return WRITE
    return READ_WRITE  # INOUT, NO_DEP


class RemoteBufferHandle:
    """A remote allocation (owner handle, from ``remote_malloc``) or a peer mapping (``remote_import``).

    Readable: ``worker_id`` (the worker that can consume it: the owner, or the importer),
    ``owner_worker_id``, ``buffer_id``, ``generation``, ``import_id`` (0 on an owner handle),
    ``is_imported``, ``address_space``, ``nbytes``, ``access_flags``, ``released`` and ``state``
    (``LIVE``, ``RELEASED`` while a physical free is pending, ``FREED``, ``UNCERTAIN``).
    """

    __slots__ = (
        "_access",
        "_buffer_id",
        "_error",
        "_generation",
        "_import_id",
        "_import_refs",
        "_nbytes",
        "_offset",
        "_owner",
        "_owner_worker_id",
        "_registry",
        "_slot_tasks",
        "_space",
        "_state",
        "_uncertain_imports",
        "_worker_id",
    )

    def __init__(self, *_args: Any, _token: object = None, **_kw: Any) -> None:
        if _token is not _TOKEN:
            raise InvalidArgument("RemoteBufferHandle values are returned by Worker.remote_malloc / remote_import "
                                  "(or RemoteTensorRef.host_inline); they cannot be constructed")

    @classmethod
    def _mint(cls, *, registry: Any, worker_id: int, owner_worker_id: int, buffer_id: int, generation: int,
              nbytes: int, space: RemoteAddressSpace, access: int, import_id: int = 0, offset: int = 0,
              owner: RemoteBufferHandle | None = None) -> RemoteBufferHandle:
        h = cls(_token=_TOKEN)
        h._registry = registry
        h._worker_id = worker_id
        h._owner_worker_id = owner_worker_id
        h._buffer_id = buffer_id
        h._generation = generation
        h._import_id = import_id
        h._nbytes = nbytes
        h._offset = offset
        h._space = space
        h._access = access
        h._owner = owner
        h._state = LIVE
        h._slot_tasks: list[Any] = []
        h._import_refs = 0
        h._uncertain_imports = 0
        h._error: BaseException | None = None
        return h

    worker_id = property(lambda self: self._worker_id, doc="Worker that consumes this handle (the importer).")
    owner_worker_id = property(lambda self: self._owner_worker_id, doc="Worker owning the allocation.")
    buffer_id = property(lambda self: self._buffer_id, doc="Owner allocation id (0 for HOST_INLINE).")
    generation = property(lambda self: self._generation, doc="Owner allocation generation (0 for HOST_INLINE).")
    import_id = property(lambda self: self._import_id, doc="Importer-local mapping id; 0 on an owner handle.")
    address_space = property(lambda self: self._space, doc="REMOTE_DEVICE, REMOTE_WINDOW or HOST_INLINE.")
    nbytes = property(lambda self: self._nbytes, doc="Bytes this handle covers.")
    access_flags = property(lambda self: self._access, doc="Granted access bits (1 read, 2 write).")
    state = property(lambda self: self._state, doc="LIVE, RELEASED (free pending), FREED or UNCERTAIN.")

    @property
    def is_imported(self) -> bool:
        return self._import_id != 0

    @property
    def released(self) -> bool:
        return self._state is not LIVE

    def live_slot_refs(self) -> int:
        """Submitted tasks using this handle that are not yet terminal."""
        tasks = self._slot_tasks
        if tasks:
            tasks[:] = [t for t in tasks if not t.terminal]
        return len(tasks)

    def __repr__(self) -> str:
        kind = "imported" if self._import_id else "owner"
        if self._space is RemoteAddressSpace.HOST_INLINE:
            kind = "inline"
        return (f"RemoteBufferHandle({kind}, worker_id={self._worker_id}, owner_worker_id={self._owner_worker_id}, "
                f"address_space={self._space.name}, nbytes={self._nbytes}, access={access_label(self._access)}, "
                f"state={self._state})")


class RemoteBufferExport:
    """An opaque, session-scoped export descriptor from ``Worker.remote_export``.

    Readable: ``owner_worker_id``, ``address_space``, ``offset``, ``nbytes``, ``access_flags`` and
    ``transport_profile``. The transport fields the owner returned stay private; only the Worker
    that issued the descriptor imports it, and only unaltered.
    """

    __slots__ = ("_owner_handle", "_registry", "_sealed", "_wire")

    def __init__(self, *_args: Any, _token: object = None, **_kw: Any) -> None:
        if _token is not _TOKEN:
            raise InvalidArgument("RemoteBufferExport values are returned by Worker.remote_export; they cannot be "
                                  "constructed")
        object.__setattr__(self, "_sealed", False)

    @classmethod
    def _mint(cls, registry: Any, wire: Any, owner_handle: RemoteBufferHandle) -> RemoteBufferExport:
        e = cls(_token=_TOKEN)
        object.__setattr__(e, "_registry", registry)
        object.__setattr__(e, "_wire", wire)
        object.__setattr__(e, "_owner_handle", owner_handle)
        object.__setattr__(e, "_sealed", True)
        return e

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("RemoteBufferExport is immutable")

    owner_worker_id = property(lambda self: self._wire.owner_worker_id)
    address_space = property(lambda self: RemoteAddressSpace(self._wire.address_space))
    offset = property(lambda self: self._wire.offset)
    nbytes = property(lambda self: self._wire.nbytes)
    access_flags = property(lambda self: int(self._wire.access_flags))
    transport_profile = property(lambda self: self._wire.transport_profile)

    def __repr__(self) -> str:
        return (f"RemoteBufferExport(owner_worker_id={self.owner_worker_id}, address_space={self.address_space.name}, "
                f"offset={self.offset}, nbytes={self.nbytes}, access={access_label(self.access_flags)}, "
                f"transport_profile={self.transport_profile!r})")


class RemoteArgRef(ArgRef):
    """The engine's view of a :class:`RemoteTensorRef` argument (no local data)."""

    __slots__ = ()

    remote = True


class RemoteTensorRef:
    """A tensor argument that lives on a remote worker (or travels inline): ``TaskArgs.add_tensor(ref, tag)``.

    ``RemoteTensorRef(handle, offset=0, shape=(n, ...), dtype=...)`` views ``shape`` x ``dtype``
    at byte ``offset`` of the handle; ``offset + nbytes`` must fit the handle. ``shape`` has 1 to 5
    positive dimensions (the wire's tensor record). :meth:`host_inline` carries a small payload
    in the TASK frame itself (read-only to the callee).
    """

    __slots__ = ("_dtype", "_handle", "_key", "_nbytes", "_offset", "_payload", "_shape")

    def __init__(self, handle: Any, offset: int = 0, shape: Any = (), dtype: Any = DataType.FLOAT32) -> None:
        if not isinstance(handle, RemoteBufferHandle):
            raise InvalidArgument(f"RemoteTensorRef.handle must be a RemoteBufferHandle, got {type(handle).__name__}")
        if handle._space is RemoteAddressSpace.HOST_INLINE:
            raise InvalidArgument("an inline handle is built by RemoteTensorRef.host_inline, not wrapped again")
        if isinstance(offset, bool) or not isinstance(offset, int | np.integer) or offset < 0:
            raise InvalidArgument(f"RemoteTensorRef.offset must be an int >= 0, got {offset!r}")
        self._set_view(handle, int(offset), shape, dtype)
        if self._offset + self._nbytes > handle._nbytes:
            raise InvalidArgument(f"RemoteTensorRef range [{self._offset}, {self._offset + self._nbytes}) exceeds the "
                                  f"handle's {handle._nbytes} bytes")
        if handle._state is not LIVE:
            raise StaleGeneration(f"RemoteTensorRef over a {handle._state} handle (buffer {handle._buffer_id} "
                                  f"generation {handle._generation} is no longer live)")
        self._payload = b""
        self._key = ("remote", handle._owner_worker_id, handle._buffer_id, handle._generation,
                     handle._offset + self._offset)

    def _set_view(self, handle: RemoteBufferHandle, offset: int, shape: Any, dtype: Any) -> None:
        try:
            dims = tuple(int(d) for d in shape)
        except TypeError:
            raise InvalidArgument(f"RemoteTensorRef.shape must be a sequence of ints, got {shape!r}") from None
        if not 0 < len(dims) <= MAX_TENSOR_DIMS or any(d <= 0 for d in dims):
            raise InvalidArgument(f"RemoteTensorRef.shape must have 1..{MAX_TENSOR_DIMS} positive dimensions, "
                                  f"got {dims}")
        self._handle = handle
        self._offset = offset
        self._shape = dims
        self._dtype = as_numpy_dtype(dtype)
        self._nbytes = math.prod(dims) * self._dtype.itemsize

    @classmethod
    def host_inline(cls, payload: Any, *, shape: Any, dtype: Any) -> RemoteTensorRef:
        """A read-only argument whose bytes travel in the TASK frame (at most 1 MiB, the inline arena bound)."""
        if isinstance(payload, np.ndarray):
            data = np.ascontiguousarray(payload).tobytes()
        elif isinstance(payload, bytes | bytearray | memoryview):
            data = bytes(payload)
        else:
            raise InvalidArgument(f"host_inline payload must be bytes or a numpy array, got {type(payload).__name__}")
        if len(data) > MAX_INLINE_PAYLOAD_BYTES:
            raise InvalidArgument(f"host_inline payload of {len(data)} bytes exceeds the {MAX_INLINE_PAYLOAD_BYTES}-"
                                  f"byte inline arena; use remote_malloc + remote_copy_to")
        handle = RemoteBufferHandle._mint(registry=None, worker_id=0, owner_worker_id=0, buffer_id=0, generation=0,
                                          nbytes=len(data), space=RemoteAddressSpace.HOST_INLINE, access=READ)
        ref = cls.__new__(cls)
        ref._set_view(handle, 0, shape, dtype)
        if ref._nbytes != len(data):
            raise InvalidArgument(f"host_inline payload has {len(data)} bytes but shape {ref._shape} x "
                                  f"{ref._dtype.name} needs {ref._nbytes}")
        ref._payload = data
        ref._key = ("inline", next(_inline_ids))
        return ref

    handle = property(lambda self: self._handle)
    offset = property(lambda self: self._offset)
    shape = property(lambda self: self._shape)
    dtype = property(lambda self: self._dtype)
    nbytes = property(lambda self: self._nbytes)

    @property
    def is_inline(self) -> bool:
        return self._handle._space is RemoteAddressSpace.HOST_INLINE

    def _sim_argref(self, index: int) -> RemoteArgRef:
        """``TaskArgs.add_tensor`` hook (see :func:`sim.tensors.normalize_tensor`)."""
        h = self._handle
        if h._state is not LIVE:
            raise StaleGeneration(f"tensor argument {index}: remote buffer {h._buffer_id} generation {h._generation} "
                                  f"is {h._state}; its handle can no longer be used")
        return RemoteArgRef(self._key, None, self._shape, self._dtype, self)

    def __repr__(self) -> str:
        where = "inline" if self.is_inline else f"worker {self._handle._worker_id}"
        return f"RemoteTensorRef({where}, offset={self._offset}, shape={self._shape}, dtype={self._dtype.name})"
