"""Static manifest of the public Python surface of an upstream ``simpler`` checkout.

Usage::

    python tools/parity_manifest.py UPSTREAM_CHECKOUT --commit 6ebaf771 [-o tests/parity/simpler-6ebaf771.json]

Nothing of upstream is imported: every module is read with :mod:`ast`. What is extracted:

- ``python/simpler/*.py`` (module ``simpler.<name>``; ``__init__.py`` is ``simpler``). Modules whose
  file name starts with ``_`` are skipped. A module's public names are its ``__all__`` where it
  defines one (a literal list or tuple), otherwise its top-level classes, functions and assigned
  names; ``_``-prefixed names are left out either way. A name that ``__all__`` lists but the module
  only imports is a ``reexport`` with the module it comes from (``_task_interface`` is the compiled
  extension: ``"source": "extension"``).
- ``simpler_setup/{kernel_compiler,pto_isa,torch_interop,elf_parser}.py``, the same way.
- For each public class: its public methods (``method``, ``classmethod``, ``staticmethod``),
  properties and class-level attributes (enum members, constants), and its constructor's parameters
  (``__init__``, or the fields of a ``@dataclass``).
- For each function and method: its parameters in order, each with its kind (the names of
  :class:`inspect.Parameter` kinds) and whether it has a default; ``self``/``cls`` are dropped, and
  so are ``_``-prefixed keyword-only parameters with a default (private knobs).
- ``docs/user/reference/python-api.md``: the names it documents with the signatures it writes
  (``"source": "docs"``). This is where the names the extension provides (``CallConfig``,
  ``ChipCallable`` ...) get a signature, since their source is C++.

The output is deterministic JSON (sorted keys, no machine paths): paths in it are relative to the
checkout.
"""

from __future__ import annotations

import argparse
import ast
import json
import re
import sys
from pathlib import Path
from typing import Any

SETUP_MODULES = ("kernel_compiler", "pto_isa", "torch_interop", "elf_parser")
EXTENSION = "_task_interface"
DOC = "docs/user/reference/python-api.md"

Params = list[dict[str, Any]]


# ----------------------------------------------------------------------------- signatures


def params_of(args: ast.arguments, *, drop_first: bool = False) -> Params:
    """The parameters of a ``def`` as plain data, in order."""
    out: Params = []
    positional = [*args.posonlyargs, *args.args]
    defaults_from = len(positional) - len(args.defaults)
    for i, a in enumerate(positional):
        kind = "POSITIONAL_ONLY" if i < len(args.posonlyargs) else "POSITIONAL_OR_KEYWORD"
        out.append({"name": a.arg, "kind": kind, "default": i >= defaults_from})
    if args.vararg is not None:
        out.append({"name": args.vararg.arg, "kind": "VAR_POSITIONAL", "default": False})
    for a, d in zip(args.kwonlyargs, args.kw_defaults, strict=True):
        if a.arg.startswith("_") and d is not None:
            continue  # a private keyword with a default (``_startup_deadline=None``): not public surface
        out.append({"name": a.arg, "kind": "KEYWORD_ONLY", "default": d is not None})
    if args.kwarg is not None:
        out.append({"name": args.kwarg.arg, "kind": "VAR_KEYWORD", "default": False})
    if drop_first and out and out[0]["kind"] in ("POSITIONAL_ONLY", "POSITIONAL_OR_KEYWORD"):
        out = out[1:]
    return out


def _decorators(node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) -> set[str]:
    names = set()
    for d in node.decorator_list:
        target = d.func if isinstance(d, ast.Call) else d
        if isinstance(target, ast.Name):
            names.add(target.id)
        elif isinstance(target, ast.Attribute):
            names.add(target.attr)
            if isinstance(target.value, ast.Name) and target.attr in ("setter", "getter", "deleter"):
                names.add("property")
    return names


def _function(node: ast.FunctionDef | ast.AsyncFunctionDef, *, in_class: bool) -> dict[str, Any]:
    decos = _decorators(node)
    if in_class and "property" in decos:
        return {"kind": "property"}
    if in_class and "staticmethod" in decos:
        return {"kind": "staticmethod", "params": params_of(node.args)}
    if in_class and "classmethod" in decos:
        return {"kind": "classmethod", "params": params_of(node.args, drop_first=True)}
    kind = "method" if in_class else "function"
    return {"kind": kind, "params": params_of(node.args, drop_first=in_class)}


