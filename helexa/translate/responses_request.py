"""OpenAI Responses request -> OpenAI chat completions request (pure).

Rules (docs/clients.md has the table):
- `instructions` and any system/developer message items become ONE leading
  system message (chat templates reject a system message anywhere else), in
  the order they came.
- Items keep their order. function_call items (with a reasoning item and an
  assistant message right before them) form one assistant turn with
  tool_calls; function_call_output items become tool-role messages.
- A string `input` is one user message.
- Tools: responses_tools (namespace tools flattened, hosted tools left out).
- A reasoning item's text is its `content`, else the text inside helexa's own
  `encrypted_content` (thinking.reasoning_token), else its `summary`; another
  provider's encrypted reasoning cannot be read and is dropped.
- Thinking is off unless `reasoning.effort` asks for some (low and up); it
  reaches the chat template as `chat_template_kwargs.enable_thinking`.
- `previous_response_id` is a 400: the gateway keeps no conversation state.
  `store` is accepted whatever it says and nothing is stored.
"""

from __future__ import annotations

from typing import Any

from helexa.errors import BadRequest
from helexa.protocol.responses import (
    ContentPart,
    CustomToolCallItem,
    CustomToolCallOutputItem,
    FunctionCallItem,
    FunctionCallOutputItem,
    InputImage,
    InputItem,
    MessageItem,
    ReasoningItem,
    Refusal,
    ResponsesRequest,
)
from helexa.translate.output_format import responses_response_format
from helexa.translate.responses_tools import (
    chat_tool_choice,
    chat_tools,
    custom_arguments,
    flat_name,
)
from helexa.translate.thinking import read_reasoning_token
from helexa.translate.validation import parse_body

OpenAIMessage = dict[str, Any]
THINKING_EFFORTS = frozenset({"low", "medium", "high", "xhigh"})
# OpenAI-side knobs the Responses API lacks, passed through when a client sends them.
SAMPLING_EXTENSIONS = ("seed", "min_tokens", "ignore_eos", "top_k", "stop")


def parse_responses_request(body: object) -> ResponsesRequest:
    """Validate a decoded /v1/responses body; raises BadRequest with a param."""
    request = parse_body(body, ResponsesRequest)
    if request.previous_response_id is not None:
        raise BadRequest(
            "previous_response_id is not supported: this gateway keeps no conversation "
            "state. Send the whole conversation in `input` (earlier output items included).",
            param="previous_response_id",
        )
    return request


def responses_to_chat_request(request: ResponsesRequest) -> dict[str, Any]:
    """The /v1/chat/completions body (a JSON-ready dict) for a Responses request."""
    out: dict[str, Any] = {"model": request.model, "messages": translate_input(request)}
    tools = chat_tools(request)
    if tools:
        out["tools"] = tools
    tool_choice = chat_tool_choice(request)
    if tool_choice is not None:
        out["tool_choice"] = tool_choice
    if request.parallel_tool_calls is not None:
        out["parallel_tool_calls"] = request.parallel_tool_calls
    if request.max_output_tokens is not None:
        out["max_tokens"] = request.max_output_tokens
    if request.temperature is not None:
        out["temperature"] = request.temperature
    if request.top_p is not None:
        out["top_p"] = request.top_p
    if request.user is not None:
        out["user"] = request.user
    effort = request.reasoning.effort if request.reasoning else None
    out["chat_template_kwargs"] = {"enable_thinking": effort in THINKING_EFFORTS}
    extra = request.model_extra or {}
    out.update({key: extra[key] for key in SAMPLING_EXTENSIONS if key in extra})
    out.update(responses_response_format(extra.get("text")))
    out["stream"] = request.stream
    if request.stream:
        out["stream_options"] = {"include_usage": True}  # usage ends every Responses stream
    return out


def translate_input(request: ResponsesRequest) -> list[OpenAIMessage]:
    system_parts = [request.instructions] if request.instructions else []
    items: list[InputItem] = (
        [MessageItem(role="user", content=request.input)]
        if isinstance(request.input, str)
        else list(request.input)
    )
    messages: list[OpenAIMessage] = []
    reasoning: list[str] = []  # waits for the assistant turn it belongs to
    for position, item in enumerate(items):
        if isinstance(item, ReasoningItem):
            reasoning.extend(_reasoning_texts(item))
        elif isinstance(item, FunctionCallItem | CustomToolCallItem):
            name = flat_name(item.namespace, item.name)
            arguments = (
                item.arguments
                if isinstance(item, FunctionCallItem)
                else custom_arguments(item.input)
            )
            _assistant_turn(messages, reasoning).setdefault("tool_calls", []).append(
                {
                    "id": item.call_id,
                    "type": "function",
                    "function": {"name": name, "arguments": arguments},
                }
            )
        elif isinstance(item, FunctionCallOutputItem | CustomToolCallOutputItem):
            output = item.output if isinstance(item.output, str) else _text(item.output, position)
            messages.append({"role": "tool", "tool_call_id": item.call_id, "content": output})
        elif item.role in ("system", "developer"):
            system_parts.append(_text(item.content, position))
        elif item.role == "assistant":
            turn = _assistant_turn(messages, reasoning, fresh=True)
            turn["content"] = _text(item.content, position)
        else:
            messages.append({"role": "user", "content": _user_content(item.content, position)})
    if not messages:
        raise BadRequest("input: at least one user or assistant item is required", param="input")
    system = "\n\n".join(part for part in system_parts if part)
    return [{"role": "system", "content": system}, *messages] if system else messages


def _reasoning_texts(item: ReasoningItem) -> list[str]:
    if item.content:
        return [part.text for part in item.content]
    own = read_reasoning_token(item.encrypted_content) if item.encrypted_content else None
    if own is not None:
        return [own]
    return [part.text for part in item.summary]


def _assistant_turn(
    messages: list[OpenAIMessage], reasoning: list[str], *, fresh: bool = False
) -> OpenAIMessage:
    """The assistant message an item belongs to: a function_call joins the assistant
    message right before it (one turn: text, then calls); a message item starts one."""
    last = messages[-1] if messages else None
    if fresh or last is None or last["role"] != "assistant":
        last = {"role": "assistant", "content": None}
        messages.append(last)
    if reasoning:
        last["reasoning_content"] = "\n".join(reasoning)
        reasoning.clear()
    return last


def _text(content: str | list[ContentPart], position: int) -> str:
    if isinstance(content, str):
        return content
    texts: list[str] = []
    for index, part in enumerate(content):
        if isinstance(part, InputImage):
            raise _misplaced("input_image", position, index)
        texts.append(part.refusal if isinstance(part, Refusal) else part.text)
    return "\n".join(texts)


def _user_content(content: str | list[ContentPart], position: int) -> str | list[dict[str, Any]]:
    if isinstance(content, str):
        return content
    if not any(isinstance(part, InputImage) for part in content):
        return _text(content, position)
    parts: list[dict[str, Any]] = []
    for index, part in enumerate(content):
        if isinstance(part, InputImage):
            if part.image_url is None:
                param = f"input.{position}.content.{index}.image_url"
                raise BadRequest(
                    f"{param}: required (helexa stores no files, so file_id cannot be used)",
                    param=param,
                )
            parts.append({"type": "image_url", "image_url": {"url": part.image_url}})
        else:
            text = part.refusal if isinstance(part, Refusal) else part.text
            parts.append({"type": "text", "text": text})
    return parts


def _misplaced(part_type: str, position: int, index: int) -> BadRequest:
    param = f"input.{position}.content.{index}"
    return BadRequest(f"{param}: {part_type} is only allowed in user messages", param=param)
