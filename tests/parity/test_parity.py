"""Parity of the ``compat`` facade with upstream simpler's public Python surface.

The manifest (``simpler-6ebaf771.json``, written by ``tools/parity_manifest.py`` from an upstream
checkout with :mod:`ast`) lists every public module name, class member and documented signature of
upstream at that commit. Each entry ``simpler.<mod>:<qualname>`` must resolve in
``compat.simpler.<mod>`` (``simpler_setup.<mod>`` in ``compat.simpler_setup.<mod>``), and a
callable must accept what upstream's accepts: the same positional parameters in the same order,
the same keyword names, a default wherever upstream has one, ``*args`` / ``**kwargs`` where
upstream has them. The facade may accept more (extra optional parameters, ``**kwargs``).

A name the facade lacks fails the test unless ``not_modeled.yaml`` lists it (or its module or
class) with a reason:

- ``not_modeled:``: outside what tierbed models (communication domains, MPI sessions, device-only
  helpers, logging internals ...). Counted, never reported as a failure.
- ``pending:``: should exist but does not yet ("not modeled yet"). Counted and reported as a
  warning, not a failure.

Where python-api.md and the source both list a name, the source's signature is checked (the page:
"Treat the source as authoritative when the two disagree"); the page's own signature is checked
only for names the Python source does not define (those of the compiled extension). A name the
page lists at a package root (``simpler_setup``'s table) is judged by the module that defines it.

The summary line ("N of M upstream public names modeled, K not modeled with reasons, P pending")
is printed (``pytest -s``) and raised as a :class:`ParitySummary` warning.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import json
import os
import subprocess
import sys
import warnings
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import pytest
import yaml

HERE = Path(__file__).parent
ROOT = HERE.parent.parent
MANIFEST = HERE / "simpler-6ebaf771.json"
NOT_MODELED = HERE / "not_modeled.yaml"
EMPTY = inspect.Parameter.empty
POSITIONAL = ("POSITIONAL_ONLY", "POSITIONAL_OR_KEYWORD")


class ParitySummary(UserWarning):
    """The parity figures of a run (a warning so that it shows in pytest's summary)."""


# ----------------------------------------------------------------------------- inputs


def load_manifest() -> dict[str, Any]:
    return json.loads(MANIFEST.read_text(encoding="utf-8"))


def manifest_entries(manifest: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """``module:qualname`` -> its entries (one from the source, one from the docs, or both)."""
    out: dict[str, list[dict[str, Any]]] = {}
    for module, m in manifest["modules"].items():
        for name, e in m["names"].items():
            out.setdefault(f"{module}:{name}", []).append({**e, "source": e.get("source", "ast")})
            for member, me in e.get("members", {}).items():
                out.setdefault(f"{module}:{name}.{member}", []).append({**me, "source": "ast"})
    for key, e in manifest["docs"].items():
        out.setdefault(key, []).append(e)
    return dict(sorted(out.items()))


def load_exceptions() -> tuple[dict[str, str], dict[str, str]]:
    """``not_modeled`` and ``pending`` patterns with their reasons."""
    data = yaml.safe_load(NOT_MODELED.read_text(encoding="utf-8")) or {}
    return dict(data.get("not_modeled") or {}), dict(data.get("pending") or {})


def covers(pattern: str, key: str) -> bool:
    """A pattern names an entry, its module (``simpler.x``), its class (and so its members), or
    matches it as a glob; ``name()`` names the entry alone (a signature that differs), not its
    members."""
    if pattern.endswith("()"):
        return key == pattern[:-2]
    return key == pattern or key.startswith((pattern + ".", pattern + ":")) or fnmatchcase(key, pattern)


def facade_module(module: str) -> str:
    """``simpler.x`` -> ``compat.simpler.x``; ``simpler_setup.x`` -> ``compat.simpler_setup.x``."""
    return f"compat.{module}"


# ----------------------------------------------------------------------------- checks


def compatible(upstream: list[dict[str, Any]], sig: inspect.Signature) -> list[str]:
    """Why a facade signature does not accept every call upstream's accepts (empty when it does)."""
    problems: list[str] = []
    fparams = list(sig.parameters.values())
    kinds = {p.kind.name for p in fparams}
    var_pos, var_kw = "VAR_POSITIONAL" in kinds, "VAR_KEYWORD" in kinds
    f_pos = [p for p in fparams if p.kind.name in POSITIONAL]
    by_name = {p.name: p for p in fparams if p.kind.name in ("POSITIONAL_OR_KEYWORD", "KEYWORD_ONLY")}
    up_pos = [p for p in upstream if p["kind"] in POSITIONAL]
    for i, p in enumerate(up_pos):
        if i < len(f_pos):
            fp = f_pos[i]
            if p["kind"] == "POSITIONAL_OR_KEYWORD" and (fp.name != p["name"] or fp.kind.name != p["kind"]):
                problems.append(f"positional parameter {i} is {p['name']!r} (positional or keyword) upstream, "
                                f"{fp.name!r} ({fp.kind.name.lower()}) here")
            elif p["default"] and fp.default is EMPTY:
                problems.append(f"{p['name']!r} has a default upstream, not here")
        elif not var_pos:
            problems.append(f"takes no positional parameter {i} ({p['name']!r})")
        elif p["kind"] == "POSITIONAL_OR_KEYWORD" and not var_kw and p["name"] not in by_name:
            problems.append(f"does not accept {p['name']!r} by keyword")
    for p in upstream:
        if p["kind"] == "KEYWORD_ONLY":
            fp = by_name.get(p["name"])
            if fp is None and not var_kw:
                problems.append(f"does not accept keyword {p['name']!r}")
            elif fp is not None and p["default"] and fp.default is EMPTY:
                problems.append(f"keyword {p['name']!r} has a default upstream, not here")
        elif p["kind"] == "VAR_POSITIONAL" and not var_pos:
            problems.append(f"takes no *{p['name']}")
        elif p["kind"] == "VAR_KEYWORD" and not var_kw:
            problems.append(f"takes no **{p['name']}")
    names = {p["name"] for p in upstream}
    for i, fp in enumerate(fparams):
        if fp.kind.name.startswith("VAR_") or fp.default is not EMPTY or fp.name in names:
            continue
        if fp.kind.name in POSITIONAL and f_pos.index(fp) < len(up_pos):
            continue  # a positional parameter upstream fills (its name was judged above)
        problems.append(f"requires {fp.name!r}, which upstream does not have (parameter {i})")
    return problems


def facade_signature(owner: Any, name: str, obj: Any) -> inspect.Signature | None:
    """The signature callers see: ``self`` dropped from a plain method looked up on its class."""
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        return None  # a builtin without a text signature: not checkable
    if inspect.isclass(owner) and not inspect.isclass(obj):
        raw = inspect.getattr_static(owner, name, None)
        if inspect.isfunction(raw):  # an instance method: drop self
            params = list(sig.parameters.values())[1:]
            sig = sig.replace(parameters=params)
    return sig


def has_attribute(cls: Any, name: str) -> bool:
    """A class attribute, a dataclass field, an annotated or slotted attribute, or one its
    no-argument instance has."""
    if hasattr(cls, name):
        return True
    for klass in getattr(cls, "__mro__", ()):
        if name in getattr(klass, "__annotations__", {}) or name in getattr(klass, "__slots__", ()):
            return True
        if name in getattr(klass, "__dataclass_fields__", {}):
            return True
    try:
        return hasattr(cls(), name)
    except Exception:  # a class that needs arguments
        return False


@dataclass
class Report:
    total: int = 0
    modeled: list[str] = field(default_factory=list)
    not_modeled: dict[str, str] = field(default_factory=dict)  # key -> reason
    pending: dict[str, str] = field(default_factory=dict)
    failing: dict[str, str] = field(default_factory=dict)  # key -> problem
    unused: list[str] = field(default_factory=list)  # exception patterns that match no entry
    stale: list[str] = field(default_factory=list)  # pending patterns whose names are all modeled now

    def summary(self) -> str:
        return (f"{len(self.modeled)} of {self.total} upstream public names modeled, "
                f"{len(self.not_modeled)} not modeled with reasons, {len(self.pending)} pending")


def defining_source(key: str, all_entries: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """The source entries of a name a package root re-exports (``simpler_setup:KernelCompiler.x``
    is defined in ``simpler_setup.kernel_compiler``): what python-api.md's root table points at."""
    module, qualname = key.split(":", 1)
    if "." in module:
        return []
    return [e for k, es in all_entries.items() for e in es
            if k.startswith(module + ".") and k.split(":", 1)[1] == qualname and e.get("source") != "docs"]


def check_entry(key: str, entries: list[dict[str, Any]], modules: dict[str, Any],
                defined: list[dict[str, Any]] = ()) -> str | None:
    """What is wrong with the facade's ``key`` (``None``: it is modeled). ``defined``: the source
    entries of the module that defines a re-exported name."""
    module, qualname = key.split(":", 1)
    mod = modules.get(module)
    if isinstance(mod, BaseException):
        return f"{facade_module(module)} does not import ({type(mod).__name__}: {mod})"
    owner, obj, path = None, mod, [facade_module(module)]
    for part in qualname.split("."):
        if inspect.isclass(obj) and not hasattr(obj, part):
            kinds = {e["kind"] for e in entries}
            if kinds <= {"attribute", "property", "name"} and has_attribute(obj, part):
                return None
        if not hasattr(obj, part):
            return f"missing: {'.'.join(path)} has no {part!r}"
        owner, obj = obj, getattr(obj, part)
        path.append(part)
    source = [e for e in entries if e.get("source") != "docs"] or list(defined)
    for e in source or entries:  # the source is authoritative where it lists the name
        if "params" not in e or not callable(obj):
            continue
        sig = facade_signature(owner, qualname.rsplit(".", 1)[-1], obj)
        if sig is None:
            continue
        problems = compatible(e["params"], sig)
        if problems:
            return f"signature ({e.get('source')}): " + "; ".join(problems)
    return None


def run_parity() -> Report:
    manifest = load_manifest()
    entries = manifest_entries(manifest)
    not_modeled, pending = load_exceptions()
    modules: dict[str, Any] = {}
    for key in entries:
        module = key.split(":", 1)[0]
        if module not in modules:
            try:
                modules[module] = importlib.import_module(facade_module(module))
            except Exception as exc:  # a module that does not import is reported per name
                modules[module] = exc
    report = Report(total=len(entries))
    for key, es in entries.items():
        problem = check_entry(key, es, modules, defining_source(key, entries))
        if problem is None:
            report.modeled.append(key)
            continue
        reason = next((r for p, r in not_modeled.items() if covers(p, key)), None)
        if reason is not None:
            report.not_modeled[key] = reason
            continue
        reason = next((r for p, r in pending.items() if covers(p, key)), None)
        if reason is not None:
            report.pending[key] = f"{reason} ({problem})"
            continue
        report.failing[key] = problem
    report.unused = [p for p in [*not_modeled, *pending] if not any(covers(p, k) for k in entries)]
    report.stale = [p for p in pending if not any(covers(p, k) for k in report.pending)]
    return report


def compact(failing: dict[str, str]) -> list[str]:
    """One line per failing name, but one for a module that does not import and one for a missing
    class (with how many names it takes along)."""
    lines: list[str] = []
    done: set[str] = set()
    for key, problem in failing.items():
        if key in done:
            continue
        module = key.split(":", 1)[0]
        if "does not import" in problem:
            group = [k for k in failing if k.split(":", 1)[0] == module]
        elif problem.startswith("missing:"):
            group = [k for k in failing if k == key or k.startswith(key + ".")]
        else:
            group = [key]
        done.update(group)
        more = f" (and {len(group) - 1} of its names)" if len(group) > 1 else ""
        lines.append(f"{module if 'does not import' in problem else key}: {problem}{more}")
    return lines


def pending_section(report: Report) -> str:
    """The ``pending:`` block for the facade as it is: every failing name, one entry per module that
    does not import and per missing class, the problem as a comment."""
    lines = ["pending:"]
    done: set[str] = set()
    for key, problem in report.failing.items():
        if key in done:
            continue
        module = key.split(":", 1)[0]
        if "does not import" in problem:
            pattern, group = module, [k for k in report.failing if k.split(":", 1)[0] == module]
        elif problem.startswith("missing:"):
            pattern, group = key, [k for k in report.failing if k == key or k.startswith(key + ".")]
        else:
            pattern, group = f"{key}()", [key]
        done.update(group)
        lines.append(f"  # {problem}"[:118])
        lines.append(f'  {pattern}: "not modeled yet"')
    return "\n".join(lines) + "\n" if len(lines) > 1 else "pending: {}\n"


def write_pending() -> Report:
    """Rewrite the ``pending:`` block of ``not_modeled.yaml`` (the rest of the file is kept)."""
    text = NOT_MODELED.read_text(encoding="utf-8")
    head = text[: text.index("\npending:") + 1]
    NOT_MODELED.write_text(head + "pending: {}\n", encoding="utf-8")
    report = run_parity()
    NOT_MODELED.write_text(head + pending_section(report), encoding="utf-8")
    return run_parity()


def _facade_missing() -> str | None:
    """Why the facade cannot be checked yet: ``compat.simpler`` is not a package (an empty folder is
    a namespace package, not yet a facade)."""
    for name in ("compat", "compat.simpler"):
        try:
            spec = importlib.util.find_spec(name)
        except ModuleNotFoundError:
            spec = None
        if spec is None or (name == "compat.simpler" and spec.origin in (None, "namespace")):
            return f"the facade package {name} does not exist yet (compat not importable)"
    return None


# ----------------------------------------------------------------------------- tests


def test_exceptions_file_gives_every_name_a_reason() -> None:
    not_modeled, pending = load_exceptions()
    entries = manifest_entries(load_manifest())
    for section, table in (("not_modeled", not_modeled), ("pending", pending)):
        for pattern, reason in table.items():
            assert isinstance(reason, str) and reason.strip(), f"{section}: {pattern} has no reason"
            assert any(covers(pattern, k) for k in entries), f"{section}: {pattern} names nothing in the manifest"
    both = set(not_modeled) & set(pending)
    assert not both, f"listed as both not modeled and pending: {sorted(both)}"


def test_manifest_is_sorted_and_has_the_documented_surface() -> None:
    text = MANIFEST.read_text(encoding="utf-8")
    manifest = json.loads(text)
    assert text == json.dumps(manifest, indent=1, sort_keys=True) + "\n", "regenerate with tools/parity_manifest.py"
    entries = manifest_entries(manifest)
    for key in ("simpler:Worker", "simpler.worker:Worker.run", "simpler.worker:Worker.close",
                "simpler.orchestrator:Orchestrator.submit_next_level", "simpler.task_interface:CallConfig",
                "simpler_setup.kernel_compiler:KernelCompiler", "simpler_setup:extract_text_section"):
        assert key in entries, key
    assert any(e["source"] == "docs" for e in entries["simpler.worker:Worker.close"])
    assert manifest["upstream"] == {"repo": "hw-native-sys/simpler", "commit": "6ebaf771"}


def test_manifest_matches_a_checkout_when_one_is_given() -> None:
    checkout = os.environ.get("TIERBED_SIMPLER_SRC")
    if not checkout:
        pytest.skip("set TIERBED_SIMPLER_SRC to an upstream checkout at 6ebaf771 to regenerate the manifest")
    out = subprocess.run([sys.executable, str(ROOT / "tools" / "parity_manifest.py"), checkout, "--commit", "6ebaf771"],
                         check=True, capture_output=True, text=True).stdout
    assert out == MANIFEST.read_text(encoding="utf-8")


def test_signature_rules() -> None:
    def up(*specs: str) -> list[dict[str, Any]]:
        kinds = {"p": "POSITIONAL_ONLY", "pk": "POSITIONAL_OR_KEYWORD", "k": "KEYWORD_ONLY",
                 "a": "VAR_POSITIONAL", "kw": "VAR_KEYWORD"}
        out = []
        for s in specs:
            name, kind = s.split(":")
            out.append({"name": name.rstrip("="), "kind": kinds[kind], "default": name.endswith("=")})
        return out

    def sig(f: Any) -> inspect.Signature:
        return inspect.signature(f)

    run = up("callable:pk", "args=:pk", "config=:pk")
    assert compatible(run, sig(lambda callable, args=None, config=None: None)) == []
    assert compatible(run, sig(lambda callable, args=None, config=None, *, trace=False: None)) == []  # more is fine
    assert compatible(run, sig(lambda *a, **k: None)) == []
    assert compatible(run, sig(lambda callable, args, config=None: None))  # a default taken away
    assert compatible(run, sig(lambda fn, args=None, config=None: None))  # another name
    assert compatible(run, sig(lambda callable, args=None: None))  # one positional fewer
    assert compatible(run, sig(lambda callable, args=None, config=None, extra=0, *, need: None))  # a new required
    reg = up("target:pk", "workers=:k")
    assert compatible(reg, sig(lambda target, workers=None: None)) == []  # keyword-only may be looser
    assert compatible(reg, sig(lambda target: None))
    assert compatible(up("config:kw"), sig(lambda: None))


def test_facade_parity() -> None:
    missing = _facade_missing()
    if missing:
        pytest.skip(missing)
    report = run_parity()
    line = report.summary()
    print(f"\nparity: {line}")
    for key, why in report.pending.items():
        print(f"  pending {key}: {why}")
    warnings.warn(ParitySummary(line), stacklevel=1)
    if report.pending:
        warnings.warn(ParitySummary(f"{len(report.pending)} upstream names pending (not modeled yet); "
                                    f"e.g. {', '.join(list(report.pending)[:5])}"), stacklevel=1)
    if report.stale:
        warnings.warn(ParitySummary(f"{len(report.stale)} pending entries are modeled now, remove them "
                                    f"(--write-pending): {', '.join(report.stale[:5])}"), stacklevel=1)
    problems = compact(report.failing)
    problems += [f"not_modeled.yaml: {p} matches no manifest entry" for p in report.unused]
    assert not problems, (f"{len(report.failing)} upstream names the facade lacks or does not accept as "
                          "upstream does (list them in tests/parity/not_modeled.yaml with a reason, or "
                          "model them):\n  " + "\n  ".join(problems))


if __name__ == "__main__":  # python tests/parity/test_parity.py --write-pending
    if sys.argv[1:] != ["--write-pending"]:
        raise SystemExit("usage: test_parity.py --write-pending")
    sys.path.insert(0, str(ROOT))
    print(write_pending().summary())
