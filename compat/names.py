"""Upstream names that are pure vocabulary: worker types, the remote spec's spelling, constants.

``WorkerType`` keeps upstream's values (``src/common/hierarchical/types.h``: ``NEXT_LEVEL``,
``SUB``); ``RemoteWorkerSpec`` takes upstream's fields (``python/simpler/worker.py``) and
builds the simulator's spec; ``HOST_TCP_TRANSPORT_PROFILE`` is
``python/simpler/remote_l3_protocol.py``'s constant.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any

from sim.remote.spec import RemoteWorkerSpec as _SimRemoteWorkerSpec

HOST_TCP_TRANSPORT_PROFILE = "host_tcp"


class WorkerType(IntEnum):
    """What a Worker dispatches to: the next level (chips, lower Workers) or SUB Python callables."""

    NEXT_LEVEL = 0
    SUB = 1


def RemoteWorkerSpec(endpoint: str, platform: str, runtime: str = "tensormap_and_ringbuffer",
                     device_ids: Any = (), num_sub_workers: int = 0, transport: str = HOST_TCP_TRANSPORT_PROFILE,
                     comm_profile: str = "sim", global_device_ranks: Any = (), session_listen_host: str | None = None,
                     allow_wildcard_session_bind: bool = False) -> _SimRemoteWorkerSpec:
    """Upstream's ``RemoteWorkerSpec`` fields, as the simulator's spec (a wildcard bind is a non-loopback one)."""
    return _SimRemoteWorkerSpec(endpoint=endpoint, platform=platform, runtime=runtime,
                                device_ids=tuple(device_ids), num_sub_workers=num_sub_workers, transport=transport,
                                session_listen_host=session_listen_host,
                                allow_non_loopback_session_bind=bool(allow_wildcard_session_bind),
                                comm_profile=comm_profile, global_device_ranks=tuple(global_device_ranks))
