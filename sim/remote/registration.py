"""Post-init install and final unregister of a ``RemoteCallable`` on its remote workers' endpoints.

Spec: upstream ``docs/remote-l3-worker-design/protocol.md``, "CONTROL Payload" (multi-endpoint
registration: PREPARE on every selected worker, then COMMIT, or ABORT the prepared; a commit
failure or timeout keeps the handle unpublished and cleans up; abort/cleanup failure leaves only
the affected worker/hashid pair cleanup-uncertain; final unregister leaves a worker/hashid
tombstone until the cleanup is confirmed or the endpoint is failed for the session), and
``docs/callable-identity-registration.md``, "Registration Failure Contract".

The remote targets of a registration are the endpoints a ``RemoteCallable`` was registered on:
two phases over each endpoint's ordered command lane (PREPARE / COMMIT / ABORT, then
UNREGISTER), failed by :class:`~sim.remote.faults.ControlFault` or any link/session fault. The
per-(target, hashid) state (``registry.uncertain``, ``registry.tombstones``) and the cleanup
retry policy are the core's, shared with the local whole-scope install (:mod:`sim.install`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sim.errors import EndpointFailure, RegisterPartialFailure, SimError, UncertainState
from sim.install import RETRY_INTERVAL_US, _after_retry, _check_pairs, _clear, _mark
from sim.remote.endpoint import EndpointState, RemoteEndpoint
from sim.remote.link import fire_at
from sim.remote.wire import (
    CallableKind,
    ControlName,
    DigestCallableCommand,
    RegisterCallableCommand,
    RemoteRegistryTarget,
)

if TYPE_CHECKING:
    from sim.remote.hub import RemoteSet


def _label(ep: RemoteEndpoint) -> str:
    return f"remote worker {ep.worker_id} ({ep.scope})"


def _live(ep: RemoteEndpoint) -> bool:
    return ep.state is EndpointState.READY


def remote_install(rs: RemoteSet, digest: bytes, hashid: str, target: str, ids: tuple[int, ...]) -> None:
    """Post-init two-phase install of a dispatcher callable on the endpoints ``ids``, or on none (raises)."""
    registry = rs.worker._registry
    ns = "REMOTE_TASK_DISPATCHER"
    all_eps = [rs.endpoints[w] for w in ids]
    _check_pairs(registry, digest, hashid, [(ep.scope, _label(ep)) for ep in all_eps], ns)
    for ep in all_eps:
        ep._check_sendable("register")
    eps = [ep for ep in all_eps if not ep.digests.get(digest)]
    if not eps:
        return
    dispatcher, kind = RemoteRegistryTarget.REMOTE_TASK_DISPATCHER, CallableKind.PYTHON_IMPORT
    prep = RegisterCallableCommand(dispatcher, kind, digest, target.encode())
    cmd = DigestCallableCommand(dispatcher, kind, digest)
    errors = rs._controls(eps, ControlName.PREPARE_REGISTER_CALLABLE, prep)
    failed = [(ep, e) for ep, e in zip(eps, errors, strict=True) if e is not None]
    if failed:
        # Prepared state is not visible to TASK: abort the prepared, plus any endpoint whose prepare
        # was not answered (a timeout fails the endpoint, which ends its state for the session).
        abort = [ep for ep, e in zip(eps, errors, strict=True) if e is None or isinstance(e, EndpointFailure)]
        uncertain = _cleanup(rs, abort, ControlName.ABORT_REGISTER_CALLABLE, cmd, digest)
        _raise_failed(f"register {ns} {target!r} ({hashid}): PREPARE_REGISTER_CALLABLE", failed, uncertain,
                      len(eps))
    errors = rs._controls(eps, ControlName.COMMIT_REGISTER_CALLABLE, cmd)
    failed = [(ep, e) for ep, e in zip(eps, errors, strict=True) if e is not None]
    if failed:
        committed = [ep for ep, e in zip(eps, errors, strict=True) if e is None]
        refused = [ep for ep, e in zip(eps, errors, strict=True) if e is not None]
        uncertain = _cleanup(rs, refused, ControlName.ABORT_REGISTER_CALLABLE, cmd, digest)
        uncertain += _cleanup(rs, committed, ControlName.UNREGISTER_CALLABLE, cmd, digest)
        _raise_failed(f"register {ns} {target!r} ({hashid}): COMMIT_REGISTER_CALLABLE", failed, uncertain,
                      len(eps))


def _cleanup(rs: RemoteSet, eps: list[RemoteEndpoint], name: Any, cmd: Any, digest: bytes) -> list[str]:
    """Send cleanup to ``eps``; mark (and return) the live endpoints that did not confirm it."""
    live = [ep for ep in eps if _live(ep)]
    if not live:
        return []
    registry = rs.worker._registry
    out = []
    for ep, e in zip(live, rs._controls(live, name, cmd), strict=True):
        if e is not None and _live(ep):
            _mark(registry.uncertain, digest, ep.scope)
            out.append(_label(ep))
    return out


def _raise_failed(what: str, failed: list[tuple[RemoteEndpoint, SimError]], uncertain: list[str], n: int) -> None:
    first_ep, first = failed[0]
    detail = (f"{what} failed on {len(failed)} of {n} endpoints (first: {_label(first_ep)}: {first}); "
              f"nothing was published")
    if uncertain:
        raise UncertainState(f"REGISTER_CLEANUP_UNCERTAIN: {detail}; cleanup not confirmed on {', '.join(uncertain)}, "
                             f"which the hashid can no longer use in this session")
    if isinstance(first, EndpointFailure):
        raise EndpointFailure(f"REGISTER_PARTIAL_FAILURE: {detail}")
    raise RegisterPartialFailure(f"REGISTER_PARTIAL_FAILURE: {detail}; cleanup confirmed")


def remote_final_unregister(rs: RemoteSet, digest: bytes, drop: list[RemoteEndpoint]) -> None:
    """Final unregister on ``drop``: tombstone each pair, send UNREGISTER, clear what is confirmed."""
    registry = rs.worker._registry
    cmd = DigestCallableCommand(RemoteRegistryTarget.REMOTE_TASK_DISPATCHER, CallableKind.PYTHON_IMPORT, digest)
    for ep in drop:
        _mark(registry.tombstones, digest, ep.scope)
    for ep, e in zip(drop, rs._controls(drop, ControlName.UNREGISTER_CALLABLE, cmd), strict=True):
        if e is None or not _live(ep):
            _clear(registry.tombstones, digest, ep.scope)  # confirmed, or the endpoint left the session
        else:
            _retry_remote(rs, ep, digest, cmd, 1)


def _retry_remote(rs: RemoteSet, ep: RemoteEndpoint, digest: bytes, cmd: Any, attempt: int) -> None:
    registry = rs.worker._registry
    sim = ep.sim

    def reply(err: str | None, _cls: str | None, _p: Any) -> None:
        if not _live(ep):
            _clear(registry.tombstones, digest, ep.scope)
            return
        _after_retry(sim, registry, ep.scope, digest, attempt, err is None,
                     lambda: _retry_remote(rs, ep, digest, cmd, attempt + 1))

    def retry() -> None:
        if ep.scope not in registry.tombstones.get(digest, ()):
            return
        if not _live(ep):
            _clear(registry.tombstones, digest, ep.scope)
            return
        ep.send_control(ControlName.UNREGISTER_CALLABLE, cmd, reply)

    fire_at(sim.env, RETRY_INTERVAL_US, retry)
