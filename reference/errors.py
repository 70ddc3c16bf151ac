"""Errors raised by the reference backend (one hierarchy for this room).

:class:`KernelArgError` is also the simulator's :class:`sim.kernel_spec.KernelArgError`, the
error a chip kernel raises for bad arguments, so the simulator recognises it at submit.
"""

from sim.kernel_spec import KernelArgError as ChipKernelArgError


class ReferenceBackendError(Exception):
    """Base class of every error the reference backend raises."""


class KernelArgError(ReferenceBackendError, ChipKernelArgError):
    """A kernel was given arguments of the wrong count, kind, shape or dtype."""


class UnknownKernelError(ReferenceBackendError, KeyError):
    """No kernel of that name is in the registry."""

    def __str__(self) -> str:  # KeyError quotes its argument; keep the message readable
        return str(self.args[0]) if self.args else ""
