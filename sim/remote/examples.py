"""Importable remote L3 orchestration functions for cases and tests (``RemoteCallable`` targets).

A ``RemoteCallable("module:qualname")`` is resolved on the session by importing its target
(upstream ``docs/remote-l3-worker-design.md``, "Worker Identity and Callable Routing"), so the
functions a case sends to a remote L3 must live in an importable module. These are small,
documented ones: ``sim.remote.examples:noop`` and so on.
"""

from __future__ import annotations

from typing import Any

from sim.remote.session import find_inner_handle
from sim.task_args import TaskArgs
from sim.types import TensorArgType


def noop(orch: Any, args: Any, config: Any) -> None:
    """Does nothing: the remote task completes after the session's run overheads."""


def fail(orch: Any, args: Any, config: Any) -> None:
    """Raises: the remote task completes with a non-zero error code (TASK_FAILURE)."""
    raise RuntimeError("remote orchestration function failed on purpose")


def chain(orch: Any, args: Any, config: Any) -> None:
    """Runs ``args.scalar(0)`` (default 1) dependent ``add`` chip tasks on the inner L3's chip 0.

    Each task rewrites one accumulator (INOUT, so each depends on the one before) from a second
    buffer it reads twice; the accumulator is not also named as an input, as a read of bytes the
    same task writes is rejected at submit (``docs/buffer-abi.md``, "No overlapping writes within
    one task"). Needs the parent to have registered the reference ``add`` kernel before
    ``init()`` (it is installed on every session's inner Worker) and the remote spec to have
    ``device_ids``.
    """
    add = find_inner_handle("add")
    n = int(args.scalar(0)) if args.scalar_count() else 1
    acc = orch.alloc((64,), "float32").tensor((64,), "float32")
    one = orch.alloc((64,), "float32").tensor((64,), "float32")
    for _ in range(n):
        ta = TaskArgs()
        ta.add_tensor(one, TensorArgType.INPUT)
        ta.add_tensor(one, TensorArgType.INPUT)
        ta.add_tensor(acc, TensorArgType.INOUT)
        orch.submit_next_level(add, ta, worker=0)


def add_buffers(orch: Any, args: Any, config: Any) -> None:
    """``out = a + b`` on the inner L3's chip 0, over the task's remote tensors ``(a, b, out)``.

    The parent passes remote data with ``TaskArgs.add_tensor(RemoteTensorRef(handle, ...), tag)``
    (``a`` and ``b`` INPUT, ``out`` OUTPUT); the session hands them over as tensors on its own
    buffers (an owner allocation or an imported window), so the chip kernel reads and writes the
    remote bytes in place. Needs the reference ``add`` kernel registered on the parent before
    ``init()`` and ``device_ids`` on the remote spec.
    """
    add = find_inner_handle("add")
    ta = TaskArgs()
    ta.add_tensor(args.tensor(0), TensorArgType.INPUT)
    ta.add_tensor(args.tensor(1), TensorArgType.INPUT)
    ta.add_tensor(args.tensor(2), TensorArgType.OUTPUT_EXISTING)
    orch.submit_next_level(add, ta, worker=0)


def global_tload(orch: Any, args: Any, config: Any) -> None:
    """Ranks of a peer-TLOAD sum over a Global CommDomain: on chip ``args.scalar(1)``, or on every chip
    of this node in the domain when the task carries the domain id alone.

    ``args.scalar(0)`` is the domain id the L4 allocated (``orch.allocate_global_domain``); the
    committed view of this node gives each rank's context, whose ``input`` and ``result`` window
    buffers (256 float32 each) feed the callable named ``global_tload`` (a collective over
    ``(input, result)`` with scalars ``(rank count, device_ctx)``), which the parent registered
    before ``init()``. The shape of upstream ``examples/workers/l4/global_tload_mixed_l3``. A
    session runs its TASKs one at a time, so ranks of one node that must meet in one collective go
    in one task.
    """
    tload = find_inner_handle("global_tload")
    view = orch.get_global_domain(int(args.scalar(0)))
    chips = [int(args.scalar(1))] if args.scalar_count() > 1 else sorted(view.contexts)
    for chip in chips:
        ctx = view[chip]
        ta = TaskArgs()
        ta.add_tensor(ctx.buffers["input"].tensor((256,), "float32"), TensorArgType.INPUT)
        ta.add_tensor(ctx.buffers["result"].tensor((256,), "float32"), TensorArgType.OUTPUT_EXISTING)
        ta.add_scalar(ctx.domain_size)
        ta.add_scalar(ctx.device_ctx)
        orch.submit_next_level(tload, ta, worker=chip)
