"""The trace's exports: the Perfetto JSON (slices named by callable, flow arrows for dependency
edges, nanosecond-rounded times, one process per Worker node and one track per lane, idle ones
included, every name unique) and the ``trace.txt`` file (a header line naming the columns and
units, while :meth:`Trace.text` and its digest stay the bare event lines).

Spec: upstream ``docs/dfx/host-trace.md`` (one track per worker) and ``DESIGN.md`` "Determinism"
(the trace text is what determinism checks hash).
"""

from __future__ import annotations

import hashlib
import json

from click.testing import CliRunner

import sim.trace as trace_mod
from conformance.cli import main
from tests.sim.test_trace_determinism import run

# ``tierbed demo --check-determinism --jitter 0.1``: the digest campaigns and checks rely on.
DEMO_DIGEST = "a8ffc2c0577a12eaa019c6589f1bb26c92d41d2ba87ee51ed55605a233bb2254"


def _doc():
    rec, tr = run(seed=3, jitter=0.1, nested=True)
    return rec, tr, tr.to_perfetto(rec.edges())


def test_slices_are_named_by_callable_and_keep_the_task_id():
    rec, _, doc = _doc()
    slices = [e for e in doc["traceEvents"] if e["ph"] == "X"]
    assert slices
    for s in slices:
        assert s["name"] == rec.tasks[s["args"]["task"]].callable
    assert {s["name"] for s in slices} >= {"add", "sub_a", "sub_b"}


def test_every_edge_between_tasks_that_ran_is_a_flow_from_producer_end_to_consumer_start():
    rec, _, doc = _doc()
    evs = doc["traceEvents"]
    ran = {t.task_id for t in rec.tasks.values() if t.start is not None and t.workers}
    edges = [(p, c) for p, c in rec.edges() if p in ran and c in ran]
    assert edges
    starts = {e["id"]: e for e in evs if e["ph"] == "s"}
    ends = {e["id"]: e for e in evs if e["ph"] == "f"}
    assert len(starts) == len(ends) == len(edges) and set(starts) == set(ends)
    flows = sorted((s["args"]["producer"], s["args"]["consumer"]) for s in starts.values())
    assert flows == sorted(edges)
    slices = [e for e in evs if e["ph"] == "X"]
    for fid, s in starts.items():
        f = ends[fid]
        assert f["bp"] == "e"
        prod = [x for x in slices if x["args"]["task"] == s["args"]["producer"]
                and (x["pid"], x["tid"]) == (s["pid"], s["tid"])]
        cons = [x for x in slices if x["args"]["task"] == s["args"]["consumer"]
                and (x["pid"], x["tid"]) == (f["pid"], f["tid"])]
        assert any(x["ts"] <= s["ts"] <= x["ts"] + x["dur"] for x in prod)  # on the producer's slice
        assert any(x["ts"] == f["ts"] for x in cons)  # at the consumer's start
        assert s["ts"] <= f["ts"]


def test_timestamps_are_rounded_to_the_nanosecond():
    _, _, doc = _doc()
    for e in doc["traceEvents"]:
        for key in ("ts", "dur"):
            if key in e:
                text = repr(e[key])
                assert len(text.partition(".")[2]) <= 3, (key, text)
                assert abs(e[key] * 1000 - round(e[key] * 1000)) < 1e-6


def test_one_process_per_worker_node_and_a_track_per_lane_with_unique_names():
    _, tr, doc = _doc()
    evs = doc["traceEvents"]
    procs = [e["args"]["name"] for e in evs if e["ph"] == "M" and e["name"] == "process_name"]
    threads = [e["args"]["name"] for e in evs if e["ph"] == "M" and e["name"] == "thread_name"]
    assert len(procs) == len(set(procs)) and len(threads) == len(set(threads))
    assert procs == ["L4 Worker l4", "L3 Worker l4.w0"]
    lanes = {lane for _, ls in tr.nodes.values() for lane in ls}
    assert "l4.w0.chip2" in lanes  # idle in this scenario...
    assert set(threads) == lanes | {"l4 orch/sched", "l4.w0 orch/sched"}  # ...and still a track


def test_trace_file_has_a_header_but_text_and_digest_do_not(tmp_path):
    TEXT_HEADER, read_trace_text = trace_mod.TEXT_HEADER, trace_mod.read_trace_text
    write_trace_text = trace_mod.write_trace_text
    _, tr, _ = _doc()
    path = tr.write_text(tmp_path / "trace.txt")
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[0] == TEXT_HEADER and lines[0].startswith("#")
    assert "t_us" in lines[0] and "microseconds" in lines[0]
    assert lines[1:] == tr.text().splitlines()
    assert read_trace_text(path) == tr.text()
    assert tr.digest() == hashlib.sha256(tr.text().encode()).hexdigest()
    assert not tr.text().startswith("#")
    raw = tmp_path / "old.txt"
    raw.write_text(tr.text(), encoding="utf-8")
    assert read_trace_text(raw) == tr.text()  # a file written before the header still reads
    assert read_trace_text(write_trace_text(tmp_path / "x" / "t.txt", "")) == ""


def test_demo_writes_the_header_flows_and_keeps_its_digest(tmp_path):
    TEXT_HEADER, read_trace_text = trace_mod.TEXT_HEADER, trace_mod.read_trace_text
    res = CliRunner().invoke(main, ["demo", "--out", str(tmp_path), "--check-determinism", "--jitter", "0.1"])
    assert res.exit_code == 0, res.output
    assert DEMO_DIGEST in res.output
    text = (tmp_path / "trace.txt").read_text(encoding="utf-8")
    assert text.startswith(TEXT_HEADER + "\n")
    assert hashlib.sha256(read_trace_text(tmp_path / "trace.txt").encode()).hexdigest() == DEMO_DIGEST
    doc = json.loads((tmp_path / "trace.perfetto.json").read_text(encoding="utf-8"))
    assert any(e["ph"] == "s" for e in doc["traceEvents"])
    assert {e["name"] for e in doc["traceEvents"] if e["ph"] == "X"} >= {"matmul", "silu"}
