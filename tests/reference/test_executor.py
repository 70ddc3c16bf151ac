"""The reference backend's functional executor against the simulator, case by case.

Spec: upstream ``docs/orchestrator.md`` §1 "Python Facade and C++ Internal API" (the submit
API and its checks), §6 "Scope", §7 "TensorMap" → "Semantics" (tag-driven dependencies),
§8b (``alloc``); ``docs/scheduler.md`` §5 "Dependency release and PENDING updates" (poison)
and §6 "Completion and group aggregation"; ``docs/hierarchical-level-runtime.md`` §4
"Recursive Composition" (L4 → L3 → chips).

Every case below is one function handed a backend's ``Worker`` class, so the very same calls
run on the simulator (functional mode) and on the executor; the tests compare what the two
records and the output arrays say.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect

import numpy as np
import pytest

import reference.executor as rex
import sim
from reference import get_kernel
from sim import CallConfig, SimConfig, TaskArgs, TensorArgType
from sim.errors import (
    ForeignHandle,
    InvalidArgument,
    InvalidState,
    InvalidWorkerType,
    KernelArgumentError,
    NotSupported,
    ResourceExhausted,
    SimError,
    TaskFailure,
    UnknownCallable,
    UnknownWorker,
)
from sim.record import Outcome

IN, OUT, INOUT = TensorArgType.INPUT, TensorArgType.OUTPUT, TensorArgType.INOUT
NO_DEP = TensorArgType.NO_DEP
F32 = np.float32


def targs(*tensors, scalars=()) -> TaskArgs:
    """TaskArgs from (array, tag) pairs (a bare array is an INPUT) and scalars."""
    a = TaskArgs()
    for t in tensors:
        arr, tag = t if isinstance(t, tuple) else (t, IN)
        a.add_tensor(arr, tag)
    for s in scalars:
        a.add_scalar(s)
    return a


def rand(seed: int, *shape: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape, dtype=F32)


def make(worker_cls, level: int, kernels: str | None = None, **config):
    """A Worker of either backend; ``kernels`` applies to the reference one only."""
    if worker_cls is rex.Worker and kernels is not None:
        return worker_cls(level, kernels=kernels, **config)
    return worker_cls(level, **config)


def finish(w, orch, args=None, *, raises: type[BaseException] | None = None, match: str | None = None):
    """Run ``orch`` on the root ``w``, take its record, close it; return (record, what the run raised)."""
    err = None
    if raises is None:
        w.run(orch, args)
    else:
        with pytest.raises(raises, match=match) as info:
            w.run(orch, args)
        err = info.value
    rec = w.take_record()
    w.close()
    return rec, err


def on_both(case):
    """Run ``case(worker_cls)`` on both backends; check they tell the same story; return the reference's."""
    rec_sim, rec_ref = case(sim.Worker), case(rex.Worker)
    same_story(rec_sim, rec_ref)
    return rec_ref


# SUB callables (module level, so every backend registers the same function).
def halve(args) -> None:
    args.tensor(1)[:] = args.tensor(0) * F32(0.5)


def negate(args) -> None:
    args.tensor(1)[:] = -args.tensor(0)


def mark(args) -> None:
    args.tensor(1)[:] = 1.0


def copy(args) -> None:
    args.tensor(1)[:] = args.tensor(0)


def boom(args) -> None:
    raise ValueError("boom")


def total(args) -> None:
    args.tensor(2)[:] = args.tensor(0) + args.tensor(1)


# ---------------------------------------------------------------------------- cases


def l3_case(worker_cls, kernels: str | None = None):
    """L3 with two chips and two SUB workers: chains, a SUB group, alloc, a scope, an NL group, NO_DEP."""
    w = make(worker_cls, 3, kernels, device_ids=[0, 1], num_sub_workers=2)
    k = {n: w.register(get_kernel(n)) for n in ("add", "mul", "add_scalar", "axpy")}
    s_halve, s_negate, s_mark = w.register(halve), w.register(negate), w.register(mark)
    w.init()
    x, y, acc = rand(1, 16), rand(2, 16), rand(3, 16)
    s, m, h, g, out2, flag = (np.zeros(16, F32) for _ in range(6))
    kept = {}

    def orch(o, _args, _cfg) -> None:
        o.submit_next_level(k["add"], targs(x, y, (s, OUT)), worker=0)
        o.submit_next_level(k["mul"], targs(s, y, (m, OUT)), worker=1)
        o.submit_sub(s_halve, targs(m, (h, OUT)))
        o.submit_sub_group(s_negate, [targs(h[:8], (g[:8], OUT)), targs(h[8:], (g[8:], OUT))])
        buf = o.alloc((16,), F32)
        z = kept["z"] = buf.tensor((16,), F32)
        with o.scope():
            o.submit_next_level(k["add_scalar"], targs(g, (z, OUT), scalars=(1.5,)), worker=0)
            o.submit_next_level(k["axpy"], targs(z, (acc, INOUT), scalars=(2.0,)), worker=1)
        o.submit_next_level_group(k["add"], [targs(acc[:8], x[:8], (out2[:8], OUT)),
                                             targs(acc[8:], x[8:], (out2[8:], OUT))], workers=[0, 1])
        o.submit_sub(s_mark, targs((out2, NO_DEP), (flag, OUT)))

    rec, _ = finish(w, orch)
    outputs = {"s": s, "m": m, "h": h, "g": g, "z": kept["z"].array.copy(), "acc": acc, "out2": out2, "flag": flag}
    return rec, outputs


