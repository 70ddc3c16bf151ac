"""sim.device_memory: chip malloc / free / copy_to / copy_from and their checks."""

import ctypes

import numpy as np
import pytest

from sim.device_memory import ALIGN, DeviceBuffer, DeviceMemory, host_bytes
from sim.errors import InvalidArgument, InvalidState


def test_malloc_gives_distinct_aligned_nonzero_bases_per_chip():
    mem = DeviceMemory("l3", 2, with_data=True)
    a, b = mem.malloc(0, 100), mem.malloc(0, 100)
    c = mem.malloc(1, 100)
    assert a.base != 0 and a.base % ALIGN == 0
    assert b.base >= a.base + ALIGN
    assert c.owner_worker_id == 1 and c.base not in (a.base, b.base)
    assert isinstance(a, DeviceBuffer) and a.tensor((25,), np.float32).shape == (25,)


def test_addresses_are_not_reused_after_free():
    mem = DeviceMemory("l2", 1, with_data=True)
    a = mem.malloc(0, 64)
    mem.free(a)
    assert mem.malloc(0, 64).base != a.base


def test_round_trip_with_ctypes_bytearray_and_numpy():
    mem = DeviceMemory("l2", 1, with_data=True)
    h = mem.malloc(0, 8)
    src = (ctypes.c_uint8 * 8).from_buffer_copy(bytes(range(8)))
    assert mem.copy_to(h, src) == 8
    dst = bytearray(8)
    mem.copy_from(dst, h)
    assert bytes(dst) == bytes(range(8))
    out = np.zeros(2, np.float32)
    mem.copy_to(h, np.array([1.5, 2.5], np.float32))
    mem.copy_from(out, h)
    assert out.tolist() == [1.5, 2.5]


def test_double_free_and_use_after_free_are_errors():
    mem = DeviceMemory("l2", 1, with_data=True)
    h = mem.malloc(0, 8)
    mem.free(h)
    with pytest.raises(InvalidState, match="not a live allocation"):
        mem.free(h)
    with pytest.raises(InvalidState, match="not a live allocation"):
        mem.copy_to(h, b"\0" * 8)


def test_host_larger_than_allocation_is_rejected():
    mem = DeviceMemory("l2", 1, with_data=True)
    h = mem.malloc(0, 4)
    with pytest.raises(InvalidArgument, match="exceeds the 4-byte"):
        mem.copy_to(h, b"12345")


def test_bad_arguments():
    mem = DeviceMemory("l3", 1, with_data=False)
    with pytest.raises(InvalidArgument, match="out of range"):
        mem.malloc(1, 8)
    with pytest.raises(InvalidArgument, match="positive"):
        mem.malloc(0, 0)
    with pytest.raises(InvalidArgument, match="read-only"):
        host_bytes(b"abc", writable=True, api="copy_from")
    with pytest.raises(InvalidArgument, match="bytes-like"):
        host_bytes(object(), writable=False, api="copy_to")


def test_timing_mode_checks_ranges_and_stores_nothing():
    mem = DeviceMemory("l2", 1, with_data=False)
    h = mem.malloc(0, 8)
    assert h.array is None
    assert mem.copy_to(h, b"\1" * 8) == 8
    mem.release_all()
    assert mem.live() == [] and h.closed
