"""OpenAI chat completions -> Anthropic messages, case by case, and through the real SDK."""

from __future__ import annotations

from typing import Any

import pytest

from helexa.errors import UpstreamError
from helexa.translate.anthropic_response import chat_completion_to_message, tool_arguments_to_input
from helexa.translate.thinking import thinking_signature
from tests.translate.canned_anthropic import CannedServer

USAGE = {"prompt_tokens": 12, "completion_tokens": 7, "total_tokens": 19}


def completion(
    message: dict[str, Any], finish_reason: str | None = "stop", **choice: Any
) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "Qwen/Qwen3-8B",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", **message},
                "finish_reason": finish_reason,
                **choice,
            }
        ],
        "usage": USAGE,
    }


def tool_call(call_id: str, name: str, arguments: str) -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


# (case id, OpenAI completion, stop_sequences, expected content, stop_reason, stop_sequence)
CASES: list[tuple[str, dict[str, Any], list[str], list[dict[str, Any]], str, str | None]] = [
    (
        "text",
        completion({"content": "Hello"}),
        [],
        [{"type": "text", "text": "Hello"}],
        "end_turn",
        None,
    ),
    (
        "thinking then text",
        completion({"content": "42", "reasoning_content": "think"}),
        [],
        [
            {"type": "thinking", "thinking": "think", "signature": thinking_signature("think")},
            {"type": "text", "text": "42"},
        ],
        "end_turn",
        None,
    ),
    (
        "reasoning under the name other servers use",
        completion({"content": "x", "reasoning": "r"}),
        [],
        [
            {"type": "thinking", "thinking": "r", "signature": thinking_signature("r")},
            {"type": "text", "text": "x"},
        ],
        "end_turn",
        None,
    ),
    (
        "length",
        completion({"content": "Hel"}, "length"),
        [],
        [{"type": "text", "text": "Hel"}],
        "max_tokens",
        None,
    ),
    (
        "two tool calls, no text",
        completion(
            {
                "content": None,
                "tool_calls": [
                    tool_call("call_a", "get_weather", '{"city": "Oslo"}'),
                    tool_call("call_b", "get_time", ""),
                ],
            },
            "tool_calls",
        ),
        [],
        [
            {"type": "tool_use", "id": "call_a", "name": "get_weather", "input": {"city": "Oslo"}},
            {"type": "tool_use", "id": "call_b", "name": "get_time", "input": {}},
        ],
        "tool_use",
        None,
    ),
    (
        "text and a tool call with invalid JSON arguments, finish stop",
        completion({"content": "Sure.", "tool_calls": [tool_call("call_c", "f", "{oops")]}, "stop"),
        [],
        [
            {"type": "text", "text": "Sure."},
            {"type": "tool_use", "id": "call_c", "name": "f", "input": {"_raw_arguments": "{oops"}},
        ],
        "tool_use",
        None,
    ),
    (
        "stop sequence named by the upstream stop_reason",
        completion({"content": "a b"}, "stop", stop_reason="END"),
        ["STOP", "END"],
        [{"type": "text", "text": "a b"}],
        "stop_sequence",
        "END",
    ),
    (
        "stop sequence kept at the end of the text, longest wins",
        completion({"content": "a b\n\nHuman:"}),
        [":", "\n\nHuman:"],
        [{"type": "text", "text": "a b\n\nHuman:"}],
        "stop_sequence",
        "\n\nHuman:",
    ),
    (
        "eos with stop sequences that did not match",
        completion({"content": "done"}, "stop", stop_reason=None),
        ["END"],
        [{"type": "text", "text": "done"}],
        "end_turn",
        None,
    ),
    (
        "stop_reason that is a token id, not a request stop",
        completion({"content": "done"}, "stop", stop_reason=151645),
        ["END"],
        [{"type": "text", "text": "done"}],
        "end_turn",
        None,
    ),
    (
        "content filter",
        completion({"content": ""}, "content_filter"),
        [],
        [],
        "refusal",
        None,
    ),
]


