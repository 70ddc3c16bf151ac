"""The simulator's exception hierarchy and the closed set of observable error classes.

Every exception the executable spec raises derives from :class:`SimError` and
carries an :class:`ErrorClass`, the backend-independent name conformance
compares (``DESIGN.md``, "The observables"). The classes follow the failure
vocabulary of upstream ``docs/hierarchical-level-runtime.md`` (level rules),
``docs/callable-identity-registration.md`` ("Registration Failure Contract",
"Dispatch Contract"), ``docs/scheduler.md`` (task failure and poison) and
``docs/remote-l3-worker-design/protocol.md`` (wire and endpoint failures).
"""

from __future__ import annotations

from enum import Enum


class ErrorClass(Enum):
    """Backend-independent names of the errors a runtime user can observe."""

    INVALID_WORKER_TYPE = "INVALID_WORKER_TYPE"
    INVALID_ARGUMENT = "INVALID_ARGUMENT"
    INVALID_STATE = "INVALID_STATE"
    UNKNOWN_WORKER = "UNKNOWN_WORKER"
    UNKNOWN_CALLABLE = "UNKNOWN_CALLABLE"
    FOREIGN_HANDLE = "FOREIGN_HANDLE"
    HANDLE_MUTATED = "HANDLE_MUTATED"
    HASHID_MISMATCH = "HASHID_MISMATCH"
    KERNEL_ARGUMENT = "KERNEL_ARGUMENT"
    ACCESS_DENIED = "ACCESS_DENIED"
    STALE_GENERATION = "STALE_GENERATION"
    ENDPOINT_FAILURE = "ENDPOINT_FAILURE"
    TASK_FAILURE = "TASK_FAILURE"
    PROTOCOL_ERROR = "PROTOCOL_ERROR"
    NOT_READY = "NOT_READY"
    UNCERTAIN_STATE = "UNCERTAIN_STATE"
    CONTROL_FAILURE = "CONTROL_FAILURE"
    REGISTER_PARTIAL_FAILURE = "REGISTER_PARTIAL_FAILURE"
    TOMBSTONE_ACTIVE = "TOMBSTONE_ACTIVE"
    NOT_SUPPORTED = "NOT_SUPPORTED"
    RESOURCE_EXHAUSTED = "RESOURCE_EXHAUSTED"
    HANG = "HANG"


class SimError(Exception):
    """Base of every error the simulator raises; ``error_class`` names it for conformance."""

    error_class: ErrorClass = ErrorClass.INVALID_ARGUMENT


class InvalidWorkerType(SimError, ValueError):
    """A child worker of a type the parent's level does not accept (seed 000 level rules)."""

    error_class = ErrorClass.INVALID_WORKER_TYPE


class InvalidArgument(SimError, ValueError):
    """An API call got a value it cannot accept (bad level, non-tensor in a tensor slot, ...)."""

    error_class = ErrorClass.INVALID_ARGUMENT


class InvalidState(SimError, RuntimeError):
    """An API call made in the wrong lifecycle state (run before init, register after init, ...)."""

    error_class = ErrorClass.INVALID_STATE


class UnknownWorker(SimError, KeyError):
    """A submit named a worker id that is not a child of this level."""

    error_class = ErrorClass.UNKNOWN_WORKER

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class NotADomainMember(SimError, KeyError):
    """A chip indexed in a communication domain it is not a member of (``docs/comm-domain.md`` §1)."""

    error_class = ErrorClass.UNKNOWN_WORKER

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class DomainReleased(SimError, RuntimeError):
    """A communication domain used after ``release()`` (``docs/comm-domain.md`` §2 "Lifetime model")."""

    error_class = ErrorClass.INVALID_STATE


class UnsupportedCommProfile(SimError, ValueError):
    """A Global CommDomain profile the platform's backend does not implement (upstream
    ``docs/comm-domain.md`` "Global CommDomain across local and remote L3 nodes": ``sim`` on a
    simulation platform, ``a3-fabric-v1`` on real A3 devices)."""

    error_class = ErrorClass.NOT_SUPPORTED


class UnknownCallable(SimError, KeyError):
    """A handle that was never registered here, or was unregistered."""

    error_class = ErrorClass.UNKNOWN_CALLABLE

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class ForeignHandle(SimError, ValueError):
    """A CallableHandle issued by another Worker, or built by the user (no live registration)."""

    error_class = ErrorClass.FOREIGN_HANDLE


class HandleMutated(SimError, RuntimeError):
    """A CallableHandle whose public fields no longer match its live registration record
    (``callable-identity-registration.md`` "Runtime Contracts"; upstream ``CALLABLE_HANDLE_MUTATED``)."""

    error_class = ErrorClass.HANDLE_MUTATED


class HashidMismatch(SimError, ValueError):
    """A hashid does not match the descriptor it claims to identify."""

    error_class = ErrorClass.HASHID_MISMATCH


class KernelArgumentError(SimError, ValueError):
    """A chip kernel was given tensors of the wrong count, shape or dtype."""

    error_class = ErrorClass.KERNEL_ARGUMENT


class AccessDenied(SimError, PermissionError):
    """A remote buffer used with a tag its access flags do not allow."""

    error_class = ErrorClass.ACCESS_DENIED


class StaleGeneration(SimError, ValueError):
    """A remote buffer handle whose generation is no longer live."""

    error_class = ErrorClass.STALE_GENERATION


class EndpointFailure(SimError, RuntimeError):
    """An endpoint (remote session, link) failed or its health expired."""

    error_class = ErrorClass.ENDPOINT_FAILURE


class TaskFailure(SimError, RuntimeError):
    """A run ended with at least one failed task; names the first failed task."""

    error_class = ErrorClass.TASK_FAILURE


class ProtocolError(SimError, ValueError):
    """Wire bytes that do not decode; the message names the field."""

    error_class = ErrorClass.PROTOCOL_ERROR

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message if field is None else f"{field}: {message}")
        self.field = field


class NotReady(SimError, RuntimeError):
    """Work sent to an endpoint that has not reached READY."""

    error_class = ErrorClass.NOT_READY


class UncertainState(SimError, RuntimeError):
    """A cleanup whose outcome could not be confirmed."""

    error_class = ErrorClass.UNCERTAIN_STATE


class RegisterPartialFailure(SimError, RuntimeError):
    """A register that some target of its scope refused; nothing was published and cleanup was confirmed."""

    error_class = ErrorClass.REGISTER_PARTIAL_FAILURE


class TombstoneActive(SimError, RuntimeError):
    """A (worker, hashid) pair whose final unregister is not yet confirmed; re-register must wait."""

    error_class = ErrorClass.TOMBSTONE_ACTIVE


class ControlFailure(SimError, RuntimeError):
    """A remote CONTROL answered with an error reply: the session did not apply it."""

    error_class = ErrorClass.CONTROL_FAILURE


class NotSupported(SimError, NotImplementedError):
    """A feature the modeled runtime rejects explicitly (e.g. RoCE in conformance mode)."""

    error_class = ErrorClass.NOT_SUPPORTED


class ResourceExhausted(SimError, RuntimeError):
    """A ring or pool that cannot ever satisfy the request (larger than its capacity)."""

    error_class = ErrorClass.RESOURCE_EXHAUSTED


class SimulationHang(SimError, RuntimeError):
    """The simulation ran out of events while tasks were still not terminal (a modeled hang)."""

    error_class = ErrorClass.HANG
