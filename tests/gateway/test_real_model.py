"""A trained model end to end: the openai and anthropic SDKs -> gateway -> neuron -> SmolLM2.

SmolLM2-135M-Instruct (Q4_1 GGUF, dequantized to float32) answers factual
questions, ends its turns with `<|im_end|>` and has a tokenizer with special
tokens: the things random weights cannot show. One neuron holds it for the
whole module (loading is the cost); decoding is greedy so answers are fixed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest
import pytest_asyncio

from helexa.neuron.config import NeuronConfig
from helexa.testing.neuron_proc import InProcessNeuron
from tests.gateway.harness import (
    RunningGateway,
    anthropic_prompt_tokens,
    run_gateway,
    write_configs,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")

MODEL = "SmolLM2-135M-Instruct"
QUESTION = "What is the capital of France? Answer in one word."
ANSWER = "The capital of France is Paris."  # its greedy answer, checked against generate
END_OF_TURN = "<|im_end|>"
WEATHER_TOOL = {
    "name": "get_weather",
    "description": "The current weather in a city.",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}


@dataclass
class Served:
    gateway: RunningGateway
    tokenizer: Any  # the loaded model's own tokenizer, for counts made independently here

    # Generous timeouts: the machine running the suite may be busy; nothing here is timed.
    def anthropic(self) -> anthropic.AsyncAnthropic:
        return anthropic.AsyncAnthropic(
            base_url=self.gateway.url, api_key="unused", max_retries=0, timeout=300
        )

    def openai(self) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(
            base_url=f"{self.gateway.url}/v1", api_key="unused", max_retries=0, timeout=300
        )

    def prompt_tokens(self, messages: list[dict[str, Any]], tools: Any = None) -> int:
        encoded = self.tokenizer.apply_chat_template(
            messages, tools=tools, add_generation_prompt=True, tokenize=True, return_dict=True
        )
        return len(encoded["input_ids"])


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def served(
    smollm2_gguf: Path, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Served]:
    config = NeuronConfig.model_validate(
        {"neuron": {"offline": True, "max_in_flight": 4}, "devices": {"reserve_mb": 0}}
    )
    async with InProcessNeuron.start(config) as neuron:
        # Greedy unless a request says otherwise (the anthropic SDK has no temperature).
        body = {"model": MODEL, "path": str(smollm2_gguf), "dtype": "float32"}
        async with neuron.http() as http:  # a busy 2-core machine may take a while to load
            loaded = await http.post(
                "/models/load", json={**body, "sampling": {"temperature": 0}}, timeout=300
            )
        assert loaded.status_code == 200, loaded.text
        entry = neuron.state.registry.entry(MODEL)
        assert entry is not None and entry.model is not None
        fleet = f'[[neurons]]\nname = "a"\nendpoint = "{neuron.url}"\n'
        models = f'[[models]]\nid = "{MODEL}"\npath = "{smollm2_gguf}"\n'
        models += f'[aliases]\n"claude-*" = "{MODEL}"\n'
        directory = tmp_path_factory.mktemp("real-model")
        async with run_gateway(write_configs(directory, fleet, models)) as gw:
            yield Served(gw, entry.model.tokenizer)


def user(text: str = QUESTION) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


async def test_openai_chat_answers_and_stops_at_end_of_turn(served: Served) -> None:
    reply = await served.openai().chat.completions.create(
        model=MODEL,
        messages=user(),
        temperature=0,
        max_tokens=32,  # type: ignore[arg-type]
    )
    choice = reply.choices[0]

    assert choice.message.content == ANSWER
    assert choice.finish_reason == "stop"
    assert (choice.model_extra or {}).get("stop_reason") is None  # ended by <|im_end|>
    assert reply.usage is not None
    assert reply.usage.prompt_tokens == served.prompt_tokens(user())
    # the end-of-turn token ends the turn but is no part of the text or the count
    answer_tokens = served.tokenizer(ANSWER, add_special_tokens=False)["input_ids"]
    assert reply.usage.completion_tokens in (len(answer_tokens), len(answer_tokens) + 1)


async def test_openai_chat_stream_carries_the_same_answer(served: Served) -> None:
    stream = await served.openai().chat.completions.create(
        model=MODEL,
        messages=user(),
        temperature=0,
        max_tokens=32,
        stream=True,  # type: ignore[arg-type]
    )
    text, finish = "", None
    async for chunk in stream:
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
            finish = chunk.choices[0].finish_reason or finish

    assert (text, finish) == (ANSWER, "stop")


async def test_openai_completions_on_the_raw_chat_format(served: Served) -> None:
    prompt = served.tokenizer.apply_chat_template(
        user(), add_generation_prompt=True, tokenize=False
    )
    reply = await served.openai().completions.create(
        model=MODEL, prompt=prompt, temperature=0, max_tokens=32
    )

    assert reply.choices[0].text == ANSWER
    assert reply.choices[0].finish_reason == "stop"


async def test_openai_responses_answers(served: Served) -> None:
    response = await served.openai().responses.create(
        model=MODEL, input=QUESTION, temperature=0, max_output_tokens=32
    )

    assert "Paris" in response.output_text and END_OF_TURN not in response.output_text
    assert response.status == "completed"


async def test_anthropic_through_a_claude_alias_answers_with_end_turn(served: Served) -> None:
    message = await served.anthropic().messages.create(
        model="claude-sonnet-4-5",
        max_tokens=32,
        messages=[{"role": "user", "content": QUESTION}],
    )

    assert [block.type for block in message.content] == ["text"]
    text = message.content[0].text  # type: ignore[union-attr]
    assert text == ANSWER and END_OF_TURN not in text
    assert message.stop_reason == "end_turn"
    assert message.model == "claude-sonnet-4-5"


async def test_completions_stop_sequence_cuts_exactly(served: Served) -> None:
    prompt = served.tokenizer.apply_chat_template(
        user(), add_generation_prompt=True, tokenize=False
    )
    reply = await served.openai().completions.create(
        model=MODEL, prompt=prompt, temperature=0, max_tokens=32, stop=["France"]
    )

    assert reply.choices[0].text == "The capital of "  # everything before it, space included
    assert reply.choices[0].finish_reason == "stop"
    assert (reply.choices[0].model_extra or {}).get("stop_reason") == "France"  # vLLM's field


async def test_chat_stop_sequence_cuts_before_it(served: Served) -> None:
    reply = await served.openai().chat.completions.create(
        model=MODEL,
        messages=user(),  # type: ignore[arg-type]
        temperature=0,
        max_tokens=32,
        stop=[" Paris"],
    )

    assert reply.choices[0].message.content == "The capital of France is"
    assert reply.choices[0].finish_reason == "stop"
    assert (reply.choices[0].model_extra or {}).get("stop_reason") == " Paris"


async def test_anthropic_stop_sequence_cuts_before_it_and_is_named(served: Served) -> None:
    async with served.anthropic().messages.stream(
        model="claude-haiku-4-5",
        max_tokens=32,
        stop_sequences=["France"],
        messages=[{"role": "user", "content": QUESTION}],
    ) as stream:
        message = await stream.get_final_message()

    # Chat content drops trailing whitespace (docs/neuron.md, output parsing).
    assert message.content[0].text == "The capital of"  # type: ignore[union-attr]
    assert (message.stop_reason, message.stop_sequence) == ("stop_sequence", "France")


@pytest.mark.parametrize(
    ("system", "tools"),
    [(None, False), ("You answer in one word.", False), ("You answer in one word.", True)],
    ids=["plain", "system", "system-and-tools"],
)
async def test_count_tokens_and_usage_equal_the_tokenizer(
    served: Served, system: str | None, tools: bool
) -> None:
    client = served.anthropic()
    asked: dict[str, Any] = {"messages": [{"role": "user", "content": QUESTION}]}
    if system is not None:
        asked["system"] = system
    if tools:
        asked["tools"] = [WEATHER_TOOL]
    expected_messages = ([{"role": "system", "content": system}] if system else []) + user()
    openai_tools = [
        {
            "type": "function",
            "function": {
                "name": WEATHER_TOOL["name"],
                "description": WEATHER_TOOL["description"],
                "parameters": WEATHER_TOOL["input_schema"],
            },
        }
    ]
    expected = served.prompt_tokens(expected_messages, openai_tools if tools else None)

    counted = await client.messages.count_tokens(model="claude-sonnet-4-5", **asked)
    message = await client.messages.create(model="claude-sonnet-4-5", max_tokens=1, **asked)
    with_tools: dict[str, Any] = {"tools": openai_tools} if tools else {}
    reply = await served.openai().chat.completions.create(
        model=MODEL,
        messages=expected_messages,  # type: ignore[arg-type]
        max_tokens=1,
        **with_tools,
    )

    assert reply.usage is not None
    assert counted.input_tokens == anthropic_prompt_tokens(message.usage) == expected
    assert reply.usage.prompt_tokens == expected
