"""The ``tierbed`` command line.

``tierbed demo`` runs the embedded demo scenario on the simulator (an L4 pod driving two L3
nodes and their chips), prints a summary and writes a Perfetto trace.
``tierbed list`` lists the conformance catalog; ``tierbed conform`` runs it on one backend and
writes the JSON, JUnit and HTML reports; ``tierbed report`` renders the HTML matrix of one or more
run reports and prints the verdict diff between them.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import click

from conformance.demo import run_demo
from conformance.usage import InputError, OutputDir, OutputFile
from sim import determinism
from sim.cost import builtin_profiles
from sim.errors import SimError
from sim.simulation import SimConfig
from sim.trace import write_trace_text


class _Tierbed(click.Group):
    """The command group; a Ctrl-C that a command does not handle itself exits 130 (click's own: 1)."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            ctx.exit(130)


@click.group(cls=_Tierbed, context_settings={"help_option_names": ["-h", "--help"]})
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
@click.option("--out", type=OutputDir(), default=Path("runs/demo"),
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
    perfetto = sim.trace.write_perfetto(out / "trace.perfetto.json", edges)
    text = sim.trace.write_text(out / "trace.txt")
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


@main.command("list")
@click.option("--cases", "pattern", default=None, help="Comma-separated ID globs or prefixes (e.g. 'ORCH,RBUF-00*').")
def list_cases(pattern: str | None) -> None:
    """List the conformance cases: ID, level, backends, title and the upstream section checked."""
    from conformance.catalog import load_catalog

    cases = load_catalog().select(pattern)
    if not cases:
        raise InputError(f"no case matches {pattern!r}; see 'tierbed list'")
    click.echo(f"{'ID':<10} {'LEVEL':<6} {'BACKENDS':<18} TITLE / upstream section checked")
    for c in cases:
        click.echo(f"{c.id:<10} {c.level.value:<6} {','.join(c.backends):<18} {c.title}")
        click.echo(f"{'':<10} {c.spec_text()}")
    click.echo(_plural(len(cases), "case"))


@main.command()
@click.option("--backend", type=click.Choice(["sim", "reference", "hw"]), required=True, help="Backend to judge.")
@click.option("--cases", "pattern", default=None, help="Comma-separated ID globs or prefixes.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, help="Run seed.")
@click.option("--jobs", type=click.IntRange(min=1), default=1, show_default=True, help="Cases run at once.")
@click.option("--timeout", "timeout_s", type=click.FloatRange(min=0.1), default=30.0, show_default=True,
              help="Per-case timeout in seconds.")
@click.option("--out", type=OutputDir(), default=Path("runs/conformance"),
              show_default=True, help="Where to write the reports.")
@click.option("--expectations", "expectation_files", multiple=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="An extra expectations file of known departures (repeatable); see conformance/expectations/.")
@click.option("--no-builtin-expectations", is_flag=True,
              help="Ignore the shipped expectations files: every departure counts as a failure.")
@click.option("--scenarios", "scenario_paths", multiple=True, type=click.Path(path_type=Path),
              help="A YAML scenario file, or a directory of them (searched recursively), run as cases next to "
                   "the catalog (repeatable); a case ID is the scenario's name.")
@click.option("--no-catalog", is_flag=True, help="Run only the --scenarios cases, not the catalog.")
def conform(backend: str, pattern: str | None, seed: int, jobs: int, timeout_s: float, out: Path,
            expectation_files: tuple[Path, ...], no_builtin_expectations: bool, scenario_paths: tuple[Path, ...],
            no_catalog: bool) -> None:
    """Run the conformance catalog on one backend; exit 1 if a MUST case FAILs, CRASHes or TIMEs OUT.

    A failure that an expectations file lists for this backend's version is reported as a known
    departure (with its reason) and does not fail the run; a listed case that now passes is
    reported as a stale expectation. --scenarios adds a corpus of YAML scenarios, judged the same
    way (an expectations file lists one by its scenario name). Bad input (a scenario file that does
    not load, two scenarios or a scenario and a catalog case with one name, no case selected) exits 2
    before anything runs or any report is written.
    """
    import sys

    from conformance.backends import BackendUnavailable, get_backend
    from conformance.catalog import load_catalog, select_cases
    from conformance.expectations import ExpectationsError, backend_version, load_expectations
    from conformance.html import write_html
    from conformance.report import selection, to_json, write_reports
    from conformance.runner import run_cases

    if no_catalog and not scenario_paths:
        raise InputError("--no-catalog runs only the --scenarios cases: give --scenarios PATH")
    try:
        rt = get_backend(backend, seed)
    except BackendUnavailable as exc:
        raise InputError(str(exc)) from None
    catalog = load_catalog()
    corpus = _load_corpus(scenario_paths, reserved=[c.id for c in catalog]) if scenario_paths else []
    try:
        expectations = load_expectations(rt.name, backend_version(rt.describe()), expectation_files,
                                         builtin=not no_builtin_expectations,
                                         case_ids=[*(c.id for c in catalog), *(c.id for c in corpus)])
    except ExpectationsError as exc:
        raise InputError(str(exc)) from None
    cases = select_cases([*([] if no_catalog else catalog), *corpus], pattern)
    if not cases:
        raise InputError(f"no case matches {pattern!r}; see 'tierbed list'" + (
            " (and the --scenarios names)" if corpus else ""))
    if sys.stderr.isatty():  # a live bar on a terminal
        with click.progressbar(length=len(cases), label=f"conform {backend}", file=sys.stderr,
                               show_pos=True) as bar:
            run = run_cases(cases, backend, seed=seed, jobs=jobs, timeout_s=timeout_s,
                            progress=lambda r: bar.update(1), expectations=expectations)
    else:  # a line now and then in a log: "conform sim: 40/145 cases, 2 failing, ETA 20s"
        from conformance.judge import FAILING
        from conformance.progress import LineProgress

        lines = LineProgress(f"conform {backend}", len(cases), stream=sys.stderr)
        run = run_cases(cases, backend, seed=seed, jobs=jobs, timeout_s=timeout_s,
                        progress=lambda r: lines.update(r.verdict in FAILING and not r.known),
                        expectations=expectations)
    run.metadata["selection"] = selection(pattern, cases)
    if scenario_paths:  # where the corpus cases came from, as given
        run.metadata["selection"].update(scenarios=[p.as_posix() for p in scenario_paths], catalog=not no_catalog)
    json_path, junit_path = write_reports(run, out)
    html_path = write_html([to_json(run)], out / f"conformance-{backend}.html")
    click.echo(f"tierbed conform: backend {backend}, seed {seed}, {len(run.results)} cases in {run.duration_s:.1f}s")
    for verdict, n in run.counts().items():
        if n:
            click.echo(f"  {verdict:<14} {n}")
    bad = [r for r in run.results if r.verdict.value not in ("PASS", "SKIP", "NOT_SUPPORTED") and not r.known]
    for r in bad:
        click.echo(f"  {r.verdict.value:<14} {r.case.id} [{r.case.level.value}] {r.case.title}: {r.summary[:160]}")
    for r in run.with_expectation("known"):
        click.echo(f"  known {r.verdict.value:<8} {r.case.id} (listed in {r.expectation['file']}): "
                   f"{r.expectation['reason'][:160]}")
    for r in run.with_expectation("stale"):
        click.echo(f"  stale         {r.case.id} passes now: remove it from {r.expectation['file']}")
    click.echo(f"  reports     {json_path}, {junit_path}, {html_path}")
    if run.metadata.get("interrupted"):
        click.echo(f"interrupted: {len(run.results)} of {len(cases)} cases written", err=True)
        raise SystemExit(130)
    if run.failed_must():
        raise SystemExit(1)


@main.command()
@click.argument("runs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--out", type=OutputDir(), default=Path("runs/report"),
              show_default=True, help="Where to write conformance.html.")
def report(runs: tuple[Path, ...], out: Path) -> None:
    """Render the HTML matrix of one or more run JSON reports and print the verdict diff between them."""
    from conformance.html import ReportInputError, diff_lines, load_run, write_html

    try:
        loaded = [load_run(p) for p in runs]
    except ReportInputError as exc:
        raise InputError(str(exc)) from None
    page = write_html(loaded, out / "conformance.html")
    for line in diff_lines(loaded):
        click.echo(line)
    click.echo(f"  html        {page}")


@main.command("run")
@click.argument("scenario_paths", metavar="SCENARIO...", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--backend", type=click.Choice(["sim", "reference", "hw"]), default="sim", show_default=True,
              help="Backend to run the scenario on.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, help="Run seed.")
@click.option("--trace-out", type=OutputFile(), default=None,
              help="Write the run's event trace (text) here (backends with a trace).")
@click.option("--invariant", "invariants", multiple=True,
              help="Also check this invariant after the run: a built-in name (see 'tierbed campaign --help') or "
                   "module:function (repeatable; adds to the file's own invariants:).")
@click.option("--timeout", "timeout_s", type=click.FloatRange(min=0.1), default=300.0, show_default=True,
              help="Seconds each scenario's run (invariant checks included) may take; past it the verdict is "
                   "TIMEOUT, exit 1.")
@click.option("--jobs", type=click.IntRange(min=1), default=1, show_default=True,
              help="Scenarios run at once (several scenarios only).")
@click.pass_context
def run_scenario_cmd(ctx: click.Context, scenario_paths: tuple[Path, ...], backend: str, seed: int,
                     trace_out: Path | None, invariants: tuple[str, ...], timeout_s: float, jobs: int) -> None:
    """Run YAML scenarios on one backend, print their verdicts; exit 1 on FAIL, CRASH, TIMEOUT or a violated
    invariant, 2 on invalid input. A shrunk campaign case (a scenario with invariants:, or a target: case
    file) replays here.

    One SCENARIO file: the run is in this process and prints the scenario's checks; a watchdog thread ends
    the process (verdict TIMEOUT, exit 1) when it takes longer than --timeout (the simulator runs no child
    processes, so nothing is left behind).

    Several SCENARIOs, or a directory (its *.yaml and *.yml files, recursively, in path order): every
    file is loaded first, and any invalid one (reported as file:line: field: problem), an unknown
    invariant or two files with one scenario name exits 2 before anything runs. Then each scenario runs
    in its own process with the --timeout, as 'tierbed conform' runs a case; one line per scenario, then
    a summary. A file's seed: is used unless --seed is given.
    """
    from conformance.corpus import looks_like_sequence

    if len(scenario_paths) > 1 or scenario_paths[0].is_dir() or looks_like_sequence(scenario_paths[0]):
        if trace_out is not None:
            raise InputError("--trace-out is for one scenario file; run that file alone")
        seed_given = ctx.get_parameter_source("seed") is not click.core.ParameterSource.DEFAULT
        _run_many(scenario_paths, backend, seed if seed_given else None, invariants, timeout_s, jobs)
        return
    scenario_file = scenario_paths[0]
    import os
    import sys
    import threading

    from conformance.backends import BackendUnavailable, get_backend
    from conformance.campaign.api import load_case
    from conformance.judge import FAILING
    from conformance.scenario import ScenarioError, load_scenario
    from conformance.scenario_runner import run_scenario

    seed_given = ctx.get_parameter_source("seed") is not click.core.ParameterSource.DEFAULT
    header: list[str] = []  # the first line once known; "printed" once printed: the watchdog needs it then

    def expire() -> None:
        lines = [] if header == ["printed"] else header or [f"tierbed run: {scenario_file}, backend {backend}"]
        sys.stdout.write("".join(f"{line}\n" for line in lines)
                         + f"  verdict     TIMEOUT (no verdict within {timeout_s:g}s: stopped)\n")
        sys.stdout.flush()
        os._exit(1)

    watchdog = threading.Timer(timeout_s, expire)
    watchdog.daemon = True
    watchdog.start()
    ctx.call_on_close(watchdog.cancel)  # every way out of the command (return, exit 1/2, an exception)
    case = load_case(scenario_file) if scenario_file.is_file() else None
    if case is not None:
        _run_target_case(scenario_file, case, backend, seed if seed_given else None, invariants)
        return
    try:
        get_backend(backend, seed)
        scn = load_scenario(scenario_file)
    except (BackendUnavailable, ScenarioError) as exc:
        raise InputError(str(exc)) from None  # invalid input: 2, as every command exits for it
    if not seed_given and scn.seed is not None:
        seed = scn.seed
    names = list(dict.fromkeys([*scn.invariants, *invariants]))
    from conformance.campaign.api import CAMPAIGN_BACKENDS

    if names and backend not in CAMPAIGN_BACKENDS:
        from conformance.corpus import INVARIANTS_NOT_ON_REFERENCE

        raise InputError(f"{scenario_file}: backend reference: {INVARIANTS_NOT_ON_REFERENCE} (this file's "
                         "invariants: or --invariant); run it on --backend sim or hw")
    if names:  # an invariant that cannot be imported is bad input: say so before running anything
        from conformance.campaign.invariants import resolve
        from conformance.campaign.target import CampaignInputError

        try:
            resolve(names)
        except CampaignInputError as exc:
            raise InputError(f"{exc} (a module:function invariant must be importable from the current directory "
                              "or PYTHONPATH)") from None
    header[:] = [f"tierbed run: scenario {scn.scenario} ({scenario_file}), backend {backend}, seed {seed}"]
    res = run_scenario(scn, backend, seed)
    click.echo(header[0])
    header[:] = ["printed"]
    if scn.description:
        click.echo(f"  {scn.description}")
    if res.record is not None:
        counts = ", ".join(f"{k} {v}" for k, v in res.record.outcome_counts().items() if v)
        click.echo(f"  tasks       {len(res.record.tasks)}  ({counts or 'none'})")
    ok = sum(1 for e in res.judgment.evidence if e.get("ok"))
    click.echo(f"  checks      {ok}/{len(res.judgment.evidence)} passed")
    for e in res.judgment.evidence:
        if not e.get("ok"):
            click.echo(f"    FAILED    {e['label']}: expected {e.get('expected')!r}, observed {e.get('observed')!r}"
                       [:300])
    if trace_out is not None:
        if res.trace_text is None:
            click.echo(f"  trace       not written: backend {backend} records no trace")
        else:
            write_trace_text(trace_out, res.trace_text)
            click.echo(f"  trace       {trace_out}")
    violated = _check_invariants(scenario_file, scn.faults, names, backend, seed) if names else []
    if violated and res.verdict not in FAILING:
        click.echo(f"  verdict     FAIL (the expectations hold; invariant {', '.join(violated)} violated)")
    else:
        click.echo(f"  verdict     {res.verdict.value}" + (f" ({res.judgment.summary[:200]})"
                                                           if res.judgment.summary else ""))
    if res.verdict in FAILING or violated:
        raise SystemExit(1)


def _run_many(paths: tuple[Path, ...], backend: str, seed: int | None, invariants: tuple[str, ...],
              timeout_s: float, jobs: int) -> None:
    """``tierbed run`` of several scenario files: all checked first, then each in its own process."""
    import sys

    from conformance.backends import BackendUnavailable, get_backend
    from conformance.campaign.invariants import resolve
    from conformance.campaign.target import CampaignInputError
    from conformance.corpus import CorpusError, load_entries
    from conformance.judge import FAILING
    from conformance.progress import LineProgress
    from conformance.runner import CaseResult, run_cases

    try:
        get_backend(backend, seed or 0)
    except BackendUnavailable as exc:
        raise InputError(str(exc)) from None
    hint = " (a module:function invariant must be importable from the current directory or PYTHONPATH)"
    problems: list[str] = []
    for name in dict.fromkeys(invariants):  # an invariant that cannot be imported is bad input too
        try:
            resolve([name])
        except CampaignInputError as exc:
            problems.append(f"--invariant {name}: {exc}{hint}")
    try:
        entries = load_entries(paths, invariants=invariants, targets=True)
    except CorpusError as exc:
        problems += exc.problems
    else:
        for e in entries:  # the files' own invariants:
            own = [n for n in e.invariants if n not in invariants]
            try:
                resolve(own)
            except CampaignInputError as exc:
                problems.append(f"{e.file.as_posix()}: {exc}{hint}")
    if problems:
        for line in problems:
            click.echo(line, err=True)
        raise InputError(f"{_plural(len(problems), 'invalid input')}; nothing was run")
    # One run of the runner per seed (a file's seed: unless --seed), in the order the seeds first appear.
    by_seed: dict[int, list] = {}
    for e in entries:
        s = seed if seed is not None else (e.seed if e.seed is not None else 0)
        by_seed.setdefault(s, []).append(e.case)
    seeds = sorted(by_seed) if len(by_seed) > 1 else list(by_seed)
    seed_text = f"seed {seeds[0]}" if len(seeds) == 1 else f"seeds {', '.join(map(str, seeds))} (the files' seed:)"
    click.echo(f"tierbed run: {_plural(len(entries), 'scenario')}, backend {backend}, {seed_text}")
    lines = LineProgress(f"run {backend}", len(entries), unit="scenarios", stream=sys.stderr)
    results: dict[str, CaseResult] = {}
    interrupted = False
    for s in seeds:
        run = run_cases(by_seed[s], backend, seed=s, jobs=jobs, timeout_s=timeout_s,
                        progress=lambda r: lines.update(r.verdict in FAILING))
        results.update((r.case.id, r) for r in run.results)
        if run.metadata.get("interrupted"):
            interrupted = True
            break
    width = max(len(e.case.id) for e in entries)
    for e in entries:
        r = results.get(e.case.id)
        if r is None:
            continue
        shown = e.file.as_posix()
        where = "" if shown == e.case.id else f"  ({shown})"
        why = f": {r.summary[:200]}" if r.summary and r.verdict.value != "PASS" else ""
        click.echo(f"  {r.verdict.value:<14} {e.case.id:<{width}}{where}{why}")
    counts = Counter(r.verdict.value for r in results.values())
    click.echo("  summary       " + (", ".join(f"{v} {n}" for v, n in sorted(counts.items())) or "none finished") +
               f" of {_plural(len(entries), 'scenario')}")
    if interrupted:
        click.echo(f"interrupted: {len(results)} of {len(entries)} scenarios run", err=True)
        raise SystemExit(130)
    if any(r.verdict in FAILING for r in results.values()):
        raise SystemExit(1)


def _check_invariants(file: Path, faults: list, names: list[str], backend: str, seed: int) -> list[str]:
    """Run the scenario once more as a campaign case and print each invariant's result; the violated ones."""
    from conformance.campaign.api import run_case
    from conformance.campaign.target import CampaignInputError, load_target

    try:
        target = load_target(file)
        _obs, violations = run_case(target, seed, [f.model_dump(exclude_none=True) for f in faults], names,
                                    liveness="liveness" in names, backend=backend)
    except CampaignInputError as exc:
        raise InputError(str(exc)) from None
    for n in names:
        ev = violations.get(n)
        click.echo(f"  invariant   {n}: " + (f"VIOLATED: {ev[0][:300]}" if ev else "holds"))
    return list(violations)


def _run_target_case(file: Path, case: dict, backend: str, seed: int | None, extra: tuple[str, ...]) -> None:
    """A shrunk case of a module:function target: target:, seed:, faults:, invariants:."""
    from conformance.campaign.api import run_case
    from conformance.campaign.target import CampaignInputError, load_target

    names = list(dict.fromkeys([*(case.get("invariants") or []), *extra]))
    s = seed if seed is not None else case.get("seed", 0)
    try:
        if not isinstance(s, int) or isinstance(s, bool) or s < 0:
            raise CampaignInputError(f"{file}: seed must be an int >= 0, got {s!r}")
        faults = case.get("faults") or []
        if not isinstance(faults, list):
            raise CampaignInputError(f"{file}: faults must be a list")
        obs, violations = run_case(load_target(str(case["target"])), s, faults, names,
                                   liveness=bool(case.get("liveness")), backend=backend)
    except (CampaignInputError, ValueError) as exc:
        raise InputError(str(exc)) from None
    click.echo(f"tierbed run: case {file} (target {case['target']}), backend {backend}, seed {s}")
    click.echo(f"  run         {obs.run.label}" + (f" ({obs.run.message[:200]})" if obs.run.message else ""))
    for n in names:
        ev = violations.get(n)
        click.echo(f"  invariant   {n}: " + (f"VIOLATED: {ev[0][:300]}" if ev else "holds"))
    if violations:
        raise SystemExit(1)


def _load_corpus(paths: tuple[Path, ...], reserved: list[str]) -> list:
    """The scenario files of ``paths`` as cases; every problem to stderr, then exit 2 (nothing has run)."""
    from conformance.corpus import CorpusError, load_corpus

    try:
        return load_corpus(paths, reserved=reserved)
    except CorpusError as exc:
        for line in exc.problems:
            click.echo(line, err=True)
        raise InputError(f"{_plural(len(exc.problems), 'invalid scenario input')}; nothing was run") from None


def _plural(n: int, what: str) -> str:
    return f"{n} {what}" + ("" if n == 1 else "s")


@main.command("scenario-schema")
@click.option("--out", type=OutputFile(), default=None,
              help="Write the JSON Schema here instead of printing it.")
def scenario_schema(out: Path | None) -> None:
    """Export the JSON Schema of the YAML scenario format (for editors)."""
    from conformance.scenario import schema_text

    text = schema_text()
    if out is None:
        click.echo(text, nl=False)
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")
        click.echo(f"wrote {out}")


def _register_commands() -> None:
    from conformance.campaign.cli import campaign
    from conformance.exec_cmd import exec_command
    from conformance.fuzz.cli import fuzz

    main.add_command(campaign)
    main.add_command(exec_command)
    main.add_command(fuzz)


_register_commands()

if __name__ == "__main__":
    main()
