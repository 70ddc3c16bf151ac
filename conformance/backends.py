"""The backends by name (``DESIGN.md`` "One API, three backends").

The backend vocabulary -- :class:`RuntimeAPI` (the names and helpers a case uses as ``rt``; the full
list is in :mod:`sim.backend_api`), :class:`BackendError`, :class:`BackendUnavailable`,
:class:`NotSupportedByBackend`, :class:`Unobservable`, ``FEATURES``, ``FAULT_KINDS`` and
``REMOTE_TARGETS`` -- lives in :mod:`sim.backend_api`, which ``conformance`` and every backend
import; it is re-exported here, so ``from conformance.backends import NotSupportedByBackend`` keeps
working for cases.

This module holds the two in-process backends, :class:`SimAPI` (the executable spec) and
:class:`ReferenceAPI` (the sequential functional executor), and :func:`get_backend`, which finds a
backend by name. The ``hw`` backend drives the real runtime (``hw_backend``); it is imported only
when asked for, and where the ``simpler`` package cannot be imported, :func:`get_backend` raises
:class:`BackendUnavailable` with an install hint.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from types import ModuleType
from typing import Any

from sim.backend_api import (
    FAULT_KINDS,
    FEATURES,
    REMOTE_TARGETS,
    BackendError,
    BackendUnavailable,
    NotSupportedByBackend,
    RuntimeAPI,
    Unobservable,
)

BACKENDS = ("sim", "reference", "hw")

def _shared_names(ns: RuntimeAPI) -> None:
    import sim
    from sim import errors
    from sim.remote.spec import RemoteCallable, RemoteWorkerSpec

    ns.TaskArgs = sim.TaskArgs
    ns.TensorArgType = sim.TensorArgType
    ns.CallConfig = sim.CallConfig
    ns.DataType = sim.DataType
    ns.WorkerType = sim.WorkerType
    ns.TensorSpec = sim.TensorSpec
    ns.RemoteWorkerSpec = RemoteWorkerSpec
    ns.RemoteCallable = RemoteCallable
    ns.RemoteTensorRef = sim.RemoteTensorRef
    ns.RemoteBufferHandle = sim.RemoteBufferHandle
    ns.RemoteBufferExport = sim.RemoteBufferExport
    ns.CallableHandle = sim.CallableHandle
    ns.errors = errors


def _reference_kernel(name: str) -> Any:
    """The reference kernel ``name``: the chip callable of the in-process backends."""
    from reference import get_kernel

    return get_kernel(name)


#: The collectives ``rt.collective(name)`` builds: name -> the rank-stacked reference kernel it computes
#: through (``reference.kernels.collectives``).
COLLECTIVES = ("all_reduce",)


def _collective_kernel(name: str) -> Any:
    """One rank of collective ``name`` over a domain: ``(x IN, out OUT, domain_size, device_ctx)``, the shape
    of upstream's allreduce example callable without its scratch window argument."""
    from reference import get_kernel
    from sim.comm import CollectiveKernel, CollectiveParam
    from sim.kernel_spec import Direction

    if name not in COLLECTIVES:
        raise NotSupportedByBackend(f"no collective {name!r}; known: {', '.join(COLLECTIVES)}")
    params = [CollectiveParam("x", Direction.IN), CollectiveParam("out", Direction.OUT),
              CollectiveParam("domain_size", Direction.SCALAR), CollectiveParam("device_ctx", Direction.SCALAR)]
    return CollectiveKernel(name, params, get_kernel(name), bind=(0, 1), ctx=3)