def _targets(node: ast.stmt) -> list[str]:
    if isinstance(node, ast.Assign):
        return [t.id for t in node.targets if isinstance(t, ast.Name)]
    if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
        return [node.target.id]
    if isinstance(node, ast.TypeAlias) if hasattr(ast, "TypeAlias") else False:
        return [node.name.id]
    return []


def _class(node: ast.ClassDef) -> dict[str, Any]:
    members: dict[str, Any] = {}
    fields: Params = []
    is_dataclass = "dataclass" in _decorators(node)
    ctor: Params | None = None
    for stmt in node.body:
        if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef):
            if stmt.name == "__init__":
                ctor = params_of(stmt.args, drop_first=True)
            if stmt.name.startswith("_"):
                continue
            entry = _function(stmt, in_class=True)
            if stmt.name in members and members[stmt.name]["kind"] == "property":
                continue  # a property's setter/deleter
            members[stmt.name] = entry
        else:
            for name in _targets(stmt):
                if is_dataclass and isinstance(stmt, ast.AnnAssign):
                    if not _is_classvar(stmt):
                        fields.append({"name": name, "kind": "POSITIONAL_OR_KEYWORD",
                                       "default": stmt.value is not None and not _is_field_without_default(stmt.value)})
                    continue
                if not name.startswith("_"):
                    members[name] = {"kind": "attribute"}
    entry: dict[str, Any] = {
        "kind": "class",
        "bases": [ast.unparse(b) for b in node.bases],
        "members": members,
    }
    if ctor is not None:
        entry["params"] = ctor
    elif is_dataclass:
        entry["params"] = fields
    return entry


def _is_classvar(stmt: ast.AnnAssign) -> bool:
    return "ClassVar" in ast.unparse(stmt.annotation)


def _is_field_without_default(value: ast.expr) -> bool:
    if isinstance(value, ast.Call) and ast.unparse(value.func).endswith("field"):
        return not any(k.arg in ("default", "default_factory") for k in value.keywords)
    return False


def _top_level(body: list[ast.stmt]) -> list[ast.stmt]:
    """Top-level statements, with the bodies of ``try`` and non-``TYPE_CHECKING`` ``if`` blocks."""
    out: list[ast.stmt] = []
    for stmt in body:
        if isinstance(stmt, ast.If):
            if "TYPE_CHECKING" in ast.unparse(stmt.test):
                continue
            out.extend(_top_level(stmt.body))
            out.extend(_top_level(stmt.orelse))
        elif isinstance(stmt, ast.Try):
            out.extend(_top_level(stmt.body))
        else:
            out.append(stmt)
    return out


def _resolve(module: str, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    package = module.rsplit(".", node.level)[0] if module.count(".") >= node.level else module
    if module in ("simpler", "simpler_setup"):  # a package's __init__: its own name is the package
        package = module if node.level == 1 else package
    return f"{package}.{node.module}" if node.module else package


def module_names(module: str, source: str) -> dict[str, Any]:
    """The public names of one module (see the module docstring for what is public)."""
    tree = ast.parse(source)
    stmts = _top_level(tree.body)
    defined: dict[str, dict[str, Any]] = {}
    imported: dict[str, str] = {}
    declared: list[str] | None = None
    for stmt in stmts:
        if isinstance(stmt, ast.ClassDef):
            defined[stmt.name] = _class(stmt)
        elif isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef):
            defined[stmt.name] = _function(stmt, in_class=False)
        elif isinstance(stmt, ast.ImportFrom):
            origin = _resolve(module, stmt)
            for alias in stmt.names:
                imported[alias.asname or alias.name] = origin
        elif isinstance(stmt, ast.Import):
            for alias in stmt.names:
                imported[alias.asname or alias.name.split(".")[0]] = alias.name
        else:
            for name in _targets(stmt):
                if name == "__all__" and isinstance(stmt.value, ast.List | ast.Tuple):
                    declared = [ast.literal_eval(e) for e in stmt.value.elts]
                elif name not in defined:
                    defined[name] = {"kind": "constant"}
    names: dict[str, Any] = {}
    if declared is not None:
        for name in declared:
            if name.startswith("_"):
                continue
            if name in defined:
                names[name] = defined[name]
            elif name in imported:
                origin = imported[name]
                entry = {"kind": "reexport", "from": origin}
                if origin == EXTENSION:
                    entry["source"] = "extension"
                names[name] = entry
            else:  # lazily resolved (module __getattr__) or a submodule
                names[name] = {"kind": "lazy"}
    else:
        names = {n: e for n, e in defined.items() if not n.startswith("_")}
    return {"all": declared is not None, "names": names}


# ----------------------------------------------------------------------------- docs


