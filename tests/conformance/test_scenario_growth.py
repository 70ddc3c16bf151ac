"""The scenario format's constructs for generated cases: builtin SUB callables, sub_group submits,
registration after init() and unregistration, alloc steps, zero-worker topologies with init-time
expectations, found: provenance, and scenario_to_yaml. Each runs on the simulator (and the reference
executor where it applies), round-trips through YAML, and fails as a ScenarioError naming file:line:field."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from conformance.judge import Verdict
from conformance.scenario import Scenario, ScenarioError, load_scenario, parse_scenario, scenario_to_yaml
from conformance.scenario_runner import SLOW_SLEEP_CAP_S, builtin_callable, run_scenario

SCENARIOS = Path(__file__).resolve().parents[2] / "conformance" / "scenarios"

# A SUB builtin that fails, its consumer (poisoned), a slow sub_group and a noop.
BUILTINS = """\
scenario: builtins
topology: {name: node, level: 3, device_ids: [0], num_sub_workers: 2}
tensors:
  - {name: a, shape: [16], init: ones}
  - {name: x, shape: [16]}
  - {name: y, shape: [16]}
callables:
  - {name: boom, worker: node, builtin: fail}
  - {name: nap, worker: node, builtin: slow, duration_us: 400}
  - {name: idle, worker: node, builtin: noop}
  - {name: add, worker: node, kernel: add}
program:
  node:
    - {kind: sub, id: f, callable: boom, args: [{tensor: x, tag: OUTPUT}]}
    - {kind: next_level, id: c, callable: add, worker: 0,
       args: [{tensor: x, tag: INPUT}, {tensor: a, tag: INPUT}, {tensor: y, tag: OUTPUT}]}
    - {kind: sub_group, id: g, callable: nap, members: [{args: [{scalar: 1}]}, {args: []}]}
    - {kind: sub, id: i, callable: idle}
expect:
  run: {error: TASK_FAILURE}
  tasks: {f: {failed: TASK_FAILURE}, c: NOT_RUN, g: COMPLETED, i: COMPLETED}
  exact_tasks: true
"""

# A slow builtin alone: its duration is the run's virtual time, less fixed overheads.
SLOW = """\
scenario: slow
topology: {name: node, level: 3, device_ids: [], num_sub_workers: 1}
callables: [{name: nap, worker: node, builtin: slow, duration_us: DUR}]
program: {node: [{kind: sub, id: s, callable: nap}]}
expect: {tasks: {s: COMPLETED}}
"""

# Registration after init(), duplicates, and unregistration before/after init().
REGISTRATION = """\
scenario: registration
topology: {name: node, level: 3, device_ids: [0], num_sub_workers: 1}
tensors: [{name: a, shape: [16], init: ones}, {name: x, shape: [16]}, {name: z, shape: [16]}]
callables:
  - {name: add, worker: node, kernel: add}
  - {name: add_twin, worker: node, kernel: add}
  - {name: late, worker: node, kernel: add, after_init: true}
  - {name: idle, worker: node, builtin: noop}
unregister: [{callable: add, when: before_init}]
program:
  node:
    - {kind: next_level, id: twin, callable: add_twin, worker: 0,
       args: [{tensor: a, tag: INPUT}, {tensor: a, tag: INPUT}, {tensor: x, tag: OUTPUT}]}
    - {kind: next_level, id: late, callable: late, worker: 0,
       args: [{tensor: x, tag: INPUT}, {tensor: a, tag: INPUT}, {tensor: z, tag: OUTPUT}]}
    - {kind: sub, id: idle, callable: idle}
expect:
  tasks: {twin: COMPLETED, late: COMPLETED, idle: COMPLETED}
  exact_tasks: true
  outputs: [x, z]
"""

# An alloc feeds a later task inside a scope; the host output is judged against the reference.
ALLOC = """\
scenario: alloc
topology: {name: node, level: 3, device_ids: [0, 1]}
tensors:
  - {name: a, shape: [16], init: {random: 3}}
  - {name: b, shape: [16], init: arange}
  - {name: y, shape: [16]}
callables: [{name: add, worker: node, kernel: add}, {name: mul, worker: node, kernel: mul}]
program:
  node:
    - {alloc: t, shape: [16], dtype: float32}
    - {kind: next_level, id: produce, callable: add, worker: 0,
       args: [{tensor: a, tag: INPUT}, {tensor: a, tag: INPUT}, {tensor: t, tag: OUTPUT}]}
    - scope:
        - {alloc: u, shape: [16]}
        - {kind: next_level, id: consume, callable: mul, worker: 1,
           args: [{tensor: t, tag: INPUT}, {tensor: b, tag: INPUT}, {tensor: u, tag: OUTPUT}]}
        - {kind: next_level, id: copy_out, callable: add, worker: 0,
           args: [{tensor: u, tag: INPUT}, {tensor: u, tag: INPUT}, {tensor: y, tag: OUTPUT}]}
