"""User invariants that plant failures into a campaign's worker processes (imported by Dask workers too)."""

import os
import time


def die_on_seed_7(record, trace):
    """Kill the worker process on seed 7: the campaign must record CRASH for it and go on."""
    if record is not None and record.metadata.get("seed") == 7:
        os._exit(3)


def stall_on_seed_5(record, trace):
    """Outlive the seed's wall-clock limit on seed 5: TIMEOUT, the worker restarted, the rest run."""
    if record is not None and record.metadata.get("seed") == 5:
        time.sleep(60)


def no_link_cut(record, trace):
    """Violated whenever a LinkCut took effect (the shrinker must keep only that fault)."""
    hit = (record.metadata.get("faults_hit") or {}) if record is not None else {}
    if hit.get("LinkCut"):
        return f"a LinkCut took effect ({hit['LinkCut']} frames lost)"
    return None


def no_failed_tasks(record, trace):
    """Violated when a task FAILED; written as a careless user would, without minding a None record (init()
    failed), so it raises there: the shrinker must not take that for the same violation."""
    counts = record.outcome_counts()
    if counts.get("FAILED", 0):
        return f"failed tasks: {counts}"
    return None


def trace_has_start(record, trace):
    """Holds when the trace shows at least one task start (receives the trace text)."""
    assert trace is not None and " start " in trace, "no task start in the trace"


def die_on_seeds_3_and_7(record, trace):
    """Kill the worker process on seeds 3 and 7: two crashers, each CRASH, every other seed OK."""
    if record is not None and record.metadata.get("seed") in (3, 7):
        os._exit(3)


def once_then_die(marker):
    """A task that returns on its first run and kills its worker process on any later one."""
    if os.path.exists(marker):
        os._exit(3)
    open(marker, "w").close()
    return "first run"
