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
from dataclasses import dataclass
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

    def __post_init__(self) -> None:
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


def _int_tuple(values: Any, name: str) -> tuple[int, ...]:
    try:
        out = tuple(values)
    except TypeError:
        raise InvalidArgument(f"RemoteWorkerSpec.{name} must be a sequence of ints, got {values!r}") from None
    for v in out:
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise InvalidArgument(f"RemoteWorkerSpec.{name} entries must be ints >= 0, got {v!r}")
    return out
