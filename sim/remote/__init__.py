"""Remote-L3 ("SLR3") wire codec of the simulated runtime.

Spec: upstream ``docs/remote-l3-worker-design/protocol.md`` and
``docs/remote-l3-worker-design/buffers-and-transports.md``. See :mod:`sim.remote.wire` for the
frame codec and the notes on where the shipped wire differs from the doc.

The package is a layer on the simulator's core: its modules import the core, the core never
imports them. It plugs in through :mod:`sim.plugins` (:mod:`sim.remote.plugin`, imported by
``sim/__init__``).
"""

from sim.remote import wire as _wire
from sim.remote.wire import *  # noqa: F403 - the package's public API is the codec's

__all__ = list(_wire.__all__)
