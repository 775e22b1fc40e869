"""Responses tools -> chat tools, and the model's tool names back (pure).

- `function` tools reach the model as they are.
- `namespace` tools (a named group of function tools: Codex sends its
  sub-agent tools as `multi_agent_v1`) are flattened: each member becomes a
  function named `<namespace>__<name>`, the flat form Codex itself uses where
  a namespace cannot be kept. A call to that name goes back to the client as
  a `function_call` with `namespace` and the member's own `name`, the shape
  Codex dispatches on; a `function_call` item sent back with a `namespace`
  is flattened the same way for the model.
- `custom` tools (freeform: Codex's `apply_patch` when it talks to a model
  it knows) become a function with one string parameter, `input`, whose
  description carries the tool's grammar; a call comes back as a
  `custom_tool_call` whose `input` is that string, and one sent back is
  wrapped the same way for the model.
- Hosted tools (`web_search`, `file_search`, `code_interpreter`,
  `tool_search`, ...: any other type) run on OpenAI's servers; the fleet
  cannot run them, so they are left out of what the model sees. A
  `tool_choice` forcing one is a 400.
- Two tools that flatten to the same name are a 400 (the model could not
  tell them apart).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from helexa.errors import BadRequest
from helexa.protocol.responses import (
    CustomTool,
    FunctionTool,
    HostedToolChoice,
    NamespaceTool,
    ResponsesRequest,
    Tool,
)

NAMESPACE_DELIMITER = "__"
CUSTOM_INPUT = "input"  # the one parameter a custom tool gets as a function


def flat_name(namespace: str | None, name: str) -> str:
    """The model-facing name of a namespace member (stray underscores at the join
    trimmed, as Codex does: `mcp__x_` + `_y` -> `mcp__x__y`)."""
    if namespace is None:
        return name
    return f"{namespace.rstrip('_')}{NAMESPACE_DELIMITER}{name.lstrip('_')}"


@dataclass(frozen=True)
class ToolNames:
    """Which flat names stand for a namespace member: flat -> (namespace, name)."""

    namespaced: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    custom: frozenset[str] = frozenset()  # names of custom (freeform) tools

    def split(self, flat: str) -> tuple[str | None, str]:
        """(namespace, name) of a name the model called; plain names have no namespace."""
        return self.namespaced.get(flat, (None, flat))


def tool_names(tools: list[Tool] | None) -> ToolNames:
    namespaced: dict[str, tuple[str, str]] = {}
    custom: set[str] = set()
    for tool in tools or []:
        if isinstance(tool, NamespaceTool):
            for member in tool.tools:
                namespaced[flat_name(tool.name, member.name)] = (tool.name, member.name)
        elif isinstance(tool, CustomTool):
            custom.add(tool.name)
    return ToolNames(namespaced, frozenset(custom))


def custom_arguments(text: str) -> str:
    """The function arguments the model sees for a custom tool's input."""
    return json.dumps({CUSTOM_INPUT: text}, ensure_ascii=False)


def custom_input(arguments: str) -> str:
    """A custom tool's input from the arguments the model wrote; arguments that are
    not the expected object are passed on as they are (the tool reports what it got)."""
    try:
        parsed = json.loads(arguments)
    except ValueError:
        return arguments
    if isinstance(parsed, dict) and isinstance(parsed.get(CUSTOM_INPUT), str):
        return str(parsed[CUSTOM_INPUT])
    return arguments


def chat_tools(request: ResponsesRequest) -> list[dict[str, Any]]:
    """The chat `tools` list: functions and flattened namespace members; hosted tools
    left out. Raises BadRequest when two tools end up with one name."""
    out: list[dict[str, Any]] = []
    where: dict[str, str] = {}  # flat name -> the param that defined it first
    for index, tool in enumerate(request.tools or []):
        members: list[tuple[str, FunctionTool, str]]
        if isinstance(tool, FunctionTool):
            members = [(tool.name, tool, f"tools.{index}")]
        elif isinstance(tool, NamespaceTool):
            members = [
                (flat_name(tool.name, member.name), member, f"tools.{index}.tools.{sub}")
                for sub, member in enumerate(tool.tools)
            ]
        elif isinstance(tool, CustomTool):
            members = [(tool.name, _as_function(tool), f"tools.{index}")]
        else:
            continue  # hosted: nothing the model can call here
        for name, function, param in members:
            if name in where:
                raise BadRequest(
                    f"{param}: the tool name '{name}' is already used by {where[name]} "
                    f"(namespace members are offered to the model as "
                    f"<namespace>{NAMESPACE_DELIMITER}<name>)",
                    param=param,
                )
            where[name] = param
            out.append(_chat_function(name, function))
    return out


def _as_function(tool: CustomTool) -> FunctionTool:
    """A custom tool as a function of one string: its grammar, when it has one, is in the
    parameter's description (the only place a chat model can read it)."""
    about = "The tool's whole input, as plain text (not JSON)."
    fmt = tool.format or {}
    if fmt.get("type") == "grammar" and isinstance(fmt.get("definition"), str):
        about += f" It must match this {fmt.get('syntax', '')} grammar:\n{fmt['definition']}"
    schema = {
        "type": "object",
        "properties": {CUSTOM_INPUT: {"type": "string", "description": about}},
        "required": [CUSTOM_INPUT],
    }
    return FunctionTool(name=tool.name, description=tool.description, parameters=schema)


def _chat_function(name: str, tool: FunctionTool) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {
            "name": name,
            **({"description": tool.description} if tool.description else {}),
            "parameters": tool.parameters or {"type": "object", "properties": {}},
        },
    }


def chat_tool_choice(request: ResponsesRequest) -> str | dict[str, Any] | None:
    """The chat `tool_choice`; forcing a hosted tool is a 400 (the fleet cannot run it)."""
    choice = request.tool_choice
    if choice is None or isinstance(choice, str):
        return choice
    if isinstance(choice, HostedToolChoice):
        raise BadRequest(
            f"tool_choice: '{choice.type}' is a hosted tool, which this gateway cannot run "
            "(only function, namespace and custom tools reach the model); use 'auto', "
            "'required', or a function",
            param="tool_choice",
        )
    return {"type": "function", "function": {"name": choice.name}}
