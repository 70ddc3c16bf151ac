"""The stateful machine over the Worker API (``conformance.generators.stateful``).

Spec: upstream ``docs/callable-identity-registration.md`` ("Registry Contract": a second unregister
is UNKNOWN_CALLABLE, catalog REG-006; "Dispatch Contract": a foreign handle is FOREIGN_HANDLE,
REG-008), ``python/simpler/worker.py`` (``init`` / ``close`` twice are INVALID_STATE, LVL-020 and
LVL-021), ``docs/remote-l3-worker-design/buffers-and-transports.md`` ("Buffer Handles": a second
free is a no-op and a freed handle is STALE_GENERATION, RBUF-011) and ``docs/scheduler.md``
("5. Dependency release and PENDING updates": poison, ORCH-023). The simulator is the model; a
deliberately broken SUT must be caught, shrunk and replayed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

import sim
from conformance.backends import SimAPI
from conformance.generators.stateful import (
    KnownDeparture,
    Outcome,
    StatefulFailure,
    StepError,
    StepsFileError,
    load_steps,
    load_steps_file,
    make_machine,
    new_harness,
    record_problems,
    replay_steps,
    run_stateful,
    save_steps,
    steps_to_yaml,
)
from sim.errors import InvalidState, InvalidWorkerType, UnknownCallable, UnknownWorker
from sim.record import Outcome as TaskOutcome
from sim.record import RunRecord, TaskRecord

# ------------------------------------------------------------------------------- the machine on sim

SimMachine = make_machine("sim", seed=0)


class TestSimMachine(SimMachine.TestCase):  # type: ignore[name-defined,misc]
    """The simulator meets the spec's error classes and invariants on generated sequences."""

    settings = settings(SimMachine.TestCase.settings, max_examples=60)


def test_run_stateful_on_sim_finds_nothing_and_counts_its_examples() -> None:
    res = run_stateful("sim", examples=40, seed=3)
    assert not res.failed, res.message
    assert (res.steps, res.mismatches, res.examples) == ([], [], 40)


def test_time_budget_stops_between_chunks() -> None:
    res = run_stateful("sim", examples=10_000, seed=1, time_budget_s=0.0)
    assert not res.failed and 1 <= res.examples < 10_000


# A hand-written sequence of misuse: every outcome is one the spec fixes (the harness's expectations).
MISUSE = [
    {"op": "worker", "level": 3, "device_ids": 1, "num_sub_workers": 1},
    {"op": "worker", "level": 3, "device_ids": 0, "num_sub_workers": 1},
    {"op": "register", "worker": 0, "callable": "sub_noop"},
    {"op": "register", "worker": 1, "callable": "sub_fail"},
    {"op": "register", "worker": 0, "callable": "add"},
    {"op": "add_worker", "parent": 0, "child": 1},  # an L3 holds no L3 (LVL-006)
    {"op": "add_remote_worker", "worker": 0, "port": 9401},  # remote L3s need an L4+ parent
    {"op": "unregister", "worker": 0, "handle": 1},  # foreign handle (REG-008)
    {"op": "init", "worker": 0},
    {"op": "init", "worker": 0},  # LVL-020
    {"op": "run", "worker": 1, "tasks": [{"handle": 1, "submit": "sub", "tensors": []}]},  # before init (LVL-019)
    {"op": "run", "worker": 0, "tasks": [{"handle": 0, "submit": "sub", "tensors": [[0, "OUTPUT"]]},
                                         {"handle": 2, "submit": "next_level", "worker": 0,
                                          "tensors": [[0, "INPUT"], [1, "INPUT"], [2, "OUTPUT"]]}]},
    {"op": "unregister", "worker": 0, "handle": 0},
    {"op": "unregister", "worker": 0, "handle": 0},  # REG-006
    {"op": "close", "worker": 0},
    {"op": "close", "worker": 0},  # LVL-021
    {"op": "init", "worker": 0},  # after close
    {"op": "register", "worker": 0, "callable": "sub_noop"},  # a closed Worker refuses new work
]

REMOTE = [
    {"op": "worker", "level": 4, "device_ids": 0, "num_sub_workers": 1},
    {"op": "add_remote_worker", "worker": 0, "port": 9401},
    {"op": "add_remote_worker", "worker": 0, "port": 9402},
    {"op": "register", "worker": 0, "callable": "remote_fail", "workers": [0, 1]},
    {"op": "register", "worker": 0, "callable": "sub_noop"},
    {"op": "remote_malloc", "worker": 0, "remote": 0},  # before init (RBUF-014)
    {"op": "init", "worker": 0},
    {"op": "remote_malloc", "worker": 0, "remote": 0},
    {"op": "remote_copy_to", "worker": 0, "buffer": 0, "fill": 3.0},
    {"op": "remote_copy_from", "worker": 0, "buffer": 0},  # reads back 3.0 (RBUF-001)
    {"op": "remote_export", "worker": 0, "buffer": 0, "access": "read"},
    {"op": "remote_import", "worker": 0, "export": 0, "remote": 1},
    {"op": "remote_free", "worker": 0, "buffer": 1},  # an import (RBUF-017)
    {"op": "remote_release_import", "worker": 0, "buffer": 0},  # an owner handle (RBUF-017)
    {"op": "run", "worker": 0, "tasks": [{"handle": 0, "submit": "next_level", "worker": 0, "tensors": []},
                                         {"handle": 1, "submit": "sub", "tensors": []}]},
    {"op": "remote_release_import", "worker": 0, "buffer": 1},
    {"op": "remote_free", "worker": 0, "buffer": 0},
    {"op": "remote_free", "worker": 0, "buffer": 0},  # idempotent (RBUF-011)
    {"op": "remote_copy_to", "worker": 0, "buffer": 0, "fill": 1.0},  # stale (RBUF-011)
    {"op": "close", "worker": 0},
    {"op": "remote_malloc", "worker": 0, "remote": 1},  # closed
]


