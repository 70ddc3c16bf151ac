"""``tierbed exec SCRIPT [ARGS...]``: run a script written for the real runtime on the simulator.

The script runs unchanged (:func:`compat.exec_script`): ``import simpler`` / ``simpler_setup``
resolve to the simulator facade, its output and exit status pass through. This module adds the
command line: options before SCRIPT are tierbed's, everything after it is the script's; a usage
error (no such script, a bad option value, a malformed faults or kernel-map file) exits 2.
``--faults FILE`` reads a YAML list in the scenario ``faults:`` vocabulary
(:func:`conformance.scenario.parse_faults`); a FaultPoint's ``target`` is a simulator scope name
(``l3.chip0``) and a remote fault's ``worker`` a NEXT_LEVEL worker id, since a script has no
scenario topology to name them by. ``python -m conformance.exec_cmd SCRIPT ...`` is the same command.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
import yaml

from conformance.usage import OutputDir, OutputFile
from sim.cost import builtin_profiles


class _AnyScope(dict):
    """Every FaultPoint target names itself (a script's Workers have only simulator scope names)."""

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str)

    def __getitem__(self, key: str) -> str:
        return key


def load_faults(path: Path) -> Any:
    """A fault file (a YAML list, scenario ``faults:`` vocabulary) as the simulator's FaultPlan; ValueError
    naming the file, the line and the field (``file:line: field: problem``), as a scenario file's are."""
    from pydantic import RootModel

    from conformance.scenario import FaultDef
    from conformance.scenario_runner import _fault
    from conformance.yamlfile import YamlFileError, compose, locate, read_text, validate
    from sim.remote.faults import FaultPlan

    file = str(path)
    try:
        node, data = compose(read_text(path, "faults"), file)
        if isinstance(data, dict) and set(data) == {"faults"} and isinstance(node, yaml.MappingNode):
            data, node = data["faults"], node.value[0][1]
        if not isinstance(data, list):
            raise YamlFileError(file, 1, "", "expected a YAML list of faults (the scenario 'faults:' vocabulary)")
        models = validate(node, data, RootModel[list[FaultDef]], file, "faults").root
        out = []
        for i, f in enumerate(models):
            line, _ = locate(node, (i,))
            if isinstance(getattr(f, "worker", None), str):
                raise YamlFileError(file, line, f"[{i}].worker", "must be a NEXT_LEVEL worker id (an int) under "
                                    "tierbed exec")
            try:
                out.append(_fault(f, {}, _AnyScope()))
            except Exception as exc:
                raise YamlFileError(file, line, f"[{i}]", str(exc)) from None
    except YamlFileError as exc:
        raise ValueError(str(exc)) from None
    return FaultPlan(tuple(out))


class _Script(click.Path):
    """SCRIPT: an existing file. Unknown options reach here as SCRIPT (they may be the script's own, after
    it), so one that names no file is reported as the mistyped option it most likely is."""

    def __init__(self) -> None:
        super().__init__(exists=True, dir_okay=False, path_type=Path)

    def convert(self, value, param, ctx):
        if isinstance(value, str) and value.startswith("-") and not Path(value).exists():
            self.fail(f"no such option: {value} (tierbed's options come before SCRIPT; see --help)", param, ctx)
        return super().convert(value, param, ctx)


@click.command("exec", context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False,
                                         "help_option_names": ["-h", "--help"]})
@click.option("--profile", default=None, metavar="NAME|FILE",
              help=f"Cost-model profile: {', '.join(builtin_profiles())} or a TOML file (default: by platform).")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, help="Simulation seed.")
@click.option("--timing-only", is_flag=True, help="Shapes and dtypes only: nothing allocated or computed.")
@click.option("--trace-out", type=OutputDir(), default=None,
              help="Write each Worker's trace here (Perfetto JSON + text).")
@click.option("--record-out", type=OutputFile(), default=None,
              help="Write the RunRecords of the script's Workers here (JSON).")
@click.option("--faults", "faults_file", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="A YAML list of faults (the scenario 'faults:' vocabulary) to inject.")
@click.option("--kernel-map", "kernel_maps", multiple=True, type=click.Path(exists=True, dir_okay=False),
              help="An extra kernel-map YAML file (repeatable; also TIERBED_KERNEL_MAP).")
@click.argument("script", type=_Script())
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def exec_command(ctx: click.Context, profile: str | None, seed: int, timing_only: bool, trace_out: Path | None,
                 record_out: Path | None, faults_file: Path | None, kernel_maps: tuple[str, ...], script: Path,
                 args: tuple[str, ...]) -> None:
    """Run SCRIPT (written for the real runtime) unchanged on the simulator; ARGS go to the script.

    Example: tierbed exec examples/workers/l2/vector_add/main.py -p a2a3sim
    """
    from compat import CompatError, ExecUsageError, exec_script

    if profile is not None and profile not in builtin_profiles() and not Path(profile).is_file():
        raise click.BadParameter(f"{profile!r} is neither a built-in profile ({', '.join(builtin_profiles())}) "
                                 f"nor a file", param_hint="--profile")
    faults = None
    if faults_file is not None:
        try:
            faults = load_faults(faults_file)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--faults") from None
    try:
        code = exec_script(script, list(args), profile=profile, seed=seed,
                           data_mode="timing" if timing_only else "functional", faults=faults,
                           trace_out=trace_out, record_out=record_out, kernel_maps=kernel_maps)
    except (ExecUsageError, CompatError) as exc:
        raise click.UsageError(str(exc)) from None
    ctx.exit(code)


def main(prog_name: str = "python -m conformance.exec_cmd") -> None:
    """The command under ``prog_name`` (how its usage lines name it)."""
    exec_command(prog_name=prog_name)


if __name__ == "__main__":
    main()
    sys.exit(0)
