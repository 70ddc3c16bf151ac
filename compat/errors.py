"""The facade's own errors: what a script for the real runtime did that the simulator cannot map.

Errors of the runtime's behaviour come from :mod:`sim.errors` unchanged (they are what the
real runtime would raise, in the simulator's vocabulary); the classes here say what is missing
on the simulator side (an unmapped kernel, an unsupported call) and how to supply it.
"""

from __future__ import annotations


class CompatError(Exception):
    """Base of the facade's errors."""


class KernelMapError(CompatError, ValueError):
    """A kernel map file is malformed, or a built chip callable has no (usable) entry in the map."""


class NotSimulated(CompatError, NotImplementedError):
    """A call of the real runtime's API that the simulator does not model; the message says which."""
