"""OpenAI chat completion -> Responses API response object (pure).

Output items, in the order a reasoning model produces them: a `reasoning`
item (from `reasoning_content`; with `encrypted_content` when the request's
`include` asks for "reasoning.encrypted_content"), a `message` item with one
`output_text` part, then one `function_call` item per tool call (a call to a
flattened namespace member says its `namespace`; a call to a custom tool is a
`custom_tool_call` with its `input`). finish_reason "length"
makes the response `incomplete` with reason `max_output_tokens`. The
stream translator (responses_stream) builds the same objects, so a
streamed response's final `response.completed` equals the whole one.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

from helexa.protocol.openai import ChatCompletion
from helexa.protocol.responses import ResponsesRequest
from helexa.translate.responses_tools import ToolNames, custom_input, tool_names
from helexa.translate.thinking import reasoning_token

ENCRYPTED_REASONING = "reasoning.encrypted_content"

ResponseStatus = str  # "in_progress" | "completed" | "incomplete" | "failed"


@dataclass(frozen=True)
class ResponseContext:
    """What every response object of one request repeats."""

    id: str  # "resp_<hex>"
    created_at: int
    model: str  # the name the client used
    request: ResponsesRequest

    def item_id(self, prefix: str, index: int) -> str:
        """Stable ids per output position: msg_<hex>_1, fc_<hex>_2, ..."""
        return f"{prefix}_{self.id.removeprefix('resp_')}_{index}"

    @cached_property
    def tool_names(self) -> ToolNames:
        return tool_names(self.request.tools)

    @cached_property
    def encrypted_reasoning(self) -> bool:
        return ENCRYPTED_REASONING in (self.request.include or [])


def usage_object(prompt_tokens: int, completion_tokens: int, cached: int = 0) -> dict[str, Any]:
    """A Responses usage object; `cached` is the part of the prompt served from the
    neuron's prefix cache (OpenAI's prompt_tokens_details.cached_tokens)."""
    return {
        "input_tokens": prompt_tokens,
        "input_tokens_details": {"cached_tokens": cached},
        "output_tokens": completion_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": prompt_tokens + completion_tokens,
    }


def response_object(
    ctx: ResponseContext,
    *,
    status: ResponseStatus,
    output: list[dict[str, Any]],
    usage: dict[str, Any] | None = None,
    incomplete: bool = False,
    error: dict[str, Any] | None = None,
) -> dict[str, Any]:
    request = ctx.request
    return {
        "id": ctx.id,
        "object": "response",
        "created_at": ctx.created_at,
        "status": status,
        "model": ctx.model,
        "output": output,
        "usage": usage,
        "error": error,
        "incomplete_details": {"reason": "max_output_tokens"} if incomplete else None,
        "instructions": request.instructions,
        "tools": [tool.model_dump(exclude_none=True) for tool in request.tools or []],
        "tool_choice": _tool_choice(request),
        "parallel_tool_calls": request.parallel_tool_calls is not False,
        "max_output_tokens": request.max_output_tokens,
        "temperature": request.temperature,
        "top_p": request.top_p,
        "reasoning": request.reasoning.model_dump() if request.reasoning else None,
        "previous_response_id": None,
        "metadata": request.metadata or {},
        "text": {"format": {"type": "text"}},
        "truncation": "disabled",
        "store": False,
        "user": request.user,
    }


def _tool_choice(request: ResponsesRequest) -> Any:
    choice = request.tool_choice
    if choice is None:
        return "auto"
    return choice if isinstance(choice, str) else choice.model_dump()


def reasoning_item(ctx: ResponseContext, index: int, text: str, status: str) -> dict[str, Any]:
    item: dict[str, Any] = {
        "type": "reasoning",
        "id": ctx.item_id("rs", index),
        "summary": [],
        "content": [{"type": "reasoning_text", "text": text}],
        "status": status,
    }
    if ctx.encrypted_reasoning and status == "completed":
        item["encrypted_content"] = reasoning_token(text)
    return item


def text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def message_item(
    ctx: ResponseContext, index: int, parts: list[dict[str, Any]], status: str
) -> dict[str, Any]:
    return {
        "type": "message",
        "id": ctx.item_id("msg", index),
        "role": "assistant",
        "status": status,
        "content": parts,
    }


def function_call_item(
    ctx: ResponseContext, index: int, call_id: str, name: str, arguments: str, status: str
) -> dict[str, Any]:
    """The output item of a tool call; `name` is what the model called: a flattened
    namespace member is split back, a custom tool's call is a `custom_tool_call`."""
    if name in ctx.tool_names.custom:
        return {
            "type": "custom_tool_call",
            "id": ctx.item_id("ctc", index),
            "call_id": call_id,
            "name": name,
            "input": custom_input(arguments) if arguments else "",
            "status": status,
        }
    namespace, own_name = ctx.tool_names.split(name)
    item: dict[str, Any] = {
        "type": "function_call",
        "id": ctx.item_id("fc", index),
        "call_id": call_id,
        "name": own_name,
        "arguments": arguments,
        "status": status,
    }
    if namespace is not None:
        item["namespace"] = namespace
    return item


def chat_completion_to_response(completion: dict[str, Any], ctx: ResponseContext) -> dict[str, Any]:
    """The Responses object for a non-streaming chat completion."""
    parsed = ChatCompletion.model_validate(completion)
    choice = parsed.choices[0]
    message = choice.message
    output: list[dict[str, Any]] = []
    if message.reasoning_content:
        output.append(reasoning_item(ctx, len(output), message.reasoning_content, "completed"))
    if message.content:
        output.append(message_item(ctx, len(output), [text_part(message.content)], "completed"))
    for call in message.tool_calls or []:
        output.append(
            function_call_item(
                ctx, len(output), call.id, call.function.name, call.function.arguments, "completed"
            )
        )
    incomplete = choice.finish_reason == "length"
    usage = (
        usage_object(
            parsed.usage.prompt_tokens,
            parsed.usage.completion_tokens,
            (
                parsed.usage.prompt_tokens_details
                and parsed.usage.prompt_tokens_details.cached_tokens
            )
            or 0,
        )
        if parsed.usage
        else None
    )
    return response_object(
        ctx,
        status="incomplete" if incomplete else "completed",
        output=output,
        usage=usage,
        incomplete=incomplete,
    )
