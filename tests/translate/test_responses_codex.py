"""What OpenAI's Codex CLI sends to /v1/responses, translated (pure).

codex/first_turn.json has the shape Codex 0.171.0 sent on its first request,
captured on loopback (its texts and descriptions replaced by short stand-ins):
two developer messages, the environment and the prompt as user messages,
function tools, a `namespace` tool, a hosted `web_search` tool, `include`,
`store`, `prompt_cache_key`, `client_metadata`. codex/first_turn.chat.json is
the chat completions body the gateway makes of it (refresh with
HELEXA_UPDATE_SNAPSHOTS=1, then review the diff). The second turn is the first
plus the items Codex sent back after running a tool, in the order it sent them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from helexa.translate.responses_request import parse_responses_request, responses_to_chat_request
from helexa.translate.responses_response import ResponseContext, chat_completion_to_response
from helexa.translate.thinking import reasoning_token

HERE = Path(__file__).parent / "codex"
FIRST_TURN = HERE / "first_turn.json"
GOLDEN = HERE / "first_turn.chat.json"
EXEC_OUTPUT = "Chunk ID: 4f2276\nProcess exited with code 0\nOutput:\nhello-from-cmd\n"


def first_turn() -> dict[str, Any]:
    body: dict[str, Any] = json.loads(FIRST_TURN.read_text())
    return body


def test_first_turn_matches_the_golden_chat_body() -> None:
    out = responses_to_chat_request(parse_responses_request(first_turn()))
    text = json.dumps(out, indent=2, ensure_ascii=False) + "\n"
    if os.environ.get("HELEXA_UPDATE_SNAPSHOTS"):
        GOLDEN.write_text(text)
    assert text == GOLDEN.read_text()


def test_first_turn_reads_as_the_model_needs_it() -> None:
    out = responses_to_chat_request(parse_responses_request(first_turn()))
    system, environment, prompt = out["messages"]
    # Both developer messages (three parts) are the one leading system message.
    assert system["role"] == "system"
    assert system["content"].count("\n") >= 2 and "permissions" in system["content"]
    assert (environment["role"], prompt) == ("user", {"role": "user", "content": "say hi"})
    names = [tool["function"]["name"] for tool in out["tools"]]
    assert names[:4] == ["exec_command", "write_stdin", "request_user_input", "view_image"]
    assert "multi_agent_v1__spawn_agent" in names and "multi_agent_v1__wait_agent" in names
    assert names[-3:] == ["get_goal", "create_goal", "update_goal"]
    assert "web_search" not in json.dumps(out["tools"])  # hosted: left out
    # Codex's own fields stop here: nothing the upstream would not understand.
    for field in ("store", "include", "prompt_cache_key", "client_metadata", "reasoning"):
        assert field not in out
    assert out["tool_choice"] == "auto" and out["parallel_tool_calls"] is True
    assert out["stream"] is True and out["chat_template_kwargs"] == {"enable_thinking": False}


def test_the_answer_carries_encrypted_reasoning_and_namespaced_calls() -> None:
    request = parse_responses_request(first_turn() | {"stream": False})
    ctx = ResponseContext("resp_c", 1, "helexa/tiny", request)
    message = {
        "role": "assistant",
        "reasoning_content": "I should wait for the agent.",
        "content": None,
        "tool_calls": [
            {
                "id": "call_b",
                "type": "function",
                "function": {"name": "multi_agent_v1__wait_agent", "arguments": "{}"},
            }
        ],
    }
    completion = {
        "id": "c",
        "object": "chat.completion",
        "created": 1,
        "model": "m",
        "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls"}],
    }
    reasoning, call = chat_completion_to_response(completion, ctx)["output"]
    assert reasoning["encrypted_content"] == reasoning_token("I should wait for the agent.")
    assert (call["namespace"], call["name"], call["call_id"]) == (
        "multi_agent_v1",
        "wait_agent",
        "call_b",
    )
    assert chat_completion_to_response(completion, ctx)["store"] is False  # nothing is stored


def second_turn(reasoning: dict[str, Any]) -> dict[str, Any]:
    body = first_turn()
    body["input"] += [
        reasoning,
        {
            "type": "function_call",
            "id": "fc_1",
            "name": "exec_command",
            "arguments": '{"cmd": "echo hello-from-cmd"}',
            "call_id": "call_a",
        },
        {"type": "function_call_output", "id": "fco_1", "call_id": "call_a", "output": EXEC_OUTPUT},
        {
            "type": "function_call",
            "id": "fc_2",
            "name": "wait_agent",
            "namespace": "multi_agent_v1",
            "arguments": '{"targets": ["a"]}',
            "call_id": "call_b",
        },
        {"type": "function_call_output", "id": "fco_2", "call_id": "call_b", "output": "done"},
    ]
    return body


def test_second_turn_sends_reasoning_calls_and_outputs_back() -> None:
    reasoning = {
        "type": "reasoning",
        "id": "rs_1",
        "summary": [],
        "content": [{"type": "reasoning_text", "text": "run it first"}],
        "encrypted_content": reasoning_token("run it first"),
    }
    out = responses_to_chat_request(parse_responses_request(second_turn(reasoning)))
    call_a, tool_a, call_b, tool_b = out["messages"][3:]  # two model turns, one call each
    assert call_a["reasoning_content"] == "run it first"
    assert [c["function"]["name"] for c in call_a["tool_calls"]] == ["exec_command"]
    # flattened again, as the model called it
    assert [c["function"]["name"] for c in call_b["tool_calls"]] == ["multi_agent_v1__wait_agent"]
    assert tool_a == {"role": "tool", "tool_call_id": "call_a", "content": EXEC_OUTPUT}
    assert tool_b == {"role": "tool", "tool_call_id": "call_b", "content": "done"}


def test_reasoning_sent_back_as_the_token_alone_is_read_from_it() -> None:
    only_token = {"type": "reasoning", "summary": [], "encrypted_content": reasoning_token("hm")}
    out = responses_to_chat_request(parse_responses_request(second_turn(only_token)))
    assert out["messages"][3]["reasoning_content"] == "hm"


def test_another_providers_encrypted_reasoning_is_dropped() -> None:
    foreign = {
        "type": "reasoning",
        "summary": [{"type": "summary_text", "text": "the summary"}],
        "encrypted_content": "gAAAAABo-opaque-openai-blob",
    }
    out = responses_to_chat_request(parse_responses_request(second_turn(foreign)))
    assert out["messages"][3]["reasoning_content"] == "the summary"  # what can be read
    nothing = {"type": "reasoning", "summary": [], "encrypted_content": "gAAAAABo"}
    out = responses_to_chat_request(parse_responses_request(second_turn(nothing)))
    assert "reasoning_content" not in out["messages"][3]


def test_store_true_is_served_statelessly() -> None:
    out = responses_to_chat_request(parse_responses_request(first_turn() | {"store": True}))
    assert "store" not in out and out["messages"][-1]["content"] == "say hi"


PATCH = "*** Begin Patch\n*** Add File: proof.txt\n+from-helexa\n*** End Patch\n"
PATCH_TOOL = {
    "type": "custom",
    "name": "apply_patch",
    "description": "(apply_patch tool)",
    "format": {"type": "grammar", "syntax": "lark", "definition": "start: begin_patch hunk+"},
}


def test_a_custom_tool_call_goes_out_and_comes_back_as_free_text() -> None:
    """Codex offers `apply_patch` as a custom (freeform) tool to models it knows."""
    body = first_turn() | {"stream": False}
    body["tools"] = [PATCH_TOOL, *body["tools"]]
    ctx = ResponseContext("resp_p", 1, "gpt-5.5-codex", parse_responses_request(body))
    arguments = json.dumps({"input": PATCH})
    call = {
        "id": "call_p",
        "type": "function",
        "function": {"name": "apply_patch", "arguments": arguments},
    }
    message = {"role": "assistant", "content": None, "tool_calls": [call]}
    completion = {
        "id": "c",
        "object": "chat.completion",
        "created": 1,
        "model": "m",
        "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls"}],
    }
    (item,) = chat_completion_to_response(completion, ctx)["output"]
    assert item == {
        "type": "custom_tool_call",
        "id": "ctc_p_0",
        "call_id": "call_p",
        "name": "apply_patch",
        "input": PATCH,
        "status": "completed",
    }
    body["input"] += [
        {"type": "custom_tool_call", "call_id": "call_p", "name": "apply_patch", "input": PATCH},
        {"type": "custom_tool_call_output", "call_id": "call_p", "output": "Success."},
    ]
    out = responses_to_chat_request(parse_responses_request(body))
    assistant, tool = out["messages"][-2:]
    assert assistant["tool_calls"][0]["function"] == {"name": "apply_patch", "arguments": arguments}
    assert tool == {"role": "tool", "tool_call_id": "call_p", "content": "Success."}
