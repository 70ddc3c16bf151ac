"""Without the real runtime, ``--backend hw`` explains how to point tierbed at an installation."""

from __future__ import annotations

import importlib.util

import pytest
from click.testing import CliRunner

from conformance.cli import main


@pytest.mark.skipif(importlib.util.find_spec("simpler") is not None, reason="the real runtime is installed here")
def test_conform_hw_without_simpler_prints_the_install_hint() -> None:
    res = CliRunner().invoke(main, ["conform", "--backend", "hw"])
    assert res.exit_code != 0 and "Traceback" not in res.output
    assert "simpler" in res.output and "pip install" in res.output