def l4_case(worker_cls, kernels: str | None = None):
    """L4 → two L3s → two chips each: a group over both L3s, a SUB join, a second run on one L3."""
    root = make(worker_cls, 4, kernels, num_sub_workers=1)
    kids = [make(worker_cls, 3, None, device_ids=[0, 1], num_sub_workers=1) for _ in range(2)]
    adds = [kid.register(get_kernel("add")) for kid in kids]
    gelus = [kid.register(get_kernel("gelu")) for kid in kids]
    copies = [kid.register(copy) for kid in kids]

    def l3(o, view, _cfg) -> None:
        i = int(view.scalar(0))
        xx, yy, tmp, out, snap = (view.tensor(j) for j in range(5))
        o.submit_next_level(adds[i], targs(xx, yy, (tmp, OUT)), worker=0)
        o.submit_next_level(gelus[i], targs(tmp, (out, OUT)), worker=1)
        o.submit_sub(copies[i], targs(out, (snap, OUT)))

    for kid in kids:
        root.add_worker(kid)
    h_l3, h_total = root.register(l3), root.register(total)
    root.init()
    x, y = rand(4, 3, 8), rand(5, 3, 8)
    tmp, out, snap = (np.zeros((3, 8), F32) for _ in range(3))
    res = np.zeros(8, F32)

    def member(i: int, row: int) -> TaskArgs:
        return targs(x[row], y[row], (tmp[row], OUT), (out[row], OUT), (snap[row], OUT), scalars=(i,))

    def orch(o, _args, _cfg) -> None:
        o.submit_next_level_group(h_l3, [member(0, 0), member(1, 1)], workers=[0, 1])
        o.submit_sub(h_total, targs(out[0], out[1], (res, OUT)))
        last = targs(res, y[2], (tmp[2], OUT), (out[2], OUT), (snap[2], OUT), scalars=(1,))
        o.submit_next_level(h_l3, last, worker=1)

    rec, _ = finish(root, orch)
    return rec, {"tmp": tmp, "out": out, "snap": snap, "res": res}


def poison_case(worker_cls):
    """A failing SUB, its direct and transitive consumers, an independent chain, a kernel data fault."""
    w = worker_cls(3, device_ids=[0], num_sub_workers=2)
    k_add, k_combine = w.register(get_kernel("add")), w.register(get_kernel("moe_combine"))
    s_boom, s_copy, s_total = w.register(boom), w.register(copy), w.register(total)
    w.init()
    a, b, c, d, e, f = (np.zeros(8, F32) for _ in range(6))
    b[:] = 2.0
    bad_routes = np.zeros(2, np.int32)  # not a permutation: moe_combine's data check rejects it at run time

    def orch(o, _args, _cfg) -> None:
        o.submit_sub(s_boom, targs(b, (a, OUT)))
        o.submit_next_level(k_add, targs(a, b, (c, OUT)), worker=0)
        o.submit_sub(s_copy, targs(c, (d, OUT)))
        o.submit_next_level(k_add, targs(b, b, (e, OUT)), worker=0)
        o.submit_next_level(k_combine, targs(rand(6, 2, 4), bad_routes, np.ones((2, 1), F32),
                                             (np.zeros((2, 4), F32), OUT)), worker=0)
        o.submit_sub(s_total, targs(e, d, (f, OUT)))

    rec, err = finish(w, orch, raises=TaskFailure)
    return rec, err, {"c": c, "d": d, "e": e, "f": f}


