"""Exit codes of the catalog commands: 0 pass, 1 failures found, 2 usage or invalid input, 130 interrupted."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
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


# --------------------------------------------------------------- output that cannot be written: exit 2, no work


@pytest.mark.parametrize("args", [
    ["demo", "--out", "{f}/sub"],
    ["conform", "--backend", "sim", "--cases", "LVL-001", "--out", "{f}/sub"],
    ["report", "{f}", "--out", "{f}/sub"],
    ["campaign", str(ROOT / "conformance" / "scenarios" / "l4_remote_faults.yaml"), "--seeds", "0:2", "--inline",
     "--out", "{f}/sub"],
    ["fuzz", "--examples", "1", "--inline", "--out", "{f}/sub"],
    ["scenario-schema", "--out", "{f}/schema.json"],
    ["run", str(ROOT / "conformance" / "scenarios" / "l4_remote_faults.yaml"), "--trace-out", "{f}/t.txt"],
    ["exec", "--trace-out", "{f}/d", "script.py"],
])
def test_an_output_path_that_cannot_be_written_is_refused_before_any_work(tmp_path: Path, args: list[str]) -> None:
    blocker = tmp_path / "a-file"  # a path under a regular file can never be created
    blocker.write_text("", encoding="utf-8")
    res = CliRunner().invoke(main, [a.format(f=blocker) for a in args])
    assert res.exit_code == 2, res.output
    assert f"{blocker} is not a directory" in res.output and "Traceback" not in res.output
    assert "tierbed " not in res.output.split("Error:")[0]  # no summary: nothing ran before the check
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]


def test_an_output_directory_is_probed_without_leaving_anything_behind(tmp_path: Path) -> None:
    from conformance.usage import unwritable_dir

    assert unwritable_dir(tmp_path / "new" / "deeper") is None
    assert unwritable_dir(tmp_path) is None
    assert list(tmp_path.iterdir()) == []  # neither the probe directory nor the probe file is left


def test_a_backend_that_is_not_installed_is_invalid_input_for_conform(tmp_path: Path) -> None:
    from conformance.backends import BackendUnavailable, get_backend

    try:
        get_backend("hw", 0)
    except BackendUnavailable:
        pass
    else:
        pytest.skip("the real runtime is installed here: the hw backend is available")
    res = CliRunner().invoke(main, ["conform", "--backend", "hw", "--cases", "LVL-001", "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and "simpler" in res.output, res.output
    assert not (tmp_path / "o").exists()


# ------------------------------------------------------------ invariants are a sim/hw feature: not on reference


def test_a_scenario_with_invariants_on_reference_is_refused_alone_and_not_supported_in_a_corpus(
        tmp_path: Path) -> None:
    kept = sorted((ROOT / "corpus" / "hw").glob("*.yaml"))[0]  # a kept departure, with invariants:
    res = CliRunner().invoke(main, ["run", str(kept), "--backend", "reference"])
    assert res.exit_code == 2 and "invariants are checked on sim and hw only" in res.output, res.output
    assert "checks" not in res.output  # refused before the run
    corpus = tmp_path / "c"
    corpus.mkdir()
    (corpus / kept.name).write_text(kept.read_text(encoding="utf-8"), encoding="utf-8")
    res = CliRunner().invoke(main, ["run", str(corpus), "--backend", "reference"])
    assert res.exit_code == 0, res.output
    assert "NOT_SUPPORTED" in res.output and "invariants are checked on sim and hw only" in res.output


def test_ctrl_c_while_the_cli_is_still_importing_exits_130_without_a_traceback() -> None:
    # A Ctrl-C lands in the first second or two, while the console script imports the CLI: made certain
    # here by an import hook that raises it when conformance.cli is imported.
    code = ("import sys\n"
            "class Interrupt:\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            "        if name == 'conformance.cli':\n"
            "            raise KeyboardInterrupt\n"
            "sys.meta_path.insert(0, Interrupt())\n"
            "from conformance.entry import run\n"
            "run()\n")
    r = subprocess.run([sys.executable, "-c", code, "demo"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 130 and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.strip() == "interrupted"


def test_ctrl_c_in_a_command_that_does_not_handle_it_exits_130(monkeypatch, tmp_path: Path) -> None:
    import conformance.cli as cli

    def interrupted(cfg):  # a Ctrl-C that lands while the demo runs (a signal cannot be timed there)
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "run_demo", interrupted)
    res = CliRunner().invoke(main, ["demo", "--out", str(tmp_path / "d")])
    assert res.exit_code == 130 and "interrupted" in res.output, res.output
