"""exec_script and `tierbed exec`: a script's argv, output and exit status pass through."""

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from compat import ExecUsageError, exec_script, hook
from conformance.cli import main as cli

VECTOR_ADD = """
    import os
    import sys

    import numpy as np
    from simpler.task_interface import ArgDirection, CallConfig, ChipCallable, CoreCallable, DataType, TaskArgs, \\
        TensorArgType
    from simpler.worker import Worker
    from simpler_setup.kernel_compiler import KernelCompiler
    from simpler_setup.pto_isa import ensure_pto_isa_root

    HERE = os.path.dirname(os.path.abspath(__file__))
    SIG = [ArgDirection.IN, ArgDirection.IN, ArgDirection.OUT]


    def build(platform, orch_source):
        kc = KernelCompiler(platform=platform)
        k = kc.compile_incore(source_path=os.path.join(HERE, "kernels/vector_add_kernel.cpp"), core_type="aiv",
                              pto_isa_root=ensure_pto_isa_root(),
                              extra_include_dirs=kc.get_orchestration_include_dirs("tensormap_and_ringbuffer"))
        o = kc.compile_orchestration(runtime_name="tensormap_and_ringbuffer",
                                     source_path=os.path.join(HERE, "kernels", orch_source))
        return ChipCallable.build(signature=SIG, func_name="vector_add_orchestration", binary=o,
                                  children=[(0, CoreCallable.build(signature=SIG, binary=k))])


    def main():
        platform, orch_source = sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "vector_add_orch.cpp"
        w = Worker(level=2, platform=platform, runtime="tensormap_and_ringbuffer", device_id=0)
        h = w.register(build(platform, orch_source))
        w.init()
        try:
            a, b, out = (np.full(64, v, np.float32) for v in (1.0, 2.0, 0.0))
            bufs = [w.malloc(256) for _ in range(3)]
            w.copy_to(bufs[0], a)
            w.copy_to(bufs[1], b)
            args = TaskArgs()
            for buf, tag in zip(bufs, (TensorArgType.INPUT, TensorArgType.INPUT, TensorArgType.OUTPUT_EXISTING)):
                args.add_tensor(buf.tensor(shapes=(64,), dtype=DataType.FLOAT32), tag)
            w.run(h, args, CallConfig())
            w.copy_from(out, bufs[2])
        finally:
            w.close()
        ok = bool((out == 3.0).all())
        print("[test] golden check", "PASSED" if ok else "FAILED")
        return 0 if ok else 3


    if __name__ == "__main__":
        sys.exit(main())
"""


def test_argv_output_and_exit_code_pass_through(write_script, capsys):
    script = write_script("""
        import sys
        print("argv", sys.argv[1:], sys.argv[0].endswith("main.py"))
        print("to stderr", file=sys.stderr)
        sys.exit(int(sys.argv[1]))
    """)
    assert exec_script(script, ["7", "-p", "x"]) == 7
    out, err = capsys.readouterr()
    assert "argv ['7', '-p', 'x'] True" in out and "to stderr" in err
    assert exec_script(script, ["0"]) == 0
    assert not hook.installed()


def test_an_uncaught_exception_exits_1_with_the_scripts_traceback(write_script, capsys):
    script = write_script("def f():\n    raise ValueError('nope')\nf()\n")
    assert exec_script(script) == 1
    err = capsys.readouterr().err
    assert "ValueError: nope" in err and "runpy" not in err
    script2 = write_script("import sys\nsys.exit('a message')\n", "msg.py")
    assert exec_script(script2) == 1
    assert "a message" in capsys.readouterr().err


def test_a_script_in_upstreams_style_runs_and_writes_trace_and_records(write_script, tmp_path, capsys):
    script = write_script(VECTOR_ADD)
    trace, rec = tmp_path / "trace", tmp_path / "rec.json"
    assert exec_script(script, ["a2a3sim"], seed=4, trace_out=trace, record_out=rec) == 0
    assert "[test] golden check PASSED" in capsys.readouterr().out
    assert sorted(p.name for p in trace.iterdir()) == ["w0-L2.perfetto.json", "w0-L2.trace.txt"]
    assert "traceEvents" in json.loads((trace / "w0-L2.perfetto.json").read_text())
    data = json.loads(rec.read_text())
    (record,) = data["records"]
    assert data["seed"] == 4 and record["metadata"]["seed"] == 4
    assert [t["outcome"] for t in record["tasks"].values()] == ["COMPLETED"]


