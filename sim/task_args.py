"""``TaskArgs``: the tensors (with dependency tags) and scalars of one task.

Models upstream ``TaskArgs`` (``docs/task-flow.md`` §3 "``TaskArgs`` — one class, four
representations"): the user adds tensors with a :class:`~sim.types.TensorArgType` tag and
scalars in positional order; tags are consumed at submit and stripped before dispatch
("Tags stripped at submit"), so what a SUB callable receives — :class:`TaskArgsView` —
carries numpy views and scalars but no tags.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from sim.errors import InvalidArgument
from sim.tensors import ArgRef, TensorSpec, normalize_tensor
from sim.types import TensorArgType

# A task scalar occupies one 64-bit slot (upstream ``task_args.h``: ``uint64_t scalars[]``; the SLR3
# wire packs each as ``u64``). Local tasks accept either signedness reading of those 64 bits; the
# remote path further requires the unsigned one (``sim.remote.endpoint``).
_SCALAR_MIN = -(1 << 63)
_SCALAR_MAX = (1 << 64) - 1


class TaskArgs:
    """Tensors with tags, and scalars, in the order the callee's signature expects.

    A submit keeps a snapshot of the arguments (tuples), so a TaskArgs can be changed or reused
    once its submit returns.
    """

    __slots__ = ("_refs", "_remote", "_scalars", "_tags", "_views")

    def __init__(self) -> None:
        self._refs: list[ArgRef | TensorSpec] = []  # engine references; ``ref.source`` is what the user passed
        self._tags: list[TensorArgType] = []
        self._scalars: list[int | float] | tuple[()] = ()  # a list from the first scalar on
        self._remote = 0  # how many tensors are RemoteTensorRefs
        # How many tensors are not TensorSpecs (views that may share a backing): the submit-time
        # overlap check (sim.overlap) needs to look only when two of them, or one spec twice, are named.
        self._views = 0

    def add_tensor(self, tensor: Any, tag: TensorArgType = TensorArgType.INPUT) -> None:
        """Append a tensor (numpy array, Tensor, TensorSpec or RemoteTensorRef) tagged ``tag``.

        A ``RemoteTensorRef`` is the one way to pass remote data (upstream
        ``docs/remote-l3-worker-design/buffers-and-transports.md``, "TaskArgs Sidecar Contract").
        """
        if tag.__class__ is not TensorArgType:
            tag = _as_tag(tag, len(self._refs))
        if tensor.__class__ is TensorSpec:  # a spec is its own engine reference
            ref = tensor
        else:
            ref = normalize_tensor(tensor, len(self._refs))
            if ref.__class__ is not TensorSpec:
                self._views += 1
                if ref.remote:
                    self._remote += 1
        self._refs.append(ref)
        self._tags.append(tag)

    def add_scalar(self, value: Any) -> None:
        """Append a scalar (int, float or bool)."""
        if isinstance(value, np.generic):
            value = value.item()
        if not isinstance(value, int | float):
            raise InvalidArgument(
                f"scalar argument {len(self._scalars)} must be an int, float or bool, got {type(value).__name__}")
        if value.__class__ is int and not _SCALAR_MIN <= value <= _SCALAR_MAX:
            raise InvalidArgument(f"scalar argument {len(self._scalars)} does not fit in 64 bits "
                                  f"(task scalars are uint64 slots), got {value!r}")
        if self._scalars.__class__ is tuple:
            self._scalars = []
        self._scalars.append(value)

    def tensor_count(self) -> int:
        return len(self._refs)

    def scalar_count(self) -> int:
        return len(self._scalars)

    def tensor(self, i: int) -> Any:
        return self._refs[i].source

    def tag(self, i: int) -> TensorArgType:
        return self._tags[i]

    def scalar(self, i: int) -> int | float:
        return self._scalars[i]

    def clear(self) -> None:
        self._refs.clear()
        self._tags.clear()
        self._scalars = ()
        self._remote = 0
        self._views = 0

    def __repr__(self) -> str:
        return f"TaskArgs(tensors={len(self._refs)}, scalars={len(self._scalars)})"


def _as_tag(tag: Any, index: int) -> TensorArgType:
    """``tag`` as a TensorArgType, or InvalidArgument naming the tensor argument."""
    if isinstance(tag, TensorArgType):
        return tag
    try:
        return TensorArgType(tag)
    except (ValueError, TypeError):
        raise InvalidArgument(f"tensor argument {index}: {tag!r} is not a TensorArgType") from None


class TaskArgsView:
    """What a callee receives: its tensors and scalars in order, with no tags.

    A SUB callable gets numpy views of its tensors (None in timing-only mode); a nested
    orchestration function at L4+ gets the tensors as they were submitted (arrays, Tensors
    or TensorSpecs), so what it submits onwards keeps the same dependency keys.
    """

    __slots__ = ("_arrays", "_scalars")

    def __init__(self, arrays: list[Any], scalars: list[int | float]) -> None:
        self._arrays = arrays
        self._scalars = scalars

    def tensor_count(self) -> int:
        return len(self._arrays)

    def scalar_count(self) -> int:
        return len(self._scalars)

    def tensor(self, i: int) -> Any:
        """The i-th tensor (see the class docstring for what form it takes)."""
        return self._arrays[i]

    def scalar(self, i: int) -> int | float:
        return self._scalars[i]

    def __repr__(self) -> str:
        return f"TaskArgsView(tensors={len(self._arrays)}, scalars={len(self._scalars)})"