def same_story(rec_sim, rec_ref, *, workers: bool = True) -> None:
    """The two records name the same tasks with the same outcome, kind, callable and edges."""
    assert rec_ref.backend == "reference"
    assert sorted(rec_ref.tasks) == sorted(rec_sim.tasks)
    for tid, ts in rec_sim.tasks.items():
        tr = rec_ref.tasks[tid]
        assert (tr.node, tr.level, tr.kind, tr.callable) == (ts.node, ts.level, ts.kind, ts.callable), tid
        assert (tr.outcome, tr.error_class) == (ts.outcome, ts.error_class), tid
        assert tr.producers == ts.producers, tid
        if workers:
            assert tr.workers == ts.workers, tid
    assert sorted(rec_ref.errors) == sorted(rec_sim.errors)
    assert rec_ref.order_violations() == []


# ---------------------------------------------------------------------------- parity with the simulator


@pytest.mark.parametrize("case", [l3_case, l4_case], ids=["l3", "l4"])
def test_fast_kernels_reproduce_the_simulator_exactly(case) -> None:
    rec_sim, out_sim = case(sim.Worker)
    rec_ref, out_ref = case(rex.Worker, kernels="fast")
    same_story(rec_sim, rec_ref)
    assert all(t.outcome is Outcome.COMPLETED for t in rec_ref.tasks.values())
    for name, arr in out_sim.items():
        np.testing.assert_array_equal(out_ref[name], arr, err_msg=name)


@pytest.mark.parametrize("case", [l3_case, l4_case], ids=["l3", "l4"])
def test_golden_kernels_agree_with_the_simulator_within_tolerance(case) -> None:
    rec_sim, out_sim = case(sim.Worker)
    rec_ref, out_ref = case(rex.Worker)
    assert rec_ref.metadata["kernels"] == "golden"
    same_story(rec_sim, rec_ref)
    for name, arr in out_sim.items():
        np.testing.assert_allclose(out_ref[name], arr, rtol=1e-5, atol=1e-6, err_msg=name)
        assert np.any(arr != 0), f"{name} was never written"


def test_l3_case_has_the_expected_edges() -> None:
    rec, out = l3_case(rex.Worker)
    prod = {t: r.producers for t, r in rec.tasks.items()}
    assert prod == {
        "l3:r1:t1": (), "l3:r1:t2": ("l3:r1:t1",), "l3:r1:t3": ("l3:r1:t2",), "l3:r1:t4": ("l3:r1:t3",),
        # t5 is the alloc slot: it takes a sequence number but is not a task of the record
        "l3:r1:t6": ("l3:r1:t4",), "l3:r1:t7": ("l3:r1:t6",), "l3:r1:t8": ("l3:r1:t7",), "l3:r1:t9": (),
    }
    assert rec.tasks["l3:r1:t4"].workers == ("l3.sub0", "l3.sub1")
    assert rec.tasks["l3:r1:t8"].workers == ("l3.chip0", "l3.chip1")
    x, y = rand(1, 16), rand(2, 16)
    g = -(((x + y) * y) * F32(0.5))
    np.testing.assert_allclose(out["g"], g, rtol=1e-6)
    np.testing.assert_allclose(out["z"], g + F32(1.5), rtol=1e-6)
    np.testing.assert_allclose(out["out2"], rand(3, 16) + 2 * (g + F32(1.5)) + x, rtol=1e-5, atol=1e-6)


def test_l2_root_runs_one_kernel_like_the_simulator() -> None:
    outs = {}

    def case(worker_cls):
        w = worker_cls(2)
        h = w.register(get_kernel("add"))
        w.init()
        out = outs[worker_cls] = np.zeros(4, F32)
        return finish(w, h, targs(np.ones(4, F32), np.full(4, 2, F32), (out, OUT)))[0]

    rec = on_both(case)
    assert list(rec.tasks) == ["l2:r1:t1"]
    assert rec.tasks["l2:r1:t1"].workers == ("l2.chip",)
    for out in outs.values():
        np.testing.assert_array_equal(out, np.full(4, 3, F32))


def test_shared_buffers_and_wrapped_arrays_are_keyed_as_in_the_simulator() -> None:
    outs = {}

    def case(worker_cls):
        w = worker_cls(3, device_ids=[0], num_sub_workers=1)
        k_add, s_halve = w.register(get_kernel("add")), w.register(halve)
        w.init()
        buf = w.create_buffer(64)
        first, second = buf.tensor((8,), F32), buf.tensor((8,), F32, byte_offset=32)
        ones = w.make_tensor_arg(np.ones(8, F32), (8,), F32)

        def orch(o, _a, _c) -> None:
            o.submit_next_level(k_add, targs(ones, ones, (first, OUT)), worker=0)
            o.submit_sub(s_halve, targs(first, (second, OUT)))
            o.submit_sub(s_halve, targs(second, (first, INOUT)))

        rec = finish(w, orch)[0]
        outs[worker_cls] = buf.array.view(F32).copy()
        return rec

    rec = on_both(case)
    assert [r.producers for r in rec.tasks.values()] == [(), ("l3:r1:t1",), ("l3:r1:t2", "l3:r1:t1")]
    for arr in outs.values():
        np.testing.assert_array_equal(arr, np.concatenate([np.full(8, 0.5, F32), np.ones(8, F32)]))


