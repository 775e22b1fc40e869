"""Anthropic wire models: tolerant of extra fields, strict about block types, and the
same shape as the anthropic SDK's own types."""

from __future__ import annotations

from typing import Any

import anthropic
import pytest
from pydantic import ValidationError

from helexa.protocol.anthropic import (
    CountTokensRequest,
    ErrorResponse,
    ImageBlock,
    Message,
    MessagesRequest,
    TextBlock,
    ThinkingBlock,
    ToolResultBlock,
    ToolUseBlock,
    Usage,
)

CLIENT_REQUEST: dict[str, Any] = {
    "model": "claude-sonnet-4-5",
    "max_tokens": 32000,
    "stream": True,
    "system": [
        {"type": "text", "text": "You are a coding agent.", "cache_control": {"type": "ephemeral"}}
    ],
    "messages": [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "<system-reminder>x</system-reminder>"},
                {
                    "type": "image",
                    "source": {"type": "base64", "media_type": "image/png", "data": "AA"},
                },
            ],
        },
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "plan", "signature": "sig"},
                {"type": "tool_use", "id": "toolu_1", "name": "Read", "input": {"path": "a"}},
            ],
        },
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "text"}],
        },
    ],
    "tools": [{"name": "Read", "input_schema": {"type": "object"}, "cache_control": {}}],
    "tool_choice": {"type": "auto"},
    "thinking": {"type": "enabled", "budget_tokens": 4096},
    "metadata": {"user_id": "u"},
    "context_management": {"edits": []},
}


def test_a_client_request_parses_with_its_extra_fields_kept() -> None:
    request = MessagesRequest.model_validate(CLIENT_REQUEST)

    assert request.model_extra == {"context_management": {"edits": []}}
    assert isinstance(request.system, list)
    assert request.system[0].model_extra == {"cache_control": {"type": "ephemeral"}}
    first, second, third = (m.content for m in request.messages)
    assert isinstance(first, list) and isinstance(first[1], ImageBlock)
    assert isinstance(second, list) and isinstance(second[0], ThinkingBlock)
    assert isinstance(second[1], ToolUseBlock) and second[1].input == {"path": "a"}
    assert isinstance(third, list) and isinstance(third[0], ToolResultBlock)
    assert request.thinking is not None and request.thinking.budget_tokens == 4096


@pytest.mark.parametrize(
    "change",
    [
        {"messages": [{"role": "user", "content": [{"type": "document", "source": {}}]}]},
        {"messages": [{"role": "tool", "content": "x"}]},
        {"max_tokens": 0},
        {"tool_choice": {"type": "sometimes"}},
        {"thinking": {"type": "enabled", "budget_tokens": 0}},
        {"top_p": 0},
    ],
)
def test_invalid_requests_are_rejected(change: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        MessagesRequest.model_validate({**CLIENT_REQUEST, **change})


def test_count_tokens_request_has_no_max_tokens() -> None:
    body = {k: v for k, v in CLIENT_REQUEST.items() if k not in ("max_tokens", "stream")}

    assert CountTokensRequest.model_validate(body).model == "claude-sonnet-4-5"


def test_message_has_the_sdk_shape() -> None:
    message = Message(
        id="msg_1",
        model="m",
        content=[
            ThinkingBlock(thinking="t", signature="helexa:0"),
            TextBlock(text="hi"),
            ToolUseBlock(id="toolu_1", name="f", input={"a": 1}),
        ],
        stop_reason="tool_use",
        usage=Usage(input_tokens=3, output_tokens=4),
    )

    parsed = anthropic.types.Message.model_validate(message.model_dump(mode="json"))

    assert parsed.model_dump(exclude_none=True) == message.model_dump(exclude_none=True)


def test_error_response_has_the_sdk_shape() -> None:
    body = ErrorResponse.model_validate(
        {"type": "error", "error": {"type": "not_found_error", "message": "no such model"}}
    )

    assert body.error.type == "not_found_error"
    assert body.model_dump() == {
        "type": "error",
        "error": {"type": "not_found_error", "message": "no such model"},
    }
