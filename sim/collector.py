"""Pausing Python's cyclic garbage collector around bulk allocation of long-lived objects.

A simulation run allocates a slot object per task, and reading a large trace or taking a record
builds one object per event or task; all of them live on. With the collector on, each of its
passes rescans everything allocated so far, which costs more than the work itself.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def collector_paused() -> Iterator[None]:
    """Pause the collector for the block, and promote what the block left alive.

    Measured on a 100k-task run: with the collector on, its passes take half the run; merely
    paused, the first allocation afterwards starts one pass over all the survivors (~8%). So the
    survivors go straight to the oldest generation instead: ``gc.freeze()`` then ``gc.unfreeze()``
    is the documented way to move every tracked object there. Full collections still see them, so
    cycles are reclaimed as usual. Nothing changes when the collector was already off (a nested
    block, or the user's choice), and the promotion is skipped when the process keeps frozen
    objects of its own (unfreezing would release them).
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        if gc.get_freeze_count() == 0:
            gc.freeze()
            gc.unfreeze()
        gc.enable()
