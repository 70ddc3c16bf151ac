"""Public remote-L3 descriptors: :class:`RemoteWorkerSpec` and :class:`RemoteCallable`.

Spec: upstream ``docs/remote-l3-worker-design.md``, "Worker Identity and Callable Routing"
(``add_remote_worker(RemoteWorkerSpec)`` returns a stable NEXT_LEVEL worker id from the same id
space as ``add_worker``; ``RemoteCallable("module:qualname")`` registers a ``PYTHON_IMPORT``
callable in the ``REMOTE_TASK_DISPATCHER`` namespace, bound to an explicit ``workers=[...]`` list)
and "Remote Worker Session" (the bootstrap manifest). The endpoint host is numeric or
``localhost`` (no name resolution). Only the ``host_tcp`` transport is served by the modeled
daemon; the HCOMM profiles (``roce``, ``hccs``, ``ub``) are "Still pending" upstream and are
rejected as not supported when the spec is attached in conformance mode
(``buffers-and-transports.md``, "A2 RoCE HCOMM Profile" and the two after it); in
``SimConfig(mode="experiment")`` they are what-if links.

Session bind policy (seed 001 review, "loopback bind by default"): a session listens on the
loopback address unless ``session_listen_host`` names another one, and a non-loopback bind is
accepted only with ``allow_non_loopback_session_bind=True``. The daemon enforces it when it
validates the manifest (see :mod:`sim.remote.session`). Upstream's shipped rule is narrower (only
the wildcard addresses need an opt-in); the simulator follows the review's stricter wording.
"""

from __future__ import annotations

import ipaddress
import sys
from dataclasses import dataclass, field
from typing import Any

from sim.callable_identity import validate_import_target
from sim.errors import InvalidArgument, NotSupported

HOST_TCP = "host_tcp"
_PENDING_TRANSPORTS = ("roce", "hccs", "ub")
LOOPBACK_HOST = "127.0.0.1"


def parse_endpoint(endpoint: str) -> tuple[str, int]:
    """Split ``host:port``; the host must be a numeric IP literal or ``localhost``."""
    if not isinstance(endpoint, str) or endpoint.count(":") != 1:
        raise InvalidArgument(f"RemoteWorkerSpec.endpoint must be 'host:port', got {endpoint!r}")
    host, port_s = endpoint.split(":")
    if not host:
        raise InvalidArgument(f"RemoteWorkerSpec.endpoint {endpoint!r} has an empty host")
    try:
        port = int(port_s)
    except ValueError:
        raise InvalidArgument(f"RemoteWorkerSpec.endpoint {endpoint!r} has a non-numeric port") from None
    if not 0 < port <= 65535:
        raise InvalidArgument(f"RemoteWorkerSpec.endpoint port must be 1-65535, got {port}")
    if host != "localhost":
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise InvalidArgument(
                f"RemoteWorkerSpec.endpoint host must be a numeric IP address or 'localhost' "
                f"(host names are not resolved), got {host!r}") from None
    return host, port


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback address (``localhost`` counts)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class RemoteCallable:
    """An import-path descriptor (``module:qualname``) of a parent-facing remote L3 callable."""

    target: str

    def __post_init__(self) -> None:
        module, qualname = validate_import_target(self.target)
        object.__setattr__(self, "target", f"{module}:{qualname}")

    @property
    def module(self) -> str:
        return self.target.split(":", 1)[0]

    @property
    def qualname(self) -> str:
        return self.target.split(":", 1)[1]


