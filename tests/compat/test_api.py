"""The facade's upstream API on the simulator: Worker, TaskArgs, CallConfig, memory, callables."""

import ctypes

import numpy as np
import pytest

from compat.callables import ArgDirection, ChipCallable, CoreCallable
from compat.runtime import CallConfig, RunHandle, RuntimeEnv, TaskArgs, Worker, get_dtype_name, get_element_size
from compat.session import Session, session_scope
from compat.setup_api import KernelCompiler, ensure_pto_isa_root, extract_text_section, make_tensor_arg
from sim.errors import InvalidArgument, InvalidState, TaskFailure
from sim.types import DataType, TensorArgType

SIG = [ArgDirection.IN, ArgDirection.IN, ArgDirection.OUT]


def _vector_add(tmp_path):
    kernels = tmp_path / "kernels"
    kernels.mkdir(exist_ok=True)
    (kernels / "vector_add_kernel.cpp").write_text("//\n")
    (kernels / "vector_add_orch.cpp").write_text("//\n")
    kc = KernelCompiler(platform="a2a3sim")
    k = kc.compile_incore(source_path=str(kernels / "vector_add_kernel.cpp"), core_type="aiv",
                          pto_isa_root=ensure_pto_isa_root(),
                          extra_include_dirs=kc.get_orchestration_include_dirs("tensormap_and_ringbuffer"))
    o = kc.compile_orchestration(runtime_name="tensormap_and_ringbuffer", source_path=kernels / "vector_add_orch.cpp")
    core = CoreCallable.build(signature=SIG, binary=extract_text_section(k))
    return ChipCallable.build(signature=SIG, func_name="vector_add_orchestration", binary=o, children=[(0, core)])


def test_builds_are_records_of_their_sources(tmp_path):
    chip = _vector_add(tmp_path)
    assert chip.source_name == "vector_add_orch.cpp" and chip.children[0][0] == 0
    assert chip.children[0][1].source_path.endswith("vector_add_kernel.cpp")
    assert chip.binary_size > 0 and chip.signature == tuple(SIG)
    with pytest.raises(FileNotFoundError, match=r"nope\.cpp"):
        KernelCompiler("a2a3sim").compile_incore(source_path=str(tmp_path / "nope.cpp"))
    with pytest.raises(TypeError, match="ArgDirection"):
        CoreCallable.build(signature=["x"], binary=b"")


def test_l2_vector_add_with_numpy_and_device_memory(tmp_path):
    w = Worker(level=2, platform="a2a3sim", runtime="tensormap_and_ringbuffer", device_id=0)
    h = w.register(_vector_add(tmp_path))
    w.init()
    try:
        a, b = np.arange(16, dtype=np.float32), np.ones(16, np.float32)
        out = np.zeros(16, np.float32)
        bufs = [w.malloc(64) for _ in range(3)]
        assert all(x.base != 0 for x in bufs) and len({x.base for x in bufs}) == 3
        w.copy_to(bufs[0], a)
        w.copy_to(bufs[1], b)
        args = TaskArgs()
        for buf, tag in zip(bufs, (TensorArgType.INPUT, TensorArgType.INPUT, TensorArgType.OUTPUT_EXISTING),
                            strict=True):
            args.add_tensor(buf.tensor(shapes=(16,), dtype=DataType.FLOAT32), tag)
        w.run(h, args, CallConfig())
        w.copy_from(out, bufs[2])
        assert np.array_equal(out, a + b)
        for x in bufs:
            w.free(x)
        with pytest.raises(InvalidState):
            w.free(bufs[0])
    finally:
        w.close()


def test_l2_copy_accepts_ctypes_and_bytearray():
    w = Worker(level=2, platform="a2a3sim")
    w.init()
    try:
        h = w.malloc(8)
        w.copy_to(h, (ctypes.c_uint8 * 8).from_buffer_copy(b"abcdefgh"))
        dst = bytearray(8)
        w.copy_from(dst, h)
        assert dst == b"abcdefgh"
        with pytest.raises(TypeError, match="L3"):
            Worker(level=3, device_ids=[0]).malloc(8)
    finally:
        w.close()


def test_unknown_config_keys_are_ignored_as_upstream_does():
    w = Worker(level=2, platform="a2a3sim", device_id=0, some_future_knob=True)
    assert w.level == 2 and w.sim_worker.level == 2
    w3 = Worker(level=3, device_id=5, device_ids=(0, 1), num_sub_workers=0)
    assert w3.sim_worker._config["device_ids"] == [0, 1]


def test_task_args_as_upstream():
    args = TaskArgs()
    a = np.zeros(4, np.float32)
    args.add_tensor(a)
    args.add_tensor(np.zeros(4, np.float32), TensorArgType.OUTPUT)
    args.add_scalar(7)
    assert len(args) == 3 and args.tensor_count() == 2 and args.scalar_count() == 1
    assert args.tag(0) is TensorArgType.INPUT
    args.set_tag(0, TensorArgType.INOUT)
    assert args.tag(0) is TensorArgType.INOUT
    assert args.tensor(0) is a and args.scalar(0) == 7
    for bad in (lambda: args.tensor(2), lambda: args.scalar(1), lambda: args.set_tag(5, TensorArgType.INPUT)):
        with pytest.raises(IndexError):
            bad()