def test_nested_runs_recurse_from_l5_to_the_chips() -> None:
    outs = {}

    def case(worker_cls):
        l5, l4, l3 = worker_cls(5), worker_cls(4), worker_cls(3, device_ids=[0])
        k_add = l3.register(get_kernel("add"))

        def on_l3(o, view, _cfg) -> None:
            o.submit_next_level(k_add, targs(view.tensor(0), view.tensor(0), (view.tensor(1), OUT)), worker=0)

        l4.add_worker(l3)
        h3 = l4.register(on_l3)

        def on_l4(o, view, _cfg) -> None:
            o.submit_next_level(h3, targs(view.tensor(0), (view.tensor(1), OUT)), worker=0)

        l5.add_worker(l4)
        h4 = l5.register(on_l4)
        l5.init()
        x, y = np.arange(4, dtype=F32), outs.setdefault(worker_cls, np.zeros(4, F32))
        return finish(l5, lambda o, _a, _c: o.submit_next_level(h4, targs(x, (y, OUT)), worker=0))[0]

    rec = on_both(case)
    assert list(rec.tasks) == ["l5:r1:t1", "l5.w0:r1:t1", "l5.w0.w0:r1:t1"]
    assert rec.tasks["l5.w0.w0:r1:t1"].workers == ("l5.w0.w0.chip0",)
    for y in outs.values():
        np.testing.assert_array_equal(y, np.arange(4, dtype=F32) * 2)


# ---------------------------------------------------------------------------- stamps


def test_stamps_are_step_indices_in_execution_order() -> None:
    rec, _ = l4_case(rex.Worker)
    t = rec.tasks
    leaves = [r for r in t.values() if r.node != "l4"]
    assert all(r.start == r.end for r in leaves)
    group, join, last = t["l4:r1:t1"], t["l4:r1:t2"], t["l4:r1:t3"]
    nested = [t[f"l4.w{w}:r1:t{i}"] for w in (0, 1) for i in (1, 2, 3)]
    assert group.start < min(r.start for r in nested) and max(r.end for r in nested) == group.end
    assert group.end < join.start <= join.end < last.start
    assert last.end == t["l4.w1:r2:t3"].end
    steps = [r.start for r in leaves]
    assert len(steps) == len(set(steps))  # one step per leaf, never shared
    assert rec.metadata["steps"] == max(r.end for r in t.values()) + 1


# ---------------------------------------------------------------------------- poison and failure


def test_failure_poisons_consumers_as_the_simulator_does() -> None:
    rec_sim, _, _ = poison_case(sim.Worker)
    rec_ref, err, out = poison_case(rex.Worker)
    same_story(rec_sim, rec_ref)  # the simulator's first failure depends on timing: its error is not compared
    o = {tid: (r.outcome, r.error_class) for tid, r in rec_ref.tasks.items()}
    assert o == {
        "l3:r1:t1": (Outcome.FAILED, "TASK_FAILURE"),
        "l3:r1:t2": (Outcome.NOT_RUN, None),
        "l3:r1:t3": (Outcome.NOT_RUN, None),
        "l3:r1:t4": (Outcome.COMPLETED, None),
        "l3:r1:t5": (Outcome.FAILED, "TASK_FAILURE"),
        "l3:r1:t6": (Outcome.NOT_RUN, None),
    }
    assert "task l3:r1:t1 (boom)" in str(err) and "ValueError: boom" in str(err)
    assert "moe_combine" in rec_ref.tasks["l3:r1:t5"].message
    assert rec_ref.tasks["l3:r1:t2"].message == "poisoned by failed producer l3:r1:t1"
    assert rec_ref.tasks["l3:r1:t3"].message == "poisoned by failed producer l3:r1:t2"
    for tid in ("l3:r1:t2", "l3:r1:t3", "l3:r1:t6"):
        r = rec_ref.tasks[tid]
        assert (r.start, r.end, r.workers) == (None, None, ())
    np.testing.assert_array_equal(out["e"], np.full(8, 4, F32))
    for never_run in ("c", "d", "f"):
        assert not out[never_run].any(), never_run


