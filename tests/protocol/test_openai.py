"""OpenAI wire models: tolerant of unknown fields, and compatible with the SDK's own types."""

from __future__ import annotations

import pytest
from openai.types import Completion as SDKCompletion
from openai.types.chat import ChatCompletion as SDKChatCompletion
from openai.types.chat import ChatCompletionChunk as SDKChatCompletionChunk
from pydantic import ValidationError

from helexa.protocol.openai import (
    AssistantMessage,
    ChatChoice,
    ChatChunkChoice,
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    ChatDelta,
    Completion,
    CompletionChoice,
    CompletionRequest,
    FunctionCall,
    FunctionCallDelta,
    ToolCall,
    ToolCallDelta,
    Usage,
)


def test_chat_request_keeps_unknown_fields_and_reads_known_ones() -> None:
    req = ChatCompletionRequest.model_validate(
        {
            "model": "m",
            "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": [{"type": "text", "text": "hi"}]},
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "c1",
                            "type": "function",
                            "function": {"name": "f", "arguments": '{"a": 1}'},
                        }
                    ],
                },
                {"role": "tool", "tool_call_id": "c1", "content": "42"},
            ],
            "tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}],
            "stop": "END",
            "max_completion_tokens": 7,
            "max_tokens": 99,
            "logit_bias": {"1": 2},  # unknown to us: kept, not an error
        }
    )
    assert req.stop_strings() == ["END"]
    assert req.token_limit() == 7  # max_completion_tokens wins
    assert req.model_extra == {"logit_bias": {"1": 2}}
    assert req.messages[2].tool_calls is not None
    assert req.messages[2].tool_calls[0].function.arguments == '{"a": 1}'


def test_stop_list_drops_empty_strings() -> None:
    req = CompletionRequest.model_validate({"model": "m", "prompt": "x", "stop": ["a", "", "b"]})
    assert req.stop_strings() == ["a", "b"]
    assert req.token_limit() is None


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"model": "m", "messages": []}, "messages"),
        ({"model": "m", "messages": [{"role": "wizard", "content": "x"}]}, "messages"),
        ({"model": "m", "messages": [{"role": "user"}], "temperature": 5}, "temperature"),
        ({"model": "m", "messages": [{"role": "user"}], "max_tokens": 0}, "max_tokens"),
        ({"messages": [{"role": "user"}]}, "model"),
    ],
)
def test_invalid_chat_requests_name_the_field(body: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        ChatCompletionRequest.model_validate(body)
    assert info.value.errors()[0]["loc"][0] == field


def test_responses_validate_as_the_sdk_types() -> None:
    usage = Usage(prompt_tokens=3, completion_tokens=2, total_tokens=5)
    chat = ChatCompletion(
        id="chatcmpl-1",
        created=1,
        model="m",
        usage=usage,
        choices=[
            ChatChoice(
                message=AssistantMessage(
                    content=None,
                    tool_calls=[ToolCall(id="c", function=FunctionCall(name="f", arguments="{}"))],
                ),
                finish_reason="tool_calls",
            )
        ],
    )
    sdk_chat = SDKChatCompletion.model_validate(chat.model_dump(mode="json"))
    assert sdk_chat.choices[0].message.tool_calls is not None
    assert sdk_chat.choices[0].finish_reason == "tool_calls"

    chunk = ChatCompletionChunk(
        id="chatcmpl-1",
        created=1,
        model="m",
        choices=[
            ChatChunkChoice(
                delta=ChatDelta(
                    tool_calls=[
                        ToolCallDelta(
                            index=0,
                            id="c",
                            type="function",
                            function=FunctionCallDelta(name="f", arguments="{}"),
                        )
                    ]
                )
            )
        ],
    )
    sdk_chunk = SDKChatCompletionChunk.model_validate(chunk.model_dump(mode="json"))
    assert sdk_chunk.choices[0].delta.tool_calls is not None
    assert sdk_chunk.choices[0].delta.tool_calls[0].function is not None

    completion = Completion(
        id="cmpl-1",
        created=1,
        model="m",
        usage=usage,
        choices=[CompletionChoice(text="hi", finish_reason="length")],
    )
    assert SDKCompletion.model_validate(completion.model_dump(mode="json")).choices[0].text == "hi"