# close() is terminal after a failed init too (python/simpler/worker.py Worker.close): the Worker refuses
# new work afterwards, as the real runtime does ("worker is closed").
FAILED_INIT = [
    {"op": "worker", "level": 3, "device_ids": 0, "num_sub_workers": 0},
    {"op": "register", "worker": 0, "callable": "add"},
    {"op": "init", "worker": 0},  # no chip for a chip kernel (REG-013)
    {"op": "close", "worker": 0},
    {"op": "unregister", "worker": 0, "handle": 0},  # closed
    {"op": "close", "worker": 0},  # and closing again is a no-op (LVL-021)
]


@pytest.mark.parametrize("steps", [MISUSE, REMOTE, FAILED_INIT], ids=["misuse", "remote", "failed-init"])
def test_the_simulator_meets_every_expectation_of_a_hand_written_sequence(steps: list[dict[str, Any]]) -> None:
    assert replay_steps(steps, "sim", seed=0) == []


def test_the_bookkeeping_follows_the_model() -> None:
    h = new_harness("sim", 0)
    try:
        for step in MISUSE:
            h.step(dict(step))
        assert len(h.steps) == len(MISUSE) and not h.mismatches
        assert [w.state for w in h.workers] == ["CLOSED", "NEW"]
        assert [x.live for x in h.handles] == [False, True, True]
        assert [w.parent for w in h.workers] == [None, None]  # the rejected add_worker attached nothing
    finally:
        h.close()


# ------------------------------------------------------------------------------- a broken SUT


class _ForgetfulWorker(sim.Worker):
    """A second unregister answers INVALID_STATE instead of UNKNOWN_CALLABLE (REG-006)."""

    def unregister(self, handle: Any) -> None:
        try:
            super().unregister(handle)
        except UnknownCallable as exc:
            raise InvalidState(f"broken on purpose: {exc}") from None


class BrokenAPI(SimAPI):
    """The simulator backend, with the forgetful Worker."""

    def Worker(self, level: int, *, faults: Any = None, **config: Any) -> Any:
        w = _ForgetfulWorker(level, sim=sim.SimConfig(seed=self.seed), **config)
        self.workers.append(w)
        return w


def test_a_wrong_error_class_is_caught_shrunk_and_replayed() -> None:
    res = run_stateful(BrokenAPI, examples=200, seed=0)
    assert res.failed, "the broken second unregister was not found"
    assert "UNKNOWN_CALLABLE" in res.message and "INVALID_STATE" in res.message
    ops = [s["op"] for s in res.steps]
    assert len(ops) <= 6, res.steps
    assert ops[-2:] == ["unregister", "unregister"] and ops[0] == "worker"
    assert res.steps[-1]["handle"] == res.steps[-2]["handle"]
    kinds = {m.kind for m in res.mismatches}
    assert kinds == {"differential", "spec"}
    again = replay_steps(res.steps, BrokenAPI, seed=0)
    assert again == res.mismatches
    assert again[0].step == len(res.steps) - 1
    assert replay_steps(res.steps, "sim", seed=0) == []  # the real simulator is fine


def test_the_harness_raises_at_the_first_mismatch() -> None:
    h = new_harness(BrokenAPI, 0)
    try:
        for step in MISUSE[:13]:
            h.step(dict(step))
        with pytest.raises(StatefulFailure, match="REG-006"):
            h.step(dict(MISUSE[13]))
    finally:
        h.close()


SECOND_UNREGISTER = KnownDeparture("unregister", "ERROR INVALID_STATE", "ERROR UNKNOWN_CALLABLE", "REG-006")


def test_a_known_departure_is_tolerated_and_ends_the_comparison() -> None:
    res = run_stateful(BrokenAPI, examples=60, seed=0, known=[SECOND_UNREGISTER])
    assert not res.failed, res.message
    h = new_harness(BrokenAPI, 0, [SECOND_UNREGISTER])
    try:
        for step in MISUSE:
            h.step(dict(step))
        assert h.tolerated == [(13, SECOND_UNREGISTER)]
        assert len(h.steps) == 14  # nothing after the departure was applied
    finally:
        h.close()