def test_failure_inside_a_nested_run_fails_the_parent_task() -> None:
    def case(worker_cls):
        root = worker_cls(4, num_sub_workers=1)
        kid = worker_cls(3, num_sub_workers=1)
        s_boom = kid.register(boom)

        def l3(o, view, _cfg) -> None:
            o.submit_sub(s_boom, targs((view.tensor(0), OUT)))

        def l3_bad_worker(o, view, _cfg) -> None:
            o.submit_sub(s_boom, targs((view.tensor(0), OUT)))
            o.submit_next_level(s_boom, targs(), worker=3)

        root.add_worker(kid)
        h, h_bad, h_copy = root.register(l3), root.register(l3_bad_worker), root.register(copy)
        root.init()
        a, b, c = (np.zeros(4, F32) for _ in range(3))

        def orch(o, _args, _cfg) -> None:
            o.submit_next_level(h, targs((a, OUT)), worker=0)
            o.submit_sub(h_copy, targs(a, (b, OUT)))
            o.submit_next_level(h_bad, targs((c, OUT)), worker=0)

        return finish(root, orch, raises=TaskFailure, match="l4:r1:t1")[0]

    t = on_both(case).tasks
    assert (t["l4:r1:t1"].outcome, t["l4:r1:t1"].error_class) == (Outcome.FAILED, "TASK_FAILURE")
    assert "task l4.w0:r1:t1" in t["l4:r1:t1"].message
    assert t["l4:r1:t2"].outcome is Outcome.NOT_RUN
    # The nested orchestration function raised: the parent task carries that error's class.
    assert (t["l4:r1:t3"].outcome, t["l4:r1:t3"].error_class) == (Outcome.FAILED, "UNKNOWN_WORKER")
    assert t["l4.w0:r2:t1"].outcome is Outcome.FAILED


def test_an_orchestration_error_is_reraised_and_the_worker_stays_usable() -> None:
    w = rex.Worker(3, num_sub_workers=1)
    s_copy = w.register(copy)
    w.init()
    a, b = np.ones(4, F32), np.zeros(4, F32)

    def orch(o, _args, _cfg) -> None:
        o.submit_sub(s_copy, targs(a, (b, OUT)))
        raise RuntimeError("orchestration gave up")

    with pytest.raises(RuntimeError, match="orchestration gave up"):
        w.run(orch)
    rec = w.take_record()
    # Tasks run at submit: the one submitted before the raise has already run, nothing else is marked.
    assert {tid: r.outcome for tid, r in rec.tasks.items()} == {"l3:r1:t1": Outcome.COMPLETED}
    np.testing.assert_array_equal(b, a)
    w.run(lambda o, _a, _c: o.submit_sub(s_copy, targs(b, (a, OUT))))
    assert list(w.take_record().tasks) == ["l3:r2:t1"]
    w.close()


# ---------------------------------------------------------------------------- bad input: same errors


def _facade_error(worker_cls, bad):
    """Run ``bad(orch, handles)`` inside an orchestration function, then one valid submit.

    Returns the error's type and message, and the ids of the tasks the run recorded (a rejected
    call must leave no slot behind, so the valid submit is always ``t1``).
    """
    w = worker_cls(3, device_ids=[0, 1], num_sub_workers=1, heap_ring_size=4096)
    other = worker_cls(3, device_ids=[0])
    hs = {"add": w.register(get_kernel("add")), "copy": w.register(copy),
          "foreign": other.register(get_kernel("add")), "gone": w.register(get_kernel("mul"))}
    w.unregister(hs["gone"])
    w.init()
    a, b, c = np.ones(8, F32), np.ones(8, F32), np.zeros(8, F32)
    caught: list[SimError] = []

    def orch(o, _args, _cfg) -> None:
        try:
            bad(o, hs, (a, b, c))
        except SimError as exc:
            caught.append(exc)
        o.submit_sub(hs["copy"], targs(a, (c, OUT)))

    w.run(orch)
    tasks = list(w.take_record().tasks)
    w.close()
    assert len(caught) == 1, "the bad call was accepted"
    return type(caught[0]), str(caught[0]), tasks


def _add(hs, abc):
    a, b, c = abc
    return hs["add"], targs(a, b, (c, OUT))


