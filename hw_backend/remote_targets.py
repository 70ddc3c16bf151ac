"""Remote L3 orchestration functions the hw backend's cases send to real sessions (``RemoteCallable`` targets).

A ``RemoteCallable("module:qualname")`` is imported by the session (``docs/remote-l3-worker-design.md``,
"Worker Identity and Callable Routing"), so these live in an importable module. They mirror the sim's
standard targets (``sim.remote.examples``) and report each invocation to the adapter's observation
directory (its path travels in the environment to the daemon and its sessions), so the parent's record
sees the remote task start, end and fail. The adapter appends ``(worker serial, token)`` as the
last scalars of every next-level submit at L4 and above (:data:`hw_backend.probe.ORCH_TRAILER`).

Chip kernels inside the session (``chain``, ``add_buffers``): a chip callable the parent registered
before ``init()`` is installed on every session's inner Worker (same document, "Inner L3 Worker
registry"), and orchestration code running in the session resolves it by its callable identity with
``simpler.remote_l3_session.get_inner_handle(hashid)`` (the paragraph on inner handles after
bootstrap). The session does not say which hashids it holds, so :func:`_inner_kernel` recomputes the
parent's: the same kernel map the parent's ``rt.kernel`` serves (``TIERBED_HW_KERNELS``, else the
built-in kernels of ``TIERBED_HW_PLATFORM`` / the default platform), hashed by the runtime's own
identity functions with that platform and the kernels' runtime, exactly as ``Worker.register`` does.

The chip tasks a target submits are reported in its observation (``children``) with a scope relative
to the remote L3 (``l3``); the parent's adapter places them under the remote worker that ran it. They
are named as the sim names them: the session's runs in the order they begin (one session process
serves them all), and slot numbers counting its allocs too.
"""

from __future__ import annotations

import functools
import importlib
import itertools
import os
from collections.abc import Mapping
from typing import Any

from hw_backend.probe import ORCH_TRAILER, observed

#: The platform ``HwAPI`` uses when none is named; the session sees the same environment as the parent.
_DEFAULT_PLATFORM = "a2a3sim"
#: Scope of the tasks a target submits, relative to the remote L3 that runs it.
_INNER_SCOPE = "l3"
_N = 64  # elements of the chain's accumulator, as in the sim's ``chain``


def _token(args: Any) -> int | None:
    n = args.scalar_count() if args is not None else 0
    return int(args.scalar(n - 1)) if n >= ORCH_TRAILER else None


def _user_scalars(args: Any) -> int:
    """How many scalars the parent's caller passed (the adapter's trailer excluded)."""
    n = args.scalar_count() if args is not None else 0
    return n - ORCH_TRAILER if n >= ORCH_TRAILER else n


def _kernel_map() -> Mapping[str, Any]:
    spec = os.environ.get("TIERBED_HW_KERNELS")
    if spec:  # the user's map, named the way HwAPI reads it
        module, _, attr = spec.partition(":")
        return getattr(importlib.import_module(module), attr or "KERNELS")
    from hw_backend.kernels import kernel_map

    return kernel_map(os.environ.get("TIERBED_HW_PLATFORM") or _DEFAULT_PLATFORM)


@functools.cache
def _inner_hashid(name: str) -> str:
    from simpler.callable_identity import build_chip_callable_descriptor, compute_callable_hashid

    from hw_backend.kernels import RUNTIME

    platform = os.environ.get("TIERBED_HW_PLATFORM") or _DEFAULT_PLATFORM
    target = _kernel_map()[name]
    # The parent's register hashes the ChipCallable with its chip context (platform, runtime): the same here.
    return compute_callable_hashid(build_chip_callable_descriptor(target=target, platform=platform, runtime=RUNTIME))


