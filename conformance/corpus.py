"""A corpus: a selection of YAML scenario files run as conformance cases.

``tierbed run DIR``, ``tierbed conform --scenarios DIR`` and ``pytest --tierbed-backend=sim DIR``
read their scenario files through this module:

- :func:`scenario_files` expands files and directories (recursively, ``*.yaml`` and ``*.yml``,
  sorted by path) into a deterministic list;
- :func:`load_corpus` loads every file (:func:`conformance.scenario.load_scenario`) and turns it
  into a :class:`~conformance.catalog.Case` whose ID is the scenario's name. Every problem of the
  selection (a path that does not exist, a directory without scenario files, a file that does not
  load, reported as ``file:line: field: message``, two files with the same scenario name) is
  collected first and raised together as one :class:`CorpusError`, so nothing runs on bad input.

A corpus case is found again in the runner's child process by a ``file`` locator
(:meth:`Case.locator`): it names :func:`case_from_file`, which reloads the scenario from its file.
A scenario with ``invariants:`` (a shrunk campaign case) also checks them after the run, each as
one check of the verdict. ``tierbed run`` also accepts a campaign case file of a
``module:function`` target (``target:`` at the top); it is a case of this module too
(:func:`target_case_from_file`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from conformance.catalog import Case, Level, case_loader
from conformance.scenario import Scenario, ScenarioError, load_scenario
from conformance.yamlfile import YamlFileError

SUFFIXES = (".yaml", ".yml")
_TOP_SCENARIO_KEY = re.compile(r"^scenario[ \t]*:", re.MULTILINE)


class CorpusError(ValueError):
    """A selection of scenario files that cannot be run; ``problems`` holds one line per problem."""

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = list(problems)


def _display(path: Path) -> str:
    return path.as_posix()


def scenario_files(paths: Iterable[str | Path]) -> list[Path]:
    """``paths`` with every directory replaced by the ``*.yaml`` / ``*.yml`` files under it (recursive,
    sorted); files keep the order given and a file named twice counts once. Raises :class:`CorpusError`
    for a path that does not exist or a directory holding no scenario file."""
    out: list[Path] = []
    seen: set[Path] = set()
    problems: list[str] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            found = sorted((f for f in p.rglob("*") if f.suffix in SUFFIXES and f.is_file()),
                           key=lambda f: f.relative_to(p).as_posix())
            if not found:
                problems.append(f"{_display(p)}: no scenario file (*.yaml, *.yml) in this directory")
        elif p.is_file():
            found = [p]
        else:
            problems.append(f"{_display(p)}: no such file or directory")
            continue
        for f in found:
            key = f.resolve()
            if key not in seen:
                seen.add(key)
                out.append(f)
    if problems:
        raise CorpusError(problems)
    return out


def looks_like_scenario(path: str | Path) -> bool:
    """Whether ``path`` is meant as a scenario file: its top-level mapping has a ``scenario:`` key. A file
    that is not valid YAML counts when a line starts with ``scenario:`` (so that its error is reported)."""
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        return bool(_TOP_SCENARIO_KEY.search(text))
    return isinstance(data, dict) and "scenario" in data


def looks_like_sequence(path: str | Path) -> bool:
    """Whether ``path`` is an API sequence file (``conformance.generators.stateful``): a top-level
    ``api_sequence:`` key."""
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8", errors="replace"))
    except (OSError, yaml.YAMLError):
        return False
    return isinstance(data, dict) and "api_sequence" in data


# ------------------------------------------------------------------------------------- cases


#: Why a case with invariants is NOT_SUPPORTED on the reference backend (campaign cases run on sim or hw).
INVARIANTS_NOT_ON_REFERENCE = ("invariants are checked on sim and hw only: the reference backend runs no "
                               "campaign case")


def _require_campaign_backend(rt: Any) -> None:
    from conformance.campaign.api import CAMPAIGN_BACKENDS

    if rt.name not in CAMPAIGN_BACKENDS:
        from conformance.backends import NotSupportedByBackend

        raise NotSupportedByBackend(f"backend {rt.name}: {INVARIANTS_NOT_ON_REFERENCE}")


def _check_invariants(ctx: Any, rt: Any, file: str, faults: list[Any], names: list[str]) -> None:
    """Run the scenario once more as a campaign case (as ``tierbed run`` does) and check ``names``."""
    from conformance.campaign.api import run_case
    from conformance.campaign.target import load_target

    _obs, violations = run_case(load_target(file), rt.seed, [f.model_dump(exclude_none=True) for f in faults],
                                names, liveness="liveness" in names, backend=rt.name)
    for n in names:
        ev = violations.get(n)
        ctx.check(f"invariant {n}", "holds", f"VIOLATED: {ev[0][:300]}" if ev else "holds")


def scenario_file_case(scn: Scenario, file: str | Path, invariants: Sequence[str] = (), *,
                       located: str | Path | None = None) -> Case:
    """Scenario ``scn`` (read from ``file``) as a case: ID the scenario's name, spec the file as given,
    found again in a child process through :func:`case_from_file` (from ``located``, by default ``file``
    made absolute). ``invariants`` are checked after the run in addition to the file's own ``invariants:``."""
    from conformance.scenario_runner import scenario_case

    shown = _display(Path(file))
    base = scenario_case(scn, shown, {})
    names = list(dict.fromkeys([*scn.invariants, *invariants]))
    fn = base.fn
    located = str(Path(located if located is not None else file).resolve())
    if names:

        def fn(rt: Any, ctx: Any) -> None:
            _require_campaign_backend(rt)  # before the run: a case is judged whole or not at all
            base.fn(rt, ctx)
            _check_invariants(ctx, rt, located, scn.faults, names)

    return replace(base, fn=fn, module=__name__, qualname=case_from_file.__name__, file=located, kind="file",
                   args=tuple(invariants))


