"""``tierbed campaign``: the command line of fault-injection campaigns (see :mod:`conformance.campaign.api`).

Exit codes: 0 no invariant violated, 1 violations found, 2 bad input; 130 when interrupted (what
finished is written first).
"""

from __future__ import annotations

from pathlib import Path

import click

from conformance.campaign.invariants import BUILTIN
from conformance.fault_space import FAULT_KINDS
from conformance.usage import InputError, OutputDir


def _hint() -> str:
    from sim.faultpoints import FAULT_POINTS

    return ("\b\nExamples:\n"
            "  tierbed campaign conformance/scenarios/l4_remote_faults.yaml --seeds 0:1000\n"
            "  tierbed campaign conformance.campaign.examples:l4_remote_buffers --seeds 0:500 --faults link_cut,"
            "session_crash\n"
            "  tierbed campaign --replay runs/campaign --seed 17\n\n"
            f"Fault kinds: {', '.join(FAULT_KINDS)}. Fault points (the model's own): {', '.join(FAULT_POINTS)}. "
            "A scenario's fault_space: block sets kinds, max_faults, window_us, max_delay_us, points, "
            f"point_probability and heal_at_us. Built-in invariants: {', '.join(BUILTIN)} "
            "(liveness only with --liveness). Exit codes: 0 no invariant violated, 1 violations found, "
            "2 bad input, 130 interrupted (what finished is written).")


@click.command("campaign", epilog=_hint())
@click.argument("scenario", required=False)
@click.option("--seeds", default=None, help="Seeds to run (required): A:B (A to B-1) or N (0 to N-1).")
@click.option("--faults", default=None, help="Fault kinds to draw: all, or KIND,KIND (default: the scenario's "
              "fault_space, else all).")
@click.option("--invariant", "invariants", multiple=True, help="An extra invariant (repeatable): a built-in name "
              "(no_hang, typed_errors, all_terminal, poison, edge_order, clean_close, determinism, liveness), or "
              "module:function called as function(record, trace), record None when init() failed, trace None "
              "where the backend keeps none.")
@click.option("--liveness", is_flag=True, help="Faults stop at the heal time (fault_space heal_at_us, default the "
              "window's end); a second run on the same Workers must then complete or be refused with a typed error.")
@click.option("--backend", type=click.Choice(["sim", "hw"]), default="sim", show_default=True,
              help="sim: the executable spec; hw: the real runtime (simpler installed), faults through its relay.")
@click.option("--scheduler", default=None, help="Address of an existing Dask scheduler (default: an embedded "
              "LocalCluster, one process per core).")
@click.option("--workers", type=click.IntRange(min=1), default=None, help="Workers of the embedded cluster.")
@click.option("--inline", is_flag=True, help="Run every seed in this process, without Dask.")
@click.option("--seed-timeout", "seed_timeout_s", type=click.FloatRange(min=0.1), default=60.0, show_default=True,
              help="Wall-clock limit of one seed (seconds).")
@click.option("--determinism-every", type=click.IntRange(min=0), default=50, show_default=True,
              help="Replay one seed in this many and compare traces (0: never).")
@click.option("--no-shrink", is_flag=True, help="Do not shrink violating seeds.")
@click.option("--out", type=OutputDir(), default=Path("runs/campaign"),
              show_default=True, help="Results directory.")
@click.option("--replay", "replay_dir", type=click.Path(path_type=Path), default=None,
              help="Replay one seed of the campaign in this directory (with --seed).")
