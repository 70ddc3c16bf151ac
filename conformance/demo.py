"""The demo scenario of ``tierbed demo``: an L4 pod driving two L3 nodes, each with chips and SUB workers.

It runs on the simulator (:mod:`sim`) with the reference kernels (:mod:`reference`), so it lives
above both rooms, here in ``conformance``.

It exercises the whole local hierarchy of ``docs/hierarchical-level-runtime.md`` §4
"Recursive Composition": the L4 orchestration function submits one task to each L3 node
and a SUB task that depends on both; each L3 node runs
a small MLP block on its chips — ``matmul`` then ``silu`` then a residual ``add`` per chip —
and a SUB task that reduces the node's results. The outputs are checked against numpy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from reference import get_kernel
from sim.record import RunRecord
from sim.simulation import SimConfig
from sim.task_args import TaskArgs, TaskArgsView
from sim.tensors import TensorSpec
from sim.types import TensorArgType
from sim.worker import Worker

IN, OUT, INOUT = TensorArgType.INPUT, TensorArgType.OUTPUT, TensorArgType.INOUT


@dataclass
class DemoResult:
    """What the demo observed."""

    record: RunRecord
    worker: Worker
    max_abs_error: float | None


def _tensor(shape: tuple[int, ...], rng: np.random.Generator, functional: bool) -> np.ndarray | TensorSpec:
    if functional:
        return rng.standard_normal(shape).astype(np.float32)
    return TensorSpec(shape, "float32")


def _empty(shape: tuple[int, ...], functional: bool) -> np.ndarray | TensorSpec:
    return np.zeros(shape, np.float32) if functional else TensorSpec(shape, "float32")


def run_demo(config: SimConfig | None = None, *, chips_per_node: int = 4, rows: int = 64, hidden: int = 128,
             platform: str = "a2a3sim") -> DemoResult:
    """Build, run and close the demo hierarchy; return its record."""
    cfg = config or SimConfig()
    functional = cfg.data_mode == "functional"
    rng = np.random.default_rng(cfg.seed)
    n_nodes = 2
    nodes = []
    for _ in range(n_nodes):
        l3 = Worker(level=3, device_ids=list(range(chips_per_node)), num_sub_workers=2, platform=platform)
        k_matmul = l3.register(get_kernel("matmul"))
        k_silu = l3.register(get_kernel("silu"))
        k_add = l3.register(get_kernel("add"))

        def reduce_rows(args: TaskArgsView) -> None:
            # out = sum over chips of the chip results
            out = args.tensor(args.tensor_count() - 1)
            out[...] = sum(args.tensor(i) for i in range(args.tensor_count() - 1))

        k_reduce = l3.register(reduce_rows)
        nodes.append((l3, k_matmul, k_silu, k_add, k_reduce))

    l4 = Worker(level=4, num_sub_workers=1, platform=platform, sim=cfg)

    def make_node_orch(k_matmul, k_silu, k_add, k_reduce):
        def node_block(orch, args: TaskArgsView, _cfg) -> None:
            x, w, node_out = args.tensor(0), args.tensor(1), args.tensor(2)
            partials = []
            for chip in range(chips_per_node):
                h = _empty((rows, hidden), functional)
                a = _empty((rows, hidden), functional)
                y = _empty((rows, hidden), functional)
                t = TaskArgs()
                t.add_tensor(x, IN)
                t.add_tensor(w, IN)
                t.add_tensor(h, OUT)
                orch.submit_next_level(k_matmul, t, worker=chip)
                t = TaskArgs()
                t.add_tensor(h, IN)
                t.add_tensor(a, OUT)
                orch.submit_next_level(k_silu, t, worker=chip)
                t = TaskArgs()
                t.add_tensor(a, IN)
                t.add_tensor(x, IN)
                t.add_tensor(y, OUT)
                orch.submit_next_level(k_add, t, worker=chip)
                partials.append(y)
            t = TaskArgs()
            for y in partials:
                t.add_tensor(y, IN)
            t.add_tensor(node_out, OUT)
            orch.submit_sub(k_reduce, t)

        node_block.__qualname__ = "node_block"
        return node_block

    block = l4.register(make_node_orch(*nodes[0][1:]))
    block2 = l4.register(make_node_orch(*nodes[1][1:]))
    ids = [l4.add_worker(n[0]) for n in nodes]

    def combine(args: TaskArgsView) -> None:
        args.tensor(2)[...] = args.tensor(0) + args.tensor(1)

    k_combine = l4.register(combine)
    l4.init()

    xs = [_tensor((rows, hidden), rng, functional) for _ in range(n_nodes)]
    ws = [_tensor((hidden, hidden), rng, functional) for _ in range(n_nodes)]
    node_outs = [_empty((rows, hidden), functional) for _ in range(n_nodes)]
    final = _empty((rows, hidden), functional)

    def pod_orch(orch, _args, _cfg) -> None:
        members = []
        for i in range(n_nodes):
            t = TaskArgs()
            t.add_tensor(xs[i], IN)
            t.add_tensor(ws[i], IN)
            t.add_tensor(node_outs[i], OUT)
            members.append(t)
        # Each node runs its own registered block (its closure holds that node's handles).
        orch.submit_next_level(block, members[0], worker=ids[0])
        orch.submit_next_level(block2, members[1], worker=ids[1])
        t = TaskArgs()
        t.add_tensor(node_outs[0], IN)
        t.add_tensor(node_outs[1], IN)
        t.add_tensor(final, OUT)
        orch.submit_sub(k_combine, t)

    l4.run(pod_orch)
    record = l4.take_record(scenario="demo")
    err = None
    if functional:
        expect = np.zeros((rows, hidden), np.float64)
        for i in range(n_nodes):
            h = xs[i].astype(np.float64) @ ws[i].astype(np.float64)
            a = h / (1.0 + np.exp(-h))
            expect += chips_per_node * (a + xs[i])
        err = float(np.max(np.abs(expect - final)))
        record.add_output("final", final)
    l4.close()
    return DemoResult(record, l4, err)