@case_loader
def case_from_file(file: str, *invariants: str) -> Case:
    """The case of scenario file ``file`` (the ``file`` locator of :func:`scenario_file_case`)."""
    return scenario_file_case(load_scenario(file), file, invariants)


def target_case_id(file: str | Path) -> str:
    """The ID of a campaign case file's case: the file as given."""
    return _display(Path(file))


def target_file_case(data: dict[str, Any], file: str | Path, invariants: Sequence[str] = ()) -> Case:
    """A campaign case of a ``module:function`` target (``target:``, ``faults:``, ``invariants:``,
    ``liveness:``) as a case: it runs the target once with those faults and checks the invariants."""
    names = list(dict.fromkeys([*(data.get("invariants") or []), *invariants]))
    target = str(data["target"])
    faults = list(data.get("faults") or [])
    liveness = bool(data.get("liveness"))

    def fn(rt: Any, ctx: Any) -> None:
        from conformance.campaign.api import run_case
        from conformance.campaign.target import load_target

        _require_campaign_backend(rt)
        obs, violations = run_case(load_target(target), rt.seed, faults, names, liveness=liveness,
                                   backend=rt.name)
        ctx.note(f"run {obs.run.label}" + (f" ({obs.run.message[:200]})" if obs.run.message else ""))
        for n in names:
            ev = violations.get(n)
            ctx.check(f"invariant {n}", "holds", f"VIOLATED: {ev[0][:300]}" if ev else "holds")

    fn.__name__ = fn.__qualname__ = "campaign_case"
    shown = target_case_id(file)
    return Case(id=shown, title=f"campaign case of target {target}", spec=(shown, "case"), level=Level.MUST,
                backends=("sim", "reference", "hw"), fn=fn, module=__name__,
                qualname=target_case_from_file.__name__, file=str(Path(file).resolve()), kind="file",
                args=tuple(invariants))


def load_target_case(file: str | Path) -> dict[str, Any] | None:
    """A campaign case file of a ``module:function`` target, checked; None if ``file`` is not one.
    Raises :class:`ValueError` naming the file for one that is malformed."""
    from conformance.campaign.api import load_case

    data = load_case(file)
    if data is None:
        return None
    s = data.get("seed", 0)
    if not isinstance(s, int) or isinstance(s, bool) or s < 0:
        raise ValueError(f"{_display(Path(file))}: seed must be an int >= 0, got {s!r}")
    if not isinstance(data.get("faults") or [], list):
        raise ValueError(f"{_display(Path(file))}: faults must be a list")
    if not isinstance(data.get("invariants") or [], list):
        raise ValueError(f"{_display(Path(file))}: invariants must be a list")
    return data


@case_loader
def target_case_from_file(file: str, *invariants: str) -> Case:
    """The case of campaign case file ``file`` (the ``file`` locator of :func:`target_file_case`)."""
    data = load_target_case(file)
    if data is None:
        raise ValueError(f"{file}: not a campaign case file (target:) any more")
    return target_file_case(data, file, invariants)


