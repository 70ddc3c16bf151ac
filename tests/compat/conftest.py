"""Helpers for the facade tests: small scripts in upstream's style, written into tmp dirs."""

import textwrap
from pathlib import Path

import pytest


@pytest.fixture
def write_script(tmp_path: Path):
    """Write ``body`` (dedented) as a script in tmp_path, with empty kernel sources beside it."""

    def write(body: str, name: str = "main.py") -> Path:
        (tmp_path / "kernels").mkdir(exist_ok=True)
        for src in ("vector_add_kernel.cpp", "vector_add_orch.cpp", "my_orch.cpp"):
            (tmp_path / "kernels" / src).write_text("// stand-in source\n")
        path = tmp_path / name
        path.write_text(textwrap.dedent(body))
        return path

    return write
