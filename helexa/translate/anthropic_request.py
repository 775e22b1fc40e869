"""Anthropic Messages request -> OpenAI chat completions request (pure).

Rules (docs/dialects.md has the full table):
- `system` (string or text blocks) and any system-role messages become ONE
  leading system message, sources joined by a blank line.
- A user turn's tool_result blocks become tool-role messages, in order, right
  after the assistant's tool_calls (OpenAI requires that); the turn's other
  blocks (text, images, images from tool results) follow as one user message.
- Text blocks of one message are joined with "\\n" (vLLM's convention for
  text parts) so a text-only message is a plain string, which every chat
  template understands.
- Thinking is off unless `thinking.type` is enabled/adaptive; it reaches the
  neuron's chat template as `chat_template_kwargs.enable_thinking`.
"""

from __future__ import annotations

import json
from typing import Any

from helexa.errors import BadRequest
from helexa.protocol.anthropic import (
    CountTokensRequest,
    ImageBlock,
    MessageParam,
    MessagesRequest,
    PromptFields,
    RedactedThinkingBlock,
    TextBlock,
    ThinkingBlock,
    ToolResultBlock,
    ToolUseBlock,
)
from helexa.translate.output_format import anthropic_response_format
from helexa.translate.validation import parse_body

OpenAIMessage = dict[str, Any]


def parse_messages_request(body: object) -> MessagesRequest:
    """Validate a decoded /v1/messages body; raises BadRequest with a param."""
    return parse_body(body, MessagesRequest)


def parse_count_tokens_request(body: object) -> CountTokensRequest:
    return parse_body(body, CountTokensRequest)


def anthropic_to_openai(body: object) -> dict[str, Any]:
    """Parse and translate in one step."""
    return messages_to_chat_request(parse_messages_request(body))


def messages_to_chat_request(request: MessagesRequest) -> dict[str, Any]:
    """The OpenAI /v1/chat/completions body (a JSON-ready dict) for a Messages request."""
    out = prompt_fields(request)
    out["max_tokens"] = request.max_tokens
    if request.temperature is not None:
        out["temperature"] = request.temperature
    if request.top_p is not None:
        out["top_p"] = request.top_p
    if request.top_k is not None:
        out["top_k"] = request.top_k  # vLLM-style extension; the neuron honours it
    if request.stop_sequences:
        out["stop"] = list(request.stop_sequences)
    if request.metadata is not None and request.metadata.user_id is not None:
        out["user"] = request.metadata.user_id
    out.update(anthropic_response_format(request))
    out["stream"] = request.stream
    if request.stream:
        # Anthropic reports usage at the end of every stream; OpenAI only when asked.
        out["stream_options"] = {"include_usage": True}
    return out


def prompt_fields(request: PromptFields) -> dict[str, Any]:
    """What decides the prompt tokens: model, messages, tools, tool_choice and template
    flags. /v1/tokenize gets exactly these, so count_tokens equals usage.input_tokens."""
    messages = translate_messages(request)
    out: dict[str, Any] = {"model": request.model, "messages": messages}
    if request.tools:
        out["tools"] = [
            {
                "type": "function",
                "function": {
                    "name": tool.name,
                    **({"description": tool.description} if tool.description is not None else {}),
                    "parameters": tool.input_schema,
                },
            }
            for tool in request.tools
        ]
    out.update(_tool_choice(request))
    out["chat_template_kwargs"] = {"enable_thinking": _thinking_enabled(request)}
    last = messages[-1]
    if last["role"] == "assistant" and not last.get("tool_calls"):
        # A trailing assistant turn is a prefill: the reply continues it (vLLM/transformers names).
        out["continue_final_message"] = True
        out["add_generation_prompt"] = False
    return out


def tokenize_request(request: PromptFields) -> dict[str, Any]:
    """The neuron /v1/tokenize body for a count_tokens (or messages) request."""
    fields = prompt_fields(request)
    # tool_choice / parallel_tool_calls do not change the prompt; the template flags do.
    template_keys = (
        "tools",
        "chat_template_kwargs",
        "continue_final_message",
        "add_generation_prompt",
    )
    return {
        "model": fields["model"],
        "messages": fields["messages"],
        **{key: fields[key] for key in template_keys if key in fields},
    }


def translate_messages(request: PromptFields) -> list[OpenAIMessage]:
    system_parts: list[str] = []
    if isinstance(request.system, str):
        system_parts.append(request.system)
    elif request.system is not None:
        system_parts.append("\n".join(block.text for block in request.system))
    messages: list[OpenAIMessage] = []
    for position, message in enumerate(request.messages):
        if message.role == "system":
            system_parts.append(_system_text(message, position))
        elif message.role == "user":
            messages.extend(_user_messages(message, position))
        else:
            messages.append(_assistant_message(message, position))
    if not messages:
        raise BadRequest(
            "messages: at least one user or assistant message is required", param="messages"
        )
    system = "\n\n".join(part for part in system_parts if part)
    return [{"role": "system", "content": system}, *messages] if system else messages


def _system_text(message: MessageParam, position: int) -> str:
    if isinstance(message.content, str):
        return message.content
    texts: list[str] = []
    for index, block in enumerate(message.content):
        if not isinstance(block, TextBlock):
            raise _misplaced(block.type, "system", position, index)
        texts.append(block.text)
    return "\n".join(texts)