BAD_CALLS = {
    "unknown worker id": (UnknownWorker, lambda o, hs, abc: o.submit_next_level(*_add(hs, abc), worker=5)),
    "bool worker id": (InvalidArgument, lambda o, hs, abc: o.submit_next_level(*_add(hs, abc), worker=True)),
    "str worker id": (InvalidArgument, lambda o, hs, abc: o.submit_next_level(*_add(hs, abc), worker="0")),
    "args not TaskArgs": (InvalidArgument, lambda o, hs, abc: o.submit_next_level(hs["add"], [abc[0]], worker=0)),
    "kernel arity": (KernelArgumentError,
                     lambda o, hs, abc: o.submit_next_level(hs["add"], targs(abc[0], (abc[2], OUT)), worker=0)),
    "kernel shape": (KernelArgumentError, lambda o, hs, abc: o.submit_next_level(
        hs["add"], targs(abc[0], abc[1][:4], (abc[2], OUT)), worker=0)),
    "python handle on NEXT_LEVEL at L3": (InvalidArgument, lambda o, hs, abc: o.submit_next_level(
        hs["copy"], targs(abc[0], (abc[2], OUT)), worker=0)),
    "kernel handle on SUB": (InvalidArgument, lambda o, hs, abc: o.submit_sub(*_add(hs, abc))),
    "foreign handle": (ForeignHandle, lambda o, hs, abc: o.submit_next_level(
        hs["foreign"], _add(hs, abc)[1], worker=0)),
    "unregistered handle": (UnknownCallable, lambda o, hs, abc: o.submit_next_level(
        hs["gone"], _add(hs, abc)[1], worker=0)),
    "config not a CallConfig": (InvalidArgument, lambda o, hs, abc: o.submit_next_level(
        *_add(hs, abc), "fast", worker=0)),
    "diagnostic without prefix": (InvalidArgument, lambda o, hs, abc: o.submit_next_level(
        *_add(hs, abc), CallConfig(enable_pmu=1), worker=0)),
    "empty group": (InvalidArgument, lambda o, hs, abc: o.submit_next_level_group(hs["add"], [], workers=[])),
    "group repeats a worker": (InvalidArgument, lambda o, hs, abc: o.submit_next_level_group(
        hs["add"], [_add(hs, abc)[1], _add(hs, abc)[1]], workers=[0, 0])),
    "group length mismatch": (InvalidArgument, lambda o, hs, abc: o.submit_next_level_group(
        hs["add"], [_add(hs, abc)[1]], workers=[0, 1])),
    "SUB group larger than the SUB pool": (InvalidArgument, lambda o, hs, abc: o.submit_sub_group(
        hs["copy"], [targs(abc[0], (abc[2], OUT))] * 2)),
    "alloc negative shape": (InvalidArgument, lambda o, hs, abc: o.alloc((-1, 4), F32)),
    "alloc unknown dtype": (InvalidArgument, lambda o, hs, abc: o.alloc((4,), np.complex64)),
    "alloc larger than the heap ring": (ResourceExhausted, lambda o, hs, abc: o.alloc((2048,), F32)),
    "scope_end without scope_begin": (InvalidState, lambda o, hs, abc: o.scope_end()),
}


@pytest.mark.parametrize("name", sorted(BAD_CALLS))
def test_bad_submit_raises_the_simulators_error_and_leaves_nothing_behind(name: str) -> None:
    want, bad = BAD_CALLS[name]
    cls_sim, msg_sim, tasks_sim = _facade_error(sim.Worker, bad)
    cls_ref, msg_ref, tasks_ref = _facade_error(rex.Worker, bad)
    assert cls_ref is want and cls_sim is want
    assert msg_ref == msg_sim
    assert tasks_ref == tasks_sim == ["l3:r1:t1"]


def _worker_error(worker_cls, scenario):
    try:
        scenario(worker_cls)
    except SimError as exc:
        return type(exc), str(exc)
    raise AssertionError("the scenario was accepted")


def _run_before_init(worker_cls):
    worker_cls(3, num_sub_workers=1).run(lambda o, a, c: None)


def _l2_under_l4(worker_cls):
    worker_cls(4).add_worker(worker_cls(2))


def _init_twice(worker_cls):
    w = worker_cls(3, num_sub_workers=1)
    w.init()
    w.init()


def _close_a_child(worker_cls):  # a child is closed by its root (a second close of a root is a no-op)
    root, child = worker_cls(4), worker_cls(3, num_sub_workers=1)
    root.add_worker(child)
    child.close()


def _python_without_target(worker_cls):
    w = worker_cls(3, device_ids=[0])
    w.register(copy)
    w.init()


def _kernel_without_chip(worker_cls):
    w = worker_cls(3, num_sub_workers=1)
    w.register(get_kernel("add"))
    w.init()


def _scope_left_open(worker_cls):
    w = worker_cls(3, num_sub_workers=1)
    w.init()
    w.run(lambda o, a, c: o.scope_begin())


