"""Host objects a script hands the runtime, as numpy arrays over the same memory.

Upstream takes torch tensors (``make_tensor_arg``, L2 ``copy_to``/``copy_from``), ctypes
arrays and other buffer-protocol objects (``docs/user/reference/python-api.md``, "Memory").
The simulator works on numpy: a CPU torch tensor becomes ``tensor.numpy()`` (shared storage, so
a kernel's writes show in the tensor), bfloat16 through a bit-cast to ``ml_dtypes.bfloat16``.
torch is optional: nothing here imports it; a torch tensor is recognised by its type's module.
"""

from __future__ import annotations

from typing import Any

import ml_dtypes
import numpy as np

from sim.errors import InvalidArgument


def is_torch_tensor(obj: Any) -> bool:
    return type(obj).__module__.startswith("torch") and hasattr(obj, "untyped_storage")


def torch_to_numpy(t: Any) -> np.ndarray:
    """A CPU, contiguous torch tensor as a numpy array sharing its memory."""
    if t.device.type != "cpu":
        raise InvalidArgument(f"a torch tensor must be on the CPU, got device={t.device}")
    if not t.is_contiguous():
        raise InvalidArgument("a torch tensor must be contiguous; call tensor.contiguous() first")
    name = str(t.dtype).removeprefix("torch.")
    if name == "bfloat16":
        import torch  # present: t is a torch tensor

        return t.view(torch.int16).numpy().view(ml_dtypes.bfloat16)
    try:
        return t.detach().numpy()
    except (TypeError, RuntimeError) as exc:
        raise InvalidArgument(f"torch dtype {t.dtype} has no numpy equivalent: {exc}") from None


def as_host(obj: Any) -> Any:
    """``obj`` with a torch tensor replaced by its numpy view; anything else unchanged."""
    return torch_to_numpy(obj) if is_torch_tensor(obj) else obj


def as_host_array(obj: Any) -> Any:
    """Like :func:`as_host`, and a buffer-protocol object (ctypes array, ...) as a flat uint8 view of it."""
    obj = as_host(obj)
    if isinstance(obj, np.ndarray | bytes | bytearray | memoryview):
        return obj
    try:
        view = memoryview(obj)
    except TypeError:
        return obj  # a Buffer, Tensor or anything else: the simulator says what it accepts
    return np.frombuffer(view.cast("B"), dtype=np.uint8)
