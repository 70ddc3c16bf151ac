"""``HwAPI``: the runtime-shaped API of the ``hw`` backend (the real ``simpler`` package).

The platform is the user's choice: ``HwAPI(platform=...)`` or the ``TIERBED_HW_PLATFORM``
environment variable (default ``a2a3sim``). Chip kernels come from the user's kernel map when one is
given: ``HwAPI(kernels={name: chip_callable})`` or ``TIERBED_HW_KERNELS=module:attribute`` naming
such a dict; otherwise from tierbed's built-in kernels (:mod:`hw_backend.kernels`), built on first
need for a simulation platform. When neither is available (a real platform, no compiler, a build
error) a chip kernel makes the case NOT_SUPPORTED, with the reason.
Names the real package does not have (``WorkerType``, ``TensorSpec``, the remote names, ...) make
the case NOT_SUPPORTED when it touches them, never a silent pass.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterable, Mapping
from typing import Any

from hw_backend import errors as hw_errors
from hw_backend.adapter import HwTaskArgs, HwWorker
from hw_backend.kernels import KernelBuildError, kernel_map
from hw_backend.remote import HwFault, RemoteSessions
from sim.backend_api import NotSupportedByBackend, RuntimeAPI, Unobservable

DEFAULT_PLATFORM = "a2a3sim"

#: Names a case may use that the adapter does not provide on hw (yet).
#: Names of ``rt`` the real package has no counterpart for, and why (a case using one is NOT_SUPPORTED).
_ABSENT = {
    "WorkerType": "the real Worker has no accepts_worker_type, and its WorkerType names NEXT_LEVEL and SUB, "
                  "not seed 000's CHIP / SUB / DIST",
    "TensorSpec": "TensorSpec is the simulator's shape-only tensor for timing runs; the real runtime runs on data",
}
#: Fault kinds the hw backend injects for real (:mod:`hw_backend.remote`).
_HW_FAULTS = ("session_crash", "session_hang", "link_cut", "link_delay", "frame_drop", "control_error")


class _MissingKernel:
    """What ``rt.kernel(name)`` gives without a kernel map: registering it is NOT_SUPPORTED."""

    __tierbed_missing_kernel__ = True

    def __init__(self, name: str, reason: str = "no kernel map given") -> None:
        self.name = name
        self.reason = reason


def _kernel_map_from_env() -> Mapping[str, Any] | None:
    spec = os.environ.get("TIERBED_HW_KERNELS")
    if not spec:
        return None
    module, _, attr = spec.partition(":")
    return getattr(importlib.import_module(module), attr or "KERNELS")


_APIS: dict[int, HwAPI] = {}


def _live_api(key: int) -> HwAPI:
    return _APIS[key]


class HwAPI(RuntimeAPI):
    """Drives the real runtime through :class:`~hw_backend.adapter.HwWorker`.

    Cases write nested orchestration functions that close over ``rt``; the runtime pickles such a
    function into its registration, so the API pickles as a name for this process's instance (a
    child process of the runtime holds a copy of it), not as its state.
    """

    name = "hw"
    features = frozenset({"timing", "concurrency", "wire_codec", "remote", "faults", "domains"})

    def __init__(self, seed: int = 0, *, platform: str | None = None,
                 kernels: Mapping[str, Any] | None = None) -> None:
        super().__init__(seed)
        from simpler.callable_identity import CallableHandle
        from simpler.task_interface import CallConfig, DataType, TensorArgType

        self.platform = platform or os.environ.get("TIERBED_HW_PLATFORM") or DEFAULT_PLATFORM
        self.kernels = kernels if kernels is not None else _kernel_map_from_env()
        self.kernels_origin = "map" if self.kernels is not None else "builtin"
        self.kernels_reason: str | None = None  # why the built-in kernels are unavailable, once known
        self.TaskArgs = HwTaskArgs
        self.TensorArgType = TensorArgType
        self.CallConfig = CallConfig
        self.DataType = DataType
        self.errors = hw_errors
        self.CallableHandle = CallableHandle
        from simpler.task_interface import CommBufferSpec, RemoteBufferExport, RemoteBufferHandle, RemoteTensorRef
        from simpler.worker import RemoteCallable, RemoteWorkerSpec

        self.CommBufferSpec = CommBufferSpec
        self.RemoteWorkerSpec = RemoteWorkerSpec
        self.RemoteCallable = RemoteCallable
        self.RemoteTensorRef = RemoteTensorRef
        self.RemoteBufferHandle = RemoteBufferHandle
        self.RemoteBufferExport = RemoteBufferExport
        self.sessions = RemoteSessions(seed)
        _APIS[id(self)] = self

    def __reduce__(self) -> Any:
        return (_live_api, (id(self),))

    def __getattr__(self, name: str) -> Any:
        if name in _ABSENT:
            raise NotSupportedByBackend(f"no {name} on the hw backend: {_ABSENT[name]}")
        raise AttributeError(name)

    def buffer_state(self, handle: Any) -> Unobservable:
        # The real RemoteBufferHandle keeps only a private released flag (python/simpler/task_interface.py).
        return Unobservable("the real RemoteBufferHandle has no public lifecycle state")

    def describe(self) -> dict[str, Any]:
        import importlib.metadata

        out = super().describe()
        out["platform"] = self.platform
        try:
            out["runtime_version"] = importlib.metadata.version("simpler")
        except importlib.metadata.PackageNotFoundError:
            out["runtime_version"] = "unknown"
        out["kernels"] = self.kernels_origin if self.kernels_reason is None else "none"
        return out

    def _chip_kernels(self) -> Mapping[str, Any] | None:
        """The user's kernel map, else the built-in one (built, or read from the cache, on first need);
        ``None`` with :attr:`kernels_reason` set when it cannot be built."""
        if self.kernels is None and self.kernels_reason is None:
            try:
                self.kernels = kernel_map(self.platform)
            except KernelBuildError as exc:
                self.kernels_reason = f"no kernel map given and the built-in kernels are unavailable: {exc}"
        return self.kernels

    def Worker(self, level: int, *, faults: Iterable[Any] | None = None, **config: Any) -> Any:
        w = HwWorker(level, platform=self.platform, sessions=self.sessions, faults=tuple(faults or ()), **config)
        self.workers.append(w)
        return w

    def fault(self, kind: str, **params: Any) -> Any:
        """A real fault (:mod:`hw_backend.remote`): proxy rules on a session's lanes, or a killed session."""
        if kind not in _HW_FAULTS:
            raise NotSupportedByBackend(f"the hw backend cannot inject {kind!r} faults")
        return HwFault(kind, int(params.get("worker", 0)), {k: v for k, v in params.items() if k != "worker"})

    def remote_target(self, name: str) -> str:
        from hw_backend import remote_targets

        if not callable(getattr(remote_targets, name, None)):
            raise NotSupportedByBackend(f"the hw backend has no remote target {name!r} "
                                        "(hw_backend.remote_targets)")
        return f"hw_backend.remote_targets:{name}"

    def close_all(self) -> None:
        try:
            super().close_all()
        finally:
            self.sessions.close()

    def kernel(self, name: str) -> Any:
        if not self._chip_kernels():
            return _MissingKernel(name, self.kernels_reason or "the kernel map is empty")
        try:
            return self.kernels[name]
        except KeyError:
            raise NotSupportedByBackend(f"the hw kernel map has no kernel {name!r}") from None

    def collective(self, name: str) -> Any:
        """A collective from the user's kernel map (``(x, out, domain_size, device_ctx)``, as
        :meth:`sim.backend_api.RuntimeAPI.collective` names it); the built-in kernels have none."""
        if self.kernels_origin == "map" and self.kernels is not None and name in self.kernels:
            return self.kernels[name]
        raise NotSupportedByBackend(
            f"the hw backend cannot build collective kernels ({name}): its built-in kernels (hw_backend.kernels) are "
            "elementwise, and a collective needs a communication kernel that reads peer windows through "
            "device_ctx (upstream's PTO-ISA allreduce), which tierbed does not compile; give one in a kernel map")

    def error_class(self, exc: BaseException) -> str:
        return hw_errors.error_class(exc)

    @property
    def codec(self) -> Any:
        """The real package's SLR3 frame codec, adapted (:mod:`hw_backend.codec`)."""
        return importlib.import_module("hw_backend.codec")
