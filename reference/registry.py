"""Kernels by name: the one registry the simulator and the hw backend share.

The lookup side of the registry: :func:`get_kernel` and :func:`kernel_names` load the kernel
library (:mod:`reference.kernels`, whose modules declare themselves into
:mod:`reference.kernel_table`) and read the table. :func:`register_kernel` is re-exported
from :mod:`reference.kernel_table`.
"""

from __future__ import annotations

from reference.errors import UnknownKernelError
from reference.kernel import Kernel
from reference.kernel_table import KERNELS, register_kernel

__all__ = ["get_kernel", "kernel_names", "register_kernel"]


def get_kernel(name: str) -> Kernel:
    """The kernel called ``name``; raises :class:`UnknownKernelError` naming the known ones."""
    _load_library()
    try:
        return KERNELS[name]
    except KeyError:
        known = ", ".join(sorted(KERNELS))
        raise UnknownKernelError(f"no reference kernel named {name!r}; known kernels: {known}") from None


def kernel_names() -> list[str]:
    """Sorted names of every registered kernel."""
    _load_library()
    return sorted(KERNELS)


def _load_library() -> None:
    # Importing the kernel modules registers them; done lazily so that
    # `import reference` stays cheap and numba compiles only what is used.
    import reference.kernels  # noqa: F401
