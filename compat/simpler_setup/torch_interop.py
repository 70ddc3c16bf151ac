"""``simpler_setup.torch_interop`` on the simulator (upstream ``simpler_setup/torch_interop.py``)."""

from compat.setup_api import make_tensor_arg, torch_dtype_to_datatype

__all__ = ["make_tensor_arg", "torch_dtype_to_datatype"]
