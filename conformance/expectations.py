"""Expectations files: known departures of a backend version, checked in with the reason.

A departure the maintainers know about (a real runtime that is stricter or looser than the spec,
a decision still open upstream) should not turn CI red run after run, and it must not vanish from
the reports either. An expectations file lists such departures for one backend and a range of its
versions; the run still judges every case, and a result whose verdict a departure allows is marked
*known* (with the reason) instead of counting as a failure. A listed case that now passes is
marked *stale*: the departure is gone and the entry should be removed.

Files live in ``conformance/expectations/*.yaml`` (shipped with the package) or are given with
``tierbed conform --expectations FILE``. Format::

    backend: hw                       # sim | reference | hw
    versions: ">=0.1,<0.2"            # PEP 440 specifiers on the backend's runtime version ("" = any)
    departures:
      - case: LVL-008                 # a catalog case ID, or the name of a corpus scenario run with
                                      # --scenarios (conformance.corpus)
        verdicts: [FAIL]              # the verdicts this departure allows (default [FAIL]); add PASS
                                      # for one that shows only sometimes (a race): never stale
        reason: "why the backend departs and what decides it"
        upstream: "python/simpler/worker.py Worker.add_worker"   # optional: where the backend's behaviour is

A bad file fails with :class:`ExpectationsError` naming the file, the line and the field; a case ID
that is not in the catalog, or one listed twice for the same backend version, is an error too.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version
from pydantic import BaseModel, ConfigDict, Field, field_validator

from conformance.yamlfile import YamlFileError, compose, locate, read_text, validate

BUILTIN_DIR = Path(__file__).with_name("expectations")
BackendName = Literal["sim", "reference", "hw"]
VerdictName = Literal["FAIL", "NON_STRICT", "CRASH", "TIMEOUT", "NOT_SUPPORTED", "PASS"]


class ExpectationsError(YamlFileError):
    """An expectations file that cannot be used: names the file, the line (1-based) and the field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class DepartureEntry(_Strict):
    case: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_.\-]*$",
                               description="a catalog case ID (e.g. LVL-008) or a corpus scenario's name")]
    verdicts: list[VerdictName] = Field(default_factory=lambda: ["FAIL"], min_length=1)
    reason: Annotated[str, Field(min_length=10, description="why the backend departs; what would settle it")]
    upstream: str | None = None


class ExpectationsFile(_Strict):
    backend: BackendName
    versions: str = ""
    departures: list[DepartureEntry] = Field(default_factory=list)

    @field_validator("versions")
    @classmethod
    def _specifiers(cls, v: str) -> str:
        try:
            SpecifierSet(v)
        except InvalidSpecifier:
            raise ValueError(f"not a PEP 440 version specifier set: {v!r} (e.g. '>=0.1,<0.2')") from None
        return v


@dataclass(frozen=True)
class Departure:
    """One known departure, with the file it came from."""

    case: str
    verdicts: tuple[str, ...]
    reason: str
    upstream: str | None
    file: str

    def to_json(self, status: str) -> dict[str, Any]:
        return {"status": status, "reason": self.reason, "verdicts": list(self.verdicts),
                "upstream": self.upstream, "file": self.file}


@dataclass
class Expectations:
    """The departures that apply to one backend version, by case ID."""

    backend: str
    version: str
    by_case: dict[str, Departure]
    files: tuple[str, ...]

    def classify(self, case_id: str, verdict: str) -> dict[str, Any] | None:
        """``{"status": "known"|"stale", ...}`` for a listed case, else ``None``.

        ``known``: the verdict is a failure the departure allows. ``stale``: the case now PASSes and
        the departure does not list PASS (a departure that shows only sometimes lists it). A listed
        case with some other verdict (say a CRASH where a FAIL is known) is neither, so it still
        counts as the failure it is.
        """
        dep = self.by_case.get(case_id)
        if dep is None:
            return None
        if verdict == "PASS":
            return None if "PASS" in dep.verdicts else dep.to_json("stale")
        if verdict in dep.verdicts:
            return dep.to_json("known")
        return None


def parse_expectations(text: str, file: str, case_ids: Iterable[str] | None = None) -> ExpectationsFile:
    """Validate one file's text; unknown or repeated case IDs are errors naming their line."""
    node, data = compose(text, file, ExpectationsError)
    if not isinstance(data, dict):
        raise ExpectationsError(file, 1, "", "an expectations file is a YAML mapping (backend:, versions:, "
                                             "departures:)")
    model = validate(node, data, ExpectationsFile, file, "expectations", ExpectationsError)
    known = set(case_ids) if case_ids is not None else None
    seen: set[str] = set()
    for i, d in enumerate(model.departures):
        problem = ("is not a case of the catalog (see 'tierbed list')" if known is not None and d.case not in known
                   else "is listed twice in this file" if d.case in seen else None)
        if problem:
            line, path = locate(node, ("departures", i, "case"))
            raise ExpectationsError(file, line, path, f"{d.case} {problem}")
        seen.add(d.case)
    return model


def _version_matches(spec: str, version: str) -> bool:
    if not spec:
        return True
    try:
        return Version(version) in SpecifierSet(spec)
    except InvalidVersion:
        return False  # an unversioned backend ("unknown") matches only files for any version


def load_expectations(backend: str, version: str, files: Sequence[str | Path] | None = None, *,
                      builtin: bool = True, case_ids: Iterable[str] | None = None) -> Expectations:
    """The departures for ``backend`` at ``version``: from the shipped files (unless ``builtin`` is
    off) and from ``files``; files for another backend or version range are ignored."""
    # Shipped files are named as in the source tree, not by where the package is installed.
    paths = [(p, f"conformance/expectations/{p.name}") for p in sorted(BUILTIN_DIR.glob("*.yaml"))] if builtin else []
    paths += [(Path(f), str(f)) for f in files or ()]
    if case_ids is None:
        from conformance.catalog import load_catalog

        case_ids = [c.id for c in load_catalog()]
    ids = list(case_ids)
    by_case: dict[str, Departure] = {}
    used: list[str] = []
    for p, name in paths:
        model = parse_expectations(read_text(p, "expectations", ExpectationsError), name, ids)
        if model.backend != backend or not _version_matches(model.versions, version):
            continue
        used.append(name)
        for d in model.departures:
            if d.case in by_case:
                raise ExpectationsError(name, None, "departures",
                                        f"{d.case} is already listed in {by_case[d.case].file} for this version")
            by_case[d.case] = Departure(d.case, tuple(d.verdicts), d.reason, d.upstream, name)
    return Expectations(backend, version, by_case, tuple(used))


def backend_version(meta: dict[str, Any]) -> str:
    """The version an expectations file is matched against: the runtime's, else tierbed's own."""
    return str(meta.get("runtime_version") or meta.get("version") or "unknown")


def expectations_for(rt: Any, files: Sequence[str | Path] = (), *, builtin: bool = True) -> Expectations:
    """The departures that apply to backend ``rt`` (a ``RuntimeAPI``) at the version it describes."""
    return load_expectations(rt.name, backend_version(rt.describe()), files, builtin=builtin)
