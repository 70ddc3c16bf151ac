"""The backend vocabulary: the runtime-shaped API every backend implements (``DESIGN.md`` "One API,
three backends").

This module holds what a backend and the conformance room must agree on, and nothing else:

- :class:`RuntimeAPI`, the base of every backend's ``rt`` (the names a case uses, and the helpers
  that need only numpy and ``sim``);
- the backend errors :class:`BackendError`, :class:`BackendUnavailable`,
  :class:`NotSupportedByBackend` (the verdict is NOT_SUPPORTED), and :class:`Unobservable` (a
  check of it is judged *not observable*);
- the closed name sets ``FEATURES``, ``FAULT_KINDS`` and ``REMOTE_TARGETS``.

It lives with the shared vocabulary (``sim.record``'s RunRecord is the other half) so that
``conformance`` and every backend (``hw_backend``, ...) import it and none of them imports the
other: ``conformance`` finds a backend by name (``conformance.backends.get_backend``) and no backend
imports ``conformance``. It imports nothing of ``conformance``, ``hw_backend`` or ``reference``.

A case receives a :class:`RuntimeAPI` called ``rt`` and uses only its names, so that the same case
replays on every backend:

- the runtime's own names: ``rt.Worker(level, **config)``, ``rt.TaskArgs``, ``rt.TensorArgType``,
  ``rt.CallConfig``, ``rt.DataType``, ``rt.WorkerType``, ``rt.TensorSpec``, ``rt.RemoteWorkerSpec``,
  ``rt.RemoteCallable``, ``rt.RemoteTensorRef``, ``rt.RemoteBufferHandle``, ``rt.RemoteBufferExport``,
  ``rt.CallableHandle`` and ``rt.errors`` (the backend's exception module);
- helpers that replace backend ``if``\\ s in a case:

  ``rt.tensor(shape, dtype, fill=...)``
      a host tensor for a functional run (``fill``: a number, ``"arange"``, ``"random"`` -- drawn
      from the run's seed -- or an array-like);
  ``rt.kernel(name)``
      a chip callable the backend can register (each backend provides its own: the reference
      kernel on ``sim``/``reference``, the kernel map on ``hw``);
  ``rt.remote_target(name)``
      the import target of one of the standard remote orchestration functions
      (``REMOTE_TARGETS``: ``noop``, ``fail``, ``chain``, ``add_buffers``);
  ``rt.read(tensor)``
      a numpy copy of a tensor after a run;
  ``rt.record_output(record, name, tensor)``
      name an output in a RunRecord (what the judge compares with the golden);
  ``rt.fault(kind, **params)`` / ``rt.Worker(..., faults=[...])``
      fault injection (``FAULT_KINDS``); a backend that cannot inject ``kind`` raises
      :class:`NotSupportedByBackend` and the case is NOT_SUPPORTED;
  ``rt.error_class(exc)``
      the closed error-class name of an exception the backend raised;
  ``rt.supports(feature)`` / ``rt.require(feature)``
      probes (``FEATURES``); ``require`` makes the case NOT_SUPPORTED when the feature is missing;
  ``rt.codec``
      the backend's remote-L3 wire codec (``decode_frame``, ``encode_frame``, frame records);
  ``rt.buffer_state(handle)``
      a remote buffer handle's lifecycle state (``LIVE``, ``RELEASED``, ``FREED``, ...), or an
      :class:`Unobservable` where the backend's handle does not show it: a ``ctx.check`` of that is
      judged *not observable*, so the case cannot PASS on that backend but its other checks still count;
  ``rt.CommBufferSpec``, ``rt.copy_to(orch, window_buffer, host)``, ``rt.copy_from(orch, host, window_buffer)``
      communication domains (feature ``domains``): the buffer spec ``orch.allocate_domain`` takes, and
      the synchronous staging of a host numpy array into / out of one rank's window buffer
      (upstream ``orch.copy_to`` / ``orch.copy_from``, ``docs/comm-domain.md`` §5);
  ``rt.collective(name)``
      a chip callable that runs as one rank of a collective over a domain (``all_reduce``); its
      arguments are ``(x IN, out OUT, domain_size, device_ctx)``. A backend that cannot build one
      raises :class:`NotSupportedByBackend`.
"""

from __future__ import annotations

import importlib.metadata
import platform as _platform
from collections.abc import Iterable
from types import ModuleType
from typing import Any

import numpy as np

#: Features a case may probe. ``remote``: remote L3 workers and remote buffers; ``faults``: fault
#: injection; ``wire_codec``: the remote-L3 frame codec; ``timing``: modeled/measured time (stamps
#: that can overlap); ``concurrency``: independent tasks can run at the same time; ``backpressure``:
#: a full heap ring blocks the Orchestrator; ``trace``: an event trace; ``domains``: communication
#: domains (``orch.allocate_domain``, ``Worker.live_domains``, window staging).
FEATURES = ("remote", "faults", "wire_codec", "timing", "concurrency", "backpressure", "trace", "domains")

#: Fault kinds a case may ask for, and their parameters.
FAULT_KINDS = {
    "session_crash": ("worker", "at_us"),
    "session_hang": ("worker", "at_us"),
    "link_cut": ("worker", "at_us", "lanes"),
    "link_delay": ("worker", "start_us", "end_us", "extra_us"),
    "frame_drop": ("worker", "frame_type", "ordinal"),
    "control_error": ("control", "worker", "ordinal"),
    # the simulator's named fault points of a collective over a communication domain (sim.faultpoints)
    "domain_member_crash": ("target",),
    "domain_link_cut": ("target",),
}