expect:
  tasks: {produce: COMPLETED, consume: COMPLETED, copy_out: COMPLETED}
  exact_tasks: true
  outputs: [y]
"""

ZERO_L3_SUB_ONLY = """\
scenario: zero-chips
topology: {name: node, level: 3, device_ids: [], num_sub_workers: 1}
callables: [{name: idle, worker: node, builtin: noop}]
program: {node: [{kind: sub, id: s, callable: idle}]}
expect: {tasks: {s: COMPLETED}, exact_tasks: true}
"""

ZERO_L3_EMPTY = """\
scenario: zero-l3
topology: {name: node, level: 3, device_ids: []}
program: {node: []}
expect: {exact_tasks: true}
"""

ZERO_L4_EMPTY = """\
scenario: zero-l4
topology: {name: pod, level: 4, children: []}
program: {pod: []}
expect: {exact_tasks: true}
"""

# A chip kernel on an L3 without chips: init() has no target for it (REG-013).
ZERO_L3_CHIP_KERNEL = """\
scenario: zero-l3-kernel
topology: {name: node, level: 3, device_ids: []}
callables: [{name: add, worker: node, kernel: add}]
program: {node: []}
expect: {init: {error: INVALID_STATE}}
"""

FOUND = """\
scenario: found-case
topology: {name: node, level: 3, device_ids: [0], num_sub_workers: 1}
callables: [{name: idle, worker: node, builtin: noop, duration_us: 5}]
program: {node: [{kind: sub, id: s, callable: idle}]}
expect: {tasks: {s: COMPLETED}}
found:
  by: fuzz
  backend: reference
  version: 1.2.3
  seed: 42
  property: outcomes agree
  observed: {s: FAILED, classes: [TASK_FAILURE], nested: {depth: 2}}
  note: shrunk from 31 steps
