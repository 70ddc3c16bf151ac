"""The links a collective's transfers cross, and what they cost: latency, bandwidth, contention.

Upstream kernels move data between ranks by reading and writing peer windows (``docs/comm-domain.md``
§1: "Kernels read peer windows through ``device_ctx``"). Which wire that crosses is the platform's:
two chips of one L3 node share the node's chip fabric, chips of two nodes cross a network link
(``docs/remote-l3-worker-design/buffers-and-transports.md``, the HCOMM profiles). The profile's
``[comm]`` table names the transport of each case and ``[transport.*]`` gives its one-way latency and
bandwidth, each figure documented with its source there.

The model, per completed rendezvous of ``n`` ranks:

- every rank receives ``bytes_in[r]`` bytes from its peers, spread evenly over the ``n - 1`` of them;
- chips of one node form a full mesh (the profile's intra-node figure is per peer link, e.g. HCCS
  56 GB/s per link, ~392 GB/s over a 7-peer mesh): a rank's same-node peers send over distinct links
  at once, so that part takes one peer's share at the link's bandwidth;
- bytes from other nodes arrive through the rank's own network port (one RoCE port per NPU on
  a2a3): every off-node peer shares it, so that part takes all off-node bytes at the port's
  bandwidth -- the incast contention of a shared link;
- a port carries one exchange at a time: an exchange starts when the rendezvous completes or when
  the port's previous exchange ends, whichever is later;
- a rank's exchange ends when its slower part does, plus the slower link's latency once.

Everything here is deterministic: ports are keyed by scope name, ranks are walked in rank order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sim.cost import Link, Profile


@dataclass(frozen=True)
class Transfer:
    """One rank's exchange: when it starts, when it ends, the bytes over each kind of link."""

    start: float
    end: float
    intra_bytes: float
    inter_bytes: float


class LinkModel:
    """Port and NIC occupancy of one simulation (one per :class:`sim.comm.collective.CommEngine`)."""

    def __init__(self, profile: Profile) -> None:
        self.intra: Link = profile.comm_link(True)
        self.inter: Link = profile.comm_link(False)
        self.port_free: dict[str, float] = {}  # a chip's network port -> when it is next free
        self.busy_us: dict[str, float] = {}     # a chip's network port -> total time it carried data

    def exchange(self, t0: float, chips: Sequence[str], nodes: Sequence[str],
                 bytes_in: Sequence[float]) -> list[Transfer]:
        """Time every rank's receive side of one exchange that can begin at ``t0``."""
        n = len(chips)
        out: list[Transfer] = []
        for r in range(n):
            peers = n - 1
            if peers <= 0 or bytes_in[r] <= 0:
                out.append(Transfer(t0, t0, 0.0, 0.0))
                continue
            same = sum(1 for s in range(n) if s != r and nodes[s] == nodes[r])
            per_peer = bytes_in[r] / peers
            end = t0
            latency = 0.0
            if same:
                end = t0 + per_peer / (self.intra.gbps * 1e3)
                latency = self.intra.latency_us
            inter_b = per_peer * (peers - same)
            if inter_b:
                port = chips[r] + ".port"
                start = max(t0, self.port_free.get(port, 0.0))
                dur = inter_b / (self.inter.gbps * 1e3)
                self.port_free[port] = start + dur
                self.busy_us[port] = self.busy_us.get(port, 0.0) + dur
                end = max(end, start + dur)
                latency = max(latency, self.inter.latency_us)
            out.append(Transfer(t0, end + latency, per_peer * same, inter_b))
        return out
