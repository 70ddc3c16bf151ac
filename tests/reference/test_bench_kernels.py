"""The kernel benchmark's reporting (``benchmarks/bench_kernels.py``): what it prints, not how fast.

Timings are never asserted; these runs use the smallest sizes and one repeat to check that a
16-bit run times each memory-bound kernel against its float32 twin and says so in the table and
in the list of missed targets, and that a float32 run has no such column.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest

_PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_kernels.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_kernels_under_test", _PATH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    yield module
    del sys.modules[spec.name]


def _vs_f32_cells(out: str) -> dict[str, str]:
    """Each row's ``vs f32`` cell, cut at the header's column (the table is fixed-width)."""
    lines = out.splitlines()
    header = next(line for line in lines if line.startswith("kernel "))
    end = header.index("vs f32") + len("vs f32")
    return {line.split()[0]: line[end - 6:end].strip() for line in lines if line.startswith(("add ", "matmul "))}


def test_16bit_run_times_the_float32_twin(bench, capsys: pytest.CaptureFixture[str]) -> None:
    assert bench.main(["--quick", "--skip-compile", "--repeats", "1", "--dtype", "bfloat16",
                       "--only", "add", "matmul"]) == 0
    cells = _vs_f32_cells(capsys.readouterr().out)
    assert re.fullmatch(r"\d+\.\d\dx", cells["add"]), cells
    assert cells["matmul"] == "-"  # not memory-bound: no twin


def test_float32_run_has_no_twin_column(bench, capsys: pytest.CaptureFixture[str]) -> None:
    assert bench.main(["--quick", "--skip-compile", "--repeats", "1", "--only", "add"]) == 0
    out = capsys.readouterr().out
    assert "vs f32" not in out


def test_vs_f32_is_the_ratio_of_medians_and_names_missed_targets(bench, capsys: pytest.CaptureFixture[str]) -> None:
    kernel_bench = bench.BENCHES["gelu"]
    r = bench.Result("gelu", "bfloat16", "8 bfloat16", run=[2.0, 4.0, 3.0], golden=[9.0], baseline=[0.3, 0.3, 0.3],
                     wide=[2.0, 2.0, 10.0], minimum=16, moved=16, bench=kernel_bench)
    assert r.vs_f32 == pytest.approx(1.5)  # median 3.0 over median 2.0
    bench.summarize([r])
    assert "MISSED  gelu: >=50% copy BW (1.50x the time of its float32 kernel)" in capsys.readouterr().out
    plain = bench.Result("gelu", "float32", "8 float32", run=[1.0], golden=[9.0], baseline=[0.1], wide=[],
                         minimum=16, moved=16, bench=kernel_bench)
    assert plain.vs_f32 is None
