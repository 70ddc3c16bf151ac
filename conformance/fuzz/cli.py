"""``tierbed fuzz``: search a backend for departures from the spec with generated scenarios."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click

from conformance.usage import InputError, OutputDir


@click.command("fuzz")
@click.option("--backend", type=click.Choice(["sim", "reference", "hw"]), default="sim", show_default=True,
              help="sim: the simulator's properties; reference / hw: the same scenarios there, judged against "
                   "the simulator.")
@click.option("--examples", type=click.IntRange(min=1), default=200, show_default=True,
              help="Examples to generate in all.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Seed of the search: one seed, one sequence of examples.")
@click.option("--time-budget", "time_budget", type=click.FloatRange(min=1.0), default=None,
              help="Stop starting new examples after this many seconds (an open shrink may run on briefly).")
@click.option("--corpus", type=click.Path(file_okay=False, path_type=Path), default=Path("corpus"),
              show_default=True, help="Where departures are kept as scenario files; its cases are checked first.")
@click.option("--out", type=OutputDir(), default=Path("runs/fuzz"),
              show_default=True, help="Where fuzz.json (summary) and examples.parquet (per example) go.")
@click.option("--timeout", "timeout_s", type=click.FloatRange(min=1.0), default=60.0, show_default=True,
              help="Wall-clock limit of one example's run; past it the run is a TIMEOUT (a finding).")
@click.option("--no-faults", is_flag=True, help="Generate fault-free scenarios only.")
@click.option("--api", is_flag=True, help="Drive the stateful machine over the Worker API (construct, compose, "
                                          "register, init, run, remote memory, close) instead of scenarios; a "
                                          "shrunk departure is kept as an api_sequence file.")
@click.option("--expectations", "expectation_files", multiple=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="An expectations file accepting corpus departures by scenario name (repeatable).")
@click.option("--inline", is_flag=True, help="Run in this process (no Dask).")
@click.option("--scheduler", default=None, help="Address of an existing Dask scheduler (default: an embedded "
                                                 "LocalCluster).")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Embedded cluster size (default: one per core; 1 for hw).")
def fuzz(backend: str, examples: int, seed: int, time_budget: float | None, corpus: Path, out: Path,
         timeout_s: float, no_faults: bool, api: bool, expectation_files: tuple[Path, ...], inline: bool,
         scheduler: str | None, workers: int | None) -> None:
    """Generate scenarios, run them, and keep every shrunk departure from the spec as a scenario file.

    On sim every example must keep the spec's properties (termination, terminal outcomes, poison,
    dependency order, a clean close, determinism) and an honest program's tensors must match the
    reference executor. On reference or hw every example runs there too, and must end as it does
    on the simulator (the run, its error class, every task), keep the properties, and not hang.

    Exit 0: nothing found; 1: departures found (new ones, or corpus cases that still depart and
    are not accepted in an expectations file); 2: bad usage or input; 130: interrupted.
    """
    from conformance.backends import BackendUnavailable, get_backend
    from conformance.fuzz.api import FuzzInputError, describe, run_fuzz

    try:
        get_backend(backend, seed)
    except BackendUnavailable as exc:
        raise InputError(str(exc)) from None
    err = sys.stderr
    t0 = time.monotonic()
    last = [t0]

    def on_chunk(res, rep) -> None:
        now = time.monotonic()
        if now - last[0] >= 5.0 or rep.examples >= examples:
            last[0] = now
            rate = rep.examples / max(now - t0, 1e-9)
            print(f"fuzz {backend}: {rep.examples}/{examples} examples, {len(rep.findings)} departures, "
                  f"{rate:.1f}/s", file=err, flush=True)

    try:
        rep = run_fuzz(backend, examples=examples, seed=seed, time_budget_s=time_budget, corpus=corpus, out=out,
                       timeout_s=timeout_s, inline=inline, scheduler=scheduler, workers=workers,
                       faults=not no_faults, expectations=list(expectation_files), api=api, on_chunk=on_chunk)
    except FuzzInputError as exc:
        raise InputError(str(exc)) from None
    describe(rep)
    click.echo(f"  reports     {out / 'fuzz.json'}, {out / 'examples.parquet'}")
    if rep.interrupted:
        raise SystemExit(130)
    if rep.failing:
        raise SystemExit(1)


__all__ = ["fuzz"]