def _orch_used_after_return(worker_cls):
    w = worker_cls(3, num_sub_workers=1)
    h = w.register(copy)
    w.init()
    kept = []
    w.run(lambda o, a, c: kept.append(o))
    kept[0].submit_sub(h, targs(np.ones(2, F32), (np.zeros(2, F32), OUT)))


def _l2_run_with_bad_args(worker_cls):
    w = worker_cls(2)
    h = w.register(get_kernel("add"))
    w.init()
    w.run(h, targs(np.ones(4, F32), (np.zeros(4, F32), OUT)))


BAD_WORKERS = {
    "level out of range": (InvalidArgument, lambda W: W(7)),
    "unknown config key": (InvalidArgument, lambda W: W(3, bogus=1)),
    "device_ids above L3": (InvalidArgument, lambda W: W(4, device_ids=[0])),
    "unknown platform": (InvalidArgument, lambda W: W(3, platform="tpu")),
    "python callable at L2": (InvalidArgument, lambda W: W(2).register(copy)),
    "run before init": (InvalidState, _run_before_init),
    "L2 under L4": (InvalidWorkerType, _l2_under_l4),
    "init twice": (InvalidState, _init_twice),
    "close a child": (InvalidState, _close_a_child),
    "python callable without target": (InvalidState, _python_without_target),
    "kernel without chip": (InvalidState, _kernel_without_chip),
    "scope left open": (InvalidState, _scope_left_open),
    "orchestrator used after return": (InvalidState, _orch_used_after_return),
    "L2 run with bad args": (KernelArgumentError, _l2_run_with_bad_args),
}


@pytest.mark.parametrize("name", sorted(BAD_WORKERS))
def test_bad_worker_use_raises_the_simulators_error(name: str) -> None:
    want, scenario = BAD_WORKERS[name]
    got_sim, got_ref = _worker_error(sim.Worker, scenario), _worker_error(rex.Worker, scenario)
    assert got_ref[0] is want
    assert got_ref == got_sim


def test_close_is_retryable_on_both() -> None:
    """A second close() is a no-op (python/simpler/worker.py Worker.close: terminal and retryable; LVL-021)."""
    for worker_cls in (sim.Worker, rex.Worker):
        w = worker_cls(3, num_sub_workers=1)
        w.init()
        w.close()
        w.close()
        with pytest.raises(InvalidState):
            w.run(lambda o, a, c: None)


def test_a_task_cannot_submit_through_the_orchestrator_that_submitted_it() -> None:
    def case(worker_cls):
        w = worker_cls(3, num_sub_workers=2)
        box: dict = {}

        def reentrant(args) -> None:
            box["orch"].submit_sub(box["copy"], targs(np.ones(2, F32), (np.zeros(2, F32), OUT)))

        box["copy"], h = w.register(copy), w.register(reentrant)
        w.init()

        def orch(o, _a, _c) -> None:
            box["orch"] = o
            o.submit_sub(h)

        return finish(w, orch, raises=TaskFailure)[0]

    rec_ref = on_both(case)
    assert list(rec_ref.tasks) == ["l3:r1:t1"]
    assert "outside the orchestration function" in rec_ref.tasks["l3:r1:t1"].message


def test_reference_only_arguments_are_checked() -> None:
    with pytest.raises(InvalidArgument, match="kernels must be one of golden, fast"):
        rex.Worker(3, kernels="slow")
    with pytest.raises(InvalidArgument, match="sim= configures the simulator"):
        rex.Worker(3, sim=SimConfig())
    with pytest.raises(InvalidArgument, match="holds reference Workers"):
        rex.Worker(4).add_worker(sim.Worker(3))
    with pytest.raises(InvalidState, match="no record until init"):
        rex.Worker(3).take_record()
    with pytest.raises(NotSupported):
        _ = rex.Worker(3).simulation


def test_a_child_cannot_choose_other_kernels_than_its_root() -> None:
    root = rex.Worker(4, kernels="golden")
    root.add_worker(rex.Worker(3, kernels="fast", num_sub_workers=1))
    with pytest.raises(InvalidArgument, match="set kernels= on the root Worker only"):
        root.init()
    root.close()  # a failed init leaves a tree that closes cleanly
    agreeing = rex.Worker(4, kernels="fast")
    agreeing.add_worker(rex.Worker(3, kernels="fast", num_sub_workers=1))
    agreeing.init()
    assert agreeing.kernels == "fast"
    agreeing.close()


