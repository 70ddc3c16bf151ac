"""The remote-L3 names the README's remote section uses are importable from the top of ``sim``.

``README.md`` ("Remote L3 workers and faults") writes ``add_remote_worker(RemoteWorkerSpec(...))``,
``register(RemoteCallable("module:qualname"), workers=[...])`` and
``TaskArgs.add_tensor(RemoteTensorRef(handle, ...), tag)``; all three come from ``sim``.
"""

from __future__ import annotations

import subprocess
import sys

import sim
import sim.remote.refs
import sim.remote.spec


def test_remote_names_are_the_layer_s_own_objects() -> None:
    from sim import RemoteCallable, RemoteTensorRef, RemoteWorkerSpec

    assert RemoteWorkerSpec is sim.remote.spec.RemoteWorkerSpec
    assert RemoteCallable is sim.remote.spec.RemoteCallable
    assert RemoteTensorRef is sim.remote.refs.RemoteTensorRef
    for name in ("RemoteWorkerSpec", "RemoteCallable", "RemoteTensorRef"):
        assert name in sim.__all__


def test_every_name_in_all_resolves() -> None:
    missing = [name for name in sim.__all__ if not hasattr(sim, name)]
    assert missing == []
    assert sim.__all__ == sorted(sim.__all__)


def test_the_readme_remote_example_runs_on_top_level_names() -> None:
    from sim import RemoteCallable, RemoteWorkerSpec, SimConfig, Worker

    w = Worker(level=4, num_sub_workers=1, sim=SimConfig(seed=3))
    w.add_worker(Worker(level=3, device_ids=[0]))
    rid = w.add_remote_worker(RemoteWorkerSpec("127.0.0.1:9000", "a2a3sim", device_ids=(0,)))
    h = w.register(RemoteCallable("sim.remote.examples:noop"), workers=[rid])
    assert h.target_namespace == "REMOTE_TASK_DISPATCHER"
    w.init()
    w.close()


def test_importing_the_spec_module_first_has_no_cycle() -> None:
    # A fresh interpreter that reaches sim.remote.spec before sim's own __init__ finished would
    # fail with a partially initialised module if the re-export made a cycle.
    for first in ("import sim.remote.spec", "from sim import RemoteWorkerSpec, RemoteCallable"):
        code = f"{first}\nimport sim\nassert sim.RemoteWorkerSpec is sim.remote.spec.RemoteWorkerSpec\n"
        subprocess.run([sys.executable, "-c", code], check=True)
