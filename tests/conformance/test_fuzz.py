"""tierbed fuzz: the search, shrinking, the corpus it writes, replay, isolation and bad input.

A departure is planted into a real part (the simulator's ``mul`` chip kernel computes a wrong
value), never faked in the checker: the fuzzer must find it through the differential with the
reference executor, shrink it, write it as a scenario file that fails on replay with the plant
and passes without it, and recognise it in the corpus on the next run.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from conformance.fuzz import isolate
from conformance.fuzz.api import FuzzInputError, run_fuzz
from conformance.generators.limits import limits_for
from conformance.scenario import load_scenario
from conformance.scenario_runner import run_scenario
from reference.kernel import Kernel

ROOT = Path(__file__).resolve().parents[2]
#: Fault-free, honest programs: the planted kernel's bytes are judged in every example that runs it.
HONEST = limits_for("sim").with_(chaos=0.0, remote=False, builtins=False, registration=False)


@pytest.fixture
def wrong_mul(monkeypatch: pytest.MonkeyPatch) -> None:
    """The simulator's chip ``mul`` (the numba path; the reference executor runs the numpy golden) adds one."""
    real = Kernel.run

    def run(self: Kernel, values: list) -> None:
        real(self, values)
        if self.name == "mul":
            values[-1][...] += 1

    monkeypatch.setattr(Kernel, "run", run)


def test_a_clean_simulator_gives_no_departure_and_every_example_is_reported(tmp_path: Path) -> None:
    rep = run_fuzz("sim", examples=40, seed=3, inline=True, corpus=tmp_path / "corpus", out=tmp_path / "out")
    assert rep.findings == [] and not rep.failing
    assert rep.examples == 40
    summary = json.loads((tmp_path / "out" / "fuzz.json").read_text())
    assert summary["examples"] == 40 and summary["findings"] == []
    rows = pq.read_table(tmp_path / "out" / "examples.parquet").to_pylist()
    assert len(rows) == 40 and {r["departure"] for r in rows} == {False}
    assert not (tmp_path / "corpus").exists()  # nothing found, nothing written


def test_one_seed_gives_one_sequence_of_examples(tmp_path: Path) -> None:
    a = run_fuzz("sim", examples=15, seed=11, inline=True)
    b = run_fuzz("sim", examples=15, seed=11, inline=True)
    c = run_fuzz("sim", examples=15, seed=12, inline=True)
    key = [(r["sim_run"], r["tasks"], r["faults"]) for r in a.rows]
    assert key == [(r["sim_run"], r["tasks"], r["faults"]) for r in b.rows]
    assert key != [(r["sim_run"], r["tasks"], r["faults"]) for r in c.rows]


def test_a_planted_departure_is_found_shrunk_kept_and_replayed(tmp_path: Path, wrong_mul: None,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    corpus = tmp_path / "corpus"
    rep = run_fuzz("sim", examples=150, seed=1, inline=True, corpus=corpus, limits=HONEST, faults=False)
    assert len(rep.findings) == 1, [f.lines for f in rep.findings]
    finding, path = rep.findings[0]
    assert finding.lines[0].startswith("sim outputs: tensor ")
    assert path is not None and path.exists()
    # Shrunk: one chip task of the planted kernel is all it takes.
    scn = load_scenario(path)
    assert [c.kernel for c in scn.callables] == ["mul"]
    assert len(scn.expect.tasks) <= 2 and scn.expect.outputs  # a root program draws at least two steps
    assert scn.found is not None and scn.found.signature == finding.signature and scn.found.backend == "sim"
    # Replays: fails with the plant, passes on the real kernel.
    assert run_scenario(path, "sim").verdict.value == "FAIL"
    # The next run knows it: the corpus case still departs, and it is not written twice.
    again = run_fuzz("sim", examples=30, seed=2, inline=True, corpus=corpus, limits=HONEST, faults=False)
    assert [(c.name, c.departs) for c in again.corpus] == [(scn.scenario, True)]
    assert all(f.signature != finding.signature for f, _ in again.findings)
    assert again.failing
    monkeypatch.undo()
    assert run_scenario(path, "sim").verdict.value == "PASS"
    # The corpus is a test suite: conform and pytest collect the kept case (in processes without the plant).
    r = subprocess.run([sys.executable, "-m", "conformance.cli", "conform", "--backend", "sim", "--no-catalog",
                        "--scenarios", str(corpus), "--out", str(tmp_path / "reports")],
                       capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert r.returncode == 0 and "PASS" in r.stdout, r.stdout + r.stderr
    run_json = json.loads(next((tmp_path / "reports").glob("*.json")).read_text())
    assert [(c["id"], c["verdict"]) for c in run_json["cases"]] == [(scn.scenario, "PASS")]
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--tierbed-backend=sim",
                        "--tierbed-no-catalog", str(corpus)], capture_output=True, text=True, cwd=tmp_path,
                       timeout=300)
    assert r.returncode == 0 and "1 passed" in r.stdout, r.stdout + r.stderr
    fixed = run_fuzz("sim", examples=5, seed=2, inline=True, corpus=corpus, limits=HONEST, faults=False)
    assert [c.departs for c in fixed.corpus] == [False] and not fixed.failing


