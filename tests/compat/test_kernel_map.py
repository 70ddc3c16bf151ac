"""The kernel map: shipped entries, user maps (file, env var, entry point), and its errors."""

from pathlib import Path

import numpy as np
import pytest

from compat import kernel_map as km
from compat.callables import ArgDirection, BuiltBinary, ChipCallable
from compat.errors import KernelMapError
from compat.runtime import Worker
from compat.session import Session, session_scope
from reference import get_kernel

IN, OUT, SCALAR = ArgDirection.IN, ArgDirection.OUT, ArgDirection.SCALAR


def chip(tmp_path: Path, source: str, func: str, sig=(IN, IN, OUT)) -> ChipCallable:
    p = tmp_path / source
    p.write_text("//\n")
    return ChipCallable.build(signature=list(sig), func_name=func, binary=BuiltBinary(str(p), "orchestration"))


def test_shipped_map_covers_the_worker_examples(tmp_path):
    m = km.load_kernel_map(entry_points=False, env=False)
    assert m.resolve(chip(tmp_path, "vector_add_orch.cpp", "vector_add_orchestration")) is get_kernel("add")
    for src in ("example_orchestration.cpp", "vector_add_mixed_l3_orchestration.cpp"):
        k = m.resolve(chip(tmp_path, src, "aicpu_orchestration_entry"))
        a, b, f = np.full(4, 2.0, np.float32), np.full(4, 3.0, np.float32), np.zeros(4, np.float32)
        k.run([a, b, f])
        assert np.all(f == 47.0)  # (5 + 1) * (5 + 2) + 5


def test_unmapped_kernel_fails_at_register_naming_source_and_how(tmp_path):
    w = Worker(level=2)
    with pytest.raises(KernelMapError) as err:
        w.register(chip(tmp_path, "my_orch.cpp", "my_entry"))
    msg = str(err.value)
    assert "my_orch.cpp" in msg and "'my_entry'" in msg
    assert km.ENV_VAR in msg and "--kernel-map" in msg and "kernel:" in msg


def test_user_map_from_env_var_and_file(tmp_path, monkeypatch):
    user = tmp_path / "map.yaml"
    user.write_text("kernels:\n  - {source: my_orch.cpp, function: my_entry, kernel: mul}\n"
                    "  - {source: slow.cpp, function: f, timing_only: true, flops_per_element: 4}\n")
    monkeypatch.setenv(km.ENV_VAR, str(user))
    m = km.load_kernel_map(entry_points=False)
    assert m.resolve(chip(tmp_path, "my_orch.cpp", "my_entry")) is get_kernel("mul")
    stand_in = m.resolve(chip(tmp_path, "slow.cpp", "f", (IN, OUT, SCALAR)))
    x, y = np.ones(8, np.float32), np.zeros(8, np.float32)
    stand_in.run([x, y, 3])
    assert np.all(y == 0)  # computes nothing
    assert stand_in.cost([x, y, 3]).flops == 32
    monkeypatch.delenv(km.ENV_VAR)
    assert km.load_kernel_map([user], entry_points=False).resolve(chip(tmp_path, "my_orch.cpp", "my_entry"))


def test_session_map_files_reach_register(tmp_path):
    user = tmp_path / "map.yaml"
    user.write_text("kernels:\n  - {source: my_orch.cpp, function: my_entry, kernel: add}\n")
    with session_scope(Session(kernel_map_files=(str(user),))):
        w = Worker(level=2)
        assert w.register(chip(tmp_path, "my_orch.cpp", "my_entry")).name == "add"


def test_entry_point_maps(tmp_path, monkeypatch):
    class EP:
        name, value = "mine", "mypkg:MAP"

        def load(self):
            return {"kernels": [{"source": "ep.cpp", "function": "g", "kernel": "add"}]}

    monkeypatch.setattr(km.metadata, "entry_points", lambda group: [EP()] if group == km.ENTRY_POINT_GROUP else [])
    m = km.load_kernel_map(env=False)
    assert m.resolve(chip(tmp_path, "ep.cpp", "g")).name == "add"


@pytest.mark.parametrize(("doc", "match"), [
    ("- 1", "must be a mapping"),
    ("kernels: [{source: a.cpp, function: f}]", "exactly one of"),
    ("kernels: [{source: a.cpp, function: f, kernel: add, timing_only: true}]", "exactly one of"),
    ("kernels: [{source: a.cpp, function: f, steps: []}]", "exactly one of"),
    ("kernels: [{source: a.cpp, function: f, steps: [{kernel: add}]}]", "needs 'params'"),
    ("kernels: [{source: a.cpp, kernel: add}]", "'function'"),
    ("kernels: [{source: a.cpp, function: f, kernel: add, colour: red}]", "unknown key"),
    ("version: 2", "version"),
    ("kernels: [", "not valid YAML"),
])
def test_malformed_map_files(tmp_path, doc, match):
    p = tmp_path / "bad.yaml"
    p.write_text(doc)
    with pytest.raises(KernelMapError, match=match):
        km.load_kernel_map([p], builtin=False, entry_points=False, env=False)


def test_signature_mismatch_and_unknown_kernel(tmp_path):
    p = tmp_path / "m.yaml"
    p.write_text("kernels:\n  - {source: o.cpp, function: f, kernel: add}\n"
                 "  - {source: o.cpp, function: g, kernel: no_such_kernel}\n"
                 "  - {source: o.cpp, function: h, kernel: 'no.such.module:K'}\n")
    m = km.load_kernel_map([p], builtin=False, entry_points=False, env=False)
    with pytest.raises(KernelMapError, match="signature is \\[IN, OUT\\]"):
        m.resolve(chip(tmp_path, "o.cpp", "f", (IN, OUT)))
    with pytest.raises(KernelMapError, match="no reference kernel named 'no_such_kernel'"):
        m.resolve(chip(tmp_path, "o.cpp", "g"))
    with pytest.raises(KernelMapError, match="cannot import"):
        m.resolve(chip(tmp_path, "o.cpp", "h"))