@click.option("--seed", "replay_seed_n", type=click.IntRange(min=0), default=None, help="The seed to replay.")
def campaign(scenario: str | None, seeds: str | None, faults: str | None, invariants: tuple[str, ...], liveness: bool,
             backend: str, scheduler: str | None, workers: int | None, inline: bool, seed_timeout_s: float,
             determinism_every: int, no_shrink: bool, out: Path, replay_dir: Path | None,
             replay_seed_n: int | None) -> None:
    """Run a fault-injection campaign: SCENARIO (a YAML scenario or module:function) over many seeds.

    Each seed draws a fault plan, runs, and is checked against the invariants; results go to --out
    (seeds.parquet, summary.json, campaign.html, shrunk/ cases). Exit 1 when an invariant was violated.
    """
    from conformance.backends import BackendUnavailable
    from conformance.campaign.api import parse_seeds, replay_seed, run_campaign
    from conformance.campaign.target import CampaignInputError

    if replay_dir is not None:
        if replay_seed_n is None:
            raise InputError("--replay needs --seed N")
        if scenario is not None or seeds is not None:
            raise InputError("--replay DIR --seed N replays the campaign in DIR: give no SCENARIO or --seeds")
        try:
            rep = replay_seed(replay_dir, replay_seed_n)
        except CampaignInputError as exc:
            raise InputError(str(exc)) from None
        o = rep.observation
        click.echo(f"tierbed campaign replay: seed {rep.seed} of {replay_dir}")
        click.echo(f"  run         {o.run.label}" + (f" ({o.run.message[:200]})" if o.run.message else ""))
        if o.second is not None:
            click.echo(f"  second run  {o.second.label}")
        if rep.reproduced is not None:
            click.echo(f"  trace       {'identical to' if rep.reproduced else 'DIFFERENT from'} the campaign's run "
                       f"(digest {o.digest[:16]})")
        else:
            click.echo(f"  note        seed {rep.seed} is not among the campaign's results: run, not compared")
        for f in rep.trace_files:
            click.echo(f"  wrote       {f}")
        for name, ev in rep.violations.items():
            click.echo(f"  VIOLATED    {name}: {ev[0][:300]}")
        if rep.violations or rep.reproduced is False:
            raise SystemExit(1)
        return
    if scenario is None:
        raise InputError("give a SCENARIO (a YAML file or module:function), or --replay DIR --seed N")
    if seeds is None:
        hint = " (--seed N is for --replay)" if replay_seed_n is not None else ""
        raise InputError(f"--seeds A:B is required (e.g. --seeds 0:1000){hint}")
    if replay_seed_n is not None:
        raise InputError("--seed N is for --replay DIR; a campaign's seeds are --seeds A:B")
    if inline and scheduler is not None:
        raise InputError("--inline runs every seed in this process: give it or --scheduler ADDRESS, not both")
    try:
        rng = parse_seeds(seeds)
        res = run_campaign(scenario, rng, out=out, faults=faults, invariants=list(invariants), liveness=liveness,
                           backend=backend, scheduler=scheduler, workers=workers, inline=inline,
                           seed_timeout_s=seed_timeout_s, determinism_every=determinism_every,
                           do_shrink=not no_shrink, progress=True)
    except (CampaignInputError, BackendUnavailable) as exc:
        raise InputError(str(exc)) from None
    s = res.summary
    click.echo(f"tierbed campaign: {s['target']} on {s['backend']}, seeds {s['seeds']}: {s['runs']} run in "
               f"{s['wall_s']:.1f}s wall, start-up included ({s['seeds_per_s']} seeds/s)"
               + (" -- INTERRUPTED" if res.interrupted else ""))
    click.echo("  outcomes    " + ", ".join(f"{k} {v}" for k, v in s["coverage"]["outcomes"].items()))
    click.echo(f"  hangs       {s['hangs']}, crashes {s['crashes']}, determinism replays {s['determinism_checked']}")
    if s["by_invariant"]:
        for name, n in s["by_invariant"].items():
            first = next(r["seed"] for r in sorted(res.rows, key=lambda r: r["seed"]) if name in r["violations"])
            click.echo(f"  VIOLATED    {name}: {n} seed{'' if n == 1 else 's'}, first {first}"
                       + (f"; shrunk: {res.shrunk[name]}" if name in res.shrunk else ""))
    else:
        click.echo("  violations  none")
    never = s["coverage"]["never_exercised"]
    if never:
        click.echo(f"  never hit   {', '.join(never)}")
    if s.get("not_applicable"):
        click.echo(f"  not drawn   {', '.join(s['not_applicable'])} (this target cannot host them)")
    click.echo(f"  results     {res.out}/seeds.parquet, {res.out}/summary.json, {res.page}")
    if res.interrupted:
        click.echo(f"interrupted: {s['runs']} of {s['requested']} seeds written", err=True)
        raise SystemExit(130)
    if s["violations"]:
        raise SystemExit(1)


__all__ = ["InputError", "campaign"]
