"""The departures ``tierbed fuzz --backend hw`` found, kept in ``corpus/hw/``: each is a scenario the
simulator (the spec) passes, and each is accepted by name in the corpus's expectations file."""

from __future__ import annotations

from pathlib import Path

import pytest

from conformance.catalog import load_catalog
from conformance.corpus import load_entries
from conformance.expectations import load_expectations
from conformance.scenario_runner import run_scenario

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / "corpus" / "hw"
EXPECTATIONS = ROOT / "conformance" / "expectations" / "corpus" / "hw-simpler-0.1.yaml"
FILES = sorted(CORPUS.glob("*.yaml"))


def test_the_kept_corpus_loads_and_every_case_is_listed_with_a_reason() -> None:
    entries = load_entries([CORPUS])
    names = [e.case.id for e in entries]
    assert len(names) == len(FILES) >= 5
    exp = load_expectations("hw", "0.1.0", [EXPECTATIONS], builtin=False,
                            case_ids=[c.id for c in load_catalog()] + names)
    assert sorted(exp.by_case) == sorted(names)


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_the_spec_passes_each_kept_case(path: Path) -> None:
    res = run_scenario(path, "sim")
    assert res.verdict.value == "PASS", res.judgment.summary
