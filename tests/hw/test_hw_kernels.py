"""tierbed's built-in chip kernels on the real runtime's CPU simulation platform (``hw_backend.kernels``).

The kernels are compiled once per module into a temporary cache; the L3 runs follow upstream's
``docs/user/how-to/write-and-run-a-kernel.md`` ("Option B") with an L3 Worker of one chip.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("simpler", reason="the real runtime (simpler) is not installed in this environment")

from conformance.backends import NotSupportedByBackend
from hw_backend import kernels as hk
from reference.registry import get_kernel

PLATFORM = "a2a3sim"


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("hw-kernel-cache")


@pytest.fixture(scope="module")
def build(cache: Path) -> hk.KernelBuild:
    return hk.build_kernels(PLATFORM, cache_dir=cache)


def _l3_run(kernel: object, operands: list[tuple[np.ndarray, str]]) -> np.ndarray:
    """Run ``kernel`` once as a chip task of an L3 Worker with ``device_ids=[0]``; the output array."""
    from simpler.task_interface import CallConfig, DataType, TaskArgs, TensorArgType
    from simpler.worker import Worker

    dtypes = {np.dtype(np.float32): DataType.FLOAT32, np.dtype(np.int32): DataType.INT32,
              np.dtype(np.int8): DataType.INT8}
    w = Worker(level=3, platform=PLATFORM, runtime=hk.RUNTIME, device_ids=[0], num_sub_workers=0)
    h = w.register(kernel)
    w.init()
    try:
        bufs = [w.create_buffer(arr.nbytes) for arr, _tag in operands]
        for buf, (arr, _tag) in zip(bufs, operands, strict=True):
            buf.shm.buf[:arr.nbytes] = arr.tobytes()

        def orch(o, _a, cfg):
            ta = TaskArgs()
            for buf, (arr, tag) in zip(bufs, operands, strict=True):
                ta.add_tensor(buf.tensor(shapes=arr.shape, dtype=dtypes[arr.dtype]), getattr(TensorArgType, tag))
            o.submit_next_level(h, ta, cfg, worker=0)

        w.run(orch, None, CallConfig())
        out = operands[-1][0]
        return np.frombuffer(bytes(bufs[-1].shm.buf[:out.nbytes]), dtype=out.dtype).reshape(out.shape)
    finally:
        w.close()


def test_map_builds_one_chip_callable_per_kernel(build: hk.KernelBuild) -> None:
    m = hk.chip_callables(build)
    assert set(m) == {s.name for s in hk.KERNELS} == {"add", "mul"}
    for c in m.values():
        assert (c.sig_count, c.child_count, c.child_func_id(0)) == (3, 1, 0)
        assert c.func_name == "tierbed_binary_orchestration"
    manifest = json.loads((build.directory / "manifest.json").read_text())
    assert (manifest["platform"], manifest["runtime"]) == (PLATFORM, hk.RUNTIME)


def test_signatures_are_the_reference_kernels_directions() -> None:
    for spec in hk.KERNELS:
        ref = [p.direction.name for p in get_kernel(spec.name).params]
        assert list(spec.signature) == ref, spec.name


def test_add_computes_a_plus_b_on_an_l3_worker_with_one_chip(build: hk.KernelBuild) -> None:
    rng = np.random.default_rng(7)
    a, b = rng.standard_normal(64, dtype=np.float32), rng.standard_normal(64, dtype=np.float32)
    out = _l3_run(hk.chip_callables(build)["add"], [(a, "INPUT"), (b, "INPUT"), (np.zeros(64, np.float32), "OUTPUT")])
    np.testing.assert_array_equal(out, a + b)  # float32 add rounds once, as numpy's does


def test_mul_wraps_int32_as_the_reference_does(build: hk.KernelBuild) -> None:
    a = np.array([2**30, -7, 123456, 0], dtype=np.int32).reshape(2, 2)
    b = np.array([4, 3, 100000, 9], dtype=np.int32).reshape(2, 2)
    out = _l3_run(hk.chip_callables(build)["mul"],
                  [(a, "INPUT"), (b, "INPUT"), (np.zeros((2, 2), np.int32), "OUTPUT_EXISTING")])
    np.testing.assert_array_equal(out, (a.astype(np.int64) * b).astype(np.int32))


def test_mismatched_dtypes_fail_the_run_instead_of_computing(build: hk.KernelBuild,
                                                            capfd: pytest.CaptureFixture[str]) -> None:
    a, b = np.ones(8, np.float32), np.ones(8, np.int32)
    with pytest.raises(RuntimeError):
        _l3_run(hk.chip_callables(build)["add"], [(a, "INPUT"), (b, "INPUT"), (np.zeros(8, np.float32), "OUTPUT")])
    # the orchestration's fatal INVALID_ARGS reaches the chip process's log, not the exception text
    assert "tierbed elementwise kernel: dtypes" in capfd.readouterr().err


def test_second_build_reuses_the_cache(build: hk.KernelBuild, cache: Path) -> None:
    stamps = {p.name: p.stat().st_mtime_ns for p in build.directory.iterdir()}
    before = hk.compile_count()
    again = hk.build_kernels(PLATFORM, cache_dir=cache)
    assert (again.directory, again.key, again.compiled) == (build.directory, build.key, False)
    assert hk.compile_count() == before
    assert {p.name: p.stat().st_mtime_ns for p in again.directory.iterdir()} == stamps


def test_concurrent_builds_compile_once(tmp_path: Path) -> None:
    code = ("import sys; from pathlib import Path; from hw_backend import kernels as k; "
            f"print(k.build_kernels({PLATFORM!r}, cache_dir=Path(sys.argv[1])).compiled)")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True)
             for _ in range(2)]
    outs = [p.communicate(timeout=300)[0].strip().splitlines()[-1] for p in procs]
    assert sorted(outs) == ["False", "True"]
    assert len([p for p in tmp_path.iterdir() if p.is_dir()]) == 1  # no staging directory left behind


def test_broken_source_is_a_typed_error_naming_the_kernel_and_the_compiler_message(tmp_path: Path) -> None:
    src = tmp_path / "src"
    shutil.copytree(hk.SOURCE_DIR, src)
    (src / "add.cpp").write_text((src / "add.cpp").read_text() + "\nthis is not C++;\n")
    with pytest.raises(hk.KernelCompileError) as info:
        hk.build_kernels(PLATFORM, cache_dir=tmp_path / "cache", source_dir=src)
    err = info.value
    assert (err.kernel, err.platform) == ("add", PLATFORM)
    assert "'add'" in str(err) and "add.cpp" in str(err)
    assert "error" in str(err) and "this is not C++" in err.compiler_output
    assert not any(p.is_dir() for p in (tmp_path / "cache").iterdir())  # nothing half-built is cached


def test_no_compiler_is_toolchain_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("TIERBED_HW_CXX", raising=False)
    with pytest.raises(hk.KernelToolchainMissing, match="no C\\+\\+ compiler"):
        hk.build_kernels(PLATFORM, cache_dir=tmp_path / "cache")


def test_real_platform_is_not_built(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ASCEND_HOME_PATH", raising=False)
    with pytest.raises(hk.KernelToolchainMissing, match="ASCEND_HOME_PATH is unset"):
        hk.build_kernels("a2a3")


def test_hw_api_uses_the_builtin_map_by_default(cache: Path, build: hk.KernelBuild,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from simpler.task_interface import ChipCallable

    from hw_backend.api import HwAPI

    monkeypatch.setenv("TIERBED_HW_KERNEL_CACHE", str(cache))
    monkeypatch.delenv("TIERBED_HW_KERNELS", raising=False)
    rt = HwAPI(platform=PLATFORM)
    before = hk.compile_count()
    assert isinstance(rt.kernel("add"), ChipCallable) and isinstance(rt.kernel("mul"), ChipCallable)
    assert hk.compile_count() == before  # taken from the cache the module built
    assert rt.describe()["kernels"] == "builtin"
    with pytest.raises(NotSupportedByBackend):
        rt.kernel("softmax")


def test_hw_api_user_map_comes_first_and_real_platforms_say_why(monkeypatch: pytest.MonkeyPatch) -> None:
    from hw_backend.api import HwAPI

    monkeypatch.delenv("TIERBED_HW_KERNELS", raising=False)
    mine = object()
    assert HwAPI(platform=PLATFORM, kernels={"add": mine}).kernel("add") is mine
    monkeypatch.delenv("ASCEND_HOME_PATH", raising=False)
    rt = HwAPI(platform="a2a3")
    missing = rt.kernel("add")
    assert getattr(missing, "__tierbed_missing_kernel__", False)
    assert "ASCEND_HOME_PATH" in missing.reason and rt.describe()["kernels"] == "none"


def test_a5sim_builds_too(tmp_path: Path) -> None:
    build = hk.build_kernels("a5sim", cache_dir=tmp_path)
    assert build.compiled and set(hk.chip_callables(build)) == {"add", "mul"}
