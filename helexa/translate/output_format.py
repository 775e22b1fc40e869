"""Structured-output requests of the other dialects -> OpenAI chat `response_format` (pure).

- Anthropic `output_config.format` {"type": "json_schema", "schema": S}
  -> {"type": "json_schema", "json_schema": {"name": "output", "schema": S, "strict": true}}
- Responses `text.format`: {"type": "text"} -> nothing; {"type": "json_object"} as is;
  {"type": "json_schema", "name", "schema", "strict"} -> the chat shape (`json_schema`
  nested under its own key).

The neuron compiles the schema; one it cannot enforce comes back as a 400 that
the gateway renders in the caller's dialect.
"""

from __future__ import annotations

from typing import Any

from helexa.errors import BadRequest
from helexa.protocol.anthropic import MessagesRequest


def anthropic_response_format(request: MessagesRequest) -> dict[str, Any]:
    """{"response_format": ...} for the chat body, or {} when no format is asked for."""
    form = request.output_config.format if request.output_config else None
    if form is None:
        return {}
    spec = {"name": "output", "schema": form.schema_, "strict": True}
    return {"response_format": {"type": "json_schema", "json_schema": spec}}


def responses_response_format(text: object) -> dict[str, Any]:
    """The same for a Responses request's `text` field (None when the client sent none)."""
    if text is None:
        return {}
    form = text.get("format") if isinstance(text, dict) else None
    if not isinstance(text, dict) or not isinstance(form, dict | None):
        raise BadRequest("text.format must be an object", param="text.format")
    if form is None:
        return {}
    kind = form.get("type")
    if kind == "text":
        return {}
    if kind == "json_object":
        return {"response_format": {"type": "json_object"}}
    if kind != "json_schema":
        raise BadRequest(
            f"text.format.type {kind!r} is not supported "
            "(expected 'text', 'json_object' or 'json_schema')",
            param="text.format.type",
        )
    schema = form.get("schema")
    if not isinstance(schema, dict):
        raise BadRequest(
            "text.format.schema is required when type is 'json_schema'",
            param="text.format.schema",
        )
    spec = {"name": form.get("name", "output"), "schema": schema, "strict": form.get("strict")}
    return {"response_format": {"type": "json_schema", "json_schema": spec}}
