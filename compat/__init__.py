"""tierbed's front door: code written for the real runtime runs unchanged on the simulator.

``compat.simpler`` and ``compat.simpler_setup`` mirror upstream's module names
(``python/simpler/*.py``, ``simpler_setup/*.py``) over :mod:`sim` and :mod:`reference`; the import
hook (:mod:`compat.hook`) serves them as ``simpler`` / ``simpler_setup`` to a script run by
:func:`exec_script` (``tierbed exec``). A built ``ChipCallable`` becomes a reference kernel through
the kernel map (:mod:`compat.kernel_map`). This room imports ``sim`` and ``reference``; neither
imports it.
"""

from compat.errors import CompatError, KernelMapError, NotSimulated
from compat.hook import facade_imports, install, uninstall
from compat.kernel_map import KernelMap, load_kernel_map
from compat.runner import ExecUsageError, exec_script
from compat.session import Session, current_session, session_scope

__all__ = ["CompatError", "ExecUsageError", "KernelMap", "KernelMapError", "NotSimulated", "Session",
           "current_session", "exec_script", "facade_imports", "install", "load_kernel_map", "session_scope",
           "uninstall"]
