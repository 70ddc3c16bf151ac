"""The ``tierbed`` command line.

``tierbed demo`` runs the embedded demo scenario on the simulator (an L4 pod driving two L3
nodes and their chips), prints a summary and writes a Perfetto trace.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import click

from sim import determinism
from sim.cost import builtin_profiles
from sim.demo import run_demo
from sim.errors import SimError
from sim.simulation import SimConfig


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="tierbed")
def main() -> None:
    """tierbed: a simulation-first testbed for the simpler hierarchical task runtime."""


@main.command()
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, help="Simulation seed.")
@click.option("--profile", type=click.Choice(builtin_profiles()), default=None,
              help="Cost-model profile (default: chosen by the platform, a2a3).")
@click.option("--timing-only", is_flag=True, help="Shapes and dtypes only: no data allocated or computed.")
@click.option("--jitter", type=click.FloatRange(0.0, 0.99), default=0.0, show_default=True,
              help="Relative spread of modeled durations, drawn from the seed.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("runs/demo"),
              show_default=True, help="Where to write the trace files.")
@click.option("--check-determinism", is_flag=True, help="Run twice and compare the traces byte for byte.")
def demo(seed: int, profile: str | None, timing_only: bool, jitter: float, out: Path,
         check_determinism: bool) -> None:
    """Run the demo L4 -> L3 -> L2 scenario on the simulator and write its Perfetto trace."""
    cfg = SimConfig(seed=seed, profile=profile, jitter=jitter, data_mode="timing" if timing_only else "functional")
    try:
        result = run_demo(cfg)
    except SimError as exc:
        raise click.ClickException(f"{type(exc).__name__}: {exc}") from exc
    rec = result.record
    sim = result.worker.simulation
    counts = rec.outcome_counts()
    edges = rec.edges()
    bad = rec.order_violations()
    per_level = Counter(t.level for t in rec.tasks.values())
    click.echo("tierbed demo: L4 pod -> 2 x L3 node (4 chips + 2 SUB workers each) -> L2 chips")
    click.echo(f"  profile {sim.profile.name}, seed {seed}, {cfg.data_mode} mode")
    click.echo(f"  tasks       {len(rec.tasks)}  ({', '.join(f'{k} {v}' for k, v in counts.items())})")
    click.echo("  per level   " + ", ".join(f"L{lvl}: {n}" for lvl, n in sorted(per_level.items(), reverse=True)))
    click.echo(f"  dependency edges respected: {len(edges) - len(bad)}/{len(edges)}")
    click.echo(f"  virtual time {sim.now / 1000:.3f} ms, {len(sim.trace)} trace events")
    if result.max_abs_error is not None:
        click.echo(f"  output vs numpy: max |error| {result.max_abs_error:.3g}")
    out.mkdir(parents=True, exist_ok=True)
    perfetto = sim.trace.write_perfetto(out / "trace.perfetto.json")
    text = out / "trace.txt"
    text.write_text(sim.trace.text(), encoding="utf-8")
    click.echo(f"  trace       {perfetto} (open in ui.perfetto.dev), text: {text}")
    if check_determinism:
        def scenario(c: SimConfig):
            return run_demo(c).worker.simulation.trace

        det = determinism.check_determinism(scenario, cfg)
        click.echo(f"  {det.describe()}")
        if not det.identical:
            raise SystemExit(1)
    if counts["FAILED"] or counts["NOT_RUN"] or bad:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