_SIG = re.compile(r"`((?:[A-Za-z_][A-Za-z_0-9]*\.)?[A-Za-z_][A-Za-z_0-9]*)\(([^`]*?)\)(?:\s*->\s*([^`]+))?`")


def doc_params(text: str) -> Params | None:
    """The parameters of a documented call form such as ``register(target, *, workers=None)``."""
    text = re.sub(r"#[^\n]*", "", text)
    text = re.sub(r"\[\s*([A-Za-z_][A-Za-z_0-9]*)\s*\.\.\.\s*\]", r"[\1]", text)  # [ArgDirection...]
    text = text.replace("[...]", "[]")
    try:
        fn = ast.parse(f"def f({text}):\n    pass\n").body[0]
    except SyntaxError:
        return None
    assert isinstance(fn, ast.FunctionDef)
    return params_of(fn.args)


def keyword_call(params: Params | None) -> Params | None:
    """A documented call written with keywords only (``build(signature=..., binary=...)``).

    What the page promises is that those keywords are accepted, not that they have defaults.
    """
    if params is None:
        return None
    return [{"name": p["name"], "kind": "KEYWORD_ONLY", "default": False} for p in params]


#: ``simpler_setup`` root exports the page lists, by the upstream module that defines them.
SETUP_ROOT = "simpler_setup"


def docs_entries(text: str) -> dict[str, Any]:
    """Names and signatures documented on the python-api page, keyed ``module:qualname``."""
    entries: dict[str, Any] = {}

    def add(module: str, qualname: str, kind: str, params: Params | None = None, note: str = "") -> None:
        key = f"{module}:{qualname}"
        entry: dict[str, Any] = {"kind": kind, "source": "docs", "doc": DOC}
        if params is not None:
            entry["params"] = params
        if note:
            entry["section"] = note
        if key not in entries or (params is not None and "params" not in entries[key]):
            entries[key] = entry

    # The import block: where each name lives.
    block = re.search(r"```python\n(from simpler import.*?)```", text, re.S)
    if block:
        tree = ast.parse(block.group(1))
        for stmt in tree.body:
            if isinstance(stmt, ast.ImportFrom):
                for alias in stmt.names:
                    add(stmt.module or "", alias.name, "name", note="import block")

    heading = ""
    section = ""
    for line in text.splitlines():
        if line.startswith("#"):
            heading = line.lstrip("#").strip().strip("`")
            section = {"Lifecycle": "Worker", "Memory": "Worker", "Execution": "Worker",
                       "Worker": "Worker"}.get(heading, heading)
            continue
        if heading == "Worker" and line.startswith("Worker("):
            add("simpler.worker", "Worker", "class", doc_params(line[len("Worker("):line.rindex(")")]),
                note="Worker")
        if line.startswith("`RunHandle` exposes"):
            paragraph = text[text.index(line):].split("\n\n", 1)[0].replace("\n", " ")
            for m in _SIG.finditer(paragraph):
                add("simpler.worker", f"RunHandle.{m.group(1)}", "method", doc_params(m.group(2)), "Execution")
            continue
        if line.startswith("| `") and section == "Worker":
            cell = line.split("|")[1]
            for m in _SIG.finditer(cell):
                name = m.group(1)
                if name.startswith("Buffer."):
                    add("simpler.buffer", name, "method", doc_params(m.group(2)), heading)
                else:
                    owner = "Orchestrator" if _orchestrator_row(line, text) else "Worker"
                    module = "simpler.orchestrator" if owner == "Orchestrator" else "simpler.worker"
                    add(module, f"{owner}.{name}", "method", doc_params(m.group(2)), heading)
            if heading == "Memory":  # `remote_malloc` / `remote_free` / ...: names without a signature
                for name in re.findall(r"`(remote_[a-z_]+)`", cell):
                    add("simpler.worker", f"Worker.{name}", "method", note=heading)
        if line.startswith("| `") and heading == "CallConfig":
            field = line.split("|")[1].strip().strip("`")
            if re.fullmatch(r"[a-z_]+", field):
                add("simpler.task_interface", f"CallConfig.{field}", "attribute", note="CallConfig")
        if line.startswith("| `") and heading == "simpler_setup":
            cell = line.split("|")[1]
            for m in re.finditer(r"`([A-Za-z_][A-Za-z_0-9]*)(?:\(([^`]*)\))?`", cell):
                params = doc_params(m.group(2)) if m.group(2) is not None else None
                kind = "function" if m.group(2) is not None else "name"
                add(SETUP_ROOT, m.group(1), kind, params, "simpler_setup")
            if cell.strip() == "`KernelCompiler`":
                for m in _SIG.finditer(line.split("|")[2]):
                    add(SETUP_ROOT, f"KernelCompiler.{m.group(1)}", "method", doc_params(m.group(2)),
                        "simpler_setup")
        if "`validate()`" in line and heading == "CallConfig":
            add("simpler.task_interface", "CallConfig.validate", "method", [], "CallConfig")

    # Code blocks of "Callables and task args": CoreCallable.build, ChipCallable.build, ChipTensor.make.
    for code in re.findall(r"```python\n(.*?)```", text, re.S):
        for m in re.finditer(r"^(?:\w+ = )?((?:CoreCallable|ChipCallable)\.build)\((.*?)\)\n\s*(?=\n|$)", code,
                             re.S | re.M):
            add("simpler.task_interface", m.group(1), "staticmethod", keyword_call(doc_params(m.group(2))),
                "Callables and task args")
        if "ChipStorageTaskArgs()" in code:
            add("simpler.task_interface", "ChipStorageTaskArgs", "class", [], "Callables and task args")
            add("simpler.task_interface", "ChipStorageTaskArgs.add_tensor", "method", None,
                "Callables and task args")
    for m in re.finditer(r"`ChipTensor\.make\(([^`]*)\)`", text):
        add("simpler.task_interface", "ChipTensor.make", "staticmethod", doc_params(m.group(1)),
            "Callables and task args")
    if "`ArgDirection` is" in text:
        for member in re.findall(r"`(SCALAR|IN|OUT|INOUT)`", text):
            add("simpler.task_interface", f"ArgDirection.{member}", "attribute", note="Callables and task args")
    if "exposes `binary_size`" in text:
        add("simpler.task_interface", "ChipCallable.binary_size", "attribute", note="Callables and task args")
    return entries


