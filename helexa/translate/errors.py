"""Errors in the Anthropic dialect.

Anthropic names an error by its HTTP status, so every mapping here goes
through `anthropic_error_type(status)`: helexa's own `APIError`s, OpenAI
error envelopes from a neuron, and failures in the middle of a stream.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from helexa.errors import APIError
from helexa.protocol.anthropic import ErrorType

_TYPE_BY_STATUS: dict[int, ErrorType] = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    503: "overloaded_error",
    529: "overloaded_error",
}

# OpenAI-envelope codes/types that mean "busy, retry" when no status says so (mid-stream).
_OVERLOADED_MARKERS = frozenset(
    {"overloaded", "overloaded_error", "model_unloading", "no_feasible_neuron", "503", "529"}
)


def anthropic_error_type(status: int) -> ErrorType:
    """The Anthropic error type for an HTTP status; other 4xx are invalid requests,
    other 5xx (502, 504, 507) are api_error."""
    if status in _TYPE_BY_STATUS:
        return _TYPE_BY_STATUS[status]
    return "invalid_request_error" if 400 <= status < 500 else "api_error"


def error_body(error_type: ErrorType, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": error_type, "message": message}}


def api_error_to_anthropic(exc: APIError) -> dict[str, Any]:
    """The Anthropic error body for one of helexa's own errors (HTTP status: exc.status)."""
    return error_body(anthropic_error_type(exc.status), exc.message)


def exception_to_anthropic(exc: BaseException) -> dict[str, Any]:
    """Any failure as an Anthropic error body: APIErrors keep their type, the rest are
    api_error (an unexpected failure is the server's fault, never the client's)."""
    if isinstance(exc, APIError):
        return api_error_to_anthropic(exc)
    return error_body("api_error", str(exc) or type(exc).__name__)


def openai_error_to_anthropic(
    status: int, body: bytes | str | Mapping[str, Any] | None
) -> dict[str, Any]:
    """An upstream OpenAI error response (status + envelope) as an Anthropic error body.

    The body may be the envelope `{"error": {"message", ...}}`, raw bytes of it, or
    anything else an upstream proxy produced (plain text, HTML): the message is then
    the text itself, or the status phrase when there is none.
    """
    return error_body(anthropic_error_type(status), _envelope_message(status, body))


def openai_stream_error_to_anthropic(envelope: Mapping[str, Any]) -> dict[str, Any]:
    """An error object sent as a chunk in the middle of an OpenAI stream (no status)."""
    detail = envelope.get("error")
    if not isinstance(detail, Mapping):
        return error_body("api_error", "upstream stream failed")
    markers = {str(detail.get("type", "")), str(detail.get("code", ""))}
    error_type: ErrorType = "overloaded_error" if markers & _OVERLOADED_MARKERS else "api_error"
    message = detail.get("message")
    if not isinstance(message, str) or not message:
        message = "upstream stream failed"
    return error_body(error_type, message)


def _envelope_message(status: int, body: bytes | str | Mapping[str, Any] | None) -> str:
    parsed: Any = body
    if isinstance(body, bytes | str):
        text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
        try:
            parsed = json.loads(text)
        except ValueError:
            parsed = text.strip()
    if isinstance(parsed, Mapping):
        detail = parsed.get("error")
        if isinstance(detail, Mapping) and isinstance(detail.get("message"), str):
            return str(detail["message"])
        if isinstance(detail, str):  # some servers send {"error": "text"}
            return detail
    if isinstance(parsed, str) and parsed:
        return parsed
    try:
        return f"upstream returned {status} {HTTPStatus(status).phrase}"
    except ValueError:
        return f"upstream returned {status}"
