"""Responses request -> chat completions request (pure)."""

from __future__ import annotations

from typing import Any

import pytest

from helexa.errors import BadRequest
from helexa.translate.responses_request import parse_responses_request, responses_to_chat_request


def translate(body: dict[str, Any]) -> dict[str, Any]:
    return responses_to_chat_request(parse_responses_request({"model": "m", **body}))


def test_string_input_with_instructions() -> None:
    out = translate({"input": "hi", "instructions": "Be brief.", "max_output_tokens": 9})
    assert out["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "hi"},
    ]
    assert out["max_tokens"] == 9
    assert out["stream"] is False and "stream_options" not in out
    assert out["chat_template_kwargs"] == {"enable_thinking": False}


def test_system_and_developer_items_merge_into_one_leading_system_message() -> None:
    out = translate(
        {
            "instructions": "A",
            "input": [
                {"role": "user", "content": "q"},
                {"type": "message", "role": "developer", "content": "B"},
                {"role": "system", "content": [{"type": "input_text", "text": "C"}]},
            ],
        }
    )
    assert out["messages"] == [
        {"role": "system", "content": "A\n\nB\n\nC"},
        {"role": "user", "content": "q"},
    ]


def test_a_whole_tool_turn_becomes_one_assistant_message_then_tool_messages() -> None:
    out = translate(
        {
            "input": [
                {"role": "user", "content": "weather and time?"},
                {
                    "type": "reasoning",
                    "summary": [],
                    "content": [{"type": "reasoning_text", "text": "two tools"}],
                },
                {"role": "assistant", "content": [{"type": "output_text", "text": "Checking."}]},
                {"type": "function_call", "call_id": "c1", "name": "weather", "arguments": "{}"},
                {"type": "function_call", "call_id": "c2", "name": "clock", "arguments": "{}"},
                {"type": "function_call_output", "call_id": "c1", "output": "sunny"},
                {
                    "type": "function_call_output",
                    "call_id": "c2",
                    "output": [{"type": "input_text", "text": "noon"}],
                },
            ]
        }
    )
    user, assistant, tool1, tool2 = out["messages"]
    assert user == {"role": "user", "content": "weather and time?"}
    assert assistant["content"] == "Checking."
    assert assistant["reasoning_content"] == "two tools"
    assert [c["id"] for c in assistant["tool_calls"]] == ["c1", "c2"]
    assert assistant["tool_calls"][1]["function"] == {"name": "clock", "arguments": "{}"}
    assert tool1 == {"role": "tool", "tool_call_id": "c1", "content": "sunny"}
    assert tool2 == {"role": "tool", "tool_call_id": "c2", "content": "noon"}


def test_function_call_without_a_message_starts_its_own_assistant_turn() -> None:
    out = translate(
        {
            "input": [
                {"role": "user", "content": "x"},
                {"type": "function_call", "call_id": "c", "name": "f", "arguments": '{"a":1}'},
            ]
        }
    )
    assert out["messages"][1] == {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": "c", "type": "function", "function": {"name": "f", "arguments": '{"a":1}'}}
        ],
    }


def test_user_images_become_image_url_parts() -> None:
    out = translate(
        {
            "input": [
                {
                    "role": "user",
                    "content": [
                        {"type": "input_text", "text": "what is this"},
                        {"type": "input_image", "image_url": "data:image/png;base64,AAAA"},
                    ],
                }
            ]
        }
    )
    assert out["messages"][0]["content"] == [
        {"type": "text", "text": "what is this"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
    ]


def test_tools_tool_choice_and_sampling() -> None:
    out = translate(
        {
            "input": "x",
            "tools": [{"type": "function", "name": "f", "parameters": {"type": "object"}}],
            "tool_choice": {"type": "function", "name": "f"},
            "parallel_tool_calls": False,
            "temperature": 0.5,
            "top_p": 0.9,
            "stream": True,
            "seed": 7,
            "reasoning": {"effort": "high"},
        }
    )
    assert out["tools"] == [
        {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    ]
    assert out["tool_choice"] == {"type": "function", "function": {"name": "f"}}
    assert out["parallel_tool_calls"] is False
    assert (out["temperature"], out["top_p"], out["seed"]) == (0.5, 0.9, 7)
    assert out["stream_options"] == {"include_usage": True}
    assert out["chat_template_kwargs"] == {"enable_thinking": True}


@pytest.mark.parametrize(
    ("effort", "thinking"), [("minimal", False), ("none", False), ("low", True)]
)
def test_reasoning_effort_switches_thinking(effort: str, thinking: bool) -> None:
    out = translate({"input": "x", "reasoning": {"effort": effort}})
    assert out["chat_template_kwargs"]["enable_thinking"] is thinking


def test_previous_response_id_is_rejected_with_a_reason() -> None:
    with pytest.raises(BadRequest) as info:
        translate({"input": "x", "previous_response_id": "resp_1"})
    assert info.value.param == "previous_response_id"
    assert "keeps no conversation state" in info.value.message


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"input": [{"type": "function_call", "name": "f"}]}, "input.0.call_id"),
        ({"input": "x", "tool_choice": {"type": "web_search"}}, "tool_choice"),
        ({"input": "x", "tools": [{"type": "namespace", "name": "n"}]}, "tools.0.tools"),
        ({"input": []}, "input"),
        (
            {
                "input": [
                    {
                        "role": "assistant",
                        "content": [{"type": "input_image", "image_url": "http://x"}],
                    }
                ]
            },
            "input.0.content.0",
        ),
    ],
)
def test_bad_requests_name_the_field(body: dict[str, Any], param: str) -> None:
    with pytest.raises(BadRequest) as info:
        translate(body)
    assert info.value.param == param
