"""Exit codes of the catalog commands: 0 pass, 1 failures found, 2 usage or invalid input, 130 interrupted."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

from click.testing import CliRunner

from conformance.cli import main

ROOT = Path(__file__).resolve().parents[2]


def test_a_pattern_matching_no_case_is_invalid_input():
    runner = CliRunner()
    res = runner.invoke(main, ["list", "--cases", "NOPE-*"])
    assert res.exit_code == 2 and "no case matches 'NOPE-*'" in res.output
    res = runner.invoke(main, ["conform", "--backend", "sim", "--cases", "NOPE-*"])
    assert res.exit_code == 2 and "no case matches 'NOPE-*'" in res.output
    assert runner.invoke(main, ["list", "--cases", "LVL-001"]).exit_code == 0


def test_ctrl_c_on_conform_writes_the_cases_that_finished(tmp_path):
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "conformance.cli", "conform", "--backend", "sim", "--out", str(out)]
    p = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(8)  # start-up and a few cases of the 145
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=60)
    finally:
        p.kill()
    assert p.returncode == 130, err
    report = json.loads((out / "conformance-sim.json").read_text())
    assert report["run"]["interrupted"] is True
    assert len(report["cases"]) < 145  # what finished before the signal, not the whole catalog
    assert "interrupted:" in err
