"""Composite kernels: a chip callable whose orchestration chains several reference kernels.

Upstream a chip callable is an orchestration function that submits core tasks
(``rt_submit_aiv_task(func_id, ...)``) over its arguments and over intermediates it creates
(``docs/user/reference/python-api.md``, "Callables and task args"). The orchestration of
``examples/a2a3/tensormap_and_ringbuffer/vector_example`` (reused by
``examples/workers/l3/child_memory`` and ``examples/workers/l4/vector_add_mixed_l3``) for
instance computes ``c = a + b``, ``d = c + 1``, ``e = c + 2``, ``g = d * e``, ``f = g + c``.

:func:`composite_kernel` builds one :class:`~reference.kernel.Kernel` from such a chain:
named parameters (the chip callable's signature), and steps that each name a reference kernel,
its tensor arguments (parameters or intermediates) and its scalars. Intermediates take the
shape and dtype of their step's first tensor argument. ``run``/``golden`` execute the steps in
order with the steps' own ``run``/``golden``; the cost is the sum of the steps' costs; the
check runs every step's check on shape-only stand-ins, so a timing-only submit is checked too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from reference.errors import KernelArgError
from reference.kernel import Cost, Direction, Kernel, Param
from reference.registry import get_kernel


@dataclass(frozen=True)
class Step:
    """One core task of a composite: ``kernel`` over named tensors, then scalars."""

    kernel: str
    tensors: tuple[str, ...]
    scalars: tuple[float | int, ...] = ()


@dataclass(frozen=True)
class _Spec:
    shape: tuple[int, ...]
    dtype: np.dtype


def composite_kernel(name: str, params: Sequence[tuple[str, Direction]], steps: Sequence[Step],
                     doc: str = "") -> Kernel:
    """A Kernel named ``name`` with ``params`` that runs ``steps`` in order (see the module docstring).

    Raises :class:`KernelArgError` when a step names an unknown kernel, a tensor that is neither a
    parameter nor an earlier step's output, or the wrong number of tensors or scalars.
    """
    if not steps:
        raise KernelArgError(f"composite {name!r}: needs at least one step")
    names = [p for p, _ in params]
    if len(set(names)) != len(names):
        raise KernelArgError(f"composite {name!r}: repeated parameter name in {names}")
    known = set(names)
    bound: list[tuple[Kernel, Step, list[str]]] = []  # (kernel, step, names it creates)
    for i, step in enumerate(steps):
        try:
            k = get_kernel(step.kernel)
        except Exception as exc:
            raise KernelArgError(f"composite {name!r} step {i}: {exc}") from None
        tensor_params = [p for p in k.params if p.direction.is_tensor]
        scalar_params = [p for p in k.params if not p.direction.is_tensor]
        if len(step.tensors) != len(tensor_params) or len(step.scalars) != len(scalar_params):
            raise KernelArgError(
                f"composite {name!r} step {i}: kernel {k.name!r} takes {len(tensor_params)} tensors and "
                f"{len(scalar_params)} scalars, the step gives {len(step.tensors)} and {len(step.scalars)}")
        created = []
        for t, p in zip(step.tensors, tensor_params, strict=True):
            if t in known:
                continue
            if p.direction.reads:
                raise KernelArgError(f"composite {name!r} step {i}: {t!r} is read before any step writes it")
            created.append(t)
            known.add(t)
        bound.append((k, step, created))
    for p, d in params:
        if d.writes and not any(p in s.tensors for _, s, _ in bound):
            raise KernelArgError(f"composite {name!r}: output parameter {p!r} is written by no step")

    def execute(values: Sequence[Any], how: str) -> None:
        env = dict(zip(names, values, strict=True))
        for k, step, created in bound:
            first = env.get(step.tensors[0])
            for t in created:
                like = first if first is not None else next(env[x] for x in step.tensors if x in env)
                env[t] = (np.zeros(like.shape, like.dtype) if isinstance(like, np.ndarray)
                          else _Spec(tuple(like.shape), np.dtype(like.dtype)))
            args = k.bind([env[t] for t in step.tensors], step.scalars)
            if how == "check":
                k.check(args)
            elif how == "run":
                k.run(args)
            else:
                k.golden(args)

    def check_fn(*values: Any) -> None:
        execute(values, "check")

    def cost_fn(*values: Any) -> Cost:
        env = dict(zip(names, values, strict=True))
        flops, rd, wr = 0.0, 0, 0
        for k, step, created in bound:
            like = env[step.tensors[0]]
            for t in created:
                env[t] = _Spec(tuple(like.shape), np.dtype(like.dtype))
            c = k.cost(k.bind([env[t] for t in step.tensors], step.scalars))
            flops, rd, wr = flops + c.flops, rd + c.bytes_read, wr + c.bytes_written
        return Cost(flops=flops, bytes_read=rd, bytes_written=wr)

    tolerances: dict[str, tuple[float, float]] = {}
    for k, _, _ in bound:
        for dt, (rtol, atol) in k.tolerances.items():
            r0, a0 = tolerances.get(dt, (0.0, 0.0))
            tolerances[dt] = (r0 + rtol, max(a0, atol))
    last_dtypes = bound[0][0].dtypes
    return Kernel(
        name=name, params=tuple(Param(p, d) for p, d in params),
        run_fn=lambda *v: execute(v, "run"), golden_fn=lambda *v: execute(v, "golden"),
        check_fn=check_fn, cost_fn=cost_fn, tolerances=tolerances,
        doc=doc or " ; ".join(f"{s.kernel}({', '.join(s.tensors)}{''.join(f', {x}' for x in s.scalars)})"
                              for _, s, _ in bound),
        dtypes=last_dtypes,
    )