def _orchestrator_row(line: str, text: str) -> bool:
    """Whether a method row is in the table after "``orch`` is the ``Orchestrator``"."""
    at = text.find(line)
    intro = text.find("`orch` is the `Orchestrator`")
    return intro != -1 and at > intro


# ----------------------------------------------------------------------------- manifest


def build(root: Path, commit: str) -> dict[str, Any]:
    modules: dict[str, Any] = {}
    for path in sorted((root / "python" / "simpler").glob("*.py")):
        if path.name == "__init__.py":
            module = "simpler"
        elif path.name.startswith("_"):
            continue
        else:
            module = f"simpler.{path.stem}"
        entry = module_names(module, path.read_text(encoding="utf-8"))
        entry["path"] = path.relative_to(root).as_posix()
        modules[module] = entry
    for stem in SETUP_MODULES:
        path = root / "simpler_setup" / f"{stem}.py"
        entry = module_names(f"simpler_setup.{stem}", path.read_text(encoding="utf-8"))
        entry["path"] = path.relative_to(root).as_posix()
        modules[f"simpler_setup.{stem}"] = entry
    doc = root / DOC
    docs = docs_entries(doc.read_text(encoding="utf-8")) if doc.exists() else {}
    return {
        "upstream": {"repo": "hw-native-sys/simpler", "commit": commit},
        "generator": "tools/parity_manifest.py",
        "modules": modules,
        "docs": docs,
    }


def entries(manifest: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Every checkable entry as ``("module:qualname", entry)``: names, class members, doc names."""
    out: list[tuple[str, dict[str, Any]]] = []
    for module, m in manifest["modules"].items():
        for name, e in m["names"].items():
            out.append((f"{module}:{name}", e))
            for member, me in e.get("members", {}).items():
                out.append((f"{module}:{name}.{member}", me))
    for key, e in manifest["docs"].items():
        out.append((key, e))
    return sorted(out, key=lambda kv: (kv[0], kv[1].get("source", "ast")))


def dumps(manifest: dict[str, Any]) -> str:
    return json.dumps(manifest, indent=1, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("checkout", type=Path, help="an upstream simpler checkout")
    ap.add_argument("--commit", required=True, help="the checkout's commit (recorded in the manifest)")
    ap.add_argument("-o", "--out", type=Path, help="write here (default: stdout)")
    ns = ap.parse_args(argv)
    text = dumps(build(ns.checkout, ns.commit))
    if ns.out:
        ns.out.parent.mkdir(parents=True, exist_ok=True)
        ns.out.write_text(text, encoding="utf-8")
        m = json.loads(text)
        print(f"{ns.out}: {len(m['modules'])} modules, {len(entries(m))} entries "
              f"({sum(1 for k, _ in entries(m) if '.' not in k.split(':')[1])} top-level names)")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
