"""Turns pydantic validation errors into messages a person can act on.

Shared by the YAML config loader and the model-card reader, so both name the
file, the dotted key path (``pipelines[0].source.path``), the line when the
source is YAML, and what was expected.
"""

from __future__ import annotations

import difflib
import re
import typing
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ValidationError

from skyedge.errors import SkyedgeError


class SchemaError(SkyedgeError, ValueError):
    """A document failed validation; ``problems`` holds one line per failed field."""

    def __init__(self, source: str, problems: list[str], what: str = "invalid"):
        self.source = source
        self.problems = problems
        noun = "problem" if len(problems) == 1 else "problems"
        lines = [f"{source}: {what} ({len(problems)} {noun})"] + [f"  {p}" for p in problems]
        super().__init__("\n".join(lines))


def _fields_of(model: type[BaseModel]) -> dict[str, Any]:
    """Field name -> annotation, including aliases a document may use."""
    out = {}
    for name, info in model.model_fields.items():
        out[info.alias or name] = info.annotation
    return out


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """Every BaseModel class an annotation can hold (through Optional, Union, list, dict)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    found: list[type[BaseModel]] = []
    for arg in typing.get_args(annotation):
        found.extend(_models_in(arg))
    return found


def resolve_path(loc: Sequence[Any], data: Any) -> list[Any]:
    """Keep only the loc entries that address real keys/indices in ``data``.

    pydantic adds union tags ('directory', 'function-after[...]') to ``loc``;
    those are not keys of the document and would only confuse a reader.
    """
    path: list[Any] = []
    node = data
    for part in loc:
        if isinstance(node, Mapping) and part in node:
            path.append(part)
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            path.append(part)
            node = node[part]
        elif isinstance(node, Mapping) and isinstance(part, str) and part not in node and part == loc[-1]:
            # A missing or unknown key at the end of the path: name it.
            path.append(part)
        # Anything else is a union tag: skip it.
    return path


def dotted(path: Sequence[Any]) -> str:
    """``['pipelines', 0, 'source']`` -> ``pipelines[0].source``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "<document>"


def _model_at(root: type[BaseModel], path: Sequence[Any], data: Any) -> type[BaseModel] | None:
    """The model class that validates the mapping at ``path`` (best effort)."""
    model: type[BaseModel] | None = root
    node = data
    for part in path:
        if model is None:
            return None
        if isinstance(part, int):
            node = node[part] if isinstance(node, list) and part < len(node) else None
            continue
        annotation = _fields_of(model).get(part)
        node = node.get(part) if isinstance(node, Mapping) else None
        candidates = _models_in(annotation) if annotation is not None else []
        model = _pick(candidates, node)
    return model


def _pick(candidates: list[type[BaseModel]], node: Any) -> type[BaseModel] | None:
    """Among union members, the one whose literal tag matches the document."""
    if len(candidates) <= 1:
        return candidates[0] if candidates else None
    if isinstance(node, Mapping):
        for cls in candidates:
            for name, info in cls.model_fields.items():
                allowed = typing.get_args(info.annotation)
                if typing.get_origin(info.annotation) is typing.Literal and node.get(name) in allowed:
                    return cls
    return None


def _describe_input(value: Any) -> str:
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{text} ({type(value).__name__})"


def format_errors(
    exc: ValidationError,
    data: Any,
    root: type[BaseModel],
    line_of: typing.Callable[[Sequence[Any]], int | None] | None = None,
) -> list[str]:
    """One human line per pydantic error: path, line, what was expected, what was found."""
    problems = []
    for err in exc.errors(include_url=False):
        path = resolve_path(err["loc"], data)
        where = dotted(path)
        line = line_of(path) if line_of else None
        if line is not None:
            where += f" (line {line})"
        kind = err["type"]
        if kind == "extra_forbidden":
            model = _model_at(root, path[:-1], data)
            allowed = sorted(_fields_of(model)) if model else []
            hint = ""
            close = difflib.get_close_matches(str(path[-1]), allowed, n=1)
            if close:
                hint = f"; did you mean '{close[0]}'?"
            elif allowed:
                hint = f"; allowed keys: {', '.join(allowed)}"
            problems.append(f"{where}: unknown key{hint}")
        elif kind == "union_tag_invalid":
            ctx = err.get("ctx", {})
            field = ctx.get("discriminator", "kind").strip("'")
            problems.append(
                f"{dotted(path + [field])}{where[len(dotted(path)) :]}: unknown {field} {ctx.get('tag')!r}; "
                f"expected one of {ctx.get('expected_tags')}"
            )
        elif kind == "model_type" and err.get("input") is None:
            model = _model_at(root, path, data)
            required = [n for n, f in model.model_fields.items() if f.is_required()] if model else []
            need = f" with at least: {', '.join(required)}" if required else ""
            problems.append(f"{where}: is empty; expected a mapping of keys{need}")
        elif kind == "missing":
            problems.append(f"{where}: required key is missing")
        else:
            msg = err["msg"]
            msg = re.sub(r"<class '(?:[\w.]+\.)?(\w+)'>", r"\1", msg)
            if msg.startswith("Value error, "):
                msg = msg[len("Value error, ") :]
            expected = msg[0].lower() + msg[1:] if msg else kind
            got = f", got {_describe_input(err['input'])}" if "input" in err and kind not in ("value_error",) else ""
            if isinstance(err.get("input"), Mapping) and kind not in ("model_type", "dict_type"):
                got = ""
            problems.append(f"{where}: {expected}{got}")
    return problems
