"""The links a collective's transfers cross, and what they cost: latency, bandwidth, contention.

Upstream kernels move data between ranks by reading and writing peer windows (``docs/comm-domain.md``
§1: "Kernels read peer windows through ``device_ctx``"). Which wire that crosses is the platform's:
two chips of one L3 node share the node's chip fabric, chips of two nodes cross a network link
(``docs/remote-l3-worker-design/buffers-and-transports.md``, the HCOMM profiles). The profile's
``[comm]`` table names the transport of each case and ``[transport.*]`` gives its one-way latency and
bandwidth, each figure documented with its source there.

The model, per completed rendezvous of ``n`` ranks:

- every rank receives ``bytes_in[r]`` bytes from its peers, spread evenly over the ``n - 1`` of them;
- bytes from a peer on the same node arrive through the receiving chip's **port** at the intra-node
  link's bandwidth; bytes from another node arrive through the receiving node's **NIC**, shared by all
  chips of that node, at the inter-node link's bandwidth;
- a port or NIC carries one transfer at a time: a transfer starts when the rendezvous completes or when
  the port's previous transfer ends, whichever is later. That is the contention of shared links:
  overlapping collectives on one chip, or many chips of one node sending off-node, queue.
- a rank's exchange ends at the later of its port and NIC transfers, plus the link latency once.

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
        self.port_free: dict[str, float] = {}  # chip scope -> when its port is next free
        self.nic_free: dict[str, float] = {}   # node scope -> when its NIC is next free
        self.busy_us: dict[str, float] = {}     # port or NIC -> total time it carried data

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
            intra_b = per_peer * same
            inter_b = per_peer * (peers - same)
            end = t0
            latency = 0.0
            if intra_b:
                start = max(t0, self.port_free.get(chips[r], 0.0))
                dur = intra_b / (self.intra.gbps * 1e3)
                self.port_free[chips[r]] = start + dur
                self.busy_us[chips[r]] = self.busy_us.get(chips[r], 0.0) + dur
                end = max(end, start + dur)
                latency = self.intra.latency_us
            if inter_b:
                nic = nodes[r] + ".nic"
                start = max(t0, self.nic_free.get(nic, 0.0))
                dur = inter_b / (self.inter.gbps * 1e3)
                self.nic_free[nic] = start + dur
                self.busy_us[nic] = self.busy_us.get(nic, 0.0) + dur
                end = max(end, start + dur)
                latency = max(latency, self.inter.latency_us)
            out.append(Transfer(t0, end + latency, intra_b, inter_b))
        return out
