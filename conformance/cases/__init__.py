"""The case catalog, one module per area (IDs ``AREA-NNN``).

- ``LVL``: level rules and recursive composition (seed 000, ``docs/hierarchical-level-runtime.md``);
- ``ORCH``: submit, tags and dependencies, groups, scopes, the heap ring, failure and poison;
- ``REG``: callable identity and registration (seed 004, ``docs/callable-identity-registration.md``);
- ``RSESS``: remote L3 sessions (``docs/remote-l3-worker-design.md``, ``.../protocol.md``);
- ``RBUF``: remote buffers and the seed 001 review findings (``.../buffers-and-transports.md``);
- ``SCHED``: directed NEXT_LEVEL placement, seen in start and end stamps (``docs/directed-next-level-scheduling.md``);
- ``WIRE``: codec rejects from ``docs/remote-l3-worker-design/protocol.md`` "Bounds and Fuzz Tests";
- ``DOM``: communication domains: allocation checks, lifetime, windows, collectives (``docs/comm-domain.md``).
"""

from conformance.cases import dom, lvl, orch, rbuf, reg, rsess, sched, wire

__all__ = ["dom", "lvl", "orch", "rbuf", "reg", "rsess", "sched", "wire"]
