"""``simpler_setup.kernel_compiler`` on the simulator (upstream ``simpler_setup/kernel_compiler.py``)."""

from compat.setup_api import KernelCompiler

__all__ = ["KernelCompiler"]
