"""A pytest plugin: the conformance catalog, and YAML scenario files, as test items.

``pytest --tierbed-backend=sim [--tierbed-cases=PATTERN]`` collects one item per catalog case (its
name is the case ID) and runs each through the real runner (:func:`conformance.runner.run_cases`,
so in its own process with its timeout). Verdicts map to pytest outcomes:

- PASS -> passed;
- NOT_SUPPORTED, SKIP -> skipped, with the verdict and the reason;
- NON_STRICT (a SHOULD missed) -> xfailed, with the summary;
- FAIL, CRASH, TIMEOUT -> failed, with the spec section and the failing evidence;
- a failure the shipped expectations list for this backend version (a known departure) -> xfailed,
  with its reason (``--tierbed-no-builtin-expectations`` turns that off; ``--tierbed-expectations
  FILE`` adds a file of your own, as ``tierbed conform --expectations`` does);
- a listed case that passes now (a stale entry) -> passed, with a warning naming the file to edit.

The catalog items are added to what pytest collects anyway (in a checkout, the project's own test
suite); each carries the ``tierbed`` marker (registered below), so ``-m tierbed`` runs only the
catalog and ``-m "not tierbed"`` only the rest.

YAML scenarios (a corpus, :mod:`conformance.corpus`) become items too, one per file, named by the
scenario (``dir/a.yaml::l3-chip-pipeline``), run and mapped the same way (an expectations file lists
one by its scenario name), with the ``tierbed`` marker:

- ``--tierbed-scenarios PATH`` (a file or a directory, searched recursively; repeatable) adds them;
- a ``*.yaml`` / ``*.yml`` file that pytest collects (given on the command line, or in a collected
  directory) whose top-level mapping has a ``scenario:`` key is collected as one; other YAML files
  are left alone.

A scenario file that does not load is a collection error reading ``file:line: field: message``; two
scenarios with one name, or a scenario named like a catalog case, is a usage error.
``--tierbed-no-catalog`` collects the scenarios without the catalog.

Without ``--tierbed-backend`` the plugin collects nothing and changes nothing. It is registered
through the ``pytest11`` entry point of the package.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

BACKENDS = ("sim", "reference", "hw")
#: The known departures for the session's backend version (set once collection is done).
EXPECTATIONS_KEY = pytest.StashKey[Any]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("tierbed", "tierbed conformance catalog")
    group.addoption("--tierbed-backend", choices=BACKENDS, default=None,
                    help="Collect the conformance catalog and judge it on this backend.")
    group.addoption("--tierbed-cases", default=None, metavar="PATTERN",
                    help="Comma-separated case ID globs or prefixes (e.g. 'ORCH,RBUF-00*').")
    group.addoption("--tierbed-seed", type=int, default=0, help="Run seed (default 0).")
    group.addoption("--tierbed-timeout", type=float, default=30.0, help="Per-case timeout in seconds (default 30).")
    group.addoption("--tierbed-expectations", action="append", default=[], metavar="FILE",
                    help="An extra expectations file of known departures (repeatable); see "
                         "conformance/expectations/.")
    group.addoption("--tierbed-no-builtin-expectations", action="store_true", default=False,
                    help="Ignore the shipped expectations files: a known departure fails like any other.")
    group.addoption("--tierbed-scenarios", action="append", default=[], metavar="PATH",
                    help="A YAML scenario file, or a directory of them (recursive), collected as items next to the "
                         "catalog (repeatable).")
    group.addoption("--tierbed-no-catalog", action="store_true", default=False,
                    help="Do not collect the catalog: only the YAML scenarios.")


class TierbedCaseFailure(Exception):
    """A case that FAILed, CRASHed or TIMEd OUT; carries the runner's result."""

    def __init__(self, result: Any) -> None:
        super().__init__(result.summary)
        self.result = result


def _describe(result: Any) -> str:
    case = result.case
    lines = [f"{case.id} [{case.level.value}] {case.title}", f"  spec: {case.spec_text()}",
             f"  verdict: {result.verdict.value}" + (f" -- {result.summary}" if result.summary else "")]
    for e in result.evidence:
        if e.get("ok", True):
            continue
        lines.append(f"  [{e.get('level', '')}] {e.get('check', '')} {e.get('label', '')}: "
                     f"expected {e.get('expected')!r}, observed {e.get('observed')!r}"
                     + (f" ({e['message']})" if e.get("message") else ""))
        if e.get("traceback"):
            lines.append("    " + str(e["traceback"]).rstrip().replace("\n", "\n    "))
    return "\n".join(lines)