def test_timing_only_computes_nothing(write_script, capsys):
    script = write_script(VECTOR_ADD)
    assert exec_script(script, ["a2a3sim"], data_mode="timing") == 3
    assert "FAILED" in capsys.readouterr().out


def test_unmapped_kernel_is_reported_by_the_script_failing_at_register(write_script, capsys):
    script = write_script(VECTOR_ADD)
    assert exec_script(script, ["a2a3sim", "my_orch.cpp"]) == 1
    err = capsys.readouterr().err
    assert "KernelMapError" in err and "my_orch.cpp" in err and "TIERBED_KERNEL_MAP" in err


def test_bad_usage(tmp_path, write_script):
    with pytest.raises(ExecUsageError, match="not found"):
        exec_script(tmp_path / "missing.py")
    with pytest.raises(ExecUsageError, match="data mode"):
        exec_script(write_script("pass\n"), data_mode="fast")


def test_cli_passes_script_options_through_and_exits_with_its_code(write_script, tmp_path):
    script = write_script("import sys\nprint(sys.argv[1:])\nsys.exit(5)\n")
    r = CliRunner().invoke(cli, ["exec", "--seed", "1", str(script), "-p", "a2a3sim", "--seed", "9"])
    assert r.exit_code == 5, r.output
    assert "['-p', 'a2a3sim', '--seed', '9']" in r.output


@pytest.mark.parametrize("argv", [
    ["exec"], ["exec", "no_such_script.py"], ["exec", "--profile", "no-such-profile", "{script}"],
    ["exec", "--faults", "{bad}", "{script}"], ["exec", "--kernel-map", "{bad}", "{script}"],
    ["exec", "--seed", "-1", "{script}"],
])
def test_cli_usage_errors_exit_2(write_script, tmp_path, argv):
    script = write_script("pass\n")
    bad = tmp_path / "bad.yaml"
    bad.write_text("- {type: NoSuchFault}\n")
    r = CliRunner().invoke(cli, [a.format(script=script, bad=bad) for a in argv])
    assert r.exit_code == 2, r.output


@pytest.mark.parametrize(("text", "where"), [
    ("- {type: LinkCut, at_us: 5, worker: 0}\n- {type: FaultPoint, name: slow_chip, factor: -2}\n", ":2: [1]"),
    ("- {type: LinkCut, at_us: 5\n", ":2: YAML syntax error"),
    ("- {type: SessionCrash, at_us: 1, worker: node1}\n", ":1: [0].worker: must be a NEXT_LEVEL worker id"),
    ("faults: {type: LinkCut}\n", ":1: expected a YAML list of faults"),
])
def test_a_bad_faults_file_is_named_with_its_line_and_field(write_script, tmp_path, text, where):
    bad = tmp_path / "f.yaml"
    bad.write_text(text)
    r = CliRunner().invoke(cli, ["exec", "--faults", str(bad), str(write_script("pass\n"))])
    assert r.exit_code == 2 and f"{bad}{where}" in r.output, r.output
    assert "Traceback" not in r.output


def test_a_mistyped_option_before_the_script_is_named_as_an_option(write_script):
    r = CliRunner().invoke(cli, ["exec", "--seeed", "3", str(write_script("pass\n"))])
    assert r.exit_code == 2 and "no such option: --seeed" in r.output, r.output


def test_cli_faults_file_reaches_the_simulation(write_script, tmp_path):
    faults = tmp_path / "faults.yaml"
    faults.write_text("- {type: FaultPoint, name: slow_chip, factor: 50}\n")
    script = write_script(VECTOR_ADD)
    times = []
    for extra in ([], ["--faults", str(faults)]):
        rec = tmp_path / f"rec{len(times)}.json"
        r = CliRunner().invoke(cli, ["exec", *extra, "--record-out", str(rec), str(script), "a2a3sim"])
        assert r.exit_code == 0, r.output
        times.append(json.loads(rec.read_text())["records"][0]["metadata"]["virtual_time_us"])
    assert times[1] > times[0]


def test_python_dash_m_compat(write_script):
    script = write_script("import sys\nfrom simpler.worker import Worker\nprint(Worker.__module__)\nsys.exit(4)\n")
    r = subprocess.run([sys.executable, "-m", "compat", str(script)], capture_output=True, text=True)
    assert r.returncode == 4 and r.stdout.strip() == "compat.runtime"
    r = subprocess.run([sys.executable, "-m", "compat", "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.startswith("Usage: python -m compat ")
