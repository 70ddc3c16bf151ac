"""The table of declared reference kernels: each kernel module adds its kernel here on import.

This module holds only the name -> kernel table and :func:`register_kernel`; it imports no
kernel module, so the kernel modules can declare themselves into it without a cycle. The
lookup by name (:func:`reference.registry.get_kernel`, :func:`reference.registry.kernel_names`)
lives in :mod:`reference.registry`, which loads the kernel library before reading this table.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from reference.kernel import Kernel

KERNELS: dict[str, Kernel] = {}
"""Every declared kernel by name; read it, add to it only through :func:`register_kernel`."""


def register_kernel(kernel: Kernel) -> Kernel:
    """Add ``kernel`` to the table; a second kernel of the same name is a bug."""
    if kernel.name in KERNELS:
        raise ValueError(f"kernel {kernel.name!r} is already registered")
    KERNELS[kernel.name] = kernel
    return kernel