@dataclass(frozen=True)
class RemoteWorkerSpec:
    """A remote L3 worker reached through a session daemon at ``endpoint``."""

    endpoint: str
    platform: str
    runtime: str = "tensormap_and_ringbuffer"
    device_ids: tuple[int, ...] = ()
    num_sub_workers: int = 0
    transport: str = HOST_TCP
    session_listen_host: str | None = None
    allow_non_loopback_session_bind: bool = False
    comm_profile: str = "sim"  # Global CommDomain backend (sim.comm.global_domain)
    global_device_ranks: tuple[int, ...] = ()  # one cluster-wide rank per device, or () to assign

    def __post_init__(self) -> None:
        from sim.comm.global_domain import check_comm_profile, check_global_device_ranks
        from sim.cost import profile_for_platform

        parse_endpoint(self.endpoint)
        if not isinstance(self.platform, str) or not self.platform:
            raise InvalidArgument("RemoteWorkerSpec.platform must be a non-empty string")
        profile_for_platform(self.platform)
        ids = _int_tuple(self.device_ids, "device_ids")
        if len(set(ids)) != len(ids):
            raise InvalidArgument(f"RemoteWorkerSpec.device_ids has a repeated device: {list(ids)}")
        object.__setattr__(self, "device_ids", ids)
        n = self.num_sub_workers
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise InvalidArgument(f"RemoteWorkerSpec.num_sub_workers must be an int >= 0, got {n!r}")
        if self.transport != HOST_TCP and self.transport not in _PENDING_TRANSPORTS:
            raise InvalidArgument(f"RemoteWorkerSpec.transport must be {HOST_TCP!r}, got {self.transport!r}")
        if self.session_listen_host is not None and (
                not isinstance(self.session_listen_host, str) or not self.session_listen_host):
            raise InvalidArgument("RemoteWorkerSpec.session_listen_host must be a non-empty string when set")
        object.__setattr__(self, "allow_non_loopback_session_bind", bool(self.allow_non_loopback_session_bind))
        check_comm_profile("RemoteWorkerSpec", self.platform, self.comm_profile)
        object.__setattr__(self, "global_device_ranks", check_global_device_ranks(
            "RemoteWorkerSpec.global_device_ranks", _int_tuple(self.global_device_ranks, "global_device_ranks"),
            len(ids)))

    def check_mode(self, mode: str) -> None:
        """Conformance mode rejects the HCOMM profiles (upstream ships none); experiment mode models them."""
        if self.transport in _PENDING_TRANSPORTS and mode != "experiment":
            raise NotSupported(f"RemoteWorkerSpec.transport {self.transport!r} (HCOMM profile) is not implemented "
                               f"by the session daemon; use {HOST_TCP!r}, or SimConfig(mode='experiment') for a "
                               f"what-if link")

    @property
    def listen_host(self) -> str:
        """The address the session binds: loopback unless told otherwise."""
        return self.session_listen_host or LOOPBACK_HOST


