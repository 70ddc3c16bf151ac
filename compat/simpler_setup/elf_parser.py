"""``simpler_setup.elf_parser`` on the simulator (upstream ``simpler_setup/elf_parser.py``)."""

from compat.setup_api import extract_text_section

__all__ = ["extract_text_section"]
