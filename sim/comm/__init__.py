"""Communication domains and collectives (upstream ``docs/comm-domain.md``).

- :mod:`sim.comm.domain` -- ``allocate_domain`` / ``release_domain``, the per-rank contexts and
  windows, the live → released → freed lifetime;
- :mod:`sim.comm.collective` -- collective kernels: the rendezvous of a domain's ranks, the data
  they exchange (through a rank-stacked kernel) and the fault points that break it;
- :mod:`sim.comm.links` -- the links a transfer crosses and what it costs.
"""

from sim.comm.collective import CollectiveKernel, CollectiveParam, CommEngine
from sim.comm.domain import ChipDomainContext, CommBufferSpec, CommDomainHandle, WindowBuffer

__all__ = ["ChipDomainContext", "CollectiveKernel", "CollectiveParam", "CommBufferSpec", "CommDomainHandle",
           "CommEngine", "WindowBuffer"]
