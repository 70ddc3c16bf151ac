"""``simpler_setup`` as ``tierbed exec`` serves it: builds are recorded, not compiled (:mod:`compat.setup_api`)."""

from compat.setup_api import (
    KernelCompiler,
    ensure_pto_isa_root,
    extract_text_section,
    make_tensor_arg,
    torch_dtype_to_datatype,
)
from sim.identity.canonical import platform_target_arch

__all__ = ["KernelCompiler", "ensure_pto_isa_root", "extract_text_section", "make_tensor_arg", "parse_platform",
           "torch_dtype_to_datatype"]


def parse_platform(platform: str) -> tuple[str, str]:
    """``(arch, variant)`` of a platform id: ``"a2a3sim"`` -> ``("a2a3", "sim")``, ``"a5"`` -> ``("a5",
    "onboard")`` (upstream ``simpler_setup/platform_info.py``); an unknown one raises ``ValueError``."""
    if not platform:
        raise ValueError(f"Unknown platform: {platform!r}")
    arch = platform_target_arch(platform)  # the simulator's platform table (InvalidArgument is a ValueError)
    return arch, "sim" if platform.endswith("sim") else "onboard"
