"""The strict TOML loader shared by fleet.toml, models.toml and neuron.toml.

Reading uses tomllib (the reference parser; edits use tomlkit, see edit.py).

Every problem becomes a ConfigError naming file, line and key; all problems of a file
are raised together as one ConfigErrors, so an operator fixes a file in one pass.
"""

from __future__ import annotations

import copy
import difflib
import json
import re
import tomllib
import types
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from helexa.config.base import Loc, Problem, StrictModel
from helexa.config.fields import BASE_DIR
from helexa.config.locate import BARE_KEY_CHARS, key_lines, line_of
from helexa.errors import ConfigError, ConfigErrors

M = TypeVar("M", bound=BaseModel)

_TOMLLIB_POSITION = re.compile(r"\s*\(at line (\d+), column (\d+)\)")
# The key a TOML line assigns (`max_tokens = ...`, `"a.b" = ...`, `models.sampling.x = ...`).
_ASSIGNED_KEY = re.compile(
    r'^\s*((?:[A-Za-z0-9_-]+|"[^"]*")(?:\s*\.\s*(?:[A-Za-z0-9_-]+|"[^"]*"))*)\s*='
)

# Where values set through HELEXA_* variables are reported instead of a file.
ENVIRONMENT = "environment"


@dataclass(frozen=True)
class TomlSource:
    """A parsed TOML file: its plain data and the line of every key."""

    path: Path
    data: dict[str, Any]
    lines: dict[Loc, int]


@dataclass(frozen=True)
class Override:
    """A value from outside the file (an environment variable) that wins over it."""

    name: str  # e.g. HELEXA_GATEWAY__LISTEN, used as the "key" in errors
    value: Any


def _syntax_error(exc: tomllib.TOMLDecodeError, text: str, path: Path) -> ConfigError:
    """file:line: key: TOML syntax: what, at column N: `the line` (key when it assigns one)."""
    where = _TOMLLIB_POSITION.search(str(exc))
    message = _TOMLLIB_POSITION.sub("", str(exc)).strip()
    if where is None:
        return ConfigError(f"TOML syntax: {message}", file=path)
    line, column = int(where.group(1)), int(where.group(2))
    lines = text.splitlines()
    source = lines[line - 1].strip() if 0 < line <= len(lines) else ""
    assigned = _ASSIGNED_KEY.match(lines[line - 1]) if source else None
    key = re.sub(r"\s+", "", assigned.group(1)) if assigned else None
    shown = f": `{source}`" if source else ""
    return ConfigError(
        f"TOML syntax: {message} at column {column}{shown}", file=path, line=line, key=key
    )


def parse_toml(text: str, path: Path) -> TomlSource:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # Python 3.11's error has no line attribute: it is only in the message.
        raise ConfigErrors([_syntax_error(exc, text, path)]) from None
    return TomlSource(path=path, data=data, lines=key_lines(text))


def read_toml(path: Path | str) -> TomlSource:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigErrors([ConfigError(f"cannot read: {exc}", file=path)]) from exc
    return parse_toml(text, path)


def load_toml(path: Path | str, model: type[M]) -> M:
    """Read and validate one TOML file; raises ConfigErrors listing every problem."""
    return validate(read_toml(path), model)


def validate(
    source: TomlSource,
    model: type[M],
    overrides: Mapping[Loc, Override] | None = None,
    context: Mapping[str, Any] | None = None,
) -> M:
    """Validate `source` (with `overrides` applied on top) as `model`.

    `context` reaches validators and cross checks (e.g. the fleet's neuron names when
    checking models.toml); the file's directory is added for relative paths.
    """
    overrides = overrides or {}
    data = _apply_overrides(source.data, overrides)
    full_context = {**(context or {}), BASE_DIR: source.path.absolute().parent}
    errors: list[ConfigError] = []
    result: M | None = None
    try:
        result = model.model_validate(data, context=full_context)
    except ValidationError as exc:
        errors += [_config_error(e, source, model, overrides) for e in exc.errors()]
    if issubclass(model, StrictModel):
        errors += [_problem_error(p, source) for p in model.cross_check(data, full_context)]
    if errors:
        errors.sort(key=lambda e: (str(e.file), e.line or 0))
        raise ConfigErrors(errors)
    assert result is not None
    return result


