"""Anthropic Messages requests -> OpenAI chat completion requests, case by case."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from helexa.errors import BadRequest
from helexa.protocol.openai import ChatCompletionRequest
from helexa.translate.anthropic_request import (
    anthropic_to_openai,
    parse_count_tokens_request,
    tokenize_request,
)

BASE: dict[str, Any] = {"model": "claude-sonnet-4-5", "max_tokens": 64}
NO_THINKING = {"enable_thinking": False}


def body(**fields: Any) -> dict[str, Any]:
    return {**BASE, **fields}


def user(content: Any) -> dict[str, Any]:
    return {"role": "user", "content": content}


def assistant(content: Any) -> dict[str, Any]:
    return {"role": "assistant", "content": content}


WEATHER_TOOL = {
    "name": "get_weather",
    "description": "Weather for a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
}
OPENAI_WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": WEATHER_TOOL["input_schema"],
    },
}
TOOL_TURN = assistant(
    [
        {"type": "text", "text": "Let me look."},
        {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Oslo"}},
        {"type": "tool_use", "id": "call_2", "name": "get_weather", "input": {"city": "Bergen"}},
    ]
)
OPENAI_TOOL_TURN = {
    "role": "assistant",
    "content": "Let me look.",
    "tool_calls": [
        {
            "id": "call_1",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'},
        },
        {
            "id": "call_2",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city": "Bergen"}'},
        },
    ],
}

# (case id, Anthropic body, the OpenAI fields expected; fields not listed must be absent)
CASES: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    (
        "plain string message",
        body(messages=[user("hi")]),
        {"messages": [{"role": "user", "content": "hi"}]},
    ),
    (
        "system string",
        body(system="Be brief.", messages=[user("hi")]),
        {
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "hi"},
            ]
        },
    ),
    (
        "system blocks and system-role messages merge into one leading message",
        body(
            system=[{"type": "text", "text": "A"}, {"type": "text", "text": "B"}],
            messages=[
                user("hi"),
                {"role": "system", "content": "C"},
                {"role": "system", "content": [{"type": "text", "text": "D"}]},
            ],
        ),
        {
            "messages": [
                {"role": "system", "content": "A\nB\n\nC\n\nD"},
                {"role": "user", "content": "hi"},
            ]
        },
    ),
    (
        "empty system is dropped",
        body(system="", messages=[user("hi")]),
        {"messages": [{"role": "user", "content": "hi"}]},
    ),
    (
        "text blocks join into one string; cache_control is ignored",
        body(
            messages=[
                user(
                    [
                        {"type": "text", "text": "one"},
                        {"type": "text", "text": "two", "cache_control": {"type": "ephemeral"}},
                    ]
                )
            ]
        ),
        {"messages": [{"role": "user", "content": "one\ntwo"}]},
    ),
    (
        "base64 image becomes a data URL, url image stays a URL",
        body(
            messages=[
                user(
                    [
                        {"type": "text", "text": "compare"},
                        {
                            "type": "image",
                            "source": {"type": "base64", "media_type": "image/png", "data": "QUJD"},
                        },
                        {"type": "image", "source": {"type": "url", "url": "https://x.test/a.jpg"}},
                    ]
                )
            ]
        ),
        {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "compare"},
                        {"type": "image_url", "image_url": {"url": "data:image/png;base64,QUJD"}},
                        {"type": "image_url", "image_url": {"url": "https://x.test/a.jpg"}},
                    ],
                }
            ]
        },
    ),
    (
        "assistant tool_use blocks become tool_calls; tool_results become tool messages "
        "in order, then the turn's text as a user message",
        body(
            messages=[
                user("weather?"),
                TOOL_TURN,
                user(
                    [
                        {"type": "tool_result", "tool_use_id": "call_1", "content": "3C"},
                        {
                            "type": "tool_result",
                            "tool_use_id": "call_2",
                            "content": [
                                {"type": "text", "text": "5C"},
                                {"type": "text", "text": "windy"},
                            ],
                        },
                        {"type": "text", "text": "thanks"},
                    ]
                ),
            ]
        ),
        {
            "messages": [
                {"role": "user", "content": "weather?"},
                OPENAI_TOOL_TURN,
                {"role": "tool", "tool_call_id": "call_1", "content": "3C"},
                {"role": "tool", "tool_call_id": "call_2", "content": "5C\nwindy"},
                {"role": "user", "content": "thanks"},
            ]
        },
    ),
    (
        "is_error and empty tool results; images in a result follow as a user message",
        body(
            messages=[
                user("go"),
                TOOL_TURN,
                user(
                    [
                        {
                            "type": "tool_result",
                            "tool_use_id": "call_1",
                            "content": "no such city",
                            "is_error": True,
                        },
                        {
                            "type": "tool_result",
                            "tool_use_id": "call_2",
                            "content": [
                                {
                                    "type": "image",
                                    "source": {
                                        "type": "base64",
                                        "media_type": "image/gif",
                                        "data": "R0lG",
                                    },
                                }
                            ],
                        },
                    ]
                ),
            ]
        ),
        {
            "messages": [
                {"role": "user", "content": "go"},
                OPENAI_TOOL_TURN,
                {"role": "tool", "tool_call_id": "call_1", "content": "Error: no such city"},
                {"role": "tool", "tool_call_id": "call_2", "content": ""},
                {
                    "role": "user",
                    "content": [
                        {"type": "image_url", "image_url": {"url": "data:image/gif;base64,R0lG"}}
                    ],
                },
            ]
        },
    ),
    (
        "assistant thinking becomes reasoning_content; redacted thinking is dropped; "
        "tool-only turn has null content",
        body(
            messages=[
                user("go"),
                assistant(
                    [
                        {"type": "thinking", "thinking": "hmm", "signature": "helexa:ab"},
                        {"type": "redacted_thinking", "data": "opaque"},
                        {"type": "tool_use", "id": "t1", "name": "get_weather", "input": {}},
                    ]
                ),
                user([{"type": "tool_result", "tool_use_id": "t1"}]),
            ]
        ),
        {
            "messages": [
                {"role": "user", "content": "go"},
                {
                    "role": "assistant",
                    "content": None,
                    "reasoning_content": "hmm",
                    "tool_calls": [
                        {
                            "id": "t1",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": "{}"},
                        }
                    ],
                },
                {"role": "tool", "tool_call_id": "t1", "content": ""},
            ]
        },
    ),
    (
        "trailing assistant turn is a prefill to continue",
        body(messages=[user("count"), assistant("1, 2,")]),
        {
            "messages": [
                {"role": "user", "content": "count"},
                {"role": "assistant", "content": "1, 2,"},
            ],
            "continue_final_message": True,
            "add_generation_prompt": False,
        },
    ),
    (
        "a trailing assistant turn that calls tools is not a prefill",
        body(messages=[user("go"), TOOL_TURN]),
        {"messages": [{"role": "user", "content": "go"}, OPENAI_TOOL_TURN]},
    ),
    (
        "tools and tool_choice auto",
        body(messages=[user("hi")], tools=[WEATHER_TOOL], tool_choice={"type": "auto"}),
        {
            "messages": [{"role": "user", "content": "hi"}],
            "tools": [OPENAI_WEATHER_TOOL],
            "tool_choice": "auto",
        },
    ),
    (
        "tool without description; tool_choice any -> required; no parallel calls",
        body(
            messages=[user("hi")],
            tools=[{"name": "ping", "input_schema": {"type": "object"}}],
            tool_choice={"type": "any", "disable_parallel_tool_use": True},
        ),
        {
            "messages": [{"role": "user", "content": "hi"}],
            "tools": [
                {"type": "function", "function": {"name": "ping", "parameters": {"type": "object"}}}
            ],
            "tool_choice": "required",
            "parallel_tool_calls": False,
        },
    ),
    (
        "tool_choice none",
        body(messages=[user("hi")], tools=[WEATHER_TOOL], tool_choice={"type": "none"}),
        {
            "messages": [{"role": "user", "content": "hi"}],
            "tools": [OPENAI_WEATHER_TOOL],
            "tool_choice": "none",
        },
    ),
    (
        "tool_choice tool names the function",
        body(
            messages=[user("hi")],
            tools=[WEATHER_TOOL],
            tool_choice={"type": "tool", "name": "get_weather"},
        ),
        {
            "messages": [{"role": "user", "content": "hi"}],
            "tools": [OPENAI_WEATHER_TOOL],
            "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
        },
    ),
    (
        "sampling, stop sequences and metadata",
        body(
            messages=[user("hi")],
            temperature=0.2,
            top_p=0.9,
            top_k=40,
            stop_sequences=["\n\nHuman:", "END"],
            metadata={"user_id": "u-42"},
        ),
        {
            "messages": [{"role": "user", "content": "hi"}],
            "temperature": 0.2,
            "top_p": 0.9,
            "top_k": 40,
            "stop": ["\n\nHuman:", "END"],
            "user": "u-42",
        },
    ),
    (
        "thinking enabled",
        body(messages=[user("hi")], thinking={"type": "enabled", "budget_tokens": 1024}),
        {
            "messages": [{"role": "user", "content": "hi"}],
            "chat_template_kwargs": {"enable_thinking": True},
        },
    ),
    (
        "thinking disabled explicitly",
        body(messages=[user("hi")], thinking={"type": "disabled"}),
        {"messages": [{"role": "user", "content": "hi"}]},
    ),
    (
        "stream asks for usage",
        body(messages=[user("hi")], stream=True),
        {
            "messages": [{"role": "user", "content": "hi"}],
            "stream": True,
            "stream_options": {"include_usage": True},
        },
    ),
]


@pytest.mark.parametrize(
    ("anthropic", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_translates_request(anthropic: dict[str, Any], expected: dict[str, Any]) -> None:
    translated = anthropic_to_openai(anthropic)

    defaults = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 64,
        "stream": False,
        "chat_template_kwargs": NO_THINKING,
    }
    assert translated == {**defaults, **expected}
    # The neuron's own request model accepts what the gateway will send it.
    ChatCompletionRequest.model_validate(translated)


# (case id, Anthropic body, expected param, a fragment of the message)
INVALID: list[tuple[str, Any, str | None, str]] = [
    ("not an object", ["x"], None, "JSON object"),
    ("max_tokens missing", {"model": "m", "messages": [user("hi")]}, "max_tokens", "required"),
    ("max_tokens zero", body(messages=[user("hi")], max_tokens=0), "max_tokens", "greater"),
    ("messages empty", body(messages=[]), "messages", "at least 1"),
    ("only system messages", body(messages=[{"role": "system", "content": "x"}]), "messages", ""),
    ("bad role", body(messages=[{"role": "tool", "content": "x"}]), "messages.0.role", ""),
    (
        "text block without text",
        body(messages=[user([{"type": "text"}])]),
        "messages.0.content.0.text",
        "required",
    ),
    (
        "unknown block type",
        body(messages=[user([{"type": "text", "text": "a"}, {"type": "video"}])]),
        "messages.0.content.1",
        "video",
    ),
    (
        "image source without data",
        body(
            messages=[
                user([{"type": "image", "source": {"type": "base64", "media_type": "image/png"}}])
            ]
        ),
        "messages.0.content.0.source.data",
        "required",
    ),
    (
        "tool_use in a user message",
        body(messages=[user([{"type": "tool_use", "id": "a", "name": "f", "input": {}}])]),
        "messages.0.content.0",
        "tool_use",
    ),
    (
        "tool_result in an assistant message",
        body(messages=[user("a"), assistant([{"type": "tool_result", "tool_use_id": "x"}])]),
        "messages.1.content.0",
        "assistant",
    ),
    (
        "image in a system message",
        body(
            messages=[
                user("a"),
                {
                    "role": "system",
                    "content": [{"type": "image", "source": {"type": "url", "url": "u"}}],
                },
            ]
        ),
        "messages.1.content.0",
        "system",
    ),
    ("empty user content", body(messages=[user([])]), "messages.0.content", "at least one"),
    (
        "tool without input_schema",
        body(messages=[user("a")], tools=[{"name": "f"}]),
        "tools.0.input_schema",
        "required",
    ),
    (
        "tool_choice tool without a name",
        body(messages=[user("a")], tools=[WEATHER_TOOL], tool_choice={"type": "tool"}),
        "tool_choice.name",
        "required",
    ),
    (
        "tool_choice names an unknown tool",
        body(messages=[user("a")], tools=[WEATHER_TOOL], tool_choice={"type": "tool", "name": "x"}),
        "tool_choice.name",
        "'x'",
    ),
    (
        "tool_choice any without tools",
        body(messages=[user("a")], tool_choice={"type": "any"}),
        "tool_choice.type",
        "requires tools",
    ),
    (
        "thinking enabled without a budget",
        body(messages=[user("a")], thinking={"type": "enabled"}),
        "thinking.budget_tokens",
        "required",
    ),
    (
        "temperature negative",
        body(messages=[user("a")], temperature=-1),
        "temperature",
        "greater",
    ),
]


@pytest.mark.parametrize(
    ("anthropic", "param", "fragment"), [c[1:] for c in INVALID], ids=[c[0] for c in INVALID]
)
def test_rejects_invalid_request(anthropic: Any, param: str | None, fragment: str) -> None:
    with pytest.raises(BadRequest) as caught:
        anthropic_to_openai(anthropic)

    assert caught.value.status == 400
    assert caught.value.param == param
    assert fragment in caught.value.message
    if param is not None:
        assert caught.value.message.startswith(f"{param}: ")


def test_validation_error_counts_the_other_errors() -> None:
    with pytest.raises(BadRequest) as caught:
        anthropic_to_openai({"model": "m", "messages": [user([{"type": "text"}])]})

    assert caught.value.message == "messages.0.content.0.text: Field required (and 1 more error)"


def test_tokenize_request_matches_the_prompt_of_the_completion() -> None:
    """count_tokens must see exactly the prompt /v1/messages sends."""
    fields = {
        "model": "m",
        "system": "sys",
        "messages": [
            user("hi"),
            TOOL_TURN,
            user([{"type": "tool_result", "tool_use_id": "call_1"}]),
        ],
        "tools": [WEATHER_TOOL],
        "thinking": {"type": "enabled", "budget_tokens": 2000},
    }
    completion = anthropic_to_openai({**fields, "max_tokens": 10})

    tokenize = tokenize_request(parse_count_tokens_request(fields))

    assert tokenize == {
        "model": "m",
        "messages": completion["messages"],
        "tools": completion["tools"],
        "chat_template_kwargs": {"enable_thinking": True},
    }


def test_tokenize_request_carries_the_prefill_flags() -> None:
    request = parse_count_tokens_request({"model": "m", "messages": [user("a"), assistant("b")]})

    tokenize = tokenize_request(request)

    assert tokenize["continue_final_message"] is True
    assert tokenize["add_generation_prompt"] is False
    assert "tools" not in tokenize


def test_count_tokens_request_needs_no_max_tokens_but_rejects_bad_messages() -> None:
    assert parse_count_tokens_request({"model": "m", "messages": [user("a")]}).model == "m"
    with pytest.raises(BadRequest) as caught:
        parse_count_tokens_request({"model": "m", "messages": "a"})
    assert caught.value.param == "messages"


def test_translated_conversation_renders_through_the_models_chat_template(
    tiny_model_dir: Path,
) -> None:
    """The messages we produce are what a Qwen-style template (the neuron's) expects."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    openai = anthropic_to_openai(
        body(
            system=[{"type": "text", "text": "SYS-A"}, {"type": "text", "text": "SYS-B"}],
            messages=[
                user("weather?"),
                TOOL_TURN,
                user(
                    [
                        {"type": "tool_result", "tool_use_id": "call_1", "content": "3C"},
                        {"type": "tool_result", "tool_use_id": "call_2", "content": "5C"},
                        {"type": "text", "text": "thanks"},
                    ]
                ),
                assistant("You're"),
            ],
            tools=[WEATHER_TOOL],
        )
    )

    prompt = tokenizer.apply_chat_template(
        openai["messages"],
        tools=openai["tools"],
        tokenize=False,
        add_generation_prompt=openai["add_generation_prompt"],
        continue_final_message=openai["continue_final_message"],
        **openai["chat_template_kwargs"],
    )

    assert isinstance(prompt, str)
    assert prompt.startswith("<|im_start|>system\nSYS-A\nSYS-B\n\n# Tools")
    assert '"name": "get_weather"' in prompt
    assert (
        'Let me look.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Oslo"}}\n'
        "</tool_call>\n<tool_call>\n"
        '{"name": "get_weather", "arguments": {"city": "Bergen"}}\n</tool_call><|im_end|>'
    ) in prompt
    assert (
        "<|im_start|>user\n<tool_response>\n3C\n</tool_response>\n<tool_response>\n5C\n"
        "</tool_response><|im_end|>\n<|im_start|>user\nthanks<|im_end|>"
    ) in prompt
    assert prompt.endswith("You're")  # the prefill is continued, not closed
