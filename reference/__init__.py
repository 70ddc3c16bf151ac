"""tierbed's reference backend: kernels, goldens, cost descriptors and the functional executor.

The numerical oracle of tierbed (see ``DESIGN.md``, "The four rooms").
"""

from reference.errors import KernelArgError, UnknownKernelError
from reference.kernel import Cost, Direction, Kernel, Param
from reference.registry import get_kernel, kernel_names

__all__ = ["Cost", "Direction", "Kernel", "KernelArgError", "Param", "UnknownKernelError", "get_kernel",
           "kernel_names"]
