"""YAML files validated by a pydantic model, with errors that name the file, the line and the field.

Scenarios (:mod:`conformance.scenario`) and expectations files (:mod:`conformance.expectations`)
are both YAML read by people; a bad one must fail as ``file:line: field.path: message``. The
loader keeps the YAML node tree next to the data so that a pydantic error location can be turned
back into the line it came from.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)
Loc = tuple[Any, ...]


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


def compose(text: str, file: str, error: type[YamlFileError] = YamlFileError) -> tuple[yaml.Node | None, Any]:
    """Parse ``text`` once into its node tree and its data; a syntax error names its line."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise error(file, mark.line + 1 if mark else None, "", f"YAML syntax error: {exc.problem}") from None
    finally:
        loader.dispose()
    return node, data


def message(err: dict[str, Any], what: str) -> str:
    """A pydantic error's message, phrased for a person editing a ``what`` file."""
    msg = err["msg"]
    if err["type"] == "extra_forbidden":
        return f"unknown field (not part of the {what} format)"
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
    return msg


def validate(node: yaml.Node | None, data: Any, model: type[M], file: str, what: str,
             error: type[YamlFileError] = YamlFileError) -> M:
    """``model`` validated from ``data``; the first error raised as ``error`` with its line and field."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errs = exc.errors()
        first = errs[0]
        line, path = locate(node, tuple(first["loc"]), first["type"] == "missing")
        more = f" (and {len(errs) - 1} more error{'s' if len(errs) > 2 else ''})" if len(errs) > 1 else ""
        raise error(file, line, path, message(first, what) + more) from None


def read_text(path: str | Path, what: str, error: type[YamlFileError] = YamlFileError) -> str:
    """The file's text, or ``error`` naming it when it cannot be read."""
    p = Path(path)
    try:
        return p.read_text(encoding="utf-8")
    except OSError as exc:
        raise error(str(p), None, "", f"cannot read the {what} file: {exc.strerror or exc}") from None
