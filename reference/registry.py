"""Kernels by name: the one registry the simulator and the hw backend share."""

from __future__ import annotations

from reference.errors import UnknownKernelError
from reference.kernel import Kernel

_KERNELS: dict[str, Kernel] = {}


def register_kernel(kernel: Kernel) -> Kernel:
    """Add ``kernel`` to the registry; a second kernel of the same name is a bug."""
    if kernel.name in _KERNELS:
        raise ValueError(f"kernel {kernel.name!r} is already registered")
    _KERNELS[kernel.name] = kernel
    return kernel


def get_kernel(name: str) -> Kernel:
    """The kernel called ``name``; raises :class:`UnknownKernelError` naming the known ones."""
    _load_library()
    try:
        return _KERNELS[name]
    except KeyError:
        known = ", ".join(sorted(_KERNELS))
        raise UnknownKernelError(f"no reference kernel named {name!r}; known kernels: {known}") from None


def kernel_names() -> list[str]:
    """Sorted names of every registered kernel."""
    _load_library()
    return sorted(_KERNELS)


def _load_library() -> None:
    # Importing the kernel modules registers them; done lazily so that
    # `import reference` stays cheap and numba compiles only what is used.
    import reference.kernels  # noqa: F401
