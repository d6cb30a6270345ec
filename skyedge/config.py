"""YAML configuration: load, interpolate ``${ENV_VAR}``, validate against a typed schema.

Every stage describes its configuration as a pydantic model deriving from
:class:`Schema` (unknown keys and wrong types are errors, never silently
ignored or coerced). :func:`load_config` returns a validated instance or raises
:class:`ConfigError` naming the file, the dotted key path, the line and what
was expected, so a wrong config fails at start rather than an hour in.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from skyedge.validation import SchemaError, dotted, format_errors

__all__ = ["ConfigError", "Schema", "PathField", "load_config", "load_yaml", "interpolate_env"]

M = TypeVar("M", bound=BaseModel)


class ConfigError(SchemaError):
    """A configuration file that cannot be used as written."""


class Schema(BaseModel):
    """Base for config sections: unknown keys rejected, no type coercion (``"5"`` is not 5)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, populate_by_name=True)


# YAML has no path type: accept strings for Path fields even under strict mode.
PathField = Annotated[Path, Field(strict=False)]

_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class _LineLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys (a silent override is a classic config bug)."""

    def construct_mapping(self, node, deep=False):
        seen = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping",
                    node.start_mark,
                    f"found duplicate key {key!r} (first at line {seen[key] + 1})",
                    key_node.start_mark,
                )
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


def load_yaml(path: str | os.PathLike) -> tuple[Any, yaml.Node | None]:
    """Parse a YAML file; return the data and its node tree (for line numbers)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(str(path), ["file not found"], what="cannot read config") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(str(path), [str(exc)], what="cannot read config") from None
    try:
        data = yaml.load(text, Loader=_LineLoader)  # noqa: S506 - _LineLoader is a SafeLoader
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(str(path), [f"{where}{problem}"], what="not valid YAML") from None
    return data, node


def _line_finder(node: yaml.Node | None):
    def line_of(path: Sequence[Any]) -> int | None:
        current = node
        line = current.start_mark.line + 1 if current is not None else None
        for part in path:
            if isinstance(current, yaml.MappingNode):
                nxt = None
                for key, value in current.value:
                    if key.value == str(part):
                        nxt = value
                        line = key.start_mark.line + 1
                        break
                if nxt is None:
                    return line
                current = nxt
            elif isinstance(current, yaml.SequenceNode) and isinstance(part, int) and part < len(current.value):
                current = current.value[part]
                line = current.start_mark.line + 1
            else:
                return line
        return line

    return line_of


def interpolate_env(data: Any, environ: Mapping[str, str] | None = None, _path: tuple = ()) -> Any:
    """Replace ``${VAR}`` and ``${VAR:-default}`` in string values.

    A value that is only ``${VAR}`` takes the variable's YAML type (``1883`` is
    an int); inside a longer string it is substituted as text. An unset
    variable without a default is an error naming the key.
    """
    env = os.environ if environ is None else environ
    if isinstance(data, dict):
        return {k: interpolate_env(v, env, _path + (k,)) for k, v in data.items()}
    if isinstance(data, list):
        return [interpolate_env(v, env, _path + (i,)) for i, v in enumerate(data)]
    if not isinstance(data, str) or "${" not in data:
        return data

    missing = []

    def sub(match: re.Match) -> str:
        name, default = match.group(1), match.group(2)
        if name in env:
            return env[name]
        if default is not None:
            return default
        missing.append(name)
        return ""

    whole = _ENV.fullmatch(data)
    text = _ENV.sub(sub, data)
    if missing:
        raise _MissingEnv(_path, missing[0])
    if whole:
        try:
            value = yaml.safe_load(text) if text.strip() else text
        except yaml.YAMLError:
            return text
        # Only take scalar types from the environment, never structures.
        return value if isinstance(value, (str, int, float, bool)) else text
    return text


class _MissingEnv(Exception):
    def __init__(self, path: tuple, name: str):
        self.path, self.name = path, name


def apply_overrides(data: dict, overrides: Sequence[str]) -> dict:
    """Apply ``dotted.key=value`` overrides (values parsed as YAML scalars/lists) to a loaded document."""
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError("--set", [f"{item!r}: expected dotted.key=value"])
        node = data
        parts = key.split(".")
        for part in parts[:-1]:
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node = node[part]
        node[parts[-1]] = yaml.safe_load(raw)
    return data


def load_config(
    path: str | os.PathLike,
    schema: type[M],
    environ: Mapping[str, str] | None = None,
    overrides: Sequence[str] = (),
    checks: Callable[[M], list[tuple[tuple, str]]] | None = None,
) -> M:
    """Load ``path`` (plus ``key=value`` overrides) and validate it against ``schema``; raise ConfigError on any problem.

    ``checks`` runs after validation (paths on disk, say) and returns ``(key path, message)`` pairs, reported
    with their lines like any schema error.
    """
    data, node = load_yaml(path)
    if data is None:
        raise ConfigError(str(path), ["the file is empty"])
    if not isinstance(data, dict):
        raise ConfigError(str(path), [f"the top level must be a mapping of keys, got {type(data).__name__}"])
    try:
        data = interpolate_env(data, environ)
    except _MissingEnv as exc:
        line = _line_finder(node)(list(exc.path))
        where = dotted(list(exc.path)) + (f" (line {line})" if line else "")
        raise ConfigError(
            str(path), [f"{where}: environment variable ${{{exc.name}}} is not set and has no default"]
        ) from None
    data = apply_overrides(data, overrides)
    try:
        model = schema.model_validate(data)
    except ValidationError as exc:
        problems = format_errors(exc, data, schema, _line_finder(node))
        raise ConfigError(str(path), problems) from None
    found = checks(model) if checks is not None else []
    if found:
        line_of = _line_finder(node)
        problems = []
        for where, message in found:
            line = line_of(list(where))
            problems.append(f"{dotted(list(where))}{f' (line {line})' if line else ''}: {message}")
        raise ConfigError(str(path), problems, what="cannot start")
    return model
