"""Chip device memory: ``malloc`` / ``free`` / ``copy_to`` / ``copy_from`` on one chip.

Models the memory-control calls of ``docs/user/reference/python-api.md`` ("``Worker``" →
"Memory") and their checks in upstream ``python/simpler/worker.py`` (``Worker.malloc``,
``alloc_child_tensor``, ``free``, ``copy_to``, ``copy_from``): an allocation is a device
buffer with a non-zero base address, live until freed; a free names the base of a live
allocation (a second free, or an interior pointer, is an error); a copy moves the host side's
byte count and must lie within one live allocation, so a host object larger than the device
backing is rejected instead of writing past it.

A :class:`DeviceBuffer` is a :class:`~sim.tensors.Buffer` (it names task tensors with
``tensor(shapes, dtype)``) that also carries its device ``base`` address and the NEXT_LEVEL
worker id of the chip that owns it. Addresses are deterministic: each chip hands them out from
its own aligned arena in allocation order and never reuses one within a session, so a stale
pointer never aliases a live buffer. Copies move bytes at once (control-plane calls outside
virtual time); in timing-only mode nothing is stored and copies only check their ranges.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from sim.errors import InvalidArgument, InvalidState
from sim.tensors import Buffer

#: Allocation granularity and the first address each chip hands out (never 0: NULL means failure).
ALIGN = 512
_ARENA_BASE = 0x1_0000_0000
_ARENA_STRIDE = 0x10_0000_0000  # per chip: chip w's addresses start at base + w * stride


class DeviceBuffer(Buffer):
    """A live (or freed) allocation on one chip: a Buffer with a device ``base`` address."""

    __slots__ = ("base", "owner_worker_id")

    def __init__(self, nbytes: int, *, base: int, owner_worker_id: int, owner: str, with_data: bool) -> None:
        super().__init__(nbytes, owner=owner, with_data=with_data)
        self.base = base
        self.owner_worker_id = owner_worker_id

    def __repr__(self) -> str:
        return (f"DeviceBuffer(base=0x{self.base:x}, nbytes={self.nbytes}, worker={self.owner_worker_id}, "
                f"{'freed' if self.closed else 'live'})")


def host_bytes(obj: Any, *, writable: bool, api: str) -> np.ndarray:
    """The bytes of a host object as a flat ``uint8`` array over the same memory.

    Accepts a numpy array, a :class:`~sim.tensors.Buffer` (its backing), ``bytes`` (read only) or
    anything with the buffer protocol (``bytearray``, ctypes arrays, memoryviews).
    """
    if isinstance(obj, Buffer):
        if obj.closed:
            raise InvalidArgument(f"{api}: the host Buffer is closed")
        if obj.array is None:
            raise InvalidArgument(f"{api}: the host Buffer has no bytes (timing-only mode)")
        return obj.array
    if isinstance(obj, np.ndarray):
        if not obj.flags.c_contiguous:
            raise InvalidArgument(f"{api}: the host array must be C-contiguous")
        arr = obj.reshape(-1).view(np.uint8)
    else:
        try:
            view = memoryview(obj)
        except TypeError:
            raise InvalidArgument(f"{api}: host side must be an array, Buffer or bytes-like object, "
                                  f"got {type(obj).__name__}") from None
        if not view.c_contiguous:
            raise InvalidArgument(f"{api}: the host buffer must be contiguous")
        arr = np.frombuffer(view.cast("B"), dtype=np.uint8)
    if writable and not arr.flags.writeable:
        raise InvalidArgument(f"{api}: the host destination is read-only")
    return arr


class DeviceMemory:
    """The device allocations of the chips below one Worker, keyed by NEXT_LEVEL worker id."""

    def __init__(self, owner: str, chips: int, *, with_data: bool) -> None:
        self.owner = owner
        self.chips = chips
        self.with_data = with_data
        self._next = [_ARENA_BASE + w * _ARENA_STRIDE for w in range(chips)]
        self._live: dict[tuple[int, int], DeviceBuffer] = {}

    def _chip(self, worker_id: Any, api: str) -> int:
        if isinstance(worker_id, bool) or not isinstance(worker_id, int | np.integer):
            raise InvalidArgument(f"{api}: worker_id must be an int, got {worker_id!r}")
        if not 0 <= int(worker_id) < self.chips:
            raise InvalidArgument(f"{api}: worker_id {worker_id} out of range (have {self.chips} chips)")
        return int(worker_id)

    def malloc(self, worker_id: int, nbytes: int, api: str = "malloc") -> DeviceBuffer:
        """Allocate ``nbytes`` on chip ``worker_id``."""
        wid = self._chip(worker_id, api)
        if isinstance(nbytes, bool) or not isinstance(nbytes, int | np.integer) or nbytes <= 0:
            raise InvalidArgument(f"{api}: size must be a positive int, got {nbytes!r}")
        base = self._next[wid]
        self._next[wid] = base + -(-int(nbytes) // ALIGN) * ALIGN
        buf = DeviceBuffer(int(nbytes), base=base, owner_worker_id=wid, owner=f"{self.owner}.chip{wid}",
                           with_data=self.with_data)
        self._live[(wid, base)] = buf
        return buf

    def free(self, handle: Any, api: str = "free") -> None:
        """Free a live allocation by its handle; a second free is an error."""
        if not isinstance(handle, DeviceBuffer):
            raise InvalidArgument(f"{api}: expected a device buffer from malloc, got {type(handle).__name__}")
        key = (handle.owner_worker_id, handle.base)
        if self._live.get(key) is not handle:
            raise InvalidState(f"{api}: 0x{handle.base:x} on chip {handle.owner_worker_id} is not a live "
                               f"allocation (already freed, or not from this Worker)")
        del self._live[key]
        handle.close()

    def _check_live(self, handle: Any, nbytes: int, api: str) -> DeviceBuffer:
        if not isinstance(handle, DeviceBuffer):
            raise InvalidArgument(f"{api}: the device side must be a device buffer from malloc, "
                                  f"got {type(handle).__name__}")
        if self._live.get((handle.owner_worker_id, handle.base)) is not handle:
            raise InvalidState(f"{api}: 0x{handle.base:x} is not a live allocation (freed, or not from this Worker)")
        if nbytes > handle.nbytes:
            raise InvalidArgument(f"{api}: {nbytes} bytes exceeds the {handle.nbytes}-byte device allocation")
        return handle

    def copy_to(self, dst: Any, src: Any, api: str = "copy_to") -> int:
        """Host to device: copy all of ``src``'s bytes to the start of ``dst``; return the byte count."""
        data = host_bytes(src, writable=False, api=api)
        buf = self._check_live(dst, data.size, api)
        if buf.array is not None:
            buf.array[:data.size] = data
        return int(data.size)

    def copy_from(self, dst: Any, src: Any, api: str = "copy_from") -> int:
        """Device to host: fill all of ``dst``'s bytes from the start of ``src``; return the byte count."""
        out = host_bytes(dst, writable=True, api=api)
        buf = self._check_live(src, out.size, api)
        if buf.array is not None:
            out[:] = buf.array[:out.size]
        return int(out.size)

    def live(self) -> list[DeviceBuffer]:
        """The allocations not yet freed, in allocation order."""
        return sorted(self._live.values(), key=lambda b: (b.owner_worker_id, b.base))

    def release_all(self) -> None:
        """Release every allocation (the Worker's ``close``)."""
        for buf in self._live.values():
            buf.close()
        self._live.clear()
