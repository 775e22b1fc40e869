"""A whole tool loop through the gateway: anthropic SDK -> gateway -> tool-calling upstream.

The upstream (kind = "openai") streams its tool calls with the arguments
split across many chunks; the client must get tool_use blocks with the
parsed input, and its tool_result must reach the upstream as a tool-role
message answering the right call.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anthropic
import pytest
from anthropic.types import MessageParam, ToolParam

from tests.gateway.harness import RunningGateway, run_gateway, write_configs
from tests.gateway.tool_upstream import (
    FOLLOW_UP_PREFIX,
    ToolCallScript,
    ToolScript,
    ToolUpstream,
    fleet_toml,
)

MODEL = "vendor/agent"
WEATHER_ARGS: dict[str, Any] = {"city": "Zürich", "days": 3, "units": {"temp": "C"}}
TOOLS: list[ToolParam] = [
    {
        "name": "weather",
        "description": "Forecast for a city",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
    {"name": "clock", "input_schema": {"type": "object", "properties": {}}},
]
QUESTION: list[MessageParam] = [{"role": "user", "content": "Weather in Zürich?"}]


@pytest.fixture
async def upstream() -> AsyncIterator[ToolUpstream]:
    script = ToolScript(calls=[ToolCallScript("weather", WEATHER_ARGS)], lead_text="Checking.")
    server = await ToolUpstream([MODEL], script).start()
    yield server
    await server.stop()


@pytest.fixture
async def gateway(tmp_path: Path, upstream: ToolUpstream) -> AsyncIterator[RunningGateway]:
    models = f'[aliases]\n"claude-*" = "{MODEL}"\n'
    async with run_gateway(write_configs(tmp_path, fleet_toml(upstream), models)) as gw:
        yield gw


def client(gw: RunningGateway) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=gw.url, api_key="unused", max_retries=0, timeout=30)


def tool_result_turn(message: anthropic.types.Message, output: str) -> list[MessageParam]:
    """The conversation so far plus a user turn answering every tool_use block."""
    results: list[Any] = [
        {"type": "tool_result", "tool_use_id": block.id, "content": output}
        for block in message.content
        if block.type == "tool_use"
    ]
    return [
        *QUESTION,
        {"role": "assistant", "content": message.content},
        {"role": "user", "content": results},
    ]


async def test_tool_loop_non_streaming(gateway: RunningGateway, upstream: ToolUpstream) -> None:
    c = client(gateway)
    first = await c.messages.create(
        model="claude-sonnet-4-5", max_tokens=64, tools=TOOLS, messages=QUESTION
    )
    assert first.stop_reason == "tool_use"
    assert [b.type for b in first.content] == ["text", "tool_use"]
    call = first.content[1]
    assert call.type == "tool_use"
    assert (call.name, call.input) == ("weather", WEATHER_ARGS)

    follow = await c.messages.create(
        model="claude-sonnet-4-5",
        max_tokens=64,
        tools=TOOLS,
        messages=tool_result_turn(first, "sunny, 21 C"),
    )
    assert follow.stop_reason == "end_turn"
    assert follow.content[0].type == "text"
    assert follow.content[0].text == FOLLOW_UP_PREFIX + "sunny, 21 C"
    assert upstream.tool_messages() == [
        {"role": "tool", "tool_call_id": call.id, "content": "sunny, 21 C"}
    ]
    # The assistant turn went back as an OpenAI tool call with the same JSON arguments.
    sent = upstream.requests[-1]["messages"]
    assert sent[1]["tool_calls"][0]["function"]["name"] == "weather"


async def test_tool_loop_streaming(gateway: RunningGateway, upstream: ToolUpstream) -> None:
    c = client(gateway)
    json_deltas: list[str] = []
    async with c.messages.stream(
        model="claude-sonnet-4-5", max_tokens=64, tools=TOOLS, messages=QUESTION
    ) as stream:
        async for event in stream:
            if event.type == "content_block_delta" and event.delta.type == "input_json_delta":
                json_deltas.append(event.delta.partial_json)
        first = await stream.get_final_message()
    assert len(json_deltas) > 3  # the arguments arrived as they were generated, in pieces
    assert first.stop_reason == "tool_use"
    call = first.content[-1]
    assert call.type == "tool_use" and call.input == WEATHER_ARGS

    async with c.messages.stream(
        model="claude-sonnet-4-5",
        max_tokens=64,
        tools=TOOLS,
        messages=tool_result_turn(first, "rain"),
    ) as stream:
        follow = await stream.get_final_message()
    assert follow.content[0].type == "text"
    assert follow.content[0].text == FOLLOW_UP_PREFIX + "rain"
    assert upstream.tool_messages()[-1]["tool_call_id"] == call.id


async def test_parallel_tool_calls_stream_as_separate_blocks(
    gateway: RunningGateway, upstream: ToolUpstream
) -> None:
    upstream.script = ToolScript(
        calls=[ToolCallScript("weather", {"city": "Oslo"}), ToolCallScript("clock", {})]
    )
    async with client(gateway).messages.stream(
        model="claude-haiku-4-5", max_tokens=64, tools=TOOLS, messages=QUESTION
    ) as stream:
        message = await stream.get_final_message()
    calls = [(b.name, b.input, b.id) for b in message.content if b.type == "tool_use"]
    assert [(name, args) for name, args, _ in calls] == [
        ("weather", {"city": "Oslo"}),
        ("clock", {}),
    ]
    assert len({call_id for _, _, call_id in calls}) == 2
