"""Responses tools -> chat tools: namespace members flattened and split back, hosted
tools left out, forcing a hosted tool refused."""

from __future__ import annotations

from typing import Any

import pytest

from helexa.errors import BadRequest
from helexa.translate.responses_request import parse_responses_request
from helexa.translate.responses_tools import (
    chat_tool_choice,
    chat_tools,
    custom_arguments,
    custom_input,
    flat_name,
    tool_names,
)

AGENTS: dict[str, Any] = {
    "type": "namespace",
    "name": "multi_agent_v1",
    "description": "Sub-agents",
    "tools": [
        {"type": "function", "name": "spawn_agent", "parameters": {"type": "object"}},
        {"type": "function", "name": "wait_agent", "description": "Wait"},
    ],
}
EXEC: dict[str, Any] = {"type": "function", "name": "exec_command", "description": "Run"}


def request(**body: Any) -> Any:
    return parse_responses_request({"model": "m", "input": "x", **body})


def test_namespace_members_are_flattened_and_hosted_tools_left_out() -> None:
    tools = [EXEC, AGENTS, {"type": "web_search", "external_web_access": False}]
    out = chat_tools(request(tools=tools))
    assert [t["function"]["name"] for t in out] == [
        "exec_command",
        "multi_agent_v1__spawn_agent",
        "multi_agent_v1__wait_agent",
    ]
    assert out[1]["function"]["parameters"] == {"type": "object"}
    assert out[2]["function"] == {
        "name": "multi_agent_v1__wait_agent",
        "description": "Wait",
        "parameters": {"type": "object", "properties": {}},
    }


def test_a_flat_name_splits_back_into_namespace_and_name() -> None:
    names = tool_names(request(tools=[EXEC, AGENTS]).tools)
    assert names.split("multi_agent_v1__wait_agent") == ("multi_agent_v1", "wait_agent")
    assert names.split("exec_command") == (None, "exec_command")
    assert names.split("made_up__name") == (None, "made_up__name")  # not a member: as is


@pytest.mark.parametrize(
    ("namespace", "name", "flat"),
    [
        ("mcp__calendar__", "__create_event", "mcp__calendar__create_event"),
        ("collaboration", "send_message", "collaboration__send_message"),
        (None, "exec_command", "exec_command"),
    ],
)
def test_flat_names_trim_underscores_at_the_join(
    namespace: str | None, name: str, flat: str
) -> None:
    assert flat_name(namespace, name) == flat


def test_two_tools_with_one_flat_name_are_a_400() -> None:
    clash = {"type": "function", "name": "multi_agent_v1__wait_agent"}
    with pytest.raises(BadRequest) as info:
        chat_tools(request(tools=[clash, AGENTS]))
    assert info.value.param == "tools.1.tools.1"
    assert "already used by tools.0" in info.value.message


@pytest.mark.parametrize("hosted", ["web_search", "file_search", "code_interpreter"])
def test_forcing_a_hosted_tool_is_a_400(hosted: str) -> None:
    with pytest.raises(BadRequest) as info:
        chat_tool_choice(request(tools=[{"type": hosted}], tool_choice={"type": hosted}))
    assert info.value.param == "tool_choice"
    assert f"'{hosted}' is a hosted tool" in info.value.message


@pytest.mark.parametrize(
    ("choice", "out"),
    [
        ("required", "required"),
        (
            {"type": "function", "name": "exec_command"},
            {"type": "function", "function": {"name": "exec_command"}},
        ),
        (None, None),
    ],
)
def test_other_tool_choices_pass(choice: Any, out: Any) -> None:
    body = {"tools": [EXEC]} | ({"tool_choice": choice} if choice is not None else {})
    assert chat_tool_choice(request(**body)) == out


def test_a_namespace_member_without_a_name_names_the_field() -> None:
    broken = AGENTS | {"tools": [{"type": "function"}]}
    with pytest.raises(BadRequest) as info:
        request(tools=[broken])
    assert info.value.param == "tools.0.tools.0.name"


PATCH_TOOL: dict[str, Any] = {
    "type": "custom",
    "name": "apply_patch",
    "description": "Edit files. FREEFORM: not JSON.",
    "format": {"type": "grammar", "syntax": "lark", "definition": "start: begin_patch hunk+"},
}


def test_a_custom_tool_is_a_function_of_one_string_with_its_grammar() -> None:
    (out,) = chat_tools(request(tools=[PATCH_TOOL]))
    function = out["function"]
    assert (function["name"], function["description"]) == ("apply_patch", PATCH_TOOL["description"])
    parameters = function["parameters"]
    assert parameters["required"] == ["input"] and list(parameters["properties"]) == ["input"]
    about = parameters["properties"]["input"]["description"]
    assert "lark grammar" in about and "start: begin_patch hunk+" in about
    assert tool_names(request(tools=[PATCH_TOOL]).tools).custom == {"apply_patch"}


@pytest.mark.parametrize(
    ("arguments", "text"),
    [
        ('{"input": "*** Begin Patch\\n"}', "*** Begin Patch\n"),
        ("not json", "not json"),  # passed on: the tool says what is wrong with it
        ('{"patch": "x"}', '{"patch": "x"}'),
    ],
)
def test_custom_input_unwraps_the_models_arguments(arguments: str, text: str) -> None:
    assert custom_input(arguments) == text
    if text.startswith("***"):
        assert custom_input(custom_arguments(text)) == text