class TierbedCatalog(pytest.Collector):
    """The selected cases of the project's catalog."""

    def __init__(self, *, backend: str, pattern: str | None, expectations: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.backend = backend
        self.pattern = pattern
        self.expectations = expectations  # the known departures for this backend's version

    def collect(self) -> list[pytest.Item]:
        from conformance.catalog import load_catalog

        cases = load_catalog().select(self.pattern)
        return [TierbedCaseItem.from_parent(self, name=c.id, case=c) for c in cases]


class TierbedCaseItem(pytest.Item):
    """One catalog case, run in its own process by the runner."""

    def __init__(self, *, case: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.case = case
        self.add_marker(pytest.mark.tierbed)
        self.user_properties.append(("level", case.level.value))
        self.user_properties.append(("spec", case.spec_text()))

    def runtest(self) -> None:
        from conformance.judge import Verdict
        from conformance.runner import run_cases

        opt = self.config.getoption
        run = run_cases([self.case], opt("tierbed_backend"), seed=opt("tierbed_seed"), jobs=1,
                        timeout_s=opt("tierbed_timeout"), expectations=self.config.stash.get(EXPECTATIONS_KEY, None))
        result = run.results[0]
        self.user_properties.append(("verdict", result.verdict.value))
        if result.verdict is Verdict.PASS:
            if result.expectation is not None:  # stale: listed as a departure, but it passes now
                self.warn(pytest.PytestWarning(f"{self.case.id} passes now: remove it from "
                                               f"{result.expectation['file']}"))
            return
        if result.known:
            pytest.xfail(f"known departure ({result.verdict.value}, {result.expectation['file']}): "
                         f"{result.expectation['reason']}")
        if result.verdict in (Verdict.NOT_SUPPORTED, Verdict.SKIP):
            # reported at the case's own location, as pytest does for a skip marker
            raise pytest.skip.Exception(f"{result.verdict.value}: {result.summary or 'no reason given'}",
                                        _use_item_location=True)
        if result.verdict is Verdict.NON_STRICT:
            pytest.xfail(f"NON_STRICT (a SHOULD missed): {result.summary}")
        raise TierbedCaseFailure(result)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        if isinstance(excinfo.value, TierbedCaseFailure):
            return _describe(excinfo.value.result)
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self) -> tuple[Any, int | None, str]:
        import inspect

        if self.case.kind == "file":  # a scenario: its file
            return self.path, None, f"{self.case.id} {self.case.title}"
        try:
            line: int | None = inspect.getsourcelines(self.case.fn)[1] - 1
        except (OSError, TypeError):
            line = None
        return self.case.file or self.path, line, f"{self.case.id} {self.case.title}"


class TierbedScenarioError(Exception):
    """A scenario file that does not load; its message is ``file:line: field: message``."""


class TierbedScenarioFile(pytest.File):
    """One YAML scenario file: one item, named by the scenario."""

    def collect(self) -> list[pytest.Item]:
        from conformance.corpus import looks_like_sequence, scenario_file_case, sequence_file_case
        from conformance.scenario import ScenarioError, parse_scenario
        from conformance.yamlfile import YamlFileError, read_text

        here = self.config.invocation_params.dir
        shown = self.path.relative_to(here) if self.path.is_relative_to(here) else self.path
        if looks_like_sequence(self.path):  # a shrunk API sequence (tierbed fuzz --api)
            try:
                case = sequence_file_case(self.path)
            except YamlFileError as exc:
                raise TierbedScenarioError(str(exc)) from None
            return [TierbedCaseItem.from_parent(self, name=case.id, case=case)]
        try:
            scn = parse_scenario(read_text(self.path, "scenario", ScenarioError), shown.as_posix())
        except ScenarioError as exc:
            raise TierbedScenarioError(str(exc)) from None
        case = scenario_file_case(scn, shown, located=self.path)  # the child process finds it from anywhere
        return [TierbedCaseItem.from_parent(self, name=scn.scenario, case=case)]

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        if isinstance(excinfo.value, TierbedScenarioError):
            return str(excinfo.value)  # file:line: field: message, without a traceback
        return super().repr_failure(excinfo, style=style)


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    """A ``*.yaml`` / ``*.yml`` file whose top-level mapping has ``scenario:`` (or ``api_sequence:``), under
    ``--tierbed-backend``."""
    if not parent.config.getoption("tierbed_backend", default=None):
        return None
    from conformance.corpus import SUFFIXES, looks_like_scenario, looks_like_sequence

    if file_path.suffix in SUFFIXES and (looks_like_scenario(file_path) or looks_like_sequence(file_path)):
        return TierbedScenarioFile.from_parent(parent, path=file_path)
    return None


def _scenario_items(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> list[pytest.Item]:
    """The items of ``--tierbed-scenarios`` (files already collected are not collected twice)."""
    from _pytest.runner import collect_one_node

    from conformance.corpus import CorpusError, scenario_files

    try:
        files = scenario_files(config.getoption("tierbed_scenarios"))
    except CorpusError as exc:
        raise pytest.UsageError(f"--tierbed-scenarios: {exc}") from None
    have = {it.path.resolve() for it in items if isinstance(it, TierbedCaseItem) and it.case.kind == "file"}
    out: list[pytest.Item] = []
    for f in files:
        if f.resolve() in have:
            continue
        node = TierbedScenarioFile.from_parent(session, path=f.resolve())
        rep = collect_one_node(node)
        session.ihook.pytest_collectreport(report=rep)  # a collection error is counted and shown as pytest's own
        out.extend(x for x in rep.result if isinstance(x, pytest.Item))
    return out


def _check_names(scenarios: list[pytest.Item], catalog_ids: set[str]) -> None:
    """Two scenario items with one name, or one named like a catalog case: a usage error naming the files."""
    seen: dict[str, Any] = {}
    problems = []
    for it in scenarios:
        cid = it.case.id
        if cid in seen:
            problems.append(f"{it.path}: scenario name {cid!r} is also the name of {seen[cid]}")
        elif cid in catalog_ids:
            problems.append(f"{it.path}: scenario name {cid!r} is the ID of a catalog case; rename the scenario")
        else:
            seen[cid] = it.path
    if problems:
        raise pytest.UsageError("\n".join(problems))


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "tierbed: a conformance catalog case (collected by --tierbed-backend)")


@pytest.hookimpl(tryfirst=True)  # before -k / -m deselection, so they apply
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    backend = config.getoption("tierbed_backend", default=None)
    if not backend:
        return
    from _pytest.runner import collect_one_node

    from conformance.backends import BackendUnavailable, get_backend
    from conformance.catalog import load_catalog
    from conformance.expectations import ExpectationsError, backend_version, load_expectations

    try:
        rt = get_backend(backend, config.getoption("tierbed_seed"))
    except BackendUnavailable as exc:
        raise pytest.UsageError(f"--tierbed-backend={backend}: {exc}") from None
    scenarios = [it for it in items if isinstance(it, TierbedCaseItem) and it.case.kind == "file"]
    scenarios += _scenario_items(session, config, items)
    catalog_ids = {c.id for c in load_catalog()}
    _check_names(scenarios, catalog_ids)
    try:
        expectations = load_expectations(rt.name, backend_version(rt.describe()),
                                         config.getoption("tierbed_expectations"),
                                         builtin=not config.getoption("tierbed_no_builtin_expectations"),
                                         case_ids=[*catalog_ids, *(it.case.id for it in scenarios)])
    except ExpectationsError as exc:
        raise pytest.UsageError(f"--tierbed-expectations: {exc}") from None
    config.stash[EXPECTATIONS_KEY] = expectations
    have = {id(it) for it in items}
    items.extend(it for it in scenarios if id(it) not in have)
    if config.getoption("tierbed_no_catalog"):
        return
    name = f"tierbed-{backend}"
    catalog = TierbedCatalog.from_parent(session, name=name, nodeid=name, backend=backend,
                                         pattern=config.getoption("tierbed_cases"), expectations=expectations)
    # Collected like any other node, so that the counts, --collect-only and the collect hooks see it.
    rep = collect_one_node(catalog)
    session.ihook.pytest_collectreport(report=rep)
    cases = [x for x in rep.result if isinstance(x, pytest.Item)]
    if rep.failed:
        raise pytest.UsageError(f"the conformance catalog could not be collected:\n{rep.longreprtext}")
    if not cases:
        raise pytest.UsageError(f"--tierbed-cases={config.getoption('tierbed_cases')!r} matches no case")
    items.extend(cases)