@pytest.mark.parametrize(
    ("openai", "stops", "content", "stop_reason", "stop_sequence"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_translates_response(
    openai: dict[str, Any],
    stops: list[str],
    content: list[dict[str, Any]],
    stop_reason: str,
    stop_sequence: str | None,
) -> None:
    message = chat_completion_to_message(openai, model="claude-haiku-4-5", stop_sequences=stops)

    assert message.model_dump(mode="json", exclude_none=True) == {
        "id": "msg_chatcmpl-1",
        "type": "message",
        "role": "assistant",
        "model": "claude-haiku-4-5",
        "content": content,
        "stop_reason": stop_reason,
        **({"stop_sequence": stop_sequence} if stop_sequence else {}),
        "usage": {"input_tokens": 12, "output_tokens": 7},
    }


def test_missing_usage_counts_zero_and_stop_sequence_is_null() -> None:
    openai = completion({"content": "x"})
    del openai["usage"]

    body = chat_completion_to_message(openai, model="m").model_dump(mode="json")

    assert body["usage"]["input_tokens"] == 0
    assert body["usage"]["output_tokens"] == 0
    assert body["stop_sequence"] is None  # present, as Anthropic always sends it


def test_tool_call_without_id_gets_a_stable_one() -> None:
    call = {"type": "function", "function": {"name": "f", "arguments": "{}"}}
    openai = completion({"content": None, "tool_calls": [call]}, "tool_calls")

    first = chat_completion_to_message(openai, model="m").content[0]
    again = chat_completion_to_message(openai, model="m").content[0]

    assert first.type == "tool_use" and again.type == "tool_use"
    assert first.id == again.id == "toolu_chatcmpl-1_0"


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ('{"a": [1, 2]}', {"a": [1, 2]}),
        ("", {}),
        ("   ", {}),
        (None, {}),
        ({"a": 1}, {"a": 1}),
        ("[1, 2]", {"_raw_arguments": "[1, 2]"}),
        ('{"a": ', {"_raw_arguments": '{"a": '}),
    ],
)
def test_tool_arguments_to_input(arguments: object, expected: dict[str, Any]) -> None:
    assert tool_arguments_to_input(arguments) == expected


@pytest.mark.parametrize(
    "broken",
    [
        {"id": "x"},
        {"choices": []},
        {"choices": [{"index": 0}]},
        {"choices": [{"message": {"tool_calls": [{"id": "a"}]}}]},
    ],
)
def test_malformed_upstream_body_is_an_upstream_error(broken: dict[str, Any]) -> None:
    with pytest.raises(UpstreamError):
        chat_completion_to_message(broken, model="m")


def test_the_sdk_parses_a_translated_message(canned_server: CannedServer) -> None:
    openai = completion(
        {
            "content": "Checking.",
            "reasoning_content": "User wants weather.",
            "tool_calls": [tool_call("call_a", "get_weather", '{"city": "Oslo", "days": 2}')],
        },
        "tool_calls",
    )
    canned_server.serve_json(
        chat_completion_to_message(openai, model="claude-haiku-4-5").model_dump(mode="json")
    )

    message = canned_server.client().messages.create(
        model="claude-haiku-4-5", max_tokens=64, messages=[{"role": "user", "content": "hi"}]
    )

    assert [block.type for block in message.content] == ["thinking", "text", "tool_use"]
    thinking, text, tool_use = message.content
    assert thinking.type == "thinking" and thinking.thinking == "User wants weather."
    assert thinking.signature.startswith("helexa:")
    assert text.type == "text" and text.text == "Checking."
    assert tool_use.type == "tool_use"
    assert (tool_use.id, tool_use.name) == ("call_a", "get_weather")
    assert tool_use.input == {"city": "Oslo", "days": 2}
    assert message.stop_reason == "tool_use"
    assert message.model == "claude-haiku-4-5"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (12, 7)


def test_the_sdk_parses_a_stop_sequence_message(canned_server: CannedServer) -> None:
    openai = completion({"content": "1 2 3"}, "stop", stop_reason="4")
    canned_server.serve_json(
        chat_completion_to_message(openai, model="m", stop_sequences=["4"]).model_dump(mode="json")
    )

    message = canned_server.client().messages.create(
        model="m", max_tokens=8, stop_sequences=["4"], messages=[{"role": "user", "content": "go"}]
    )

    assert message.stop_reason == "stop_sequence"
    assert message.stop_sequence == "4"
    assert canned_server.received[0]["stop_sequences"] == ["4"]
