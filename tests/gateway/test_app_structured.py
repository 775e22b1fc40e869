"""Structured output end to end: the openai and anthropic SDKs -> gateway -> real neuron.

The tiny model has random weights and never writes valid JSON by chance, so every
answer that parses and validates here does so because the neuron constrained it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anthropic
import jsonschema
import openai
import pytest

from helexa.neuron.config import NeuronConfig
from helexa.testing.neuron_proc import InProcessNeuron
from tests.gateway.harness import RunningGateway, run_gateway, write_configs

TINY = "helexa/tiny"
ANSWERS = 100  # per schema: a quarter each through openai / anthropic, streamed / not
CONCURRENCY = 8


def _object(properties: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties) if required is None else required,
        "additionalProperties": False,
    }


SHORT = {"type": "string", "maxLength": 12}
SCHEMAS: dict[str, dict[str, Any]] = {
    "nested": _object(
        {
            "user": _object(
                {
                    "name": SHORT,
                    "address": _object(
                        {"city": SHORT, "zip": {"type": "string", "pattern": "^[0-9]{5}$"}}
                    ),
                }
            ),
            "active": {"type": "boolean"},
        }
    ),
    "arrays": _object(
        {
            "items": {
                "type": "array",
                "minItems": 1,
                "maxItems": 4,
                "items": _object(
                    {
                        "id": {"type": "integer", "minimum": 0, "maximum": 99},
                        "tags": {"type": "array", "maxItems": 3, "items": SHORT},
                    }
                ),
            }
        }
    ),
    "enums": _object(
        {
            "color": {"enum": ["red", "green", "blue"]},
            "size": {"type": "string", "enum": ["S", "M", "L", "XL"]},
            "level": {"enum": [1, 2, 3, None]},
        }
    ),
    "required": _object(
        {
            "id": {"type": "integer", "minimum": 1, "maximum": 1000},
            "title": SHORT,
            "note": SHORT,
            "score": {"type": "number", "minimum": 0, "maximum": 10},
        },
        required=["id", "title"],
    ),
    "patterns": _object(
        {
            "code": {"type": "string", "pattern": "^[A-Z]{3}-[0-9]{3}$"},
            "email": {"type": "string", "pattern": "^[a-z]{1,8}@[a-z]{1,8}\\.(com|org)$"},
            "version": {"type": "string", "pattern": "^v[0-9]\\.[0-9]{1,2}$"},
        }
    ),
}
QUESTION = "Answer in JSON."


@pytest.fixture
async def served(tmp_path: Path, tiny_model_dir: Path) -> AsyncIterator[RunningGateway]:
    config = NeuronConfig.model_validate(
        {
            "neuron": {"name": "a", "offline": True, "max_in_flight": CONCURRENCY},
            "devices": {"reserve_mb": 0},
        }
    )
    async with InProcessNeuron.start(config) as neuron:
        await neuron.load(TINY, tiny_model_dir)
        fleet = f'[[neurons]]\nname = "a"\nendpoint = "{neuron.url}"\n'
        models = f'[[models]]\nid = "{TINY}"\npath = "{tiny_model_dir}"\n'
        async with run_gateway(write_configs(tmp_path, fleet, models)) as gw:
            yield gw


def openai_client(gw: RunningGateway) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"{gw.url}/v1", api_key="unused", max_retries=0)


def anthropic_client(gw: RunningGateway) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=gw.url, api_key="unused", max_retries=0, timeout=60)


async def openai_answer(
    client: openai.AsyncOpenAI, schema: dict[str, Any], seed: int, stream: bool
) -> str:
    args: dict[str, Any] = {
        "model": TINY,
        "messages": [{"role": "user", "content": QUESTION}],
        "max_tokens": 300,
        "temperature": 1.0,
        "seed": seed,
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "answer", "schema": schema, "strict": True},
        },
    }
    if not stream:
        completion = await client.chat.completions.create(**args)
        assert completion.choices[0].finish_reason == "stop"
        return completion.choices[0].message.content or ""
    pieces = []
    async for chunk in await client.chat.completions.create(stream=True, **args):
        for choice in chunk.choices:
            pieces.append(choice.delta.content or "")
            if choice.finish_reason is not None:
                assert choice.finish_reason == "stop"
    return "".join(pieces)


async def anthropic_answer(
    client: anthropic.AsyncAnthropic, schema: dict[str, Any], seed: int, stream: bool
) -> str:
    args: dict[str, Any] = {
        "model": TINY,
        "max_tokens": 300,
        "messages": [{"role": "user", "content": QUESTION}],
        "output_config": {"format": {"type": "json_schema", "schema": schema}},
        # anthropic 2.17 takes sampling parameters only through extra_body.
        "extra_body": {"temperature": 1.0, "seed": seed},
    }
    if stream:
        async with client.messages.stream(**args) as events:
            message = await events.get_final_message()
    else:
        message = await client.messages.create(**args)
    assert message.stop_reason == "end_turn"
    assert [block.type for block in message.content] == ["text"]
    block = message.content[0]
    assert block.type == "text"
    return block.text


async def answers(gw: RunningGateway, schema: dict[str, Any]) -> list[str]:
    gate = asyncio.Semaphore(CONCURRENCY)
    oa, an = openai_client(gw), anthropic_client(gw)

    async def one(seed: int) -> str:
        async with gate:
            stream = seed % 2 == 0
            if seed % 4 < 2:
                return await openai_answer(oa, schema, seed, stream)
            return await anthropic_answer(an, schema, seed, stream)

    return await asyncio.gather(*(one(seed) for seed in range(ANSWERS)))


def invalid_answers(schema: dict[str, Any], texts: list[str]) -> list[tuple[str, str]]:
    validator = jsonschema.Draft202012Validator(schema)
    invalid = []
    for text in texts:
        try:
            validator.validate(json.loads(text))
        except (ValueError, jsonschema.ValidationError) as exc:
            invalid.append((text, str(exc)[:80]))
    return invalid


@pytest.mark.timeout(300)
@pytest.mark.parametrize("name", sorted(SCHEMAS))
async def test_every_constrained_answer_validates(served: RunningGateway, name: str) -> None:
    schema = SCHEMAS[name]
    texts = await answers(served, schema)
    assert invalid_answers(schema, texts) == []
    assert len(set(texts)) > ANSWERS // 4  # the seeds really sampled different answers
