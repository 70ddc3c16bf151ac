"""Hostile or broken scenario files fail fast as ``file:line`` errors (exit 2), and ``tierbed run`` has a timeout."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from conformance.cli import main
from conformance.scenario import ScenarioError, load_scenario, parse_scenario
from sim.node import MAX_SCOPE_DEPTH

ROOT = Path(__file__).resolve().parents[2]
PIPELINE = ROOT / "conformance" / "scenarios" / "l3_chip_pipeline.yaml"

HEAD = """\
scenario: s
topology: {name: node, level: 3, device_ids: [0]}
tensors: [{name: a, shape: [1]}]
callables: [{name: add, kernel: add, worker: node}]
program:
  node:
"""
SUBMIT = "{kind: next_level, callable: add, worker: 0, args: [{tensor: a, tag: INOUT}]}"


def _err(text: str) -> ScenarioError:
    with pytest.raises(ScenarioError) as info:
        parse_scenario(text, "bad.yaml")
    assert str(info.value).startswith("bad.yaml:"), str(info.value)
    return info.value


def _bomb(levels: int = 7, fan: int = 9) -> str:
    lines = [f"    - &s0 {SUBMIT}"]
    lines += [f"    - &s{k} {{scope: [{', '.join([f'*s{k - 1}'] * fan)}]}}" for k in range(1, levels + 1)]
    return HEAD + "\n".join(lines) + "\n"


def _nested(depth: int) -> str:
    return HEAD + "    - " + "{scope: [" * depth + SUBMIT + "]}" * depth + "\n"


# ------------------------------------------------------------------------------------------- 1: aliases, depth


def test_alias_bomb_fails_fast_at_the_alias() -> None:
    t0 = time.perf_counter()
    err = _err(_bomb())  # 9**7 submits once expanded: minutes and gigabytes before the bound
    assert time.perf_counter() - t0 < 5
    assert err.line == 11 and "*s3" in err.message and "expands the document beyond" in err.message


def test_small_aliases_still_work() -> None:
    scn = parse_scenario(_bomb(levels=2, fan=3), "ok.yaml")
    assert len(scn.program["node"].steps) == 3


def test_recursive_alias_is_rejected() -> None:
    err = _err(HEAD + "    - &loop {scope: [*loop]}\n")
    assert err.line == 7 and "recursive alias" in err.message


def test_scope_depth_is_bounded() -> None:
    parse_scenario(_nested(MAX_SCOPE_DEPTH), "ok.yaml")
    err = _err(_nested(MAX_SCOPE_DEPTH + 1))
    assert err.line == 7 and f"scope nesting deeper than {MAX_SCOPE_DEPTH}" in err.message


def test_scope_depth_through_aliases_is_bounded() -> None:
    half = MAX_SCOPE_DEPTH // 2 + 1
    text = HEAD + "    - &deep " + "{scope: [" * half + SUBMIT + "]}" * half + "\n"
    text += "    - " + "{scope: [" * half + "*deep" + "]}" * half + "\n"
    assert "scope nesting deeper" in _err(text).message


# ------------------------------------------------------------------------------------------- 2: no tracebacks


def test_three_hundred_nested_scopes_is_an_error_not_a_recursion_error() -> None:
    err = _err(_nested(300))
    assert err.line == 7 and "nested deeper than" in err.message


def test_invalid_utf8_names_file_and_line(tmp_path: Path) -> None:
    p = tmp_path / "latin1.yaml"
    p.write_bytes(HEAD.encode() + b"    - {kind: sub, callable: caf\xe9}\n")
    with pytest.raises(ScenarioError) as info:
        load_scenario(p)
    assert (info.value.file, info.value.line) == (str(p), 7) and "not UTF-8" in info.value.message


@pytest.mark.parametrize("char", ["\x00", "\x07"])
def test_control_characters_name_the_line(char: str) -> None:
    err = _err(HEAD + f"    - {{kind: sub, callable: a{char}b}}\n")
    assert err.line == 7 and "not allowed in YAML" in err.message


# ------------------------------------------------------------------------------------------- 3: duplicate keys


def test_duplicate_keys_are_rejected() -> None:
    err = _err(HEAD + f"    - {SUBMIT}\nexpect: {{run: OK}}\nexpect: {{tasks: {{}}}}\n")
    assert err.line == 9 and "duplicate key 'expect' (also on line 8)" in err.message


def test_duplicate_nested_keys_are_rejected() -> None:
    err = _err(HEAD.replace("level: 3,", "level: 3, level: 4,") + f"    - {SUBMIT}\n")
    assert err.line == 2 and "duplicate key 'level'" in err.message


# ------------------------------------------------------------------------------------------- 4: typos first


def test_typo_beside_a_missing_field_is_reported_first() -> None:
    err = _err(HEAD.replace("{name: node,", "{nme: node,") + f"    - {SUBMIT}\n")
    assert err.field == "topology.nme" and err.message.startswith("unknown field 'nme' (did you mean 'name'?)")


def test_typo_of_an_optional_field_suggests_it() -> None:
    err = _err(HEAD.replace("device_ids:", "devce_ids:") + f"    - {SUBMIT}\n")
    assert err.field == "topology.devce_ids"
    assert err.message == "unknown field 'devce_ids' (did you mean 'device_ids'?)"


# ------------------------------------------------------------------------------------------- exit codes, timeout


def test_cli_bad_files_exit_2(tmp_path: Path) -> None:
    bomb, nul = tmp_path / "bomb.yaml", tmp_path / "nul.yaml"
    bomb.write_text(_bomb())
    nul.write_bytes(HEAD.encode() + b"    - {kind: sub, callable: a\x00}\n")
    for p, line in ((bomb, 11), (nul, 7)):
        res = CliRunner().invoke(main, ["run", str(p)])
        assert res.exit_code == 2 and f"{p}:{line}: " in res.output and "Traceback" not in res.output, res.output


def test_run_timeout_is_verdict_timeout_exit_1() -> None:
    code = ("import sys, time\n"
            "import conformance.scenario_runner as sr\n"
            "sr.run_scenario = lambda *a, **k: time.sleep(60)\n"
            "from conformance.cli import main\n"
            f"main(['run', {str(PIPELINE)!r}, '--timeout', '5'])\n")  # loading fits in 5 s on a busy host
    t0 = time.monotonic()
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert res.returncode == 1, res.stdout + res.stderr
    assert time.monotonic() - t0 < 30
    assert "tierbed run: scenario l3-chip-pipeline" in res.stdout
    assert "verdict     TIMEOUT (no verdict within 5s: stopped)" in res.stdout


def test_run_within_timeout_is_unchanged() -> None:
    res = CliRunner().invoke(main, ["run", str(PIPELINE), "--timeout", "120"])
    assert res.exit_code == 0 and "verdict     PASS" in res.output, res.output
