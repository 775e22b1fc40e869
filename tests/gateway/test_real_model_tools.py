"""Forced tool calls and a whole tool loop on a trained model (SmolLM2-135M-Instruct).

The tiny random model shows the grammar holds; this shows that a real model's
forced call ends by itself and parses into the dialects' tool blocks, and that
its answer after the tool's result uses that result. SmolLM2's chat template
renders neither the tools nor the assistant's call (only the `tool` turn), so
the question and the result are phrased for the model to repeat it. Greedy
decoding, one loaded model for the module (the fixture of test_real_model.py).
"""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest

from tests.gateway.test_real_model import MODEL, WEATHER_TOOL, Served, served

__all__ = ["served"]  # the fixture, shared

pytestmark = pytest.mark.asyncio(loop_scope="module")

OPENAI_WEATHER_TOOL: Any = {
    "type": "function",
    "function": {
        "name": WEATHER_TOOL["name"],
        "description": WEATHER_TOOL["description"],
        "parameters": WEATHER_TOOL["input_schema"],
    },
}
QUESTION = "What is the temperature in Paris?"
# Without closed objects, the model invents keys for this one until max_tokens.
OPEN_QUESTION = "What is the weather in Paris?"
TEMPERATURES = {"Paris": "18 degrees Celsius"}


def get_weather(city: str) -> str:
    """The "tool", run by the test."""
    return TEMPERATURES.get(city, "unknown city")


@pytest.mark.parametrize(
    "choice", [{"type": "any"}, {"type": "tool", "name": "get_weather"}], ids=["any", "named"]
)
async def test_anthropic_forced_tool_use_on_the_real_model(
    served: Served, choice: dict[str, Any]
) -> None:
    tools: Any = [WEATHER_TOOL]
    forced: Any = {**choice, "disable_parallel_tool_use": True}
    message = await served.anthropic().messages.create(
        model="claude-sonnet-4-5",
        max_tokens=64,  # the call is ~30 tokens: it must end by itself
        messages=[{"role": "user", "content": OPEN_QUESTION}],
        tools=tools,
        tool_choice=forced,
        extra_body={"temperature": 0},
    )

    assert message.stop_reason == "tool_use"
    assert [block.type for block in message.content] == ["tool_use"]
    call = message.content[0]
    assert call.type == "tool_use" and call.name == "get_weather"
    jsonschema.validate(call.input, WEATHER_TOOL["input_schema"])


async def test_openai_tool_loop_on_the_real_model(served: Served) -> None:
    client = served.openai()
    messages: list[Any] = [{"role": "user", "content": QUESTION}]
    first = await client.chat.completions.create(
        model=MODEL,
        messages=messages,
        tools=[OPENAI_WEATHER_TOOL],
        tool_choice="required",
        parallel_tool_calls=False,
        temperature=0,
        max_tokens=64,
    )
    asked = first.choices[0]
    assert asked.finish_reason == "tool_calls"
    assert asked.message.tool_calls is not None and len(asked.message.tool_calls) == 1
    call = asked.message.tool_calls[0]
    assert call.type == "function" and call.function.name == "get_weather"
    arguments = json.loads(call.function.arguments)
    jsonschema.validate(arguments, WEATHER_TOOL["input_schema"])

    messages.append(asked.message.model_dump(exclude_none=True))
    messages.append({"role": "tool", "tool_call_id": call.id, "content": get_weather(**arguments)})
    final = await client.chat.completions.create(
        model=MODEL, messages=messages, tools=[OPENAI_WEATHER_TOOL], temperature=0, max_tokens=64
    )

    answer = final.choices[0]
    assert answer.finish_reason == "stop" and not answer.message.tool_calls
    assert "18 degrees" in (answer.message.content or "")  # the tool's result, for Paris
