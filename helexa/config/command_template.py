"""The `command` engine's template check (pure): models.toml validates it, the neuron runs it.

A template is split like a shell line, then each word is filled in with
`str.format` fields; only the placeholders below may be named, and `{port}`
must be passed (the gateway reaches the server there).
"""

from __future__ import annotations

import shlex
import string

from helexa.errors import BadRequest

# What a `command` template may name; docs/configuration.md lists them.
PLACEHOLDERS = ("model", "path", "host", "port", "parallel", "context_length", "device")


def check_template(template: str) -> None:
    """Raise BadRequest naming what is wrong with a `command` template."""
    try:
        words = shlex.split(template)
    except ValueError as exc:
        raise BadRequest(f"command template does not parse: {exc}", param="command") from exc
    if not words:
        raise BadRequest("command template is empty", param="command")
    for word in words:
        try:
            fields = [name for _, name, _, _ in string.Formatter().parse(word) if name is not None]
        except ValueError as exc:
            raise BadRequest(f"command template word {word!r}: {exc}", param="command") from exc
        unknown = [name for name in fields if name not in PLACEHOLDERS]
        if unknown:
            raise BadRequest(
                f"command template names unknown placeholder {{{unknown[0]}}}; "
                f"known: {', '.join('{' + p + '}' for p in PLACEHOLDERS)}",
                param="command",
            )
    if not any("{port}" in word for word in words):
        raise BadRequest("command template must pass {port} to the server", param="command")
