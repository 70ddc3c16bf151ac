"""``simpler_setup.pto_isa`` on the simulator (upstream ``simpler_setup/pto_isa.py``)."""

from compat.setup_api import ensure_pto_isa_root

__all__ = ["ensure_pto_isa_root"]