def format_loc(loc: Loc) -> str:
    """("neurons", 1, "endpoint") -> "neurons[1].endpoint"; odd keys quoted as in TOML."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
            continue
        key = part if part and set(part) <= BARE_KEY_CHARS else json.dumps(part)
        text += f".{key}" if text else key
    return text


def _apply_overrides(data: dict[str, Any], overrides: Mapping[Loc, Override]) -> dict[str, Any]:
    if not overrides:
        return data
    merged = copy.deepcopy(data)
    for loc, override in overrides.items():
        target: Any = merged
        for part in loc[:-1]:
            if not isinstance(target, dict):
                break
            target = target.setdefault(part, {})
        if isinstance(target, dict):
            target[loc[-1]] = override.value
    return merged


def _problem_error(problem: Problem, source: TomlSource) -> ConfigError:
    return ConfigError(
        problem.message,
        file=source.path,
        line=line_of(source.lines, problem.loc),
        key=format_loc(problem.loc),
    )


def _config_error(
    error: ErrorDetails,
    source: TomlSource,
    model: type[BaseModel],
    overrides: Mapping[Loc, Override],
) -> ConfigError:
    loc: Loc = tuple(error["loc"])
    message = _message(error, model)
    blamed_key = (error.get("ctx") or {}).get("key")
    if error["type"] == "config_rule" and isinstance(blamed_key, str):
        loc += (blamed_key,)  # a model-level rule that names the key at fault
    for override_loc, override in overrides.items():
        if loc[: len(override_loc)] == override_loc:
            return ConfigError(message, file=ENVIRONMENT, key=override.name)
    return ConfigError(
        message, file=source.path, line=line_of(source.lines, loc), key=format_loc(loc)
    )


def _message(error: ErrorDetails, model: type[BaseModel]) -> str:
    kind = error["type"]
    loc: Loc = tuple(error["loc"])
    if kind == "extra_forbidden":
        return _unknown_key_message(str(loc[-1]), _fields_at(model, loc[:-1]))
    if kind == "missing":
        return "missing required key"
    message = error["msg"].removeprefix("Value error, ")
    if kind.endswith("_type") or kind == "literal_error":
        shown = "a value that is not shown" if is_secret(loc) else repr(error["input"])
        message += f" (got {shown})"
    return message


# Keys whose values are secrets: an error about them never quotes the value (config
# errors reach logs, /admin/fleet and the reconcile conditions).
SECRET_KEYS = frozenset({"api_keys", "keys", "key", "secret", "token", "password"})


def is_secret(loc: Loc) -> bool:
    return any(isinstance(part, str) and part.lower() in SECRET_KEYS for part in loc)


def _unknown_key_message(key: str, known: list[str]) -> str:
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    if close:
        return f"unknown key {key!r} (did you mean {close[0]!r}?)"
    if known:
        return f"unknown key {key!r} (valid keys: {', '.join(known)})"
    return f"unknown key {key!r}"


def _fields_at(model: type[BaseModel], loc: Loc) -> list[str]:
    """Field names of the model nested at `loc` (for did-you-mean), [] if not a model."""
    current: type[BaseModel] | None = model
    for part in loc:
        if isinstance(part, int):
            continue  # an entry of a list: same model as the list's items
        field = current.model_fields.get(part) if current else None
        current = _model_in(field.annotation) if field else None
    return list(current.model_fields) if current else []


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The model type inside `annotation` (Model, list[Model], Model | None, ...)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if get_origin(annotation) in (list, tuple, Union, types.UnionType):
        for arg in get_args(annotation):
            found = _model_in(arg)
            if found:
                return found
    return None
