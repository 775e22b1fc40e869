"""Client request bodies -> wire models, with errors a client can act on.

pydantic's error locations name union members and discriminator tags
(`content.list[tagged-union[...]].0.text.text`); clients want the path into
the JSON they sent (`messages.0.content.0.text`). The path is rebuilt by
walking the body alongside the location and keeping only the steps that
exist in it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from helexa.errors import BadRequest

ModelT = TypeVar("ModelT", bound=BaseModel)
_MISSING = object()


def parse_body(body: object, model: type[ModelT]) -> ModelT:
    """Validate a decoded JSON body; raises BadRequest naming the offending field as param."""
    if not isinstance(body, Mapping):
        raise BadRequest("request body must be a JSON object")
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise validation_error_to_bad_request(exc, body) from None


def validation_error_to_bad_request(exc: ValidationError, body: object) -> BadRequest:
    located = [(body_path(error["loc"], body), error["msg"]) for error in exc.errors()]
    # A failed union yields one error per member; the losing members' errors sit at a
    # prefix of the winner's path, so keep only the most specific ones.
    specific = [
        (path, msg)
        for path, msg in located
        if not any(other != path and other[: len(path)] == path for other, _ in located)
    ]
    path, msg = specific[0]
    param = ".".join(str(step) for step in path) or None
    more = len(specific) - 1
    suffix = f" (and {more} more error{'s' if more > 1 else ''})" if more else ""
    return BadRequest(f"{param}: {msg}{suffix}" if param else f"{msg}{suffix}", param=param)


def body_path(loc: Sequence[int | str], body: object) -> tuple[int | str, ...]:
    """The steps of `loc` that index into `body`; a missing final key is kept (it names
    the field that is required but absent)."""
    path: list[int | str] = []
    node: object = body
    for position, step in enumerate(loc):
        child = _child(node, step)
        if child is not _MISSING:
            path.append(step)
            node = child
        elif isinstance(node, Mapping) and _is_field_name(step, loc[position + 1 :]):
            path.append(step)
            break
        # else: a union member label or discriminator tag, which the body does not have
    return tuple(path)


def _is_field_name(step: int | str, rest: Sequence[Any]) -> bool:
    # A missing field is the last step; union labels and tags are followed by more steps.
    return isinstance(step, str) and not rest and step.isidentifier()


def _child(node: object, step: int | str) -> object:
    if isinstance(node, Mapping):
        return node.get(step, _MISSING)
    if isinstance(node, list) and isinstance(step, int) and 0 <= step < len(node):
        return node[step]
    return _MISSING
