"""Chat completion -> Responses object (pure)."""

from __future__ import annotations

from typing import Any

from helexa.translate.responses_request import parse_responses_request
from helexa.translate.responses_response import ResponseContext, chat_completion_to_response

CTX = ResponseContext(
    "resp_abc",
    1700000000,
    "alias/m",
    parse_responses_request(
        {"model": "alias/m", "input": "x", "instructions": "Be brief.", "max_output_tokens": 50}
    ),
)


def completion(message: dict[str, Any], finish: str = "stop") -> dict[str, Any]:
    return {
        "id": "c",
        "object": "chat.completion",
        "created": 1,
        "model": "m",
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8},
    }


def test_text_answer() -> None:
    out = chat_completion_to_response(completion({"role": "assistant", "content": "Hello."}), CTX)
    assert out["id"] == "resp_abc" and out["object"] == "response"
    assert out["status"] == "completed" and out["incomplete_details"] is None
    assert out["model"] == "alias/m"  # as the client named it
    assert out["instructions"] == "Be brief." and out["max_output_tokens"] == 50
    assert out["output"] == [
        {
            "type": "message",
            "id": "msg_abc_0",
            "role": "assistant",
            "status": "completed",
            "content": [
                {"type": "output_text", "text": "Hello.", "annotations": [], "logprobs": []}
            ],
        }
    ]
    assert out["usage"]["input_tokens"] == 5 and out["usage"]["output_tokens"] == 3
    assert out["usage"]["total_tokens"] == 8


def test_reasoning_text_and_tool_calls_in_order() -> None:
    message = {
        "role": "assistant",
        "reasoning_content": "think",
        "content": "Calling.",
        "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}},
            {"id": "call_2", "type": "function", "function": {"name": "g", "arguments": '{"a":1}'}},
        ],
    }
    out = chat_completion_to_response(completion(message, "tool_calls"), CTX)
    assert [(i["type"], i["id"]) for i in out["output"]] == [
        ("reasoning", "rs_abc_0"),
        ("message", "msg_abc_1"),
        ("function_call", "fc_abc_2"),
        ("function_call", "fc_abc_3"),
    ]
    assert out["output"][0]["content"] == [{"type": "reasoning_text", "text": "think"}]
    assert out["output"][3] == {
        "type": "function_call",
        "id": "fc_abc_3",
        "call_id": "call_2",
        "name": "g",
        "arguments": '{"a":1}',
        "status": "completed",
    }


def test_length_cut_is_incomplete() -> None:
    out = chat_completion_to_response(
        completion({"role": "assistant", "content": "Hel"}, "length"), CTX
    )
    assert out["status"] == "incomplete"
    assert out["incomplete_details"] == {"reason": "max_output_tokens"}
