"""YAML scenarios: the examples pass, bad files fail naming file/line/field, the schema stays in sync."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from conformance.cli import main
from conformance.judge import Verdict
from conformance.scenario import SCHEMA_FILE, ScenarioError, load_scenario, parse_scenario, schema_text
from conformance.scenario_runner import run_scenario

SCENARIOS = Path(__file__).resolve().parents[2] / "conformance" / "scenarios"
PIPELINE = SCENARIOS / "l3_chip_pipeline.yaml"
CRASH = SCENARIOS / "l4_two_l3_session_crash.yaml"


@pytest.mark.parametrize(("path", "backend", "verdict"), [
    (PIPELINE, "sim", Verdict.PASS),
    (PIPELINE, "reference", Verdict.PASS),
    (CRASH, "sim", Verdict.PASS),
    (CRASH, "reference", Verdict.NOT_SUPPORTED),
])
def test_examples(path: Path, backend: str, verdict: Verdict) -> None:
    res = run_scenario(path, backend, seed=0)
    assert res.verdict is verdict, res.judgment.evidence
    if verdict is Verdict.PASS:
        assert all(e["ok"] for e in res.judgment.evidence)


def test_crash_example_observes_the_fault() -> None:
    rec = run_scenario(CRASH, "sim").record
    assert rec.tasks["l4:r1:t2"].error_class == "ENDPOINT_FAILURE"
    assert rec.tasks["l4:r1:t1"].outcome.value == "COMPLETED"


def test_reference_and_sim_outputs_agree() -> None:
    sim, ref = run_scenario(PIPELINE, "sim"), run_scenario(PIPELINE, "reference")
    for name in ("x", "y", "y_check"):
        np.testing.assert_allclose(sim.outputs[name], ref.outputs[name], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(sim.outputs["y"], sim.outputs["y_check"], rtol=1e-5, atol=1e-6)
    assert np.any(sim.outputs["y"] != 0)


def test_a_wrong_expectation_fails() -> None:
    text = PIPELINE.read_text().replace("check: COMPLETED}", "check: {failed: TASK_FAILURE}}")
    res = run_scenario(parse_scenario(text, "edited.yaml"), "sim")
    assert res.verdict is Verdict.FAIL
    assert [e["label"] for e in res.judgment.evidence if not e["ok"]] == ["l3:r1:t3"]


def test_committed_schema_is_current() -> None:
    assert SCHEMA_FILE.read_text(encoding="utf-8") == schema_text()
    schema = json.loads(schema_text())
    assert schema["additionalProperties"] is False
    assert {"topology", "program"} <= set(schema["required"])


GOOD = """\
scenario: tiny
topology: {name: node, level: 3, device_ids: [0, 1], num_sub_workers: 1}
tensors:
  - {name: a, shape: [8], init: ones}
  - {name: out, shape: [8]}
callables:
  - {name: add, kernel: add, worker: node}
program:
  node:
    - kind: next_level
      callable: add
      worker: 1
      args:
        - {tensor: a, tag: INPUT}
        - {tensor: a, tag: INPUT}
        - {tensor: out, tag: OUTPUT}
expect:
  outputs: [out]
"""


def _bad(old: str, new: str) -> ScenarioError:
    assert old in GOOD
    with pytest.raises(ScenarioError) as info:
        parse_scenario(GOOD.replace(old, new, 1), "bad.yaml")
    return info.value


def test_good_tiny_file_loads_and_runs() -> None:
    res = run_scenario(parse_scenario(GOOD, "tiny.yaml"), "sim")
    assert res.verdict is Verdict.PASS
    np.testing.assert_array_equal(res.outputs["out"], np.full(8, 2.0, np.float32))


@pytest.mark.parametrize(("old", "new", "line", "field", "words"), [
    ("shape: [8], init: ones}", "shape: [8], init: ones", 5, "", "YAML syntax error"),
    ("      worker: 1\n", "      worker: 1\n      colour: red\n", 13, "program.node[0].colour", "unknown field"),
    ("shape: [8], init: ones", 'shape: "eight", init: ones', 4, "tensors[0].shape", "valid list"),
    ("kernel: add,", "kernel: no_such_kernel,", 7, "callables[0].kernel", "unknown reference kernel"),
    ("      worker: 1\n", "      worker: 5\n", 12, "program.node[0].worker", "chip index 0..1"),
    ("{tensor: out, tag: OUTPUT}", "{tensor: out, tag: OUTPUT_ONLY}", 16, "program.node[0].args[2].tag",
     "'INPUT'"),
    ("callable: add\n", "callable: sub_thing\n", 11, "program.node[0].callable", "no callable named"),
    ("worker: node}", "worker: pod}", 7, "callables[0].worker", "no worker named"),
    ("level: 3,", "level: 9,", 2, "topology.level", "less than or equal"),
])
def test_bad_files_name_file_line_and_field(old: str, new: str, line: int, field: str, words: str) -> None:
    err = _bad(old, new)
    assert (err.file, err.line, err.field) == ("bad.yaml", line, field), str(err)
    assert words in err.message
    assert str(err).startswith(f"bad.yaml:{line}: ")


def test_missing_field_is_named() -> None:
    err = _bad("      callable: add\n", "")
    assert (err.line, err.field) == (10, "program.node[0].callable")


def test_load_scenario_names_the_path(tmp_path: Path) -> None:
    p = tmp_path / "s.yaml"
    p.write_text(GOOD.replace("tag: INPUT}", "tag: IN}", 1))
    with pytest.raises(ScenarioError) as info:
        load_scenario(p)
    assert (info.value.file, info.value.line, info.value.field) == (str(p), 14, "program.node[0].args[0].tag")


def test_cli_run_and_schema(tmp_path: Path) -> None:
    runner = CliRunner()
    trace = tmp_path / "trace.txt"
    res = runner.invoke(main, ["run", str(PIPELINE), "--trace-out", str(trace)])
    assert res.exit_code == 0, res.output
    assert "verdict     PASS" in res.output and trace.read_text().strip()
    bad = tmp_path / "bad.yaml"
    bad.write_text(GOOD.replace("kernel: add,", "kernel: nope,"))
    res = runner.invoke(main, ["run", str(bad)])
    assert res.exit_code == 2 and f"{bad}:7: callables[0].kernel" in res.output  # invalid input, not a failure
    res = runner.invoke(main, ["run", str(tmp_path / "missing.yaml")])
    assert res.exit_code == 2 and "cannot read the scenario file" in res.output
    failing = tmp_path / "failing.yaml"
    failing.write_text(PIPELINE.read_text().replace("check: COMPLETED}", "check: NOT_RUN}"))
    res = runner.invoke(main, ["run", str(failing)])
    assert res.exit_code == 1 and "verdict     FAIL" in res.output
    out = tmp_path / "schema.json"
    assert runner.invoke(main, ["scenario-schema", "--out", str(out)]).exit_code == 0
    assert out.read_text() == schema_text()
