"""Callable registration: opaque handles, target-local identity tables and refcounts.

Models ``docs/callable-identity-registration.md``: ``Worker.register`` computes a canonical
descriptor and its ``sha256`` hashid ("Canonical Descriptor") and returns an opaque
:class:`CallableHandle` scoped to the Worker that issued it ("Target Namespace"); each target
namespace keeps a private ``hashid -> local slot`` table whose slots are shared by duplicate
registrations under a refcount, so unregistering one handle never invalidates another
("Registry Contract"). A handle built from its public fields is no live registration, and a
handle whose public fields were changed is rejected where it is used ("Runtime Contracts").
Chip callables resolve in ``LOCAL_CHIP``, Python callables in ``LOCAL_PYTHON``.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

from sim.callable_identity import (
    ArgDirection,
    CallableDescriptor,
    CallableKind,
    TargetNamespace,
    chip_callable_descriptor,
    describe_python_callable,
    parse_hashid,
)
from sim.cost import DURATION_ATTR
from sim.errors import ForeignHandle, HandleMutated, InvalidArgument, UnknownCallable
from sim.kernel_spec import ChipKernel

_DIRECTION = {"scalar": ArgDirection.SCALAR, "in": ArgDirection.IN, "out": ArgDirection.OUT,
              "inout": ArgDirection.INOUT}


class CallableHandle:
    """An opaque registration handle: ``hashid``, ``kind`` and ``target_namespace`` are its public fields.

    "Runtime Contracts": the class can be called with those three fields, but what it builds is no
    live registration -- it belongs to no Worker, so submit and unregister reject it
    (``FOREIGN_HANDLE``). The public fields can be reassigned, as upstream's plain attributes can;
    submit and unregister compare them with the Worker's live registration record and reject a
    handle whose fields no longer match (``HANDLE_MUTATED``). It has no integer value and compares
    equal only to itself; its private binding (owner, serial, digest) cannot be changed or deleted.
    """

    __slots__ = ("_owner", "_reassigned", "_serial", "digest", "hashid", "kind", "name", "target_namespace")

    _PUBLIC = frozenset({"hashid", "kind", "target_namespace"})

    def __init__(self, hashid: str, kind: str, target_namespace: str) -> None:
        if not isinstance(hashid, str):
            raise InvalidArgument(f"CallableHandle: hashid must be a str, got {type(hashid).__name__}")
        try:
            digest = parse_hashid(hashid)
        except InvalidArgument as exc:
            raise InvalidArgument(f"CallableHandle: hashid: {exc}") from None
        for field_name, value, enum in (("kind", kind, CallableKind), ("target_namespace", target_namespace,
                                                                          TargetNamespace)):
            if not isinstance(value, str) or value not in enum.__members__:
                raise InvalidArgument(f"CallableHandle: {field_name} must be one of {sorted(enum.__members__)}, "
                                      f"got {value!r}")
        for name, value in (("_owner", None), ("_reassigned", False), ("_serial", 0), ("digest", digest),
                            ("hashid", hashid), ("kind", kind), ("target_namespace", target_namespace),
                            ("name", "<constructed>")):
            object.__setattr__(self, name, value)

    @classmethod
    def _issue(cls, owner: Any, serial: int, descriptor: CallableDescriptor, name: str) -> CallableHandle:
        return cls._make(owner, serial, descriptor.digest, descriptor.hashid, descriptor.kind.name,
                         descriptor.namespace.name, name)

    @classmethod
    def _make(cls, owner: Any, serial: int, digest: bytes, hashid: str, kind: str, namespace: str,
              name: str) -> CallableHandle:
        h = object.__new__(cls)
        object.__setattr__(h, "_owner", owner)
        object.__setattr__(h, "_reassigned", False)
        object.__setattr__(h, "_serial", serial)
        object.__setattr__(h, "digest", digest)
        object.__setattr__(h, "hashid", hashid)
        object.__setattr__(h, "kind", kind)
        object.__setattr__(h, "target_namespace", namespace)
        object.__setattr__(h, "name", name)
        return h

    def __setattr__(self, name: str, value: Any) -> None:
        if name not in self._PUBLIC:
            raise AttributeError(f"CallableHandle has no writable attribute {name!r}")
        object.__setattr__(self, name, value)
        # From now on every use compares the fields with the registration (``resolve``).
        object.__setattr__(self, "_reassigned", True)

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"CallableHandle fields cannot be deleted ({name!r})")

    def __reduce__(self) -> Any:
        # A serialized orchestration function carries the handles it closes over; the copy
        # names the same registration but is bound to no Worker (as upstream's unbound form),
        # and its bytes are deterministic so the enclosing callable's hashid is too.
        return (_unbound_handle, (self._serial, self.digest, self.hashid, self.kind, self.target_namespace,
                                  self.name))

    def __repr__(self) -> str:
        return f"CallableHandle({self.name!r}, {self.kind}, {self.target_namespace}, {str(self.hashid)[:19]}…)"


def _unbound_handle(serial: int, digest: bytes, hashid: str, kind: str, namespace: str,
                    name: str) -> CallableHandle:
    return CallableHandle._make(None, serial, digest, hashid, kind, namespace, name)


@dataclass
class Registration:
    """What one live handle resolves to."""

    handle: CallableHandle
    descriptor: CallableDescriptor
    target: Any
    name: str
    duration_us: float | None
    # A kernel call's modeled duration per argument signature, as the one-member durations
    # tuple a single task carries; filled by the submits that checked it (``sim.orchestrator``).
    # A handle serves one Worker, so one cost profile.
    durations: dict[Any, tuple[float]] = field(default_factory=dict, repr=False, compare=False)
    # A collective kernel (sim.comm.collective): its launches join a domain rendezvous. Read on
    # every launch, so a plain attribute rather than a lookup on the target.
    collective: bool = field(default=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.collective = getattr(self.target, "collective", False) is True


@dataclass
class _Slot:
    target: Any
    refcount: int


def _kernel_signature(kernel: Any) -> list[ArgDirection]:
    return [_DIRECTION[p.direction.value] for p in kernel.params]


def describe_target(target: Any, *, platform: str, runtime: str) -> tuple[CallableDescriptor, str]:
    """Descriptor and display name of a register() target: a chip kernel (a reference Kernel) or a
    Python callable."""
    if isinstance(target, ChipKernel):
        blob = b"tierbed-reference-kernel\x00" + target.name.encode()
        desc = chip_callable_descriptor(platform=platform, runtime=runtime, callable_blob=blob,
                                        signature=_kernel_signature(target))
        return desc, target.name
    if callable(target):
        name = getattr(target, "__qualname__", None) or type(target).__name__
        return describe_python_callable(target), name
    raise InvalidArgument(
        f"register() takes a reference Kernel or a Python callable, got {type(target).__name__}")


class CallableRegistry:
    """One Worker's handles and its per-namespace identity tables."""

    def __init__(self, owner: Any) -> None:
        self.owner = owner
        self.live: dict[int, Registration] = {}
        # The same registrations keyed by their issued handle object: the submit hot path looks a
        # handle up here in one step. A handle found here whose fields were never reassigned
        # passes every check of ``resolve`` but the namespace one.
        self.by_handle: dict[CallableHandle, Registration] = {}
        self._serials = itertools.count(1)
        self.tables: dict[TargetNamespace, dict[bytes, _Slot]] = {ns: {} for ns in TargetNamespace}
        # Per (target, hashid) pair, keyed digest -> target scopes (see sim.install): cleanup-uncertain
        # pairs are never dispatched or re-registered this session; tombstoned pairs wait for a
        # confirmed final unregister. Empty on the happy path, so submit checks them only if non-empty.
        self.uncertain: dict[bytes, set[str]] = {}
        self.tombstones: dict[bytes, set[str]] = {}

    def register(self, target: Any, *, platform: str, runtime: str) -> Registration:
        desc, name = describe_target(target, platform=platform, runtime=runtime)
        return self.install(desc, target, name, getattr(target, DURATION_ATTR, None))

    def install(self, desc: CallableDescriptor, target: Any, name: str, duration_us: float | None) -> Registration:
        """Publish a new handle for ``desc``, sharing the target-local slot of its hashid."""
        table = self.tables[desc.namespace]
        slot = table.get(desc.digest)
        if slot is None:
            table[desc.digest] = _Slot(target, 1)
        else:
            slot.refcount += 1
        handle = CallableHandle._issue(self.owner, next(self._serials), desc, name)
        reg = Registration(handle, desc, target, name, duration_us)
        self.live[handle._serial] = reg
        self.by_handle[handle] = reg
        return reg

    def unregister(self, handle: Any) -> Registration:
        reg = self.resolve(handle, api="unregister")
        del self.live[handle._serial]
        del self.by_handle[reg.handle]
        table = self.tables[reg.descriptor.namespace]
        slot = table[reg.descriptor.digest]
        slot.refcount -= 1
        if slot.refcount == 0:
            del table[reg.descriptor.digest]
        return reg

    def resolve(self, handle: Any, *, api: str, namespace: str | None = None) -> Registration:
        """The live registration behind ``handle``; typed errors for every way it can be wrong."""
        if not isinstance(handle, CallableHandle):
            raise InvalidArgument(f"{api} expects a CallableHandle returned by Worker.register, "
                                  f"got {type(handle).__name__}")
        if handle._owner is not self.owner:
            raise ForeignHandle(f"{api}: {handle!r} does not belong to this Worker (it was not returned by "
                                "this Worker's register)")
        reg = self.live.get(handle._serial)
        if reg is None:
            raise UnknownCallable(f"{api}: {handle!r} is not registered (it was unregistered)")
        desc = reg.descriptor
        if (handle.hashid, handle.kind, handle.target_namespace) != (desc.hashid, desc.kind.name,
                                                                     desc.namespace.name):
            raise HandleMutated(f"{api}: the public fields of {handle!r} no longer match its registration "
                                f"(registered {desc.hashid}, {desc.kind.name}, {desc.namespace.name})")
        if namespace is not None and handle.target_namespace != namespace:
            raise InvalidArgument(
                f"{api} cannot run {handle.target_namespace} callable {handle.name!r}; "
                f"this path resolves {namespace}")
        return reg

    def refcount(self, handle: CallableHandle) -> int:
        """The target-local refcount shared by every live handle with this handle's hashid."""
        reg = self.resolve(handle, api="refcount")
        return self.tables[reg.descriptor.namespace][reg.descriptor.digest].refcount