"""

ALL = {"builtins": BUILTINS, "slow": SLOW.replace("DUR", "400"), "registration": REGISTRATION, "alloc": ALLOC,
       "zero_l3_sub_only": ZERO_L3_SUB_ONLY, "zero_l3_empty": ZERO_L3_EMPTY, "zero_l4_empty": ZERO_L4_EMPTY,
       "zero_l3_chip_kernel": ZERO_L3_CHIP_KERNEL, "found": FOUND}


def run(text: str, backend: str = "sim") -> object:
    return run_scenario(parse_scenario(text, "growth.yaml"), backend, seed=0)


def passes(text: str, backend: str = "sim") -> object:
    res = run(text, backend)
    assert res.verdict is Verdict.PASS, res.judgment.evidence
    return res


# ------------------------------------------------------------------------------------------ builtins


@pytest.mark.parametrize("backend", ["sim", "reference"])
def test_fail_builtin_fails_its_task_and_poisons_the_consumer(backend: str) -> None:
    rec = passes(BUILTINS, backend).record
    assert rec.tasks["l3:r1:t1"].outcome.value == "FAILED"
    assert rec.tasks["l3:r1:t1"].error_class == "TASK_FAILURE"
    assert rec.tasks["l3:r1:t2"].outcome.value == "NOT_RUN"
    assert rec.tasks["l3:r1:t3"].outcome.value == "COMPLETED"  # the sub_group ran
    # Flip the fail builtin to a noop: the same expectations no longer hold.
    assert run(BUILTINS.replace("builtin: fail", "builtin: noop"), backend).verdict is Verdict.FAIL


def test_slow_builtin_changes_virtual_time() -> None:
    short = passes(SLOW.replace("DUR", "400")).record.metadata["virtual_time_us"]
    long = passes(SLOW.replace("DUR", "4400")).record.metadata["virtual_time_us"]
    assert long - short == pytest.approx(4000, abs=1e-6)


def test_slow_builtin_off_the_simulator_sleeps_at_most_the_cap() -> None:
    fn = builtin_callable("slow", 10e6, "nap", modeled=False)  # ten seconds asked for
    t0 = time.perf_counter()
    fn(None)
    took = time.perf_counter() - t0
    assert SLOW_SLEEP_CAP_S * 0.9 <= took < SLOW_SLEEP_CAP_S + 0.5
    passes(SLOW.replace("DUR", "10000000"), "reference")  # and the scenario still passes there


def test_sub_group_larger_than_the_sub_workers_is_the_runs_error() -> None:
    text = BUILTINS.replace("members: [{args: [{scalar: 1}]}, {args: []}]", "members: [{}, {}, {}]")
    res = run(text)
    assert res.verdict is Verdict.FAIL
    assert any(e["observed"] == "ERROR(INVALID_ARGUMENT)" for e in res.judgment.evidence)


# ------------------------------------------------------------------------------------------ registration


@pytest.mark.parametrize("backend", ["sim", "reference"])
def test_registration_after_init_and_a_duplicate_handle_run(backend: str) -> None:
    res = passes(REGISTRATION, backend)
    np.testing.assert_allclose(res.outputs["z"], np.full(16, 3.0, np.float32))


def test_after_init_registration_happens_after_init() -> None:
    # Only a registration made after init() shows in the trace (the simulation starts at init).
    def registered_after_init(text: str) -> list[str]:
        lines = passes(text).trace_text.splitlines()
        init = next(i for i, ln in enumerate(lines) if ln.split()[1] == "init")
        return [ln for ln in lines[init:] if ln.split()[1] == "register"]

    assert len(registered_after_init(REGISTRATION)) == 1
    assert registered_after_init(REGISTRATION.replace(", after_init: true", "")) == []


@pytest.mark.parametrize("when", ["before_init", "after_init"])
@pytest.mark.parametrize("backend", ["sim", "reference"])
def test_submitting_an_unregistered_callable_is_unknown_callable(when: str, backend: str) -> None:
    text = REGISTRATION.replace("unregister: [{callable: add, when: before_init}]",
                                f"unregister: [{{callable: add_twin, when: {when}}}]")
    assert run(text, backend).verdict is Verdict.FAIL  # the run now fails
    text = text.replace("  tasks: {twin: COMPLETED, late: COMPLETED, idle: COMPLETED}\n  exact_tasks: true\n"
                        "  outputs: [x, z]\n", "  run: {error: UNKNOWN_CALLABLE}\n  exact_tasks: true\n")
    rec = passes(text, backend).record
    assert rec.tasks == {}  # the rejected submit left nothing behind


def test_unregistering_an_after_init_registration() -> None:
    text = REGISTRATION.replace("unregister: [{callable: add, when: before_init}]", "unregister: [{callable: late}]")
    res = run(text)
    assert res.verdict is Verdict.FAIL
    assert any(e["observed"] == "ERROR(UNKNOWN_CALLABLE)" for e in res.judgment.evidence)


# ------------------------------------------------------------------------------------------ alloc


@pytest.mark.parametrize("backend", ["sim", "reference"])
def test_alloc_feeds_a_later_task(backend: str) -> None:
    res = passes(ALLOC, backend)
    a = np.random.default_rng(3).standard_normal(16).astype(np.float32)
    want = 2 * ((a + a) * np.arange(16, dtype=np.float32))
    np.testing.assert_allclose(res.outputs["y"], want, rtol=1e-5, atol=1e-5)
    if backend == "sim":  # allocs take task slots (t1, t3) but are not tasks of the record
        assert sorted(res.record.tasks) == ["l3:r1:t2", "l3:r1:t4", "l3:r1:t5"]
        assert res.record.tasks["l3:r1:t4"].producers == ("l3:r1:t2",)
        assert res.record.tasks["l3:r1:t5"].producers == ("l3:r1:t4",)


# ------------------------------------------------------------------------------------------ zero workers


@pytest.mark.parametrize("text", [ZERO_L3_SUB_ONLY, ZERO_L3_EMPTY, ZERO_L4_EMPTY, ZERO_L3_CHIP_KERNEL],
                         ids=["l3-sub-only", "l3-empty", "l4-empty", "l3-chip-kernel-init-error"])
@pytest.mark.parametrize("backend", ["sim", "reference"])
def test_zero_worker_topologies(text: str, backend: str) -> None:
    passes(text, backend)


def test_an_unexpected_init_error_fails_with_its_class() -> None:
    res = run(ZERO_L3_CHIP_KERNEL.replace("expect: {init: {error: INVALID_STATE}}\n", ""))
    assert res.verdict is Verdict.FAIL
    [bad] = [e for e in res.judgment.evidence if not e["ok"]]
    assert (bad["label"], bad["observed"]) == ("init", "ERROR(INVALID_STATE)")


def test_an_expected_init_error_that_does_not_happen_fails() -> None:
    res = run(ZERO_L3_EMPTY.replace("expect: {exact_tasks: true}", "expect: {init: {error: INVALID_STATE}}"))
    assert res.verdict is Verdict.FAIL
    assert [e["observed"] for e in res.judgment.evidence] == ["OK"]


def test_a_sub_callable_without_sub_workers_is_an_init_error() -> None:
    text = ZERO_L3_SUB_ONLY.replace(", num_sub_workers: 1", "").replace(
        "program: {node: [{kind: sub, id: s, callable: idle}]}\nexpect: {tasks: {s: COMPLETED}, exact_tasks: true}",
        "program: {node: []}\nexpect: {init: {error: INVALID_STATE}}")
    passes(text)
    # Unregistering it before init() leaves init() nothing to reject (REG-014).
    assert run(text + "unregister: [{callable: idle, when: before_init}]\n").verdict is Verdict.FAIL


# ------------------------------------------------------------------------------------------ found:


def test_found_is_kept_and_ignored(tmp_path: Path) -> None:
    from conformance.cli import main

    scn = parse_scenario(FOUND, "found.yaml")
    assert scn.found is not None and scn.found.observed == {"s": "FAILED", "classes": ["TASK_FAILURE"],
                                                            "nested": {"depth": 2}}
    assert scn.found.seed == 42 and scn.found.property == "outcomes agree"
    passes(FOUND)
    f = tmp_path / "found.yaml"
    f.write_text(FOUND)
    out = CliRunner().invoke(main, ["run", str(f), "--backend", "sim"])
    assert out.exit_code == 0, out.output
    assert "PASS" in out.output


# ------------------------------------------------------------------------------------------ round trip


@pytest.mark.parametrize("name", sorted(ALL))
def test_round_trip(name: str) -> None:
    scn = parse_scenario(ALL[name], f"{name}.yaml")
    text = scenario_to_yaml(scn)
    back = parse_scenario(text, "dumped.yaml")
    assert back == scn
    assert scenario_to_yaml(back) == text  # deterministic


@pytest.mark.parametrize("path", sorted(SCENARIOS.glob("*.yaml")), ids=lambda p: p.stem)
def test_round_trip_of_the_shipped_scenarios(path: Path) -> None:
    scn = load_scenario(path)
    assert parse_scenario(scenario_to_yaml(scn), "dumped.yaml") == scn


def test_scenario_to_yaml_of_a_built_model() -> None:
    scn = Scenario.model_validate({
        "scenario": "built", "topology": {"name": "n", "level": 3, "device_ids": [], "num_sub_workers": 1},
        "callables": [{"name": "b", "worker": "n", "builtin": "slow", "duration_us": 3.5, "after_init": True}],
        "program": {"n": [{"alloc": "t", "shape": [4]}, {"kind": "sub_group", "callable": "b",
                                                         "members": [{"args": [{"tensor": "t", "tag": "INPUT"}]}]}]},
        "unregister": [{"callable": "b"}], "expect": {"run": {"error": "UNKNOWN_CALLABLE"}},
        "found": {"by": "hand"}})
    text = scenario_to_yaml(scn)
    assert text.startswith("scenario: built\n")
    assert "device_ids: []" in text
    assert "program:\n  n:\n  - alloc: t\n    shape: [4]\n" in text  # a program without params: its steps
    assert parse_scenario(text, "built.yaml") == scn
    passes(text)


# ------------------------------------------------------------------------------------------ bad input


BAD = [
    (BUILTINS, "builtin: fail}", "builtin: fail, kernel: add}", 8, "callables[0]", "exactly one of kernel:"),
    (BUILTINS, "builtin: slow, duration_us: 400}", "builtin: slow}", 9, "callables[1]", "needs duration_us"),
    (BUILTINS, "builtin: fail}", "builtin: fail, duration_us: 3}", 8, "callables[0]", "not fail"),
    (BUILTINS, "builtin: noop}", "builtin: nope}", 10, "callables[2].builtin", "fail"),
    (BUILTINS, "builtin: noop}", "builtin: noop, runs_on: chip}", 10, "callables[2]", "SUB callable"),
    (BUILTINS, "kind: sub, id: i, callable: idle}", "kind: sub, id: i, callable: add}", 18,
     "program.node[3].callable", "needs a SUB callable"),
    (BUILTINS, "members: [{args: [{scalar: 1}]}, {args: []}]", "members: [{worker: 0}]", 17,
     "program.node[2]", "takes no worker"),
    (BUILTINS, "kind: sub_group, id: g, callable: nap", "kind: group, id: g, callable: add", 17,
     "program.node[2]", "needs worker"),
    (REGISTRATION, "{callable: add, when: before_init}", "{callable: nothing}", 9, "unregister[0].callable",
     "no callable named 'nothing'"),
    (REGISTRATION, "{callable: add, when: before_init}", "{callable: add}, {callable: add, when: before_init}",
     9, "unregister[1].callable", "unregistered twice"),
    (REGISTRATION, "{callable: add, when: before_init}", "{callable: late, when: before_init}", 9,
     "unregister[0].when", "after_init"),
    (REGISTRATION, "{callable: add, when: before_init}", "{callable: add, when: later}", 9,
     "unregister[0].when", "before_init"),
    (ALLOC, "{alloc: u, shape: [16]}", "{alloc: b, shape: [16]}", 14, "program.node[2].scope[0].alloc",
     "already a tensor"),
    (ALLOC, "{alloc: u, shape: [16]}", "{alloc: t, shape: [16]}", 14, "program.node[2].scope[0].alloc",
     "earlier alloc"),
    (ALLOC, "{alloc: u, shape: [16]}", "{alloc: u, shape: []}", 14, "program.node[2].scope[0].shape", "at least 1"),
    (ALLOC + "  tasks2: 1\n", "", "", 23, "expect.tasks2", "tasks"),
    (ALLOC, "outputs: [y]", "outputs: [y]\nunused: 1", 23, "unused", ""),
    (ZERO_L3_EMPTY, "device_ids: []", "num_sub_workers: 1", 2, "topology.device_ids", "[] for none"),
    (ZERO_L3_CHIP_KERNEL, "error: INVALID_STATE", "error: NOPE", 5, "expect.init.error", "unknown error class"),
    (ZERO_L3_CHIP_KERNEL, "{init: {error: INVALID_STATE}}", "{init: {error: INVALID_STATE}, tasks: {x: COMPLETED}}",
     5, "expect.tasks", "nothing runs"),
    (ZERO_L3_SUB_ONLY, ", num_sub_workers: 1", "", 3, "callables[0].worker", "no SUB workers"),
    (FOUND, "  seed: 42", "  seed: forty-two", 10, "found.seed", "integer"),
    (FOUND, "  note: shrunk from 31 steps", "  notes: shrunk", 13, "found.notes", "note"),
]


@pytest.mark.parametrize(("base", "old", "new", "line", "field", "words"), BAD,
                         ids=[f"{b[4]}-{i}" for i, b in enumerate(BAD)])
def test_bad_input_names_file_line_and_field(base: str, old: str, new: str, line: int, field: str,
                                             words: str) -> None:
    text = base.replace(old, new) if old else base
    assert text != base or not old
    with pytest.raises(ScenarioError) as ei:
        parse_scenario(text, "bad.yaml")
    err = ei.value
    assert (err.file, err.line, err.field) == ("bad.yaml", line, field), str(err)
    assert words in err.message, str(err)
    assert str(err).startswith(f"bad.yaml:{line}: {field}: ")


def test_a_program_is_registered_complete_as_a_real_runtime_ships_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """A real runtime sends a registered Python function to the child process as it was when registered, so
    a child's program that submits a callable registered after init() is registered after it too (the
    hw backend otherwise failed such programs with a KeyError: found by tierbed fuzz --backend hw)."""
    import sim.worker

    real = sim.worker.Worker.register
    order: list[str] = []

    def logged(self, target, **kw):  # the order registrations reach the runtime
        order.append(getattr(target, "__name__", None) or getattr(target, "name", "?"))
        return real(self, target, **kw)

    monkeypatch.setattr(sim.worker.Worker, "register", logged)
    text = """
scenario: late-kernel-in-child-program
topology: {name: pod, level: 4, children: [{name: node, level: 3, device_ids: [0]}]}
tensors: [{name: a, shape: [8], init: ones}, {name: b, shape: [8], init: ones}, {name: c, shape: [8]}]
callables: [{name: add, kernel: add, worker: node, after_init: true}]
program:
  node:
    params: [x, y, z]
    steps:
      - {kind: next_level, callable: add, worker: 0,
         args: [{tensor: x, tag: INPUT}, {tensor: y, tag: INPUT}, {tensor: z, tag: OUTPUT}]}
  pod:
    - {kind: next_level, worker: node,
       args: [{tensor: a, tag: INPUT}, {tensor: b, tag: INPUT}, {tensor: c, tag: OUTPUT}]}
expect: {run: OK, outputs: [c]}
"""
    res = run_scenario(parse_scenario(text, "<late>"), "sim")
    assert res.verdict.value == "PASS", res.judgment.summary
    assert order.index("program_node") > order.index("add"), order  # the program ships with the kernel known
