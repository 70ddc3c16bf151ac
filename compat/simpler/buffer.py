"""``simpler.buffer`` on the simulator: the owner / consumer side of the Buffer ABI.

Upstream ``python/simpler/buffer.py`` and ``docs/buffer-abi.md`` ("Canonical identity",
"Backends"). What the simulator already has is reused, not restated:

* ``AccessMode``, ``BackendKind`` and ``AddressSpace`` are the simulator's wire enums
  (:mod:`sim.remote.wire_base`, ``BufferAddressSpace`` there) with upstream's values.
* ``Buffer`` is a :class:`sim.tensors.Buffer` (what ``Worker.create_buffer`` returns) that also
  carries the ABI fields (identity, address space, access, backend, body), so a buffer built here
  names tensors in a simulated ``TaskArgs`` like any other; ``Tensor`` is the simulator's tensor
  view (``simpler.task_interface.Tensor`` is the same class, as upstream).
* ``remote_sidecar_tensor`` returns the simulator's remote-TASK wire tensor
  (:class:`sim.remote.wire_task.TensorWire`), checked by the same gate the remote codec runs.

``CanonicalIdentity`` and ``BufferDescriptor`` have no simulator counterpart outside the remote
wire; they are small frozen records here, validated on construction by the backend body table of
buffer-abi.md. A POSIX shm is simulated: ``create_host_shared_buffer`` keeps its bytes in host
memory under a process-local name that ``ImportRegistry`` resolves. Raw addresses (fork-inherited
host memory, device pointers) are recorded but never dereferenced.
"""

from __future__ import annotations

import itertools
import math
import os
import string
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

from compat.errors import NotSimulated
from sim.errors import InvalidArgument
from sim.remote.wire_base import (
    DESC_MAX_BYTES,
    OWNER_INSTANCE_ID_BYTES,
    U32_MAX,
    U64_MAX,
    AccessMode,
    BackendKind,
)
from sim.remote.wire_base import BufferAddressSpace as AddressSpace
from sim.remote.wire_task import BufferDescriptorWire, TensorWire, encode_tensor
from sim.tensors import Buffer as _SimBuffer
from sim.tensors import Tensor
from sim.types import DataType

__all__ = [
    "AccessMode",
    "AddressSpace",
    "BackendKind",
    "Buffer",
    "BufferDescriptor",
    "CanonicalIdentity",
    "ImportContext",
    "ImportRegistry",
    "ImportedBuffer",
    "MappedArg",
    "MappedArgs",
    "Tensor",
    "create_host_shared_buffer",
    "host_ptr_nbytes",
    "intern_worker_path",
    "mint_owner_instance_id",
    "re_export",
    "remote_backing_identity",
    "remote_sidecar_tensor",
    "worker_path_for_id",
    "wrap_device_malloc",
    "wrap_fork_inherited",
]

# buffer-abi.md "Backends": the backends whose body is a non-zero u64 LE base address.
_ADDRESS_BACKENDS = frozenset({BackendKind.FORK_SHM, BackendKind.FORK_COW, BackendKind.VMM_WINDOW,
                               BackendKind.DEVICE_MALLOC})
_SHM_NAME_CHARS = frozenset(string.printable.encode()) - frozenset(b"/ \t\n\r\x0b\x0c")


