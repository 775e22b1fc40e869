"""Errors rendered in the Anthropic dialect."""

from __future__ import annotations

import json
from typing import Any

import pytest

from helexa.errors import (
    APIError,
    BadRequest,
    ModelNotFound,
    NoFeasibleNeuron,
    Overloaded,
    Unauthorized,
    UpstreamError,
    UpstreamTimeout,
)
from helexa.translate.errors import (
    anthropic_error_type,
    api_error_to_anthropic,
    exception_to_anthropic,
    openai_error_to_anthropic,
    openai_stream_error_to_anthropic,
)


@pytest.mark.parametrize(
    ("status", "error_type"),
    [
        (400, "invalid_request_error"),
        (401, "authentication_error"),
        (403, "permission_error"),
        (404, "not_found_error"),
        (413, "request_too_large"),
        (429, "rate_limit_error"),
        (500, "api_error"),
        (503, "overloaded_error"),
        (529, "overloaded_error"),
        (422, "invalid_request_error"),
        (502, "api_error"),
        (504, "api_error"),
        (507, "api_error"),
    ],
)
def test_error_type_by_status(status: int, error_type: str) -> None:
    assert anthropic_error_type(status) == error_type


@pytest.mark.parametrize(
    ("error", "error_type"),
    [
        (BadRequest("max_tokens: required", param="max_tokens"), "invalid_request_error"),
        (Unauthorized("bad key"), "authentication_error"),
        (ModelNotFound("no model 'x'"), "not_found_error"),
        (Overloaded("queue full"), "overloaded_error"),
        (NoFeasibleNeuron("nowhere fits"), "overloaded_error"),
        (UpstreamError("neuron died"), "api_error"),
        (UpstreamTimeout("neuron slow"), "api_error"),
    ],
)
def test_api_error_body(error: APIError, error_type: str) -> None:
    assert api_error_to_anthropic(error) == {
        "type": "error",
        "error": {"type": error_type, "message": error.message},
    }


def test_any_other_exception_is_an_api_error() -> None:
    assert exception_to_anthropic(RuntimeError()) == {
        "type": "error",
        "error": {"type": "api_error", "message": "RuntimeError"},
    }
    assert exception_to_anthropic(Overloaded("busy"))["error"]["type"] == "overloaded_error"


ENVELOPE: dict[str, Any] = {
    "error": {"message": "model 'x' is not loaded", "type": "invalid_request_error", "code": "m"}
}


@pytest.mark.parametrize(
    ("status", "body", "error_type", "message"),
    [
        (404, ENVELOPE, "not_found_error", "model 'x' is not loaded"),
        (404, json.dumps(ENVELOPE).encode(), "not_found_error", "model 'x' is not loaded"),
        (400, json.dumps(ENVELOPE), "invalid_request_error", "model 'x' is not loaded"),
        (503, b'{"error": "busy"}', "overloaded_error", "busy"),
        (502, b"<html>Bad Gateway</html>\n", "api_error", "<html>Bad Gateway</html>"),
        (500, b"", "api_error", "upstream returned 500 Internal Server Error"),
        (429, None, "rate_limit_error", "upstream returned 429 Too Many Requests"),
        (599, {"error": {"type": "x"}}, "api_error", "upstream returned 599"),
    ],
)
def test_openai_error_envelope(status: int, body: Any, error_type: str, message: str) -> None:
    assert openai_error_to_anthropic(status, body) == {
        "type": "error",
        "error": {"type": error_type, "message": message},
    }


@pytest.mark.parametrize(
    ("envelope", "error_type", "message"),
    [
        ({"error": {"message": "m", "type": "overloaded_error"}}, "overloaded_error", "m"),
        ({"error": {"message": "m", "code": 503}}, "overloaded_error", "m"),
        ({"error": {"message": "boom", "type": "server_error"}}, "api_error", "boom"),
        ({"error": {"message": ""}}, "api_error", "upstream stream failed"),
        ({"error": "text"}, "api_error", "upstream stream failed"),
    ],
)
def test_stream_error_object(envelope: dict[str, Any], error_type: str, message: str) -> None:
    assert openai_stream_error_to_anthropic(envelope) == {
        "type": "error",
        "error": {"type": error_type, "message": message},
    }