class SimAPI(RuntimeAPI):
    """The executable spec: ``sim.Worker`` with ``SimConfig(seed=...)`` injected."""

    name = "sim"
    features = frozenset(FEATURES)

    def __init__(self, seed: int = 0) -> None:
        super().__init__(seed)
        _shared_names(self)

    def Worker(self, level: int, *, faults: Iterable[Any] | None = None, **config: Any) -> Any:
        import sim
        from sim.remote.faults import FaultPlan

        cfg = sim.SimConfig(seed=self.seed, faults=FaultPlan(tuple(faults)) if faults else None)
        w = sim.Worker(level, sim=cfg, **config)
        self.workers.append(w)
        return w

    def kernel(self, name: str) -> Any:
        return _reference_kernel(name)

    def fault(self, kind: str, **params: Any) -> Any:
        from sim.remote import faults as f

        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; known: {', '.join(FAULT_KINDS)}")
        if kind == "session_crash":
            return f.SessionCrash(params["worker"], params.get("at_us", 0.0))
        if kind == "session_hang":
            return f.SessionHang(params["worker"], params.get("at_us", 0.0))
        if kind == "link_cut":
            return f.LinkCut(params["worker"], at_us=params.get("at_us", 0.0), lanes=params.get("lanes", "both"))
        if kind == "link_delay":
            return f.LinkDelay(params["worker"], params["start_us"], params["end_us"], params["extra_us"])
        if kind in ("domain_member_crash", "domain_link_cut"):
            from sim.faultpoints import FaultPoint

            return FaultPoint(kind, target=params.get("target"))
        if kind == "frame_drop":
            return f.FrameFault(params["worker"], params["frame_type"], ordinal=params.get("ordinal", 1))
        return f.ControlFault(params["control"], params["worker"], ordinal=params.get("ordinal", 1))

    @property
    def CommBufferSpec(self) -> Any:
        from sim.comm import CommBufferSpec

        return CommBufferSpec

    def copy_to(self, orch: Any, dst: Any, host: Any) -> None:
        fn = getattr(orch, "copy_to", None)
        if fn is not None:
            fn(dst, host)
            return
        from sim.comm.domain import copy_window

        copy_window(dst, host, to_window=True)

    def copy_from(self, orch: Any, host: Any, src: Any) -> None:
        fn = getattr(orch, "copy_from", None)
        if fn is not None:
            fn(host, src)
            return
        from sim.comm.domain import copy_window

        copy_window(src, host, to_window=False)

    def collective(self, name: str) -> Any:
        return _collective_kernel(name)

    def remote_target(self, name: str) -> str:
        if name not in REMOTE_TARGETS:
            raise ValueError(f"unknown standard remote target {name!r}; known: {', '.join(REMOTE_TARGETS)}")
        return f"sim.remote.examples:{name}"

    @property
    def codec(self) -> ModuleType:
        return importlib.import_module("sim.remote")


class ReferenceAPI(RuntimeAPI):
    """The sequential functional executor with numpy goldens (no time, no remote workers)."""

    name = "reference"
    features = frozenset()

    def __init__(self, seed: int = 0, kernels: str = "golden") -> None:
        super().__init__(seed)
        _shared_names(self)
        self.kernels = kernels

    def Worker(self, level: int, *, faults: Iterable[Any] | None = None, **config: Any) -> Any:
        from reference.executor import Worker

        if faults:
            raise NotSupportedByBackend("the reference executor cannot inject faults")
        w = Worker(level, kernels=self.kernels, **config)
        self.workers.append(w)
        return w

    def kernel(self, name: str) -> Any:
        return _reference_kernel(name)

    def describe(self) -> dict[str, Any]:
        out = super().describe()
        out["kernels"] = self.kernels
        return out


HW_INSTALL_HINT = ("the hw backend is not available yet in this environment: the real runtime package 'simpler' "
                   "cannot be imported ({error}). Install it into the same Python environment as tierbed, "
                   "e.g. 'pip install <path-to-simpler-checkout>', or use --backend sim or --backend reference")


def _hw_backend(seed: int) -> RuntimeAPI:
    """The real runtime through ``hw_backend``, or :class:`BackendUnavailable` with the install hint."""
    try:
        import simpler  # noqa: F401
    except ImportError as exc:
        raise BackendUnavailable(HW_INSTALL_HINT.format(error=exc)) from None
    from hw_backend.api import HwAPI

    return HwAPI(seed)


def get_backend(name: str, seed: int = 0) -> RuntimeAPI:
    """The RuntimeAPI of backend ``name``; ``hw`` raises :class:`BackendUnavailable` without ``simpler``."""
    if name == "sim":
        return SimAPI(seed)
    if name == "reference":
        return ReferenceAPI(seed)
    if name == "hw":
        return _hw_backend(seed)
    raise BackendUnavailable(f"unknown backend {name!r}; known: {', '.join(BACKENDS)}")


__all__ = ["BACKENDS", "FAULT_KINDS", "FEATURES", "REMOTE_TARGETS", "BackendError", "BackendUnavailable",
           "NotSupportedByBackend", "ReferenceAPI", "RuntimeAPI", "SimAPI", "Unobservable", "get_backend"]
