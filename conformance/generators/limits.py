"""What a generated scenario may contain on each backend, and how large it may grow.

A generator draws only what the backend it feeds can run: the real runtime builds two chip
kernels (``hw_backend.kernels.KERNELS``: ``add`` and ``mul``) and injects a subset of the fault
vocabulary (``conformance.scenario_runner`` ``_RT_KINDS``); the reference executor has no remote
workers and no faults. Each Worker costs seconds to bring up on the real runtime, so its
examples stay small.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

#: Elementwise reference kernels over tensors of one shape: name -> argument directions.
#: Spec: upstream ``docs/orchestrator.md`` §2 "Step 3 — tag walk" (tags are the caller's claim
#: about each argument; a kernel's directions are what it really does to the bytes).
ELEMENTWISE: dict[str, tuple[str, ...]] = {
    "add": ("IN", "IN", "OUT"),
    "mul": ("IN", "IN", "OUT"),
    "add_mul": ("IN", "IN", "IN", "OUT"),
    "gelu": ("IN", "OUT"),
    "silu": ("IN", "OUT"),
    "add_scalar": ("IN", "OUT", "SCALAR"),
    "axpy": ("IN", "INOUT", "SCALAR"),
}

#: Fault types of the scenario format, the sim's full vocabulary.
SIM_FAULTS = ("LinkCut", "LinkDelay", "LinkClog", "SessionCrash", "SessionHang", "FrameFault", "FaultPoint")
#: What the real runtime's fault injection covers (``conformance.scenario_runner._RT_KINDS``).
HW_FAULTS = ("LinkCut", "LinkDelay", "SessionCrash", "SessionHang", "FrameFault")


@dataclass(frozen=True)
class Limits:
    """The space a scenario generator draws from for one backend."""

    backend: str = "sim"
    kernels: tuple[str, ...] = tuple(ELEMENTWISE)
    faults: tuple[str, ...] = SIM_FAULTS
    remote: bool = True
    max_level: int = 5
    max_chips: int = 4
    max_subs: int = 2
    max_children: int = 3
    max_steps: int = 8
    max_tensors: int = 6
    max_scope_depth: int = 2
    zero_workers: bool = True
    builtins: bool = True  # noop / fail / slow host SUB callables
    registration: bool = True  # after_init registration, unregister
    alloc: bool = True  # orchestrator-owned intermediates
    chaos: float = 0.3  # probability that a program ignores the data-race rules (tags as drawn)
    overlaps: bool = True  # chaos programs may name one tensor twice in a task (an overlapping write)

    def with_(self, **changes: object) -> Limits:
        return replace(self, **changes)  # type: ignore[arg-type]


def limits_for(backend: str) -> Limits:
    """The default limits for ``backend`` (``sim``, ``reference`` or ``hw``)."""
    if backend == "sim":
        return Limits()
    if backend == "reference":  # a functional oracle: no time, no remote workers, no faults
        return Limits(backend="reference", faults=(), remote=False)
    if backend == "hw":  # seconds per Worker: small trees, the kernels it builds, the faults it injects
        # No overlapping writes: the real runtime accepts them, a known departure (ORCH-048 in
        # conformance/expectations/hw-simpler-0.1.yaml) the search would otherwise find again and again.
        return Limits(backend="hw", kernels=("add", "mul"), faults=HW_FAULTS, max_level=4, max_chips=2,
                      max_subs=2, max_children=2, max_steps=6, max_tensors=4, overlaps=False)
    raise ValueError(f"no generator limits for backend {backend!r}; known: sim, reference, hw")


__all__ = ["ELEMENTWISE", "HW_FAULTS", "SIM_FAULTS", "Limits", "limits_for"]
