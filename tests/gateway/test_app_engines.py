"""engine = "llama.cpp" end to end: both dialects through the gateway to a real
llama-server holding the real SmolLM2 GGUF, cold-loaded from models.toml."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import anthropic
import pytest

from helexa.neuron.config import NeuronConfig
from helexa.testing.neuron_proc import InProcessNeuron
from tests.gateway.harness import (
    RunningGateway,
    anthropic_prompt_tokens,
    run_gateway,
    write_configs,
)
from tests.neuron.engines.conftest import llama_server, smollm2_gguf

MODEL = "smollm2"
__all__ = ["llama_server", "smollm2_gguf"]  # the engines' fixtures, used here too


@pytest.fixture
async def gateway(
    tmp_path: Path, llama_server: Path, smollm2_gguf: Path
) -> AsyncIterator[RunningGateway]:
    config = NeuronConfig.model_validate(
        {
            "neuron": {"name": "a", "offline": True, "max_in_flight": 2},
            "devices": {"reserve_mb": 0},
            "engines": {"llama_server": str(llama_server)},
        }
    )
    async with InProcessNeuron.start(config) as neuron:
        fleet = f'[[neurons]]\nname = "a"\nendpoint = "{neuron.url}"\n'
        models = (
            f'[[models]]\nid = "{MODEL}"\npath = "{smollm2_gguf}"\nengine = "llama.cpp"\n'
            f'context_length = 2048\naliases = ["claude-*"]\n'
        )
        async with run_gateway(write_configs(tmp_path, fleet, models)) as gw:
            yield gw


async def test_openai_dialect_chat_and_completions_stream_and_not(gateway: RunningGateway) -> None:
    client = gateway.openai()
    messages: list[dict[str, str]] = [{"role": "user", "content": "Say hello."}]
    chat = await client.chat.completions.create(
        model=MODEL,
        messages=messages,  # type: ignore[arg-type]
        max_tokens=6,
    )
    assert chat.choices[0].message.content and chat.usage and chat.usage.completion_tokens > 0
    assert gateway.decisions("load") == [MODEL]  # cold-loaded through placement

    streamed = []
    stream = await client.chat.completions.create(
        model=MODEL,
        messages=messages,  # type: ignore[arg-type]
        max_tokens=6,
        stream=True,
    )
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            streamed.append(chunk.choices[0].delta.content)
    assert "".join(streamed)

    text = await client.completions.create(model=MODEL, prompt="The sky is", max_tokens=4)
    assert text.choices[0].text and text.usage and text.usage.completion_tokens > 0
    pieces = []
    async for chunk in await client.completions.create(
        model=MODEL, prompt="The sky is", max_tokens=4, stream=True
    ):
        pieces.append(chunk.choices[0].text if chunk.choices else "")
    assert "".join(pieces)

    async with gateway.http() as http:
        fleet = (await http.get("/admin/fleet")).json()
    [row] = [m for m in fleet["models"] if m["id"] == MODEL]
    assert row["engine"] == "llama.cpp" and row["locations"][0]["engine"] == "llama.cpp"


async def test_anthropic_dialect_stream_and_not_and_exact_count_tokens(
    gateway: RunningGateway,
) -> None:
    client = anthropic.AsyncAnthropic(
        base_url=gateway.url, api_key="unused", max_retries=0, timeout=120
    )
    messages: list[anthropic.types.MessageParam] = [{"role": "user", "content": "Say hello."}]
    message = await client.messages.create(
        model="claude-3-5-haiku-latest", system="Be brief.", messages=messages, max_tokens=6
    )
    assert message.content and message.usage.output_tokens > 0
    counted = await client.messages.count_tokens(model=MODEL, system="Be brief.", messages=messages)
    assert counted.input_tokens == anthropic_prompt_tokens(message.usage) > 0

    async with client.messages.stream(
        model=MODEL, system="Be brief.", messages=messages, max_tokens=6
    ) as stream:
        final = await stream.get_final_message()
    assert final.usage.output_tokens > 0
    assert anthropic_prompt_tokens(final.usage) == counted.input_tokens
