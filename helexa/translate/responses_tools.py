"""Responses tools -> chat tools, and the model's tool names back (pure).

- `function` tools reach the model as they are.
- `namespace` tools (a named group of function tools: Codex sends its
  sub-agent tools as `multi_agent_v1`) are flattened: each member becomes a
  function named `<namespace>__<name>`, the flat form Codex itself uses where
  a namespace cannot be kept. A call to that name goes back to the client as
  a `function_call` with `namespace` and the member's own `name`, the shape
  Codex dispatches on; a `function_call` item sent back with a `namespace`
  is flattened the same way for the model.
- Hosted tools (`web_search`, `file_search`, `code_interpreter`, ...: any
  other type) run on OpenAI's servers; the fleet cannot run them, so they are
  left out of what the model sees. A `tool_choice` forcing one is a 400.
- Two tools that flatten to the same name are a 400 (the model could not
  tell them apart).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from helexa.errors import BadRequest
from helexa.protocol.responses import (
    FunctionTool,
    HostedToolChoice,
    NamespaceTool,
    ResponsesRequest,
    Tool,
)

NAMESPACE_DELIMITER = "__"


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

    def split(self, flat: str) -> tuple[str | None, str]:
        """(namespace, name) of a name the model called; plain names have no namespace."""
        return self.namespaced.get(flat, (None, flat))


def tool_names(tools: list[Tool] | None) -> ToolNames:
    namespaced: dict[str, tuple[str, str]] = {}
    for tool in tools or []:
        if isinstance(tool, NamespaceTool):
            for member in tool.tools:
                namespaced[flat_name(tool.name, member.name)] = (tool.name, member.name)
    return ToolNames(namespaced)


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
            "(only function and namespace tools reach the model); use 'auto', 'required', "
            "or a function",
            param="tool_choice",
        )
    return {"type": "function", "function": {"name": choice.name}}
