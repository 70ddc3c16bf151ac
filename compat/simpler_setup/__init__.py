"""``simpler_setup`` as ``tierbed exec`` serves it: builds are recorded, not compiled (:mod:`compat.setup_api`)."""

from compat.setup_api import (
    KernelCompiler,
    ensure_pto_isa_root,
    extract_text_section,
    make_tensor_arg,
    torch_dtype_to_datatype,
)

__all__ = ["KernelCompiler", "ensure_pto_isa_root", "extract_text_section", "make_tensor_arg",
           "torch_dtype_to_datatype"]