def test_a_corrupt_corpus_file_is_a_clear_input_error(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "bad.yaml").write_text("scenario: x\ntopology: {name: n, level: 3, device_ids: [0]}\n"
                                     "program:\n  n:\n    - {kind: next_level, worker: 0, callable: nope}\n")
    with pytest.raises(FuzzInputError, match=r"bad\.yaml:5: .*nope"):
        run_fuzz("sim", examples=5, inline=True, corpus=corpus)
    r = subprocess.run([sys.executable, "-m", "conformance.cli", "fuzz", "--examples", "5", "--inline",
                        "--corpus", str(corpus), "--out", str(tmp_path / "out")],
                       capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert r.returncode == 2, r.stderr
    assert "bad.yaml:5" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "out").exists()  # nothing half-done


def test_an_expectations_file_is_checked_even_without_a_corpus_case(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("backend: sim\ndepartures: [\n", encoding="utf-8")
    for corpus in (None, tmp_path / "empty"):  # no corpus, and a corpus with nothing in it yet
        with pytest.raises(FuzzInputError, match=r"bad\.yaml:3"):
            run_fuzz("sim", examples=1, inline=True, corpus=corpus, expectations=[bad])


def test_a_case_kept_from_another_backend_is_not_called_fixed_when_it_holds_here(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    kept = sorted((ROOT / "corpus" / "hw").glob("*.yaml"))[0]  # a departure of hw; sim keeps the spec on it
    (corpus / kept.name).write_text(kept.read_text(encoding="utf-8"), encoding="utf-8")
    from conformance.fuzz.api import describe

    rep = run_fuzz("sim", examples=1, inline=True, corpus=corpus)
    assert [(c.departs, c.found_on) for c in rep.corpus] == [(False, "hw")]
    text = io.StringIO()
    describe(rep, text)
    assert "holds on sim (kept from backend hw; replay it there)" in text.getvalue()
    assert "the file removed" not in text.getvalue()


def test_the_cli_reports_a_run_and_exits_0(tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, "-m", "conformance.cli", "fuzz", "--examples", "20", "--seed", "4",
                        "--inline", "--corpus", str(tmp_path / "c"), "--out", str(tmp_path / "o")],
                       capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "20 examples" in r.stdout and "no new departure found" in r.stdout
    assert "fuzz sim: 20/20 examples" in r.stderr  # progress lines off a terminal


def test_an_isolated_run_that_outlives_its_limit_is_a_timeout_and_its_process_is_gone() -> None:
    text = yaml.safe_dump({"scenario": "big", "topology": {"name": "n", "level": 3, "device_ids": [0]},
                           "tensors": [{"name": "a", "shape": [8]}, {"name": "b", "shape": [8]}],
                           "callables": [{"name": "add", "kernel": "add", "worker": "n"}],
                           "program": {"n": [{"kind": "next_level", "callable": "add", "worker": 0,
                                              "args": [{"tensor": "a", "tag": "INPUT"}, {"tensor": "a", "tag": "INPUT"},
                                                       {"tensor": "b", "tag": "OUTPUT"}]}]}})
    ok = isolate.observe(text, "sim", 0, 120.0)
    assert ok.run == "OK" and ok.tasks == {"l3:r1:t1": "COMPLETED"}
    before = set(os.listdir("/proc"))
    late = isolate.observe(text, "sim", 0, 0.01)  # cannot even start in time
    assert late.run == "TIMEOUT" and "killed" in late.message
    leftover = {p for p in set(os.listdir("/proc")) - before if p.isdigit()}
    alive = [p for p in leftover if Path(f"/proc/{p}/stat").exists()
             and Path(f"/proc/{p}/stat").read_text().split()[3] == str(os.getpid())]
    assert alive == [] or all(Path(f"/proc/{p}/cmdline").read_bytes().find(b"forkserver") >= 0 for p in alive)


def test_the_differential_compares_what_both_backends_fix_and_nothing_else() -> None:
    """Root tasks by id; nested runs' tasks as counts (their run numbers follow arrival order); unobserved
    outcomes and tasks cancelled by a refused submit are not compared."""
    from conformance.fuzz.oracle import UNOBSERVED, Outcome, differences, expect_from

    spec = Outcome("sim", "ERROR:TASK_FAILURE", tasks={
        "l4:r1:t1": "COMPLETED", "l4:r1:t2": "FAILED:TASK_FAILURE", "l4.w0.l3:r1:t1": "COMPLETED",
        "l4.w0.l3:r3:t1": "COMPLETED"})
    renumbered = Outcome("hw", "ERROR:TASK_FAILURE", tasks={
        "l4:r1:t1": "COMPLETED", "l4:r1:t2": "FAILED:TASK_FAILURE", "l4.w0.l3:r1:t1": "COMPLETED",
        "l4.w0.l3:r2:t1": "COMPLETED"})
    assert differences(spec, renumbered, timed=False) == []
    lost = Outcome("hw", "ERROR:TASK_FAILURE", tasks={**renumbered.tasks, "l4.w0.l3:r2:t1": "NOT_RUN"})
    assert differences(spec, lost, timed=False) == [
        "tasks of l4.w0.l3: spec {'COMPLETED': 2}, hw {'COMPLETED': 1, 'NOT_RUN': 1}"]
    unseen = Outcome("hw", "ERROR:TASK_FAILURE", tasks={**lost.tasks, "l4:r1:t1": UNOBSERVED,
                                                         "l4.w0.l3:r2:t1": UNOBSERVED})
    assert differences(spec, unseen, timed=False) == []
    wrong = Outcome("hw", "ERROR:TASK_FAILURE", tasks={**renumbered.tasks, "l4:r1:t1": "NOT_RUN"})
    assert differences(spec, wrong, timed=False) == ["task l4:r1:t1: spec COMPLETED, hw NOT_RUN"]
    refused = Outcome("sim", "ERROR:INVALID_ARGUMENT", tasks={"l3:r1:t1": "NOT_RUN"})
    assert differences(refused, Outcome("hw", "ERROR:INVALID_ARGUMENT", tasks={"l3:r1:t1": "COMPLETED"}),
                       timed=False) == []
    assert differences(refused, Outcome("hw", "OK"), timed=False) == ["run: spec ERROR:INVALID_ARGUMENT, hw OK"]
    assert expect_from(refused) == {"run": {"error": "INVALID_ARGUMENT"}}
    assert expect_from(spec)["tasks"] == {"l4:r1:t1": "COMPLETED", "l4:r1:t2": {"failed": "TASK_FAILURE"}}
    assert expect_from(spec)["exact_tasks"] is False
    # Under faults timing is the model's own: only the invariants and hangs are compared.
    hung = Outcome("hw", "TIMEOUT", "no result within 60s")
    assert differences(spec, hung, timed=True) == ["hw run TIMEOUT: no result within 60s"]


def test_api_mode_finds_a_planted_registry_bug_and_keeps_a_replayable_sequence(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A second unregister that succeeds (the spec says UNKNOWN_CALLABLE, REG-006) is found by the stateful
    machine, kept as an api_sequence file, and replayed by tierbed run and pytest (clean there)."""
    import sim.worker
    from conformance.generators.stateful import load_steps, replay_steps
    from sim.errors import SimError

    real = sim.worker.Worker.unregister

    def lenient(self, handle):  # the planted bug
        try:
            return real(self, handle)
        except SimError as exc:
            if getattr(exc, "error_class", None) is not None and exc.error_class.value == "UNKNOWN_CALLABLE":
                return None
            raise

    monkeypatch.setattr(sim.worker.Worker, "unregister", lenient)
    corpus = tmp_path / "corpus"
    rep = run_fuzz("sim", examples=300, seed=5, inline=True, corpus=corpus, api=True)
    assert len(rep.api_findings) == 1 and rep.failing
    finding, path = rep.api_findings[0]
    assert "UNKNOWN_CALLABLE" in finding.lines[0] and path is not None
    steps = load_steps(path)
    assert len(steps) <= 6  # shrunk: a Worker, a register, two unregisters (and little else)
    assert replay_steps(steps, "sim") != []
    again = run_fuzz("sim", examples=5, seed=6, inline=True, corpus=corpus, api=True)
    assert [(c.name, c.departs) for c in again.corpus] == [(path.stem, True)]
    monkeypatch.undo()
    assert replay_steps(steps, "sim") == []
    r = subprocess.run([sys.executable, "-m", "conformance.cli", "run", str(path)], capture_output=True, text=True,
                       cwd=ROOT, timeout=300)
    assert r.returncode == 0 and "PASS" in r.stdout, r.stdout + r.stderr
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--tierbed-backend=sim",
                        "--tierbed-no-catalog", str(corpus)], capture_output=True, text=True, cwd=tmp_path,
                       timeout=300)
    assert r.returncode == 0 and "1 passed" in r.stdout, r.stdout + r.stderr


def test_a_shrink_cut_short_by_its_budget_still_reports_a_solid_finding(wrong_mul: None) -> None:
    """Past the shrink budget only the smallest failing example still fails, so hypothesis's last replay of it
    reports the finding (it used to pass that replay and call every slow real-runtime finding flaky)."""
    from conformance.fuzz.check import Checker
    from conformance.fuzz.search import run_chunk

    res = run_chunk(Checker("sim"), HONEST, 1, 150, frozenset(), shrink_s=0.05, faults=False)
    assert len(res.findings) == 1
    assert res.findings[0].flaky is False and res.findings[0].lines[0].startswith("sim outputs")
