"""The per-scope-depth heap rings that give the Orchestrator its back-pressure.

Models ``docs/orchestrator.md`` §5 "Ring (slot and per-scope heap allocator)": there are
``MAX_RING_DEPTH = 4`` heap rings of ``heap_ring_size`` bytes each; a task or ``alloc`` slab
goes to ring ``min(scope_depth, 3)``; allocations are 1024-byte aligned; reclamation is FIFO
per ring — the tail advances only over a prefix of consumed slots, so one live slot holds
back every later slab of its ring. A request that does not fit waits (back-pressure) and one
larger than the ring can never fit.
"""

from __future__ import annotations

from collections import deque

from sim.task import CONSUMED, Task

HEAP_ALIGN = 1024
MAX_RING_DEPTH = 4
DEFAULT_HEAP_RING_SIZE = 1 << 30


def aligned(nbytes: int) -> int:
    """``nbytes`` rounded up to the heap alignment (0 stays 0)."""
    return -(-nbytes // HEAP_ALIGN) * HEAP_ALIGN


def ring_for_depth(depth: int) -> int:
    """Ring index for a 0-based scope depth (``current_depth()`` in upstream terms)."""
    return depth if depth < MAX_RING_DEPTH else MAX_RING_DEPTH - 1


class HeapRing:
    """One ring: a capacity, a bump ``top``, a FIFO-reclaimed ``tail`` and its slots in order."""

    __slots__ = ("capacity", "fifo", "tail", "top")

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.top = 0
        self.tail = 0
        self.fifo: deque[Task] = deque()

    @property
    def used(self) -> int:
        return self.top - self.tail

    def fits(self, nbytes: int) -> bool:
        return self.top - self.tail + nbytes <= self.capacity

    def push(self, task: Task) -> None:
        self.top += task.heap_bytes
        self.fifo.append(task)

    def reclaim(self) -> bool:
        """Advance the tail over consumed slots at the FIFO head; True if bytes were freed."""
        fifo = self.fifo
        freed = False
        while fifo and fifo[0].state is CONSUMED:
            t = fifo.popleft()
            if t.heap_bytes:
                self.tail += t.heap_bytes
                freed = True
        return freed