@dataclass(frozen=True)
class MpiL3GroupSpec:
    """L3 workers that one parent-owned ``mpirun`` would launch (upstream ``MpiL3GroupSpec``).

    Spec: upstream ``docs/mpi-l3-mailbox.md``. The simulator launches no ``mpirun`` and no
    processes: ``Worker.add_mpirun_worker_group`` makes one simulated remote L3 session per rank
    (``hosts[i]`` with ``device_ids_by_rank[i]``), reached like any remote L3; the group's named
    mailbox and MPI collectives are not modeled separately. The fields are checked as upstream
    checks them; ``mpirun_path``, ``mpirun_args``, ``python_executable`` and the TCP fields kept for
    source compatibility are accepted and unused.
    """

    hosts: tuple[str, ...]
    platform: str
    device_ids_by_rank: tuple[tuple[int, ...], ...]
    runtime: str = "tensormap_and_ringbuffer"
    num_sub_workers_by_rank: tuple[int, ...] = ()
    transport: str = HOST_TCP
    comm_profile: str = "sim"
    global_device_ranks_by_rank: tuple[tuple[int, ...], ...] = ()
    command_port_base: int | None = None
    health_port_base: int | None = None
    session_listen_hosts: tuple[str, ...] = ()
    connect_hosts: tuple[str, ...] = ()
    allow_wildcard_session_bind: bool = False
    ready_host: str = ""
    ready_port: int = 0
    mpirun_path: str = "mpirun"
    mpirun_args: tuple[str, ...] = ()
    python_executable: str = field(default_factory=lambda: sys.executable)

    def __post_init__(self) -> None:
        from sim.comm.global_domain import check_comm_profile, check_global_device_ranks
        from sim.cost import profile_for_platform

        label = "MpiL3GroupSpec"
        hosts = tuple(str(h) for h in _seq(self.hosts, "hosts"))
        if not hosts:
            raise InvalidArgument(f"{label}.hosts must be non-empty")
        if not isinstance(self.platform, str) or not self.platform:
            raise InvalidArgument(f"{label}.platform must be a non-empty string")
        profile_for_platform(self.platform)
        devices = tuple(_int_tuple(r, "device_ids_by_rank entry") for r in _seq(self.device_ids_by_rank,
                                                                               "device_ids_by_rank"))
        if len(devices) != len(hosts):
            raise InvalidArgument(f"{label}.device_ids_by_rank has {len(devices)} entries for {len(hosts)} host(s)")
        if any(not d for d in devices):
            raise InvalidArgument(f"{label}.device_ids_by_rank entries must be non-empty")
        subs = (tuple(0 for _ in hosts) if not self.num_sub_workers_by_rank
                else _int_tuple(self.num_sub_workers_by_rank, "num_sub_workers_by_rank"))
        if len(subs) != len(hosts):
            raise InvalidArgument(f"{label}.num_sub_workers_by_rank must have one entry per host")
        ranks = (tuple(() for _ in hosts) if not self.global_device_ranks_by_rank
                 else tuple(_int_tuple(r, "global_device_ranks_by_rank entry")
                            for r in _seq(self.global_device_ranks_by_rank, "global_device_ranks_by_rank")))
        if len(ranks) != len(hosts):
            raise InvalidArgument(f"{label}.global_device_ranks_by_rank must have one entry per host")
        for i, (r, d) in enumerate(zip(ranks, devices, strict=True)):
            check_global_device_ranks(f"{label}.global_device_ranks_by_rank[{i}]", r, len(d))
        flat = [x for r in ranks for x in r]
        if len(set(flat)) != len(flat):
            raise InvalidArgument(f"{label}.global_device_ranks_by_rank must be unique across the whole group, "
                                  f"got {[list(r) for r in ranks]}")
        listen = tuple(str(h) for h in self.session_listen_hosts)
        connect = tuple(str(h) for h in self.connect_hosts)
        for what, hs in (("session_listen_hosts", listen), ("connect_hosts", connect)):
            if hs and len(hs) != len(hosts):
                raise InvalidArgument(f"{label}.{what} must have one entry per host")
            if any(not h for h in hs):
                raise InvalidArgument(f"{label}.{what} entries must be non-empty")
        for what in ("command_port_base", "health_port_base"):
            v = getattr(self, what)
            if v is not None and (int(v) <= 0 or int(v) + len(hosts) - 1 > 65535):
                raise InvalidArgument(f"{label}.{what} (deprecated) must leave a port range within 1..65535")
        if not 0 <= int(self.ready_port) <= 65535:
            raise InvalidArgument(f"{label}.ready_port must be within 0..65535, got {self.ready_port}")
        if self.transport != HOST_TCP:
            raise InvalidArgument(f"{label}.transport must be {HOST_TCP!r}, got {self.transport!r}")
        check_comm_profile(label, self.platform, self.comm_profile)
        if not self.mpirun_path:
            raise InvalidArgument(f"{label}.mpirun_path must be non-empty")
        if not self.python_executable:
            raise InvalidArgument(f"{label}.python_executable must be non-empty")
        object.__setattr__(self, "hosts", hosts)
        object.__setattr__(self, "device_ids_by_rank", devices)
        object.__setattr__(self, "num_sub_workers_by_rank", subs)
        object.__setattr__(self, "global_device_ranks_by_rank", ranks)
        object.__setattr__(self, "session_listen_hosts", listen)
        object.__setattr__(self, "connect_hosts", connect)
        object.__setattr__(self, "mpirun_args", tuple(str(a) for a in self.mpirun_args))

    def rank_specs(self) -> list[RemoteWorkerSpec]:
        """One simulated remote L3 per rank (the endpoint names the group mailbox's rank, not a socket)."""
        return [RemoteWorkerSpec(endpoint=f"localhost:{_MPI_PORT_BASE + i}", platform=self.platform,
                                 runtime=self.runtime, device_ids=self.device_ids_by_rank[i],
                                 num_sub_workers=self.num_sub_workers_by_rank[i], transport=self.transport,
                                 comm_profile=self.comm_profile,
                                 global_device_ranks=self.global_device_ranks_by_rank[i])
                for i in range(len(self.hosts))]


_MPI_PORT_BASE = 40000


def _seq(values: Any, name: str) -> tuple:
    if isinstance(values, str | bytes):
        raise InvalidArgument(f"MpiL3GroupSpec.{name} must be a sequence, got {values!r}")
    try:
        return tuple(values)
    except TypeError:
        raise InvalidArgument(f"MpiL3GroupSpec.{name} must be a sequence, got {values!r}") from None


def _int_tuple(values: Any, name: str) -> tuple[int, ...]:
    try:
        out = tuple(values)
    except TypeError:
        raise InvalidArgument(f"RemoteWorkerSpec.{name} must be a sequence of ints, got {values!r}") from None
    for v in out:
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise InvalidArgument(f"RemoteWorkerSpec.{name} entries must be ints >= 0, got {v!r}")
    return out