#: The standard remote orchestration functions ``rt.remote_target(name)`` names.
REMOTE_TARGETS = ("noop", "fail", "chain", "add_buffers")


class BackendError(Exception):
    """Base of the backend errors."""


class BackendUnavailable(BackendError):
    """The backend cannot run here (not built yet, or its runtime is not importable)."""


class NotSupportedByBackend(BackendError):
    """A case asked for a feature the backend does not have: the verdict is NOT_SUPPORTED."""


class Unobservable:
    """Something a backend cannot observe, and why; ``ctx.check`` judges it *not observable*."""

    __slots__ = ("why",)

    def __init__(self, why: str) -> None:
        self.why = why

    def __repr__(self) -> str:
        return f"Unobservable({self.why!r})"


class RuntimeAPI:
    """The names and helpers a case uses; one instance per backend and seed."""

    name = "?"
    features: frozenset[str] = frozenset()

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        self._rng = np.random.default_rng([seed, 0x7E57])
        self.workers: list[Any] = []

    # ---------------------------------------------------------------- probes

    def supports(self, feature: str) -> bool:
        if feature not in FEATURES:
            raise ValueError(f"unknown feature {feature!r}; known: {', '.join(FEATURES)}")
        return feature in self.features

    def require(self, *features: str) -> None:
        missing = [f for f in features if not self.supports(f)]
        if missing:
            raise NotSupportedByBackend(f"backend {self.name} does not support {', '.join(missing)}")

    def describe(self) -> dict[str, Any]:
        """Run metadata: backend name, version, platform."""
        try:
            version = importlib.metadata.version("tierbed")
        except importlib.metadata.PackageNotFoundError:
            version = "unknown"
        return {"backend": self.name, "version": version, "platform": "a2a3sim",
                "python": _platform.python_version(), "numpy": np.__version__}

    # ---------------------------------------------------------------- data helpers

    def tensor(self, shape: Iterable[int] | int, dtype: Any = "float32", fill: Any = 0) -> np.ndarray:
        """A host tensor for a functional run."""
        from sim.types import as_numpy_dtype

        shp = (shape,) if isinstance(shape, int) else tuple(shape)
        dt = as_numpy_dtype(dtype)
        if isinstance(fill, str):
            if fill == "arange":
                return np.arange(int(np.prod(shp)), dtype=np.float64).reshape(shp).astype(dt)
            if fill == "random":
                return self._rng.standard_normal(shp).astype(dt)
            raise ValueError(f"tensor fill must be a number, 'arange', 'random' or an array, got {fill!r}")
        if np.isscalar(fill):
            return np.full(shp, fill, dtype=dt)
        arr = np.asarray(fill, dtype=dt)
        if arr.shape != shp:
            raise ValueError(f"tensor fill has shape {arr.shape}, expected {shp}")
        return arr.copy()

    def read(self, tensor: Any) -> np.ndarray:
        return np.array(tensor, copy=True)

    def record_output(self, record: Any, name: str, tensor: Any) -> None:
        record.add_output(name, self.read(tensor))

    def kernel(self, name: str) -> Any:
        """A chip callable named ``name`` that this backend can register; each backend provides it."""
        raise NotSupportedByBackend(f"backend {self.name} has no chip kernels ({name})")

    def error_class(self, exc: BaseException) -> str:
        cls = getattr(exc, "error_class", None)
        value = getattr(cls, "value", None)
        if isinstance(value, str):
            return value
        return f"UNMAPPED:{type(exc).__name__}"

    # ---------------------------------------------------------------- faults and remote

    def fault(self, kind: str, **params: Any) -> Any:
        raise NotSupportedByBackend(f"backend {self.name} cannot inject faults ({kind})")

    def remote_target(self, name: str) -> str:
        raise NotSupportedByBackend(f"backend {self.name} has no remote L3 workers")

    @property
    def codec(self) -> ModuleType:
        raise NotSupportedByBackend(f"backend {self.name} has no remote-L3 wire codec")

    def buffer_state(self, handle: Any) -> str | Unobservable:
        """A remote buffer handle's lifecycle state, as its ``state`` attribute names it."""
        return handle.state

    # ---------------------------------------------------------------- communication domains

    def copy_to(self, orch: Any, dst: Any, host: Any) -> None:
        """Stage host array ``host`` into window buffer ``dst`` (``orch.copy_to``)."""
        self.require("domains")
        orch.copy_to(dst, host)

    def copy_from(self, orch: Any, host: Any, src: Any) -> None:
        """Read window buffer ``src`` into host array ``host`` (``orch.copy_from``)."""
        self.require("domains")
        orch.copy_from(host, src)

    def collective(self, name: str) -> Any:
        """A collective chip callable (``all_reduce``) this backend can register."""
        raise NotSupportedByBackend(f"backend {self.name} has no collective kernels ({name})")

    def Worker(self, level: int, **config: Any) -> Any:
        raise NotImplementedError

    def close_all(self) -> None:
        """Close every root Worker a case left open (best effort; the process ends anyway)."""
        for w in reversed(self.workers):
            try:
                if getattr(w, "_parent", None) is None:
                    w.close()
            except Exception:
                pass


__all__ = ["FAULT_KINDS", "FEATURES", "REMOTE_TARGETS", "BackendError", "BackendUnavailable",
           "NotSupportedByBackend", "RuntimeAPI", "Unobservable"]