def _user_messages(message: MessageParam, position: int) -> list[OpenAIMessage]:
    if isinstance(message.content, str):
        return [{"role": "user", "content": message.content}]
    tool_messages: list[OpenAIMessage] = []
    parts: list[dict[str, Any]] = []
    for index, block in enumerate(message.content):
        if isinstance(block, TextBlock):
            parts.append({"type": "text", "text": block.text})
        elif isinstance(block, ImageBlock):
            parts.append(_image_part(block))
        elif isinstance(block, ToolResultBlock):
            text, images = _tool_result_content(block)
            tool_messages.append(
                {"role": "tool", "tool_call_id": block.tool_use_id, "content": text}
            )
            parts.extend(images)  # OpenAI tool messages carry text only
        else:
            raise _misplaced(block.type, "user", position, index)
    if not tool_messages and not parts:
        raise BadRequest(
            f"messages.{position}.content: a user message needs at least one content block",
            param=f"messages.{position}.content",
        )
    if not parts:
        return tool_messages
    return [*tool_messages, {"role": "user", "content": _content(parts)}]


def _assistant_message(message: MessageParam, position: int) -> OpenAIMessage:
    if isinstance(message.content, str):
        return {"role": "assistant", "content": message.content}
    texts: list[str] = []
    reasoning: list[str] = []
    tool_calls: list[dict[str, Any]] = []
    for index, block in enumerate(message.content):
        if isinstance(block, TextBlock):
            texts.append(block.text)
        elif isinstance(block, ThinkingBlock):
            reasoning.append(block.thinking)
        elif isinstance(block, RedactedThinkingBlock):
            continue  # opaque Anthropic data: meaningless to a local model
        elif isinstance(block, ToolUseBlock):
            tool_calls.append(
                {
                    "id": block.id,
                    "type": "function",
                    "function": {
                        "name": block.name,
                        "arguments": json.dumps(block.input, ensure_ascii=False),
                    },
                }
            )
        else:
            raise _misplaced(block.type, "assistant", position, index)
    out: OpenAIMessage = {
        "role": "assistant",
        "content": "\n".join(texts) if texts or not tool_calls else None,
    }
    if reasoning:
        out["reasoning_content"] = "\n".join(reasoning)
    if tool_calls:
        out["tool_calls"] = tool_calls
    return out


def _tool_result_content(block: ToolResultBlock) -> tuple[str, list[dict[str, Any]]]:
    """(text for the tool message, image parts for the user message that follows)."""
    images: list[dict[str, Any]] = []
    if block.content is None:
        text = ""
    elif isinstance(block.content, str):
        text = block.content
    else:
        text = "\n".join(item.text for item in block.content if isinstance(item, TextBlock))
        images = [_image_part(item) for item in block.content if isinstance(item, ImageBlock)]
    if block.is_error:
        # OpenAI has no error flag on tool results; say it in the text the model reads.
        text = f"Error: {text}" if text else "Error"
    return text, images


def _image_part(block: ImageBlock) -> dict[str, Any]:
    source = block.source
    if source.type == "base64":
        url = f"data:{source.media_type};base64,{source.data}"
    else:
        url = source.url
    return {"type": "image_url", "image_url": {"url": url}}


def _content(parts: list[dict[str, Any]]) -> str | list[dict[str, Any]]:
    if all(part["type"] == "text" for part in parts):
        return "\n".join(str(part["text"]) for part in parts)
    return parts


def _tool_choice(request: PromptFields) -> dict[str, Any]:
    choice = request.tool_choice
    if choice is None:
        return {}
    tool_names = {tool.name for tool in request.tools or []}
    if choice.type in ("any", "tool") and not tool_names:
        raise BadRequest(
            f"tool_choice.type: {choice.type!r} requires tools", param="tool_choice.type"
        )
    out: dict[str, Any]
    if choice.type == "auto":
        out = {"tool_choice": "auto"}
    elif choice.type == "any":
        out = {"tool_choice": "required"}
    elif choice.type == "none":
        return {"tool_choice": "none"}
    else:
        if not choice.name:
            raise BadRequest(
                "tool_choice.name: required when type is 'tool'", param="tool_choice.name"
            )
        if choice.name not in tool_names:
            raise BadRequest(
                f"tool_choice.name: no tool named {choice.name!r} in tools",
                param="tool_choice.name",
            )
        out = {"tool_choice": {"type": "function", "function": {"name": choice.name}}}
    if choice.disable_parallel_tool_use:
        out["parallel_tool_calls"] = False
    return out


def _thinking_enabled(request: PromptFields) -> bool:
    thinking = request.thinking
    if thinking is None or thinking.type == "disabled":
        return False
    if thinking.type == "enabled" and thinking.budget_tokens is None:
        raise BadRequest(
            "thinking.budget_tokens: required when thinking is enabled",
            param="thinking.budget_tokens",
        )
    return True


def _misplaced(block_type: str, role: str, position: int, index: int) -> BadRequest:
    param = f"messages.{position}.content.{index}"
    message = f"{param}: a {block_type} block cannot appear in a {role} message"
    return BadRequest(message, param=param)
