"""``simpler.remote_l3_session`` on the simulator: what a remote orchestration function may call.

Upstream ``python/simpler/remote_l3_session.py`` gives a remote L3 orchestration function the
inner chip-callable handles its session installed, looked up by digest. The simulator's remote
session (:mod:`sim.remote.session`) keeps them by hashid; this accepts either spelling: the
digest as hex (what upstream's examples pass) or the hashid.
"""

from typing import Any

from sim.errors import InvalidArgument, UnknownCallable
from sim.remote import session as _session

__all__ = ["get_inner_handle"]


def get_inner_handle(hashid: str) -> Any:
    """The inner L3 handle of the chip callable with hashid ``hashid`` (``sha256:`` optional, as upstream)."""
    key = hashid
    if not _session._ACTIVE:
        raise InvalidArgument("get_inner_handle() is only valid inside a remote session's orchestration function")
    handles = _session._ACTIVE[-1].inner_handles
    if key in handles:
        return handles[key]
    for handle in handles.values():
        if handle.digest.hex() == key:
            return handle
    raise UnknownCallable(f"get_inner_handle: {key} is not installed on this remote worker")
