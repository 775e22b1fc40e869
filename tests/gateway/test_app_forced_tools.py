"""Forced tool calls, schema errors, the Responses text.format and Anthropic's newer fields,
through the SDKs -> gateway -> real neuron (tiny random model)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import anthropic
import jsonschema
import openai
import pytest

from tests.gateway.harness import RunningGateway
from tests.gateway.test_app_structured import (
    SCHEMAS,
    TINY,
    anthropic_client,
    invalid_answers,
    openai_client,
    served,
)

__all__ = ["served"]  # the fixture, shared

WEATHER = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "maxLength": 10},
        "unit": {"enum": ["C", "F"]},
        "days": {"type": "integer", "minimum": 1, "maximum": 7},
    },
    "required": ["city", "unit", "days"],
    "additionalProperties": False,
}
TIME = {
    "type": "object",
    "properties": {"zone": {"type": "string", "pattern": "^[A-Z]{3}$"}},
    "required": ["zone"],
    "additionalProperties": False,
}
ANTHROPIC_TOOLS: list[Any] = [
    {"name": "weather", "description": "The forecast", "input_schema": WEATHER},
    {"name": "time", "description": "The time in a zone", "input_schema": TIME},
]
OPENAI_TOOLS: list[Any] = [
    {"type": "function", "function": {"name": t["name"], "parameters": t["input_schema"]}}
    for t in ANTHROPIC_TOOLS
]
SCHEMA_OF = {"weather": WEATHER, "time": TIME}
UNSUPPORTED = {"type": "object", "properties": {"a": {"$dynamicRef": "#x"}}}


@pytest.mark.parametrize(
    ("choice", "names"),
    [({"type": "any"}, {"weather", "time"}), ({"type": "tool", "name": "time"}, {"time"})],
)
async def test_anthropic_forced_tool_use_matches_the_input_schema(
    served: RunningGateway, choice: dict[str, Any], names: set[str]
) -> None:
    client = anthropic_client(served)

    async def one(seed: int) -> anthropic.types.Message:
        return await client.messages.create(
            model=TINY,
            max_tokens=200,
            messages=[{"role": "user", "content": "What is the weather?"}],
            tools=ANTHROPIC_TOOLS,
            tool_choice={**choice, "disable_parallel_tool_use": True},  # type: ignore[typeddict-item]
            extra_body={"temperature": 1.0, "seed": seed},
        )

    messages = await asyncio.gather(*(one(seed) for seed in range(16)))
    for message in messages:
        assert message.stop_reason == "tool_use"
        calls = [b for b in message.content if b.type == "tool_use"]
        assert len(calls) == 1 and calls[0].name in names  # one call: parallel use disabled
        jsonschema.validate(calls[0].input, SCHEMA_OF[calls[0].name])


@pytest.mark.parametrize("stream", [False, True])
async def test_openai_required_tool_choice_with_parallel_calls(
    served: RunningGateway, stream: bool
) -> None:
    client = openai_client(served)
    args: dict[str, Any] = {
        "model": TINY,
        "messages": [{"role": "user", "content": "Weather and time, please."}],
        "tools": OPENAI_TOOLS,
        "tool_choice": "required",
        "max_tokens": 300,
        "temperature": 1.0,
    }
    for seed in range(8):
        if stream:
            calls: dict[int, list[str]] = {}
            async for chunk in await client.chat.completions.create(stream=True, seed=seed, **args):
                for delta in chunk.choices[0].delta.tool_calls or [] if chunk.choices else []:
                    entry = calls.setdefault(delta.index, ["", ""])
                    entry[0] += (delta.function and delta.function.name) or ""
                    entry[1] += (delta.function and delta.function.arguments) or ""
            found = list(calls.values())
        else:
            completion = await client.chat.completions.create(seed=seed, **args)
            assert completion.choices[0].finish_reason == "tool_calls"
            found = [
                [c.function.name, c.function.arguments]
                for c in completion.choices[0].message.tool_calls or []
                if c.type == "function"
            ]
        assert found, "a required tool call is missing"
        for name, arguments in found:
            jsonschema.validate(json.loads(arguments), SCHEMA_OF[name])


async def test_openai_named_tool_without_parallel_calls_is_one_call(
    served: RunningGateway,
) -> None:
    for seed in range(8):
        completion = await openai_client(served).chat.completions.create(
            model=TINY,
            messages=[{"role": "user", "content": "Weather?"}],
            tools=OPENAI_TOOLS,
            tool_choice={"type": "function", "function": {"name": "weather"}},
            parallel_tool_calls=False,
            max_tokens=200,
            temperature=1.0,
            seed=seed,
        )
        calls = completion.choices[0].message.tool_calls or []
        assert [c.function.name for c in calls if c.type == "function"] == ["weather"]


async def test_responses_text_format_json_schema(served: RunningGateway) -> None:
    schema = SCHEMAS["enums"]
    texts = []
    for seed in range(6):
        response = await openai_client(served).responses.create(
            model=TINY,
            input="Pick.",
            max_output_tokens=100,
            temperature=1.0,
            text={"format": {"type": "json_schema", "name": "pick", "schema": schema}},
            extra_body={"seed": seed},
        )
        texts.append(response.output_text)
    assert invalid_answers(schema, texts) == []


async def test_an_unenforceable_schema_is_a_400_in_each_dialect(served: RunningGateway) -> None:
    with pytest.raises(openai.BadRequestError) as oa:
        await openai_client(served).chat.completions.create(
            model=TINY,
            messages=[{"role": "user", "content": "hi"}],
            response_format={
                "type": "json_schema",
                "json_schema": {"name": "x", "schema": UNSUPPORTED},
            },
        )
    assert "$dynamicRef" in oa.value.message
    with pytest.raises(anthropic.BadRequestError) as an:
        await anthropic_client(served).messages.create(
            model=TINY,
            max_tokens=8,
            messages=[{"role": "user", "content": "hi"}],
            output_config={"format": {"type": "json_schema", "schema": UNSUPPORTED}},
        )
    assert isinstance(an.value.body, dict)
    assert an.value.body["error"]["type"] == "invalid_request_error"
    assert "$dynamicRef" in an.value.body["error"]["message"]
    with pytest.raises(anthropic.BadRequestError) as tool:
        await anthropic_client(served).messages.create(
            model=TINY,
            max_tokens=8,
            messages=[{"role": "user", "content": "hi"}],
            tools=[{"name": "t", "input_schema": UNSUPPORTED}],
            tool_choice={"type": "any"},
        )
    assert isinstance(tool.value.body, dict)
    assert "tools[0]" in tool.value.body["error"]["message"]
    with pytest.raises(openai.BadRequestError) as responses:
        await openai_client(served).responses.create(
            model=TINY,
            input="hi",
            text={"format": {"type": "json_schema", "name": "x", "schema": UNSUPPORTED}},
        )
    assert "$dynamicRef" in responses.value.message


async def test_anthropic_newer_fields_are_accepted(served: RunningGateway) -> None:
    message = await anthropic_client(served).messages.create(
        model=TINY,
        max_tokens=4,
        system=[{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
        messages=[
            {
                "role": "user",
                "content": [
                    {
                        "type": "text",
                        "text": "hi",
                        "cache_control": {"type": "ephemeral", "ttl": "1h"},
                    }
                ],
            }
        ],
        cache_control={"type": "ephemeral"},
        service_tier="standard_only",
        speed="fast",
        container="container_123",
        inference_geo="eu",
        output_config={"effort": "low"},
    )
    assert message.stop_reason in ("end_turn", "max_tokens")
    assert message.usage.output_tokens > 0


async def test_sampling_through_extra_body_reaches_the_neuron(served: RunningGateway) -> None:
    client = anthropic_client(served)

    async def text(extra: dict[str, Any]) -> str:
        message = await client.messages.create(
            model=TINY,
            max_tokens=12,
            messages=[{"role": "user", "content": "Tell me a story."}],
            extra_body={**extra, "ignore_eos": True},
        )
        block = message.content[0]
        assert block.type == "text"
        return block.text

    greedy = await text({"temperature": 0.0})
    assert await text({"temperature": 1.0, "top_k": 1, "seed": 5}) == greedy  # top_k 1 = argmax
    assert await text({"temperature": 1.0, "seed": 5}) != greedy