def _uint(value: object, maximum: int, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= maximum:
        raise ValueError(f"{what} must be an int in 0..{maximum}, got {value!r}")
    return int(value)


# ----------------------------------------------------------------------------- identity and descriptor


@dataclass(frozen=True)
class CanonicalIdentity:
    """A backing's identity (buffer-abi.md "Canonical identity"): an opaque 8-byte owner nonce, a
    ``buffer_id`` unique within that owner incarnation and a ``generation`` (0 is reserved)."""

    owner_instance_id: bytes
    buffer_id: int
    generation: int = 1

    def __post_init__(self) -> None:
        if not isinstance(self.owner_instance_id, bytes | bytearray | memoryview):
            raise TypeError(f"owner_instance_id must be bytes, got {type(self.owner_instance_id).__name__}")
        nonce = bytes(self.owner_instance_id)
        if len(nonce) != OWNER_INSTANCE_ID_BYTES:
            raise ValueError(f"owner_instance_id must be {OWNER_INSTANCE_ID_BYTES} bytes, got {len(nonce)}")
        object.__setattr__(self, "owner_instance_id", nonce)
        _uint(self.buffer_id, U64_MAX, "buffer_id")
        if _uint(self.generation, U32_MAX, "generation") == 0:
            raise ValueError("generation 0 is reserved (uninitialized)")

    def __str__(self) -> str:
        return f"{self.owner_instance_id.hex()}/{self.buffer_id}@{self.generation}"


def _check_body(kind: BackendKind, access: AccessMode, body: bytes) -> None:
    """The body rule of buffer-abi.md "Backends" (enforced, not advisory)."""
    if len(body) > DESC_MAX_BYTES:
        raise ValueError(f"BufferDescriptor: body of {len(body)} bytes exceeds {DESC_MAX_BYTES}")
    if kind == BackendKind.POSIX_SHM:
        if not body or any(b not in _SHM_NAME_CHARS for b in body):
            raise ValueError(f"BufferDescriptor: a POSIX_SHM body is a shm name of 1-{DESC_MAX_BYTES} printable "
                             f"ASCII bytes without '/', got {body!r}")
    elif kind in _ADDRESS_BACKENDS:
        if len(body) != 8 or int.from_bytes(body, "little") == 0:
            raise ValueError(f"BufferDescriptor: a {kind.name} body is exactly 8 bytes, a non-zero u64 LE base, "
                             f"got {body!r}")
        if kind == BackendKind.FORK_COW and access != AccessMode.READ:
            raise ValueError("BufferDescriptor: a FORK_COW backing is copy-on-write, so its access must be READ")
    elif body:
        raise ValueError("BufferDescriptor: a REMOTE_SIDECAR descriptor carries no body")


@dataclass(frozen=True)
class BufferDescriptor:
    """What a consumer needs to resolve one backing: identity, address space, access, backend, size
    and the backend's body. Validated on construction, so an invalid one cannot be built."""

    identity: CanonicalIdentity
    address_space: AddressSpace
    owner_worker_path_id: int
    access: AccessMode
    backend_kind: BackendKind
    nbytes: int
    body: bytes = b""

    def __post_init__(self) -> None:
        if not isinstance(self.identity, CanonicalIdentity):
            raise TypeError(f"identity must be a CanonicalIdentity, got {type(self.identity).__name__}")
        try:
            object.__setattr__(self, "address_space", AddressSpace(self.address_space))
            object.__setattr__(self, "access", AccessMode(self.access))
            object.__setattr__(self, "backend_kind", BackendKind(self.backend_kind))
        except ValueError as exc:
            raise ValueError(f"BufferDescriptor: {exc}") from None
        _uint(self.owner_worker_path_id, U32_MAX, "owner_worker_path_id")
        _uint(self.nbytes, U64_MAX, "nbytes")
        object.__setattr__(self, "body", bytes(self.body))
        _check_body(self.backend_kind, self.access, self.body)

    @property
    def owner_worker_path(self) -> str:
        """The owning worker's tree path, for diagnostics only; ``<path#N>`` when minted elsewhere."""
        return worker_path_for_id(self.owner_worker_path_id)

    def to_wire(self) -> BufferDescriptorWire:
        """The simulator's remote-wire record of this descriptor."""
        i = self.identity
        return BufferDescriptorWire(i.owner_instance_id, i.buffer_id, i.generation, self.address_space, self.access,
                                    self.nbytes, self.backend_kind, self.owner_worker_path_id, self.body)


# ----------------------------------------------------------------------------- worker paths and nonces

_PATH_BY_ID: dict[int, str] = {0: ""}
_ID_BY_PATH: dict[str, int] = {"": 0}


def intern_worker_path(path: str) -> int:
    """This process's diagnostic id for a worker path (0 is the empty path), assigned on first sight."""
    pid = _ID_BY_PATH.get(path)
    if pid is None:
        pid = _ID_BY_PATH[path] = len(_ID_BY_PATH)
        _PATH_BY_ID[pid] = path
    return pid


def worker_path_for_id(path_id: int) -> str:
    """The path for an id interned here; ``<path#N>`` for one minted in another process."""
    return _PATH_BY_ID.get(int(path_id), f"<path#{int(path_id)}>")


def mint_owner_instance_id() -> bytes:
    """A fresh random owner nonce (one per owner incarnation)."""
    return os.urandom(OWNER_INSTANCE_ID_BYTES)


# ----------------------------------------------------------------------------- the owner's Buffer

_SHM_BY_NAME: dict[str, Buffer] = {}  # the simulated POSIX shm namespace of this process
_shm_names = itertools.count(1)


def _row_major(shapes: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(math.prod(shapes[i + 1:]) for i in range(len(shapes)))


class Buffer(_SimBuffer):
    """One shared backing as its owner holds it: a simulator buffer plus its Buffer-ABI record.

    It has bytes (``shm.buf``) when it is a local mapping (``create_host_shared_buffer``); a
    re-export or a wrapped address has none (``base`` only records the address).
    """

    __slots__ = ("access", "address_space", "backend_kind", "base", "body", "identity", "owner_worker_id",
                 "owner_worker_path_id", "unlinked")

    def __init__(self, identity: CanonicalIdentity, address_space: AddressSpace, access: AccessMode,
                 backend_kind: BackendKind, nbytes: int, body: bytes = b"", owner_worker_path_id: int = 0,
                 shm: Any = None, base: int = 0, owner_worker_id: int = 0, closed: bool = False,
                 unlinked: bool = False) -> None:
        super().__init__(nbytes, owner=worker_path_for_id(owner_worker_path_id), with_data=False)
        self.identity = identity
        self.address_space = AddressSpace(address_space)
        self.access = AccessMode(access)
        self.backend_kind = BackendKind(backend_kind)
        self.body = bytes(body)
        self.owner_worker_path_id = int(owner_worker_path_id)
        if shm is not None:
            self.shm = shm
            self.array = getattr(shm, "array", None)
        self.base = int(base)
        self.owner_worker_id = int(owner_worker_id)
        self._closed = bool(closed)
        self.unlinked = bool(unlinked)

    @property
    def closed(self) -> bool:
        return self._closed

    @closed.setter
    def closed(self, value: bool) -> None:
        self._closed = bool(value)

    def to_descriptor(self) -> BufferDescriptor:
        """The descriptor a consumer resolves this backing from; refused once the buffer is released."""
        if self._closed:
            raise ValueError(f"Buffer: cannot derive a descriptor from a released buffer ({self.identity})")
        return BufferDescriptor(self.identity, self.address_space, self.owner_worker_path_id, self.access,
                                self.backend_kind, self.nbytes, self.body)

    def tensor(self, shapes: Any, dtype: Any, strides: Any = None, byte_offset: int = 0) -> Tensor:
        """A view of ``shapes`` x ``dtype`` at ``byte_offset``; ``strides`` default to row-major, and
        only row-major strides are simulated (a strided view raises ``InvalidArgument``)."""
        if self._closed:
            raise ValueError(f"Buffer: cannot build a tensor over a released buffer ({self.identity})")
        shapes = tuple(int(s) for s in shapes)
        if strides is not None and tuple(int(s) for s in strides) != _row_major(shapes):
            raise InvalidArgument("Buffer.tensor: strided views are not modeled; pass row-major strides or None")
        return super().tensor(shapes, dtype, byte_offset=byte_offset)

    def close(self) -> None:
        """Release the backing (idempotent): its simulated shm name is removed, so a later import fails."""
        self._closed = True
        name = self.body.decode("ascii", "replace") if self.backend_kind == BackendKind.POSIX_SHM else None
        if not self.unlinked and name is not None and _SHM_BY_NAME.get(name) is self:
            del _SHM_BY_NAME[name]
            self.unlinked = True
        self.shm.buf = None

    def __repr__(self) -> str:
        return f"Buffer({self.backend_kind.name}, {self.identity}, nbytes={self.nbytes})"


def create_host_shared_buffer(nbytes: int, owner_instance_id: bytes, buffer_id: int, owner_worker_path: str = "",
                              generation: int = 1, access: AccessMode = AccessMode.READWRITE) -> Buffer:
    """A host backing (backend POSIX_SHM) of ``nbytes`` zeroed bytes under a fresh simulated shm name."""
    if nbytes <= 0:
        raise ValueError(f"create_host_shared_buffer: nbytes must be positive, got {nbytes}")
    name = f"tierbed_shm_{os.getpid()}_{next(_shm_names)}"
    backing = _SimBuffer(nbytes, owner=owner_worker_path, with_data=True)
    buf = Buffer(CanonicalIdentity(owner_instance_id, buffer_id, generation), AddressSpace.HOST, access,
                 BackendKind.POSIX_SHM, nbytes, name.encode("ascii"), intern_worker_path(owner_worker_path),
                 shm=backing.shm)
    buf.array = backing.array
    _SHM_BY_NAME[name] = buf
    return buf


def re_export(source: BufferDescriptor) -> Buffer:
    """A received descriptor as a Buffer to forward: the same identity and backing, no mapping."""
    return Buffer(source.identity, source.address_space, source.access, source.backend_kind, source.nbytes,
                  source.body, source.owner_worker_path_id)


def _wrap_address(kind: BackendKind, space: AddressSpace, ptr: int, nbytes: int, owner_instance_id: bytes,
                  buffer_id: int, owner_worker_path: str, generation: int, access: AccessMode,
                  owner_worker_id: int = 0) -> Buffer:
    body = _uint(ptr, U64_MAX, "pointer").to_bytes(8, "little")
    identity = CanonicalIdentity(owner_instance_id, buffer_id, generation)
    _check_body(kind, AccessMode(access), body)
    return Buffer(identity, space, access, kind, nbytes, body, intern_worker_path(owner_worker_path), base=int(ptr),
                  owner_worker_id=owner_worker_id)


def wrap_fork_inherited(data_ptr: int, nbytes: int, owner_instance_id: bytes, buffer_id: int,
                        owner_worker_path: str = "", generation: int = 1, access: AccessMode = AccessMode.READ,
                        backend_kind: BackendKind = BackendKind.FORK_COW) -> Buffer:
    """A pre-fork host allocation as a Buffer (FORK_SHM: shared pages; FORK_COW: copy-on-write, READ only)."""
    if BackendKind(backend_kind) not in (BackendKind.FORK_SHM, BackendKind.FORK_COW):
        raise ValueError(f"wrap_fork_inherited: backend_kind must be FORK_SHM or FORK_COW, got {backend_kind!r}")
    return _wrap_address(BackendKind(backend_kind), AddressSpace.HOST, data_ptr, nbytes, owner_instance_id,
                         buffer_id, owner_worker_path, generation, access)


def wrap_device_malloc(device_ptr: int, nbytes: int, owner_instance_id: bytes, buffer_id: int,
                       owner_worker_path: str = "", generation: int = 1, access: AccessMode = AccessMode.READWRITE,
                       owner_worker_id: int = 0) -> Buffer:
    """A device pointer (a worker's malloc) as a DEVICE_MALLOC Buffer, valid on its owner chip only."""
    return _wrap_address(BackendKind.DEVICE_MALLOC, AddressSpace.DEVICE, device_ptr, nbytes, owner_instance_id,
                         buffer_id, owner_worker_path, generation, access, int(owner_worker_id))


def remote_backing_identity(owner_worker_id: int, buffer_id: int, generation: int) -> CanonicalIdentity:
    """The identity of a backing on a remote worker: the owner's worker id is the nonce (LE), and
    generation 0 (a HOST_INLINE placeholder) becomes 1."""
    nonce = int(owner_worker_id).to_bytes(OWNER_INSTANCE_ID_BYTES, "little")  # a negative id cannot own a backing
    return CanonicalIdentity(nonce, int(buffer_id), int(generation) or 1)


def remote_sidecar_tensor(shapes: tuple[int, ...], dtype: int, nbytes: int, owner_worker_id: int, buffer_id: int,
                          generation: int, address_space: AddressSpace) -> TensorWire:
    """The REMOTE_SIDECAR placeholder tensor of an argument bound for a remote worker, as the
    simulator's wire tensor; it passes the remote TASK tensor gate or raises ``ProtocolError``."""
    shapes = tuple(int(s) for s in shapes)
    desc = BufferDescriptor(remote_backing_identity(owner_worker_id, buffer_id, generation), address_space,
                            intern_worker_path(f"remote/{owner_worker_id}"), AccessMode.READWRITE,
                            BackendKind.REMOTE_SIDECAR, nbytes)
    tensor = TensorWire(desc.to_wire(), shapes, _row_major(shapes), DataType(int(dtype)))
    encode_tensor(tensor)  # the gate the remote codec runs on every TASK tensor
    return tensor


def host_ptr_nbytes(obj: Any) -> tuple[int, int]:
    """Host address and byte length of a copy buffer: a torch-like tensor (``data_ptr`` / ``numel``
    / ``element_size``), a numpy array, or any writable buffer-protocol object."""
    if hasattr(obj, "data_ptr") and hasattr(obj, "numel") and hasattr(obj, "element_size"):
        return int(obj.data_ptr()), int(obj.numel()) * int(obj.element_size())
    view = memoryview(obj)
    if view.readonly:
        raise TypeError("copy_to/copy_from host buffer must be a torch tensor or a writable buffer")
    import numpy as np

    arr = np.frombuffer(view.cast("B") if view.c_contiguous else view, dtype=np.uint8)
    return int(arr.ctypes.data), view.nbytes


# ----------------------------------------------------------------------------- the consumer side


@dataclass
class ImportedBuffer:
    """A backing materialized by a consumer: identity -> local base (a simulated shm keeps ``shm``)."""

    identity: CanonicalIdentity
    base: int
    nbytes: int
    address_space: AddressSpace = AddressSpace.HOST
    shm: Any = None
    descriptor: BufferDescriptor | None = None


@dataclass
class MappedArg:
    """A Python sub-worker's tensor arg: the imported backing plus the view geometry."""

    imported: ImportedBuffer
    byte_offset: int
    shapes: tuple[int, ...]
    strides: tuple[int, ...]
    dtype: int

    @property
    def buffer(self) -> memoryview:
        """The backing's bytes from the view origin on; read-only when the descriptor grants READ only."""
        ib = self.imported
        if ib.shm is None or ib.shm.buf is None:
            raise NotSimulated("MappedArg.buffer: only a simulated POSIX shm backing has bytes here; raw host or "
                               "device addresses are not dereferenced by the simulator")
        view = ib.shm.buf[self.byte_offset:]
        if ib.descriptor is not None and ib.descriptor.access == AccessMode.READ:
            return view.toreadonly()
        return view


class MappedArgs(Sequence):
    """A sub-worker's task args: indexes as its MappedArg list, with the scalars alongside."""

    __slots__ = ("_scalars", "_tensors")

    def __init__(self, tensors: list[MappedArg], scalars: tuple[int, ...]) -> None:
        self._tensors = list(tensors)
        self._scalars = tuple(int(s) for s in scalars)

    def __getitem__(self, i: Any) -> Any:
        return self._tensors[i]

    def __len__(self) -> int:
        return len(self._tensors)

    def tensor_count(self) -> int:
        return len(self._tensors)

    def scalar_count(self) -> int:
        return len(self._scalars)

    def scalar(self, i: int) -> int:
        return self._scalars[i]


@dataclass(frozen=True)
class ImportContext:
    """Which owner nonce this endpoint may materialize a DEVICE backing under (a host endpoint: none)."""

    is_host_endpoint: bool
    owning_chip_instance_id: bytes | None = None


_REFUSED = "[UNSUPPORTED_ENDPOINT_RELATION]"


def _delta(a: BufferDescriptor, b: BufferDescriptor) -> str:
    diff = [f"{f.name}: {getattr(a, f.name)!r} -> {getattr(b, f.name)!r}" for f in fields(a)
            if getattr(a, f.name) != getattr(b, f.name)]
    return ", ".join(diff) or "no field differs"


class ImportRegistry:
    """One consumer endpoint's map-once cache keyed by canonical identity.

    A repeated identity must come with the same descriptor (one identity names one backing); a
    DEVICE backing is refused on a host endpoint and on a chip of another owner. The simulated
    shm namespace is this process's; address backings resolve to their recorded base.
    """

    def __init__(self, context: ImportContext) -> None:
        self._context = context
        self._by_identity: dict[CanonicalIdentity, ImportedBuffer] = {}

    def materialize(self, desc: BufferDescriptor) -> ImportedBuffer:
        """The backing of ``desc`` in this endpoint: mapped on first sight of its identity, reused after."""
        cached = self._by_identity.get(desc.identity)
        if cached is not None:
            if cached.descriptor is not None and cached.descriptor != desc:
                raise ValueError(f"ImportRegistry: identity {desc.identity} is already materialized from a different "
                                 f"descriptor ({_delta(cached.descriptor, desc)})")
            return cached
        if desc.address_space == AddressSpace.DEVICE:
            if self._context.is_host_endpoint:
                raise ValueError(f"ImportRegistry: {_REFUSED} a DEVICE backing ({desc.identity}) cannot be "
                                 "materialized on a host endpoint")
            if desc.identity.owner_instance_id != self._context.owning_chip_instance_id:
                raise ValueError(f"ImportRegistry: {_REFUSED} the DEVICE backing {desc.identity} was minted for "
                                 "another owner's chip")
        if desc.backend_kind in _ADDRESS_BACKENDS:
            imported = ImportedBuffer(desc.identity, int.from_bytes(desc.body, "little"), desc.nbytes,
                                      desc.address_space, None, desc)
        elif desc.backend_kind == BackendKind.POSIX_SHM:
            name = desc.body.decode("ascii")
            owner = _SHM_BY_NAME.get(name)
            if owner is None:
                raise FileNotFoundError(f"ImportRegistry: shm object {name!r} for {desc.identity} does not exist: its "
                                        "owner released the buffer, or it was never created")
            if owner.nbytes < desc.nbytes:
                raise ValueError(f"ImportRegistry: shm object {name!r} is {owner.nbytes} bytes, short of the "
                                 f"{desc.nbytes} its descriptor claims")
            imported = ImportedBuffer(desc.identity, 0, desc.nbytes, desc.address_space, owner.shm, desc)
        else:
            raise ValueError("ImportRegistry: a REMOTE_SIDECAR descriptor has no local backing to materialize")
        self._by_identity[desc.identity] = imported
        return imported

    def materialize_args(self, args: Any) -> dict[CanonicalIdentity, tuple[int, int]]:
        """Materialize every descriptor of ``args`` (``tensor_count()`` / ``tensor(i).buffer``):
        identity -> (local base, address space)."""
        resolved: dict[CanonicalIdentity, tuple[int, int]] = {}
        for i in range(args.tensor_count()):
            desc = args.tensor(i).buffer
            imported = self.materialize(desc)
            resolved[desc.identity] = (imported.base, int(imported.address_space))
        return resolved

    def resolve(self, identity: CanonicalIdentity) -> ImportedBuffer:
        """The import already made for ``identity`` (``KeyError`` if none; never maps)."""
        imported = self._by_identity.get(identity)
        if imported is None:
            raise KeyError(f"ImportRegistry: no buffer registered for {identity}")
        return imported

    def unregister(self, identity: CanonicalIdentity) -> None:
        """Drop this endpoint's import of ``identity`` (a no-op if it made none); the owner's backing stays."""
        self._by_identity.pop(identity, None)

    def close(self) -> None:
        """Drop every import of this endpoint; backings belong to their owners and stay."""
        self._by_identity.clear()
