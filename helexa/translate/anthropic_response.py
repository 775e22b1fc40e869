"""OpenAI chat completion -> Anthropic message (pure).

Blocks come out in the order Anthropic uses: thinking (from
`reasoning_content`, or `reasoning` as some servers name it), text, then one
tool_use block per tool call. Tool arguments that are not a JSON object are
kept, not dropped, as `{"_raw_arguments": "<the text>"}` so the client's tool
validation reports the model's real output (tool_arguments_to_input).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from helexa.errors import UpstreamError
from helexa.protocol.anthropic import (
    Message,
    ResponseContentBlock,
    TextBlock,
    ThinkingBlock,
    ToolUseBlock,
    Usage,
)
from helexa.translate.stop_reason import anthropic_stop_reason, detect_stop_sequence
from helexa.translate.thinking import thinking_signature
from helexa.translate.usage import anthropic_input_usage, cached_tokens

RAW_ARGUMENTS_KEY = "_raw_arguments"


def chat_completion_to_message(
    completion: Mapping[str, Any],
    *,
    model: str,
    stop_sequences: Sequence[str] = (),
) -> Message:
    """An Anthropic message for an OpenAI chat completion (a decoded JSON body).

    `model` is the name the client asked for (echoed back, whatever the upstream
    calls it); `stop_sequences` are the request's, used to name the one that matched.
    Raises UpstreamError when the body is not a chat completion.
    """
    choices = completion.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], Mapping):
        raise UpstreamError("upstream chat completion has no choices")
    choice: Mapping[str, Any] = choices[0]
    message = choice.get("message")
    if not isinstance(message, Mapping):
        raise UpstreamError("upstream chat completion choice has no message")

    content: list[ResponseContentBlock] = []
    reasoning = reasoning_text(message)
    if reasoning:
        content.append(ThinkingBlock(thinking=reasoning, signature=thinking_signature(reasoning)))
    text = message.get("content")
    if isinstance(text, str) and text:
        content.append(TextBlock(text=text))
    tool_calls = message.get("tool_calls") or []
    for position, call in enumerate(tool_calls):
        content.append(_tool_use(call, fallback_id=f"toolu_{completion.get('id', '')}_{position}"))

    finish_reason = choice.get("finish_reason")
    stop_sequence = None
    if finish_reason == "stop":
        stop_sequence = detect_stop_sequence(
            choice.get("stop_reason"), text if isinstance(text, str) else "", stop_sequences
        )
    return Message(
        id=message_id(completion.get("id")),
        model=model,
        content=content,
        stop_reason=anthropic_stop_reason(
            finish_reason if isinstance(finish_reason, str) else None,
            has_tool_calls=bool(tool_calls),
            stop_sequence=stop_sequence,
        ),
        stop_sequence=stop_sequence,
        usage=_usage(completion.get("usage")),
    )


def message_id(upstream_id: object) -> str:
    """`msg_` + the upstream id, so logs on both sides can be matched."""
    return f"msg_{upstream_id}" if isinstance(upstream_id, str) and upstream_id else "msg_helexa"


def reasoning_text(message_or_delta: Mapping[str, Any]) -> str:
    value = message_or_delta.get("reasoning_content")
    if value is None:
        value = message_or_delta.get("reasoning")
    return value if isinstance(value, str) else ""


def tool_arguments_to_input(arguments: object) -> dict[str, Any]:
    """OpenAI's JSON-text arguments as Anthropic's input object; "" means no arguments."""
    if isinstance(arguments, Mapping):  # some servers send the object itself
        return dict(arguments)
    if not isinstance(arguments, str) or not arguments.strip():
        return {}
    try:
        parsed = json.loads(arguments)
    except ValueError:
        return {RAW_ARGUMENTS_KEY: arguments}
    return parsed if isinstance(parsed, dict) else {RAW_ARGUMENTS_KEY: arguments}


def _tool_use(call: object, *, fallback_id: str) -> ToolUseBlock:
    if not isinstance(call, Mapping) or not isinstance(call.get("function"), Mapping):
        raise UpstreamError("upstream tool call has no function")
    function: Mapping[str, Any] = call["function"]
    call_id = call.get("id")
    return ToolUseBlock(
        # The tool call id is kept as is: the client sends it back as tool_use_id,
        # which becomes the tool message's tool_call_id.
        id=call_id if isinstance(call_id, str) and call_id else fallback_id,
        name=str(function.get("name") or ""),
        input=tool_arguments_to_input(function.get("arguments")),
    )


def _usage(usage: object) -> Usage:
    if not isinstance(usage, Mapping):
        return Usage(input_tokens=0, output_tokens=0)
    counts = anthropic_input_usage(_count(usage.get("prompt_tokens")), cached_tokens(usage))
    return Usage(output_tokens=_count(usage.get("completion_tokens")), **counts)


def _count(value: object) -> int:
    return value if isinstance(value, int) and value >= 0 else 0