def sequence_file_case(file: str | Path) -> Case:
    """An API sequence file (a shrunk stateful-machine failure) as a case: its steps replay on the
    backend against the simulator as model, and the case passes when no step departs. ID: the file's stem.
    Raises the file's ``StepsFileError`` (``file:line: field: message``) for a bad file."""
    from conformance.generators.stateful import load_steps, load_steps_file

    load_steps_file(file)
    steps = load_steps(file)
    located = str(Path(file).resolve())

    def fn(rt: Any, ctx: Any) -> None:
        from conformance.generators.stateful import replay_steps

        mismatches = replay_steps(steps, rt.name, rt.seed)
        ctx.note(f"{len(steps)} API calls replayed on {rt.name}, the simulator as model")
        ctx.check("every call ends as the simulator models it", "no departure",
                  "; ".join(f"step {m.step} {m.op}: {m.detail}" for m in mismatches)[:600] or "no departure")

    fn.__name__ = fn.__qualname__ = "api_sequence"
    shown = _display(Path(file))
    return Case(id=Path(file).stem, title=f"API sequence {shown}", spec=(shown, "api_sequence"), level=Level.MUST,
                backends=("sim", "hw"), fn=fn, module=__name__, qualname=sequence_case_from_file.__name__,
                file=located, kind="file", args=())


@case_loader
def sequence_case_from_file(file: str) -> Case:
    """The case of API sequence file ``file`` (the ``file`` locator of :func:`sequence_file_case`)."""
    return sequence_file_case(file)


# ------------------------------------------------------------------------------------- a selection


@dataclass(frozen=True)
class Entry:
    """One file of a selection: its case, the seed the file asks for (``seed:``), if any, and every
    invariant its case checks (the file's own, then those given)."""

    file: Path
    case: Case
    seed: int | None = None
    invariants: tuple[str, ...] = ()


def load_entries(paths: Iterable[str | Path], *, invariants: Sequence[str] = (), targets: bool = False,
                 reserved: Iterable[str] = ()) -> list[Entry]:
    """Every file of ``paths`` (see :func:`scenario_files`) as an :class:`Entry`, in order.

    ``targets``: a campaign case file of a ``module:function`` target is accepted too (as
    ``tierbed run`` does). ``reserved``: IDs that a scenario must not take (the catalog's). All the
    problems are gathered and raised together as :class:`CorpusError`.
    """
    files = scenario_files(paths)
    problems: list[str] = []
    entries: list[Entry] = []
    for f in files:
        try:
            if looks_like_sequence(f):
                entries.append(Entry(f, sequence_file_case(f)))
                continue
            data = load_target_case(f) if targets else None
            if data is not None:
                names = tuple(dict.fromkeys([*(data.get("invariants") or []), *invariants]))
                entries.append(Entry(f, target_file_case(data, f, invariants), data.get("seed"), names))
                continue
            scn = load_scenario(f)
        except (ScenarioError, ValueError, YamlFileError) as exc:
            problems.append(str(exc))
            continue
        names = tuple(dict.fromkeys([*scn.invariants, *invariants]))
        entries.append(Entry(f, scenario_file_case(scn, f, invariants), scn.seed, names))
    by_id: dict[str, Entry] = {}
    taken = set(reserved)
    for e in entries:
        if e.case.id in by_id:
            problems.append(f"{_display(e.file)}: scenario name {e.case.id!r} is also the name of "
                            f"{_display(by_id[e.case.id].file)}; a selection's scenario names must be unique")
        elif e.case.id in taken:
            problems.append(f"{_display(e.file)}: scenario name {e.case.id!r} is the ID of a catalog case; "
                            "rename the scenario")
        else:
            by_id[e.case.id] = e
    if problems:
        raise CorpusError(problems)
    return entries


def load_corpus(paths: Iterable[str | Path], *, reserved: Iterable[str] = ()) -> list[Case]:
    """The scenario files of ``paths`` as cases, in file order (see :func:`load_entries`)."""
    return [e.case for e in load_entries(paths, reserved=reserved)]


__all__ = ["SUFFIXES", "CorpusError", "Entry", "case_from_file", "load_corpus", "load_entries", "load_target_case",
           "looks_like_scenario", "looks_like_sequence", "scenario_file_case", "scenario_files",
           "sequence_case_from_file", "sequence_file_case", "target_case_from_file", "target_file_case"]
