"""Requests -> prompt token ids and sampling parameters (pure, given a tokenizer).

The same functions serve /v1/chat/completions, /v1/completions and
/v1/tokenize, which is what makes /v1/tokenize's count equal to the
`usage.prompt_tokens` of a completion with the same input.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from helexa.errors import BadRequest, ContextLengthExceeded
from helexa.neuron.engine.spec import SamplingParams
from helexa.protocol.openai import (
    ChatCompletionRequest,
    ChatMessage,
    CompletionRequest,
    SamplingFields,
    Tool,
)

# Qwen3 thinks unless told not to; a plain OpenAI client expects an answer.
DEFAULT_TEMPLATE_KWARGS: Mapping[str, Any] = {"enable_thinking": False}
# Keys of a load's `sampling` table / generation_config that map onto SamplingParams.
_SAMPLING_KEYS = ("temperature", "top_p", "top_k", "min_p", "repetition_penalty")


def template_message(message: ChatMessage) -> dict[str, Any]:
    """An OpenAI message as chat templates expect it (text content, parsed tool args)."""
    # "developer" is OpenAI's newer name for "system"; chat templates know only the latter.
    role = "system" if message.role == "developer" else message.role
    out: dict[str, Any] = {"role": role, "content": _text_content(message.content)}
    if message.name is not None:
        out["name"] = message.name
    if message.tool_call_id is not None:
        out["tool_call_id"] = message.tool_call_id
    if message.reasoning_content:
        out["reasoning_content"] = message.reasoning_content
    if message.tool_calls:
        out["tool_calls"] = [
            {
                "id": call.id,
                "type": "function",
                "function": {
                    "name": call.function.name,
                    "arguments": _parsed_arguments(call.function.arguments),
                },
            }
            for call in message.tool_calls
        ]
    return out


def _text_content(content: str | list[dict[str, Any]] | None) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    texts = []
    for part in content:
        if part.get("type") != "text":
            raise BadRequest(
                f"content part type {part.get('type')!r} is not supported (text only)",
                param="messages",
            )
        texts.append(str(part.get("text", "")))
    return "".join(texts)


def _parsed_arguments(arguments: str) -> Any:
    # Templates render dicts with tojson; a string that is not JSON stays as sent.
    try:
        return json.loads(arguments)
    except ValueError:
        return arguments


def template_tools(
    tools: Iterable[Tool] | None, tool_choice: object
) -> list[dict[str, Any]] | None:
    """Tools for the template; tool_choice "none" hides them from the model."""
    if not tools or tool_choice == "none":
        return None
    return [t.model_dump(exclude_none=True) for t in tools]


def chat_prompt_ids(
    tokenizer: Any,
    messages: list[dict[str, Any]],
    tools: list[dict[str, Any]] | None = None,
    template_kwargs: Mapping[str, Any] | None = None,
) -> list[int]:
    """Token ids of the rendered chat template, generation prompt included."""
    kwargs = {**DEFAULT_TEMPLATE_KWARGS, **(template_kwargs or {})}
    try:
        encoded = tokenizer.apply_chat_template(
            messages,
            tools=tools,
            add_generation_prompt=True,
            tokenize=True,
            return_dict=True,
            **kwargs,
        )
    except Exception as exc:  # jinja errors, a template's raise_exception(), bad roles
        raise BadRequest(f"chat template failed: {exc}", param="messages") from exc
    ids: list[int] = list(encoded["input_ids"])
    return ids


def chat_request_ids(tokenizer: Any, request: ChatCompletionRequest) -> list[int]:
    return chat_prompt_ids(
        tokenizer,
        [template_message(m) for m in request.messages],
        template_tools(request.tools, request.tool_choice),
        request.chat_template_kwargs,
    )


def completion_prompt_ids(tokenizer: Any, prompt: str | list[int] | list[str]) -> list[int]:
    """A /v1/completions prompt: text, or token ids as sent; one prompt only (n=1)."""
    if isinstance(prompt, str):
        ids: list[int] = list(tokenizer(prompt, add_special_tokens=False)["input_ids"])
        return ids
    token_ids = [p for p in prompt if isinstance(p, int)]
    if len(token_ids) == len(prompt):
        vocab = len(tokenizer)
        if any(not 0 <= p < vocab for p in token_ids):  # the embedding lookup would be a 500
            raise BadRequest(f"prompt token ids must be in [0, {vocab})", param="prompt")
        return token_ids
    if len(prompt) == 1:
        return completion_prompt_ids(tokenizer, str(prompt[0]))
    raise BadRequest("only one prompt per request is supported", param="prompt")


def completion_request_ids(tokenizer: Any, request: CompletionRequest) -> list[int]:
    return completion_prompt_ids(tokenizer, request.prompt)


def check_n(request: SamplingFields) -> None:
    if request.n is not None and request.n != 1:
        raise BadRequest("n must be 1: this server returns one choice per request", param="n")


def eos_ids(tokenizer: Any, generation_config: Mapping[str, Any]) -> frozenset[int]:
    """Ids that end a sequence: generation_config's eos list plus the tokenizer's eos."""
    ids: set[int] = set()
    eos = generation_config.get("eos_token_id")
    if isinstance(eos, int):
        ids.add(eos)
    elif isinstance(eos, list):
        ids.update(int(i) for i in eos)
    tokenizer_eos = getattr(tokenizer, "eos_token_id", None)
    if isinstance(tokenizer_eos, int):
        ids.add(tokenizer_eos)
    return frozenset(ids)


def resolve_sampling(
    request: SamplingFields,
    token_limit: int | None,
    prompt_len: int,
    context_length: int,
    load_defaults: Mapping[str, Any],
    generation_config: Mapping[str, Any],
    stop_token_ids: frozenset[int],
) -> SamplingParams:
    """Request, then the load's `sampling`, then generation_config; checks the context.

    Without a `max_tokens` from the request, the load's `max_tokens` applies (cut to
    what the context leaves); without either, the whole remaining context.
    """
    remaining = context_length - prompt_len
    if remaining < 1:
        raise ContextLengthExceeded(
            f"prompt is {prompt_len} tokens; this model's context length is {context_length} "
            "and at least one token must remain for the completion",
            param="messages" if isinstance(request, ChatCompletionRequest) else "prompt",
        )
    if token_limit is not None and token_limit > remaining:
        raise ContextLengthExceeded(
            f"prompt ({prompt_len} tokens) + max_tokens ({token_limit}) exceeds this model's "
            f"context length of {context_length} tokens",
            param="max_tokens",
        )
    if token_limit is not None:
        max_new = token_limit
    else:
        default_limit = load_defaults.get("max_tokens")
        max_new = min(int(default_limit), remaining) if default_limit is not None else remaining
    resolved: dict[str, Any] = {}
    greedy_by_config = generation_config.get("do_sample") is False
    for key in _SAMPLING_KEYS:
        value = getattr(request, key, None)
        if value is None:
            value = load_defaults.get(key)
        if value is None and not greedy_by_config:
            value = generation_config.get(key)
        if value is not None:
            resolved[key] = value
    if greedy_by_config and request.temperature is None and "temperature" not in load_defaults:
        resolved["temperature"] = 0.0
    min_new = min(request.min_tokens or 0, max_new)
    return SamplingParams(
        max_new_tokens=max_new,
        temperature=float(resolved.get("temperature", 1.0)),
        top_p=float(resolved.get("top_p", 1.0)),
        top_k=int(resolved.get("top_k", 0) or 0),
        seed=request.seed if request.seed is not None else load_defaults.get("seed"),
        min_new_tokens=min_new,
        min_p=float(resolved.get("min_p", 0.0)),
        repetition_penalty=float(resolved.get("repetition_penalty", 1.0)),
        stop_token_ids=frozenset() if request.ignore_eos else stop_token_ids,
    )
