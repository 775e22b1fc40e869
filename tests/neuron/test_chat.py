"""Prompt building and sampling resolution against the tiny model's real tokenizer."""

from __future__ import annotations

from typing import Any

import pytest

from helexa.errors import BadRequest, ContextLengthExceeded
from helexa.neuron.chat import (
    chat_request_ids,
    check_n,
    completion_prompt_ids,
    eos_ids,
    resolve_sampling,
    template_message,
)
from helexa.protocol.openai import ChatCompletionRequest, ChatMessage, CompletionRequest

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather for a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]


def _chat(**fields: Any) -> ChatCompletionRequest:
    body = {"model": "m", "messages": [{"role": "user", "content": "hello there"}], **fields}
    return ChatCompletionRequest.model_validate(body)


def test_chat_prompt_is_the_rendered_template(tiny_tokenizer: Any) -> None:
    ids = chat_request_ids(tiny_tokenizer, _chat())
    text = tiny_tokenizer.decode(ids)
    assert text.startswith("<|im_start|>user\nhello there<|im_end|>")
    assert text.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")  # thinking off


def test_thinking_can_be_enabled(tiny_tokenizer: Any) -> None:
    ids = chat_request_ids(tiny_tokenizer, _chat(chat_template_kwargs={"enable_thinking": True}))
    assert tiny_tokenizer.decode(ids).endswith("<|im_start|>assistant\n")


def test_tools_reach_the_template_unless_tool_choice_is_none(tiny_tokenizer: Any) -> None:
    plain = chat_request_ids(tiny_tokenizer, _chat())
    with_tools = chat_request_ids(tiny_tokenizer, _chat(tools=TOOLS))
    hidden = chat_request_ids(tiny_tokenizer, _chat(tools=TOOLS, tool_choice="none"))
    assert "get_weather" in tiny_tokenizer.decode(with_tools)
    assert len(with_tools) > len(plain)
    assert hidden == plain


def test_content_parts_and_tool_arguments_are_normalised() -> None:
    message = ChatMessage.model_validate(
        {
            "role": "assistant",
            "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
            "tool_calls": [
                {"id": "c", "type": "function", "function": {"name": "f", "arguments": '{"x": 1}'}}
            ],
        }
    )
    out = template_message(message)
    assert out["content"] == "ab"
    assert out["tool_calls"][0]["function"]["arguments"] == {"x": 1}
    developer = ChatMessage.model_validate({"role": "developer", "content": "rules"})
    assert template_message(developer) == {"role": "system", "content": "rules"}
    image = ChatMessage.model_validate({"role": "user", "content": [{"type": "image_url"}]})
    with pytest.raises(BadRequest) as info:
        template_message(image)
    assert info.value.param == "messages"


def test_completion_prompt_forms(tiny_tokenizer: Any) -> None:
    ids = completion_prompt_ids(tiny_tokenizer, "hello world")
    assert tiny_tokenizer.decode(ids) == "hello world"
    assert completion_prompt_ids(tiny_tokenizer, [5, 6, 7]) == [5, 6, 7]
    assert completion_prompt_ids(tiny_tokenizer, ["hello world"]) == ids
    with pytest.raises(BadRequest):
        completion_prompt_ids(tiny_tokenizer, ["a", "b"])


@pytest.mark.parametrize("bad_id", [-1, 10**9])
def test_prompt_token_ids_outside_the_vocabulary_are_a_400(
    tiny_tokenizer: Any, bad_id: int
) -> None:
    # Found by the OpenAPI fuzzer: [-1] reached the embedding lookup and was a 500.
    with pytest.raises(BadRequest) as info:
        completion_prompt_ids(tiny_tokenizer, [5, bad_id])
    assert info.value.param == "prompt"


def test_n_other_than_one_is_rejected_naming_n() -> None:
    check_n(_chat(n=1))
    with pytest.raises(BadRequest) as info:
        check_n(_chat(n=2))
    assert info.value.param == "n"


GENERATION_CONFIG = {"do_sample": True, "temperature": 0.7, "top_p": 0.8, "eos_token_id": [9, 8]}


def test_sampling_precedence_request_then_load_then_generation_config() -> None:
    params = resolve_sampling(_chat(), None, 10, 100, {}, GENERATION_CONFIG, frozenset({9}))
    assert (params.temperature, params.top_p) == (0.7, 0.8)
    assert params.max_new_tokens == 90  # default = the remaining context
    params = resolve_sampling(
        _chat(), None, 10, 100, {"temperature": 0.2}, GENERATION_CONFIG, frozenset()
    )
    assert (params.temperature, params.top_p) == (0.2, 0.8)
    params = resolve_sampling(
        _chat(temperature=0, top_p=0.5, seed=3, max_tokens=5),
        None,
        10,
        100,
        {"temperature": 0.2},
        GENERATION_CONFIG,
        frozenset(),
    )
    assert (params.temperature, params.top_p, params.seed) == (0.0, 0.5, 3)


def test_greedy_generation_config_means_temperature_zero() -> None:
    params = resolve_sampling(_chat(), 4, 10, 100, {}, {"do_sample": False}, frozenset())
    assert params.greedy
    assert params.max_new_tokens == 4


def test_min_tokens_and_ignore_eos() -> None:
    req = _chat(min_tokens=50, ignore_eos=True)
    params = resolve_sampling(req, 20, 10, 100, {}, {}, frozenset({1}))
    assert params.min_new_tokens == 20  # never more than the limit
    assert params.stop_token_ids == frozenset()
    assert resolve_sampling(_chat(), 20, 10, 100, {}, {}, frozenset({1})).stop_token_ids == {1}


def test_context_length_is_enforced_and_named() -> None:
    with pytest.raises(ContextLengthExceeded) as info:
        resolve_sampling(_chat(), None, 100, 100, {}, {}, frozenset())
    assert "100" in info.value.message
    assert info.value.code == "context_length_exceeded"
    with pytest.raises(ContextLengthExceeded) as info:
        resolve_sampling(_chat(max_tokens=50), 50, 60, 100, {}, {}, frozenset())
    assert info.value.param == "max_tokens"
    completion = CompletionRequest(model="m", prompt="x")
    with pytest.raises(ContextLengthExceeded) as info:
        resolve_sampling(completion, None, 200, 100, {}, {}, frozenset())
    assert info.value.param == "prompt"


def test_eos_ids_merge_generation_config_and_tokenizer(tiny_tokenizer: Any) -> None:
    ids = eos_ids(tiny_tokenizer, {"eos_token_id": [1]})
    assert ids == {1, tiny_tokenizer.eos_token_id}


def test_every_load_default_is_used_when_the_request_is_silent() -> None:
    defaults = {
        "temperature": 0.3,
        "top_p": 0.6,
        "top_k": 7,
        "min_p": 0.1,
        "repetition_penalty": 1.3,
        "seed": 11,
        "max_tokens": 16,
    }
    params = resolve_sampling(_chat(), None, 10, 100, defaults, GENERATION_CONFIG, frozenset())
    assert (params.temperature, params.top_p, params.top_k) == (0.3, 0.6, 7)
    assert (params.min_p, params.repetition_penalty, params.seed) == (0.1, 1.3, 11)
    assert params.max_new_tokens == 16
    # The request wins; a default longer than the context left is cut to it.
    params = resolve_sampling(_chat(max_tokens=4), 4, 10, 100, defaults, {}, frozenset())
    assert params.max_new_tokens == 4
    params = resolve_sampling(_chat(), None, 90, 100, defaults, {}, frozenset())
    assert params.max_new_tokens == 10