def test_a_reference_worker_cannot_join_a_simulator_tree() -> None:
    root = sim.Worker(4)
    root.add_worker(rex.Worker(3, num_sub_workers=1))
    with pytest.raises(InvalidState, match="cannot be part of a simulator"):
        root.init()


# ---------------------------------------------------------------------------- kernels="fast" vs "golden"


def _spied(kernel, calls: list[str]):
    def on(which, fn):
        def spy(*values):
            calls.append(which)
            fn(*values)
        return spy

    return dataclasses.replace(kernel, run_fn=on("fast", kernel.run_fn), golden_fn=on("golden", kernel.golden_fn))


@pytest.mark.parametrize("mode", ["golden", "fast"])
def test_kernels_mode_selects_the_implementation(mode: str) -> None:
    calls: list[str] = []
    w = rex.Worker(3, kernels=mode, device_ids=[0])
    h = w.register(_spied(get_kernel("add"), calls))
    w.init()
    out = np.zeros(4, F32)
    w.run(lambda o, a, c: o.submit_next_level(h, targs(np.ones(4, F32), np.ones(4, F32), (out, OUT)), worker=0))
    w.close()
    assert calls == [mode]
    np.testing.assert_array_equal(out, np.full(4, 2, F32))


def _model_block(kernels: str):
    """A small transformer-ish chain over every dtype the kernels compare with tolerances."""
    w = rex.Worker(3, kernels=kernels, device_ids=[0, 1])
    names = ("rmsnorm", "matmul", "gelu", "softmax", "rope", "swiglu")
    k = {n: w.register(get_kernel(n)) for n in names}
    w.init()
    x, wt = rand(7, 8, 32), rand(8, 32, 32) * F32(0.2)
    gamma, cos, sin = rand(9, 32), np.cos(rand(10, 8, 8)), np.sin(rand(10, 8, 8))
    normed, proj, act, prob, rot, gated = (np.zeros((8, 32), F32) for _ in range(6))
    heads = (8, 2, 16)  # rope sees [tokens, heads, head_dim] views of the same memory

    def orch(o, _a, _c) -> None:
        o.submit_next_level(k["rmsnorm"], targs(x, gamma, (normed, OUT), scalars=(1e-6,)), worker=0)
        o.submit_next_level(k["matmul"], targs(normed, wt, (proj, OUT)), worker=1)
        o.submit_next_level(k["gelu"], targs(proj, (act, OUT)), worker=0)
        o.submit_next_level(k["softmax"], targs(act, (prob, OUT)), worker=1)
        o.submit_next_level(k["rope"], targs(proj.reshape(heads), cos, sin, (rot.reshape(heads), OUT)), worker=0)
        o.submit_next_level(k["swiglu"], targs(rot, act, (gated, OUT)), worker=1)

    rec, _ = finish(w, orch)
    return rec, {"rmsnorm": normed, "matmul": proj, "gelu": act, "softmax": prob, "rope": rot, "swiglu": gated}


def test_fast_and_golden_kernels_agree_within_kernel_tolerance() -> None:
    rec_g, golden = _model_block("golden")
    rec_f, fast = _model_block("fast")
    assert rec_g.metadata["kernels"] == "golden" and rec_f.metadata["kernels"] == "fast"
    assert [r.outcome for r in rec_f.tasks.values()] == [Outcome.COMPLETED] * 6
    for name, want in golden.items():
        rtol, atol = get_kernel(name).tolerance(want.dtype)
        # Inputs of later kernels already differ by the earlier kernels' tolerances: allow 4x.
        np.testing.assert_allclose(fast[name], want, rtol=4 * rtol, atol=max(4 * atol, 1e-6), err_msg=name)
        assert np.abs(want).max() > 0, name


# ---------------------------------------------------------------------------- shape of the module


def test_the_executor_module_does_not_import_simpy() -> None:
    tree = ast.parse(inspect.getsource(rex))
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert "simpy" not in imported


def test_tensors_freed_by_the_case_do_not_create_false_edges() -> None:
    def case(worker_cls):
        w = worker_cls(3, num_sub_workers=1)
        h = w.register(copy)
        w.init()

        def orch(o, _a, _c) -> None:
            for _ in range(4):
                src, dst = np.ones(64, F32), np.zeros(64, F32)
                o.submit_sub(h, targs(src, (dst, OUT)))
                # Dropped in this order, the allocator tends to hand dst's block to the next src:
                # a stale TensorMap entry would then turn it into a consumer of this task.
                del src, dst

        return finish(w, orch)[0]

    rec_ref = on_both(case)
    assert [r.producers for r in rec_ref.tasks.values()] == [()] * 4
