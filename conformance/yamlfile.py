"""YAML files validated by a pydantic model, with errors that name the file, the line and the field.

Scenarios (:mod:`conformance.scenario`) and expectations files (:mod:`conformance.expectations`)
are both YAML read by people; a bad one must fail as ``file:line: field.path: message``. The
loader keeps the YAML node tree next to the data so that a pydantic error location can be turned
back into the line it came from.

The loader is also the guard against hostile or broken files, each failing as a ``file:line`` error
instead of a hang or a traceback:

* aliases: a document whose aliases expand it beyond :data:`MAX_EXPANDED_NODES` nodes (counting
  each alias as the whole subtree it stands for -- a "billion laughs" of anchors is rejected at the
  alias that crosses the bound, before any of it is built), and an alias inside its own anchor;
* nesting: deeper than :data:`MAX_DEPTH` levels (aliases included), checked while composing, so
  deep files never reach Python's recursion limit;
* duplicate keys in a mapping (PyYAML silently keeps the last one);
* text that is not UTF-8, and control characters or NUL, which YAML does not allow.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)
Loc = tuple[Any, ...]

#: Nodes a document may hold once every alias is expanded (a large scenario has a few thousand).
MAX_EXPANDED_NODES = 100_000
#: Nesting levels (mappings and lists) a document may have, aliases expanded.
MAX_DEPTH = 160


class YamlFileError(ValueError):
    """A YAML file that cannot be used: names the file, the line (1-based) and the field."""

    def __init__(self, file: str, line: int | None, field: str, message: str) -> None:
        self.file, self.line, self.field, self.message = file, line, field, message
        where = f"{file}:{line}" if line is not None else file
        super().__init__(f"{where}: {field}: {message}" if field else f"{where}: {message}")


def locate(root: yaml.Node | None, loc: Loc, missing: bool = False) -> tuple[int | None, str]:
    """The 1-based line of the YAML node at pydantic location ``loc``, and the dotted field path.

    Location parts that name no key (union tags, a model's inserted fields) are skipped.
    """
    if root is None:
        return 1, ".".join(str(p) for p in loc)
    node: yaml.Node = root
    line = node.start_mark.line + 1
    path = ""
    for i, part in enumerate(loc):
        last = i == len(loc) - 1
        if isinstance(node, yaml.MappingNode):
            hit = next(((k, v) for k, v in node.value if isinstance(k, yaml.ScalarNode) and k.value == str(part)),
                       None)
            if hit is not None:
                path = f"{path}.{part}" if path else str(part)
                line = hit[0].start_mark.line + 1
                node = hit[1]
                continue
            if last and missing:
                path = f"{path}.{part}" if path else str(part)
            continue
        if isinstance(node, yaml.SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
            path = f"{path}[{part}]"
            node = node.value[part]
            line = node.start_mark.line + 1
            continue
    return line, path or "(top level)"


class _Rejected(yaml.YAMLError):
    """A document the bounded loader refuses, at ``mark``."""

    def __init__(self, mark: Any, message: str) -> None:
        super().__init__(message)
        self.mark, self.message = mark, message


class _BoundedLoader(yaml.SafeLoader):
    """A SafeLoader that bounds alias expansion and depth and rejects duplicate keys while composing."""

    def __init__(self, text: str, max_nodes: int, max_depth: int, depth_hint: str) -> None:
        super().__init__(text)
        self.max_nodes, self.max_depth, self.depth_hint = max_nodes, max_depth, depth_hint
        self.depth = 0
        self.total = 0  # nodes of the document so far, aliases expanded
        self.size: dict[int, int] = {}  # id(node) -> nodes of its subtree, aliases expanded
        self.height: dict[int, int] = {}  # id(node) -> levels of its subtree, aliases expanded

    def _too_deep(self, mark: Any) -> _Rejected:
        return _Rejected(mark, f"nested deeper than {self.max_depth} levels{self.depth_hint}")

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            target = self.anchors.get(event.anchor)
            if target is not None:
                if id(target) not in self.size:
                    raise _Rejected(event.start_mark, f"alias *{event.anchor} is inside its own anchor "
                                                      "(a recursive alias)")
                self.total += self.size[id(target)]
                if self.total > self.max_nodes:
                    raise _Rejected(event.start_mark, f"alias *{event.anchor} expands the document beyond "
                                                      f"{self.max_nodes} nodes (aliases nested in aliases?)")
                if self.depth + self.height[id(target)] > self.max_depth:
                    raise self._too_deep(event.start_mark)
            return super().compose_node(parent, index)
        self.depth += 1
        if self.depth > self.max_depth:
            raise self._too_deep(event.start_mark)
        self.total += 1
        if self.total > self.max_nodes:
            raise _Rejected(event.start_mark, f"the document has more than {self.max_nodes} nodes")
        before = self.total - 1
        node = super().compose_node(parent, index)
        self.depth -= 1
        if isinstance(node, yaml.MappingNode):
            kids = [n for pair in node.value for n in pair]
        elif isinstance(node, yaml.SequenceNode):
            kids = list(node.value)
        else:
            kids = []
        self.size[id(node)] = self.total - before
        self.height[id(node)] = 1 + max((self.height.get(id(k), 0) for k in kids), default=0)
        return node

    def compose_mapping_node(self, anchor: Any) -> Any:
        node = super().compose_mapping_node(anchor)
        seen: dict[tuple[str, str], int] = {}
        for key, _value in node.value:
            if not isinstance(key, yaml.ScalarNode) or key.tag == "tag:yaml.org,2002:merge":
                continue
            first = seen.get((key.tag, key.value))
            if first is not None:
                raise _Rejected(key.start_mark, f"duplicate key {key.value!r} (also on line {first}): "
                                                "a mapping names each key once")
            seen[(key.tag, key.value)] = key.start_mark.line + 1
        return node


def compose(text: str, file: str, error: type[YamlFileError] = YamlFileError, *,
            max_nodes: int = MAX_EXPANDED_NODES, max_depth: int = MAX_DEPTH,
            depth_hint: str = "") -> tuple[yaml.Node | None, Any]:
    """Parse ``text`` once into its node tree and its data; a syntax error names its line.

    Bounded: see the module's notes (aliases, depth, duplicate keys, characters YAML refuses).
    """
    loader = None
    try:
        loader = _BoundedLoader(text, max_nodes, max_depth, depth_hint)
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except _Rejected as exc:
        raise error(file, exc.mark.line + 1 if exc.mark else None, "", exc.message) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise error(file, mark.line + 1 if mark else None, "", f"YAML syntax error: {exc.problem}") from None
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1 if isinstance(exc.position, int) else None
        raise error(file, line, "", f"character {exc.character!r} is not allowed in YAML (control "
                                    "characters and NUL are not)") from None
    except RecursionError:
        raise error(file, None, "", "nested too deeply to read") from None
    finally:
        if loader is not None:
            loader.dispose()
    return node, data


def _vocabulary(model: type[BaseModel]) -> list[str]:
    """Every field name of ``model``'s format (its JSON Schema's properties, nested models included)."""
    names: set[str] = set()

    def walk(x: Any) -> None:
        if isinstance(x, dict):
            names.update(k for k in (x.get("properties") or {}) if isinstance(k, str))
            for v in x.values():
                walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)

    try:
        walk(model.model_json_schema())
    except Exception:  # a model without a schema: no suggestions, nothing worse
        return []
    return sorted(names)


def message(err: dict[str, Any], what: str, candidates: list[str] | None = None) -> str:
    """A pydantic error's message, phrased for a person editing a ``what`` file.

    An unknown field gets a "did you mean" from ``candidates`` (difflib's closest match).
    """
    msg = err["msg"]
    if err["type"] == "extra_forbidden":
        key = err["loc"][-1] if err["loc"] else ""
        close = difflib.get_close_matches(str(key), candidates or [], n=1, cutoff=0.6)
        hint = f"did you mean {close[0]!r}?" if close else f"not part of the {what} format"
        return f"unknown field {str(key)!r} ({hint})"
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
    return msg


def _first(errs: list[dict[str, Any]]) -> dict[str, Any]:
    """The error to report: pydantic's first, except that an unknown field (likely a typo) in a mapping
    comes before a missing one in the same mapping -- "Field required" alone hides the typo."""
    first = errs[0]
    if first["type"] == "missing":
        parent = tuple(first["loc"][:-1])
        for e in errs:
            if e["type"] == "extra_forbidden" and tuple(e["loc"][:-1]) == parent:
                return e
    return first


def validate(node: yaml.Node | None, data: Any, model: type[M], file: str, what: str,
             error: type[YamlFileError] = YamlFileError) -> M:
    """``model`` validated from ``data``; the first error raised as ``error`` with its line and field."""
    try:
        return model.model_validate(data)
    except RecursionError:
        raise error(file, None, "", "nested too deeply to validate") from None
    except ValidationError as exc:
        errs = exc.errors()
        first = _first(errs)
        candidates: list[str] = []
        if first["type"] == "extra_forbidden":  # the fields missing beside it first, then the whole format
            parent = tuple(first["loc"][:-1])
            candidates = [str(e["loc"][-1]) for e in errs if e["type"] == "missing"
                          and tuple(e["loc"][:-1]) == parent]
            if not difflib.get_close_matches(str(first["loc"][-1]), candidates, n=1, cutoff=0.6):
                candidates = _vocabulary(model)
        line, path = locate(node, tuple(first["loc"]), first["type"] == "missing")
        more = f" (and {len(errs) - 1} more error{'s' if len(errs) > 2 else ''})" if len(errs) > 1 else ""
        raise error(file, line, path, message(first, what, candidates) + more) from None


def read_text(path: str | Path, what: str, error: type[YamlFileError] = YamlFileError) -> str:
    """The file's text, or ``error`` naming it when it cannot be read."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise error(str(p), None, "", f"cannot read the {what} file: {exc.strerror or exc}") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise error(str(p), line, "", f"the {what} file is not UTF-8 text: byte {raw[exc.start]:#04x} "
                                      f"({exc.reason})") from None
