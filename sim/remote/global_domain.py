"""Global CommDomain controls to a remote L3: the wire bytes of ``ALLOC_DOMAIN`` and its siblings.

Spec: upstream ``docs/remote-l3-worker-design/protocol.md``, "CONTROL Payload" ("Required Global
CommDomain controls": ``ALLOC_DOMAIN`` with ``PREPARE_EXPORT`` / ``IMPORT`` / ``COMMIT`` /
``ABORT``, ``RELEASE_DOMAIN``, ``COPY_TO_DOMAIN``, ``COPY_FROM_DOMAIN``) and ``docs/comm-domain.md``
"Global CommDomain across local and remote L3 nodes"; the transaction itself is
:mod:`sim.comm.global_domain`.

:class:`RemoteDomainPort` is the L4's port to one remote session. Each command is encoded with
:mod:`sim.remote.wire_domain` (the shipped layout), decoded by the session exactly as a CONTROL
payload would be, applied to the session's inner L3 Worker's participant, and the reply travels
back as bytes. The exchange is synchronous (the L4's allocation blocks on it upstream too) and is
charged as a command-lane round trip over the endpoint's link profile. A session that is not
READY, crashed or stopped refuses the command with the endpoint's error; a session ControlFault on
``ALLOC_DOMAIN`` / ``RELEASE_DOMAIN`` / ``COPY_*_DOMAIN`` fails it (:mod:`sim.remote.faults`).
MPI-launched L3 ranks (:class:`sim.remote.spec.MpiL3GroupSpec`) use the same port: their group
mailbox is not modeled separately.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sim.comm.global_domain import GlobalCommand, GlobalDescriptor, GlobalDomainMember, Phase
from sim.errors import ControlFailure, EndpointFailure
from sim.remote.wire_base import ControlName
from sim.remote.wire_domain import (
    AllocDomainCommand,
    CopyFromDomainCommand,
    CopyFromDomainResult,
    CopyToDomainCommand,
    DomainBuffer,
    DomainDescriptor,
    DomainDescriptorTable,
    DomainMember,
    DomainPhase,
    DomainProfile,
    ReleaseDomainCommand,
    decode_alloc_domain,
    decode_copy_from_domain,
    decode_copy_from_domain_result,
    decode_copy_to_domain,
    decode_descriptor_table,
    decode_release_domain,
    encode_alloc_domain,
    encode_copy_from_domain,
    encode_copy_from_domain_result,
    encode_copy_to_domain,
    encode_descriptor_table,
    encode_release_domain,
)
from sim.trace import EventKind

if TYPE_CHECKING:
    from sim.remote.endpoint import RemoteEndpoint
    from sim.remote.session import RemoteSession

_PROFILES = {"sim": DomainProfile.SIM, "a3-fabric-v1": DomainProfile.A3_FABRIC}
_NAMES = {v: k for k, v in _PROFILES.items()}


def _to_wire(cmd: GlobalCommand) -> AllocDomainCommand:
    return AllocDomainCommand(
        phase=DomainPhase(int(cmd.phase)), domain_id=cmd.domain_id, generation=cmd.generation, name=cmd.name,
        profile=_PROFILES[cmd.profile], window_size=cmd.window_size,
        members=tuple(DomainMember(m.node_worker_id, m.local_worker_id, m.global_device_rank, m.domain_rank)
                      for m in cmd.members),
        buffers=tuple(DomainBuffer(b.name, b.nbytes) for b in cmd.buffers),
        descriptors=tuple(DomainDescriptor(_PROFILES[d.profile], d.domain_rank, d.rank_count, d.mapping_size,
                                           d.handle) for d in cmd.descriptors))


def _from_wire(c: AllocDomainCommand) -> GlobalCommand:
    from sim.comm.global_domain import GlobalDomainBuffer

    return GlobalCommand(
        Phase(int(c.phase)), c.domain_id, c.generation, c.name, _NAMES[c.profile], c.window_size,
        tuple(GlobalDomainMember(m.node_worker_id, m.local_worker_id, m.global_device_rank, m.domain_rank)
              for m in c.members),
        tuple(GlobalDomainBuffer(b.name, b.nbytes) for b in c.buffers),
        tuple(_descriptor(d) for d in c.descriptors))


def _descriptor(d: DomainDescriptor) -> GlobalDescriptor:
    return GlobalDescriptor(_NAMES[d.profile], d.domain_rank, d.rank_count, d.mapping_size, d.handle)


def serve(session: RemoteSession, name: ControlName, payload: bytes) -> bytes:
    """The session side: decode one domain control, apply it to the inner L3, encode the reply."""
    fault = session.control_faults.hit(name.name) if session.control_faults.faults else None
    label = f"{name.name}"
    if fault is not None:
        session.sim.hit("ControlFault")
        session.trace.add(session.env.now, EventKind.FAULT, session.scope, label, f"injected {fault.outcome}")
        raise ControlFailure(f"remote worker {session.worker_id} ({session.host}) {name.name}: injected control "
                             f"fault ({fault.outcome})")
    part = session.inner._global_participant("global domain control")
    me = session.worker_id
    if name is ControlName.ALLOC_DOMAIN:
        descs = part.alloc(_from_wire(decode_alloc_domain(payload)), me)
        return encode_descriptor_table(DomainDescriptorTable(tuple(
            DomainDescriptor(_PROFILES[d.profile], d.domain_rank, d.rank_count, d.mapping_size, d.handle)
            for d in descs))) if descs else b""
    if name is ControlName.RELEASE_DOMAIN:
        r = decode_release_domain(payload)
        part.release(r.domain_id, r.generation)
        return b""
    if name is ControlName.COPY_TO_DOMAIN:
        c = decode_copy_to_domain(payload)
        part.copy_to(c.domain_id, c.generation, c.domain_rank, c.offset, c.data)
        return b""
    if name is ControlName.COPY_FROM_DOMAIN:
        f = decode_copy_from_domain(payload)
        data = part.copy_from(f.domain_id, f.generation, f.domain_rank, f.offset, f.nbytes)
        return encode_copy_from_domain_result(CopyFromDomainResult(data))
    raise ControlFailure(f"{name.name} is not a Global CommDomain control the session serves")


class RemoteDomainPort:
    """The L4's port to one remote L3 session's Global CommDomain participant."""

    def __init__(self, ep: RemoteEndpoint) -> None:
        self.ep = ep
        self.worker_id = ep.worker_id

    def _exchange(self, name: ControlName, payload: bytes) -> tuple[bytes, float]:
        ep = self.ep
        ep._check_sendable(f"CONTROL {name.name}")
        session = ep.session
        if session is None or not session.alive():
            raise EndpointFailure(f"CONTROL {name.name} to remote worker {ep.worker_id} ({ep.host}): the session "
                                  f"process is gone")
        reply = serve(session, name, payload)
        cost = ep.link.link.transfer_us(len(payload)) + ep.link.link.transfer_us(len(reply))
        ep.trace.add(ep.env.now, EventKind.CONTROL, ep.scope, name.name, f"{len(payload)}B -> {len(reply)}B")
        return reply, cost

    def alloc(self, cmd: GlobalCommand) -> tuple[tuple[GlobalDescriptor, ...], float]:
        reply, cost = self._exchange(ControlName.ALLOC_DOMAIN, encode_alloc_domain(_to_wire(cmd)))
        if not reply:
            return (), cost
        return tuple(_descriptor(d) for d in decode_descriptor_table(reply).descriptors), cost

    def release(self, domain_id: int, generation: int) -> float:
        return self._exchange(ControlName.RELEASE_DOMAIN,
                              encode_release_domain(ReleaseDomainCommand(domain_id, generation)))[1]

    def copy_to(self, domain_id: int, generation: int, rank: int, offset: int, data: bytes) -> float:
        return self._exchange(ControlName.COPY_TO_DOMAIN, encode_copy_to_domain(
            CopyToDomainCommand(domain_id, generation, rank, offset, data)))[1]

    def copy_from(self, domain_id: int, generation: int, rank: int, offset: int, nbytes: int) -> tuple[bytes, float]:
        reply, cost = self._exchange(ControlName.COPY_FROM_DOMAIN, encode_copy_from_domain(
            CopyFromDomainCommand(domain_id, generation, rank, offset, nbytes)))
        return decode_copy_from_domain_result(reply).data, cost