def test_call_config_runtime_env():
    cfg = CallConfig()
    cfg.runtime_env.ring_task_window = 16
    cfg.runtime_env.ring_heap = [1 << 20] * 4
    assert "ring_task_window=16" in repr(cfg.runtime_env)
    sim_cfg = cfg.to_sim()
    assert sim_cfg.runtime_env == {"ring_task_window": 16, "ring_heap": [1 << 20] * 4}
    cfg.runtime_env.ring_task_window = 12
    with pytest.raises(InvalidArgument, match="power of 2"):
        cfg.validate()
    with pytest.raises(AttributeError):
        cfg.runtime_env.ring_size = 4
    bad = CallConfig(enable_pmu=1)
    with pytest.raises(InvalidArgument, match="output_prefix"):
        bad.validate()
    assert RuntimeEnv(ring_heap=2048).as_dict() == {"ring_heap": 2048}


def test_data_type_helpers():
    assert get_element_size(DataType.FLOAT32) == 4 and get_element_size(int(DataType.BFLOAT16)) == 2
    assert get_dtype_name(DataType.INT8) == "INT8"


def test_l3_sub_callable_gets_upstream_shaped_args_and_orch_memory(tmp_path):
    seen = []

    def sub(sub_args):
        seen.append((sub_args.tensor_count(), float(sub_args.tensor(0)[0])))

    w = Worker(level=3, platform="a2a3sim", device_ids=[0, 1], num_sub_workers=1)
    sub_h = w.register(sub)
    chip_h = w.register(_vector_add(tmp_path))
    w.init()
    try:
        src = w.create_buffer(64)
        np.frombuffer(src.shm.buf, np.float32)[:] = 3.0
        out = w.create_buffer(64)
        a = np.full(16, 2.0, np.float32)

        def orch_fn(orch, _args, cfg):
            assert isinstance(cfg, CallConfig)
            dev = orch.malloc(1, 64)  # upstream order: (worker_id, size)
            assert dev.owner_worker_id == 1
            orch.copy_to(dev, src)
            t = TaskArgs()
            t.add_tensor(a)
            t.add_tensor(dev.tensor(shapes=(16,), dtype=DataType.FLOAT32))
            t.add_tensor(out.tensor(shapes=(16,), dtype=DataType.FLOAT32), TensorArgType.OUTPUT_EXISTING)
            orch.submit_next_level(chip_h, t, cfg, worker=1)
            s = TaskArgs()
            s.add_tensor(out.tensor(shapes=(16,), dtype=DataType.FLOAT32))
            orch.submit_sub(sub_h, s)

        w.run(orch_fn, args=None, config=CallConfig())
        assert seen == [(1, 5.0)]
        with pytest.raises(TypeError, match="create_buffer"):
            w.copy_to(w.alloc_child_tensor(0, (4,), DataType.FLOAT32), np.zeros(4, np.float32))
    finally:
        w.close()


def test_submit_returns_a_run_handle(tmp_path):
    def fails(_args):
        raise RuntimeError("boom")

    w = Worker(level=3, device_ids=[0], num_sub_workers=1)
    h = w.register(fails)
    w.init()
    try:
        ok = w.submit(lambda orch, a, c: None)
        assert isinstance(ok, RunHandle) and ok.done() and ok.result() is None
        bad = w.submit(lambda orch, a, c: orch.submit_sub(h))
        assert bad.done()
        with pytest.raises(TaskFailure, match="boom"):
            bad.wait()
    finally:
        w.close()


def test_session_settings_reach_the_simulator():
    with session_scope(Session(seed=9, data_mode="timing")) as s:
        w = Worker(level=2)
        w.init()
        assert w.sim_worker.simulation.config.seed == 9
        assert w.create_buffer(16).array is None
        w.close()
    assert s.workers == [w] and s.roots() == [w]


def test_torch_tensors_where_upstream_takes_them(tmp_path):
    torch = pytest.importorskip("torch", reason="torch is optional; pip install torch for the torch-input tests")
    w = Worker(level=3, platform="a2a3sim", device_ids=[0])
    h = w.register(_vector_add(tmp_path))
    w.init()
    try:
        a = torch.randn(8, 8, dtype=torch.float32).share_memory_()
        b = torch.randn(8, 8, dtype=torch.float32)
        out = torch.zeros(8, 8, dtype=torch.float32)

        def orch_fn(orch, _args, cfg):
            t = TaskArgs()
            t.add_tensor(make_tensor_arg(w, a), TensorArgType.INPUT)
            t.add_tensor(b, TensorArgType.INPUT)  # a torch tensor straight into TaskArgs
            t.add_tensor(make_tensor_arg(w, out), TensorArgType.OUTPUT_EXISTING)
            orch.submit_next_level(h, t, cfg, worker=0)

        w.run(orch_fn, config=CallConfig())
        assert torch.allclose(out, a + b)
    finally:
        w.close()
    w2 = Worker(level=2)
    w2.init()
    try:
        d = w2.malloc(16)
        w2.copy_to(d, torch.arange(4, dtype=torch.float32))
        back = torch.zeros(4, dtype=torch.bfloat16)
        w2.copy_from(back, w2.malloc(8))  # bf16 host side through the ml_dtypes view
        got = torch.zeros(4, dtype=torch.float32)
        w2.copy_from(got, d)
        assert got.tolist() == [0.0, 1.0, 2.0, 3.0]
    finally:
        w2.close()


def test_direct_chip_api_and_domains_say_what_is_not_simulated():
    from compat import NotSimulated, hook

    with hook.facade_imports():
        from simpler.task_interface import ChipTensor, ChipWorker

        with pytest.raises(NotSimulated, match="direct chip API"):
            ChipTensor.make(0, (4,), DataType.FLOAT32)
        with pytest.raises(NotSimulated):
            ChipWorker()
    w = Worker(level=2)
    w.init()
    try:
        assert w.live_domains == {}
        h = w.malloc(100)
        assert w.committed_device_memory() == 100
        w.free(h)
        assert w.committed_device_memory() == 0
    finally:
        w.close()