class _LevelFirstWorker(sim.Worker):
    """Checks the level rule before anything else, as the real runtime does."""

    def add_worker(self, worker: Any) -> int:
        if self.level == 3:
            raise InvalidWorkerType("add_worker() requires level >= 4")
        return super().add_worker(worker)


class _WrongClassWorker(sim.Worker):
    def add_worker(self, worker: Any) -> int:
        if worker is self:
            raise UnknownWorker("wrong on purpose")
        return super().add_worker(worker)


def _api_with(worker_cls: type) -> Any:
    class API(SimAPI):
        def Worker(self, level: int, *, faults: Any = None, **config: Any) -> Any:
            w = worker_cls(level, sim=sim.SimConfig(seed=self.seed), **config)
            self.workers.append(w)
            return w

    return API


def test_a_call_breaking_two_rules_may_answer_either_class_but_no_other() -> None:
    steps = [{"op": "worker", "level": 3, "device_ids": 0, "num_sub_workers": 0},
             {"op": "add_worker", "parent": 0, "child": 0}]  # itself, and an L3 under an L3
    assert replay_steps(steps, _api_with(_LevelFirstWorker)) == []
    (m, *_) = replay_steps(steps, _api_with(_WrongClassWorker))
    assert (m.step, m.kind, m.sut) == (1, "differential", "ERROR UNKNOWN_WORKER")


def _task(tid: str, outcome: str, producers: tuple[str, ...] = (), start: float | None = 1.0,
          end: float | None = 2.0, error: str | None = None) -> TaskRecord:
    return TaskRecord(tid, "l3", 3, "sub", "f", TaskOutcome(outcome), error, "", start, end, ("l3.sub0",), producers)


def test_record_problems_names_each_broken_invariant() -> None:
    rec = RunRecord("x", tasks={t.task_id: t for t in (
        _task("t1", "FAILED", error="TASK_FAILURE"),
        _task("t2", "COMPLETED", ("t1",), start=3.0, end=4.0),  # consumer of a failed producer ran
        _task("t3", "NOT_RUN", ("t1",), start=5.0, end=None),  # not run, yet started
        _task("t4", "COMPLETED", ("t2",), start=3.5, end=6.0),  # started before its producer ended
        _task("t5", "FAILED"),  # no error class
    )})
    problems = record_problems(rec, Outcome("OK"))
    assert any("t2 is COMPLETED but its producer t1 is FAILED" in p for p in problems)
    assert any("t3 is NOT_RUN but has a start stamp" in p for p in problems)
    assert any("edge t2 -> t4" in p for p in problems)
    assert any("t5 FAILED with no error class" in p for p in problems)
    assert any("run returned OK with failed task t1" in p for p in problems)
    assert record_problems(rec, Outcome("ERROR", "TASK_FAILURE"))[-1].startswith("edge")
    good = RunRecord("x", tasks={t.task_id: t for t in (_task("t1", "FAILED", error="TASK_FAILURE"),
                                                         _task("t2", "NOT_RUN", ("t1",), start=None, end=None))})
    assert record_problems(good, Outcome("ERROR", "TASK_FAILURE")) == []


# ------------------------------------------------------------------------------- the steps file


def test_steps_round_trip_through_yaml(tmp_path: Path) -> None:
    for steps in (MISUSE, REMOTE, []):
        path = save_steps(tmp_path / "seq.yaml", steps, found={"backend": "hw", "version": "0.1", "note": "x: y"})
        assert load_steps(path) == steps
        doc = load_steps_file(path)
        assert doc.found is not None and (doc.found.backend, doc.found.note) == ("hw", "x: y")
    text = steps_to_yaml(MISUSE[:2])
    assert text.splitlines() == ["api_sequence:",
                                 "  - {op: worker, level: 3, device_ids: 1, num_sub_workers: 1}",
                                 "  - {op: worker, level: 3, device_ids: 0, num_sub_workers: 1}"]


@pytest.mark.parametrize(("text", "line", "words"), [
    ("api_sequence:\n  - {op: worker, level: 3}\n  - {op: regster, worker: 0}\n", 3, "api_sequence[1]"),
    ("api_sequence:\n  - op: register\n    worker: 0\n    callable: nope\n", 4, "callable"),
    ("api_sequence:\n  - {op: init, worker: -1}\n", 2, "worker"),
    ("api_sequence:\n  - {op: close, worker: 0, wroker: 1}\n", 2, "wroker"),
    ("api_sequence: [\n  {op: init\n", 3, "YAML syntax"),
    ("found: {backend: hw}\n", 1, "api_sequence"),
    ("- just a list\n", 1, "mapping"),
])
def test_a_corrupt_steps_file_is_a_file_line_error(tmp_path: Path, text: str, line: int, words: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(StepsFileError) as info:
        load_steps(path)
    assert str(info.value).startswith(f"{path}:{line}:"), str(info.value)
    assert words in str(info.value)


def test_a_step_naming_nothing_is_a_step_error() -> None:
    with pytest.raises(StepError, match="handle 3 does not exist"):
        replay_steps([MISUSE[0], {"op": "unregister", "worker": 0, "handle": 3}], "sim")