def _inner_kernel(name: str) -> Any:
    """The inner Worker's handle of the parent's registration of chip kernel ``name``."""
    from simpler.remote_l3_session import get_inner_handle

    try:
        return get_inner_handle(_inner_hashid(name))
    except KeyError:
        raise RuntimeError(f"chip kernel {name!r} is not installed on this session: register it on the parent "
                           "before init() (and give the remote spec device_ids)") from None


#: This session's runs, numbered in the order they begin.
_RUNS = itertools.count(1)


class _Children:
    """The chip tasks one run of a target submitted, shaped as the adapter's submitted-task entries."""

    def __init__(self, extra: dict[str, Any]) -> None:
        self.run = next(_RUNS)
        self.slots = 0  # task slots taken: submits and allocs
        self.items: list[dict[str, Any]] = extra.setdefault("children", [])

    def alloc(self) -> None:
        self.slots += 1  # an alloc's synthetic producer slot, never reported

    def add(self, name: str, chip: int) -> None:
        self.slots += 1
        self.items.append({"task_id": f"{_INNER_SCOPE}:r{self.run}:t{self.slots}", "scope": _INNER_SCOPE,
                           "level": 3, "kind": "next_level", "callable": name, "tokens": [],
                           "workers": [f"chip{chip}"], "chip": True})


def noop(orch: Any, args: Any, config: Any) -> None:
    """Does nothing: the remote task completes."""
    with observed(_token(args)):
        pass


def fail(orch: Any, args: Any, config: Any) -> None:
    """Raises: the remote task fails (the parent sees a task failure)."""
    with observed(_token(args)):
        raise RuntimeError("remote orchestration task failed on purpose")


def chain(orch: Any, args: Any, config: Any) -> None:
    """Runs ``scalar(0)`` (default 1) dependent ``add`` chip tasks on the inner L3's chip 0.

    Each task rewrites one ``orch.alloc`` accumulator (INOUT), so each depends on the one before; it
    reads a second slab twice rather than naming the accumulator as an input too (the simulator's
    ``chain`` does the same: an overlapping read and write in one task is rejected by the spec).
    Needs ``add`` registered on the parent before ``init()`` and ``device_ids`` on the spec.
    """
    from simpler.task_interface import DataType, TaskArgs, TensorArgType

    with observed(_token(args)) as extra:
        children = _Children(extra)
        add = _inner_kernel("add")
        n = int(args.scalar(0)) if _user_scalars(args) > 0 else 1
        acc = orch.alloc((_N,), DataType.FLOAT32).tensor((_N,), DataType.FLOAT32)
        one = orch.alloc((_N,), DataType.FLOAT32).tensor((_N,), DataType.FLOAT32)
        children.alloc()
        children.alloc()
        for _ in range(n):
            ta = TaskArgs()
            ta.add_tensor(one, TensorArgType.INPUT)
            ta.add_tensor(one, TensorArgType.INPUT)
            ta.add_tensor(acc, TensorArgType.INOUT)
            orch.submit_next_level(add, ta, worker=0)
            children.add("add", 0)


def add_buffers(orch: Any, args: Any, config: Any) -> None:
    """``out = a + b`` on the inner L3's chip 0, over the task's remote tensors ``(a, b, out)``.

    The session hands the parent's ``RemoteTensorRef`` args over as tensors on its own buffers, so the
    chip kernel reads and writes the remote bytes in place (``out`` as OUTPUT_EXISTING: it is the
    caller's buffer, not a new one). Needs ``add`` registered on the parent before ``init()``.
    """
    from simpler.task_interface import TaskArgs, TensorArgType

    with observed(_token(args)) as extra:
        children = _Children(extra)
        add = _inner_kernel("add")
        ta = TaskArgs()
        ta.add_tensor(args.tensor(0), TensorArgType.INPUT)
        ta.add_tensor(args.tensor(1), TensorArgType.INPUT)
        ta.add_tensor(args.tensor(2), TensorArgType.OUTPUT_EXISTING)
        orch.submit_next_level(add, ta, worker=0)
        children.add("add", 0)
