"""Prefix-affinity routing end to end: the real SDKs -> gateway -> two real neurons
serving the tiny model. The turns of a conversation stay on one replica; a
session key pins; a replica over the load bound sheds to the other."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anthropic
import pytest

from helexa.gateway.affinity import (
    AffinityKey,
    chat_prefix_key,
    completion_prefix_key,
    ring_order,
    session_key,
)
from helexa.gateway.router import choose_replica
from helexa.testing.neuron_proc import InProcessNeuron, eventually, exact_length
from tests.gateway.harness import RunningGateway, neuron_config, run_gateway, write_configs

TINY = "helexa/tiny"
SYSTEM = "You are a careful coding agent. Follow the repository's rules. " * 8
REPLICAS = ["a", "b"]


@contextlib.asynccontextmanager
async def replicas_behind_gateway(
    tmp_path: Path, tiny_model_dir: Path, gateway_toml: str = ""
) -> AsyncIterator[RunningGateway]:
    """Neurons a and b, each with the tiny model loaded, behind one gateway."""
    async with (
        InProcessNeuron.start(neuron_config("a")) as neuron_a,
        InProcessNeuron.start(neuron_config("b")) as neuron_b,
    ):
        for neuron in (neuron_a, neuron_b):
            await neuron.load(TINY, tiny_model_dir)
        fleet = gateway_toml + "".join(
            f'[[neurons]]\nname = "{name}"\nendpoint = "{neuron.url}"\n'
            for name, neuron in (("a", neuron_a), ("b", neuron_b))
        )
        models = f'[[models]]\nid = "{TINY}"\npath = "{tiny_model_dir}"\n'
        async with run_gateway(write_configs(tmp_path, fleet, models)) as gw:
            await eventually(lambda: len(choose_replica(TINY, gw.gateway.fleet)) == 2)
            yield gw


@pytest.fixture
async def two_replicas(tmp_path: Path, tiny_model_dir: Path) -> AsyncIterator[RunningGateway]:
    async with replicas_behind_gateway(tmp_path, tiny_model_dir) as gw:
        yield gw


def messages(first_user: str, turn: int) -> list[dict[str, Any]]:
    """Turn `turn` of a conversation: the system prompt, the first question, the history."""
    out: list[dict[str, Any]] = [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": first_user},
    ]
    for i in range(1, turn):
        out += [
            {"role": "assistant", "content": f"Step {i} done."},
            {"role": "user", "content": f"Now step {i + 1}."},
        ]
    return out


def home(key: AffinityKey | None) -> str:
    assert key is not None
    return ring_order(key.point, REPLICAS)[0]


def conversations_on_both_replicas() -> list[str]:
    """Three first questions whose homes cover both replicas (found, not assumed)."""
    homes: dict[str, list[str]] = {"a": [], "b": []}
    for i in range(100):
        question = f"Task {i}: fix the failing test."
        homes[home(chat_prefix_key(TINY, messages(question, 1)))].append(question)
    assert homes["a"] and homes["b"]
    return [homes["a"][0], homes["b"][0], homes["a"][1]]


def last_route(gw: RunningGateway) -> tuple[str | None, str]:
    decision = gw.gateway.fleet.routes[-1]
    return decision.neuron, decision.reason


async def test_each_conversation_stays_on_its_prefix_replica(two_replicas: RunningGateway) -> None:
    client = two_replicas.openai()
    served: dict[str, list[str | None]] = {}
    for turn in range(1, 7):
        for question in conversations_on_both_replicas():
            await client.chat.completions.create(
                model=TINY, messages=messages(question, turn), max_tokens=2
            )
            served.setdefault(question, []).append(last_route(two_replicas)[0])

    for question, neurons in served.items():
        expected = home(chat_prefix_key(TINY, messages(question, 1)))
        assert neurons == [expected] * 6, question
    assert {neurons[0] for neurons in served.values()} == {"a", "b"}
    neuron, reason = last_route(two_replicas)
    assert reason.startswith("prefix affinity key=") and reason.endswith(f"→ {neuron}")


async def test_anthropic_turns_follow_the_prefix_and_user_id_pins(
    two_replicas: RunningGateway,
) -> None:
    claude = anthropic.AsyncAnthropic(base_url=two_replicas.url, api_key="x", max_retries=0)
    question = conversations_on_both_replicas()[1]
    neurons = []
    for turn in range(1, 4):
        history = messages(question, turn)
        await claude.messages.create(model=TINY, max_tokens=2, system=SYSTEM, messages=history[1:])
        neurons.append(last_route(two_replicas)[0])
    assert neurons == [home(chat_prefix_key(TINY, messages(question, 1)))] * 3

    # One user id, different conversations: all go where the session key hashes.
    user_id = "user_4f2a_account__session_0190c0de"
    pinned = home(session_key(user_id))
    for question in conversations_on_both_replicas():
        await claude.messages.create(
            model=TINY,
            max_tokens=2,
            messages=messages(question, 1)[1:],
            metadata={"user_id": user_id},
        )
        neuron, reason = last_route(two_replicas)
        assert neuron == pinned and reason.startswith("session affinity key=")
        assert "0190c0de" not in reason


async def test_openai_user_pins_a_session(two_replicas: RunningGateway) -> None:
    client = two_replicas.openai()
    pinned = home(session_key("alice"))
    for question in conversations_on_both_replicas():
        await client.chat.completions.create(
            model=TINY, messages=messages(question, 1), max_tokens=2, user="alice"
        )
        assert last_route(two_replicas)[0] == pinned


async def test_a_replica_over_the_load_bound_sheds_to_the_other(
    two_replicas: RunningGateway,
) -> None:
    client = two_replicas.openai()
    question = conversations_on_both_replicas()[0]
    conversation = messages(question, 1)
    target = home(chat_prefix_key(TINY, conversation))
    other = next(name for name in REPLICAS if name != target)
    # Four long streams of the same conversation fill its home replica's 4 slots...
    streams = []
    for _ in range(4):
        stream = await client.chat.completions.create(
            model=TINY, messages=conversation, stream=True, **exact_length(3000)
        )
        await anext(aiter(stream))  # its first chunk: the gateway counts it in flight
        streams.append(stream)
        assert last_route(two_replicas)[0] == target
    # ... so a fifth turn finds it full and over 1.25 x (4 + 0 + 1) / 2 = 3.125: elsewhere.
    await client.chat.completions.create(model=TINY, messages=conversation, max_tokens=2)
    neuron, reason = last_route(two_replicas)
    assert neuron == other
    assert reason.endswith(f"{target} over load bound (4 > 3.125) → next on ring {other}")
    for stream in streams:
        await stream.close()
    # Shed load drains: the conversation goes home again.
    fleet = two_replicas.gateway.fleet
    await eventually(lambda: fleet.neurons[target].models[TINY].active == 0, within_s=30)
    await asyncio.sleep(0)
    await client.chat.completions.create(model=TINY, messages=conversation, max_tokens=2)
    assert last_route(two_replicas)[0] == target


async def test_least_busy_routing_ignores_the_prefix(tmp_path: Path, tiny_model_dir: Path) -> None:
    setting = '[gateway]\nrouting = "least_busy"\n'
    async with replicas_behind_gateway(tmp_path, tiny_model_dir, setting) as gw:
        await gw.openai().chat.completions.create(
            model=TINY, messages=messages("q", 1), max_tokens=2
        )
        key = chat_prefix_key(TINY, messages("q", 1))
        assert key is not None
        reason = f"least busy a (routing = least_busy; prefix key={key.digest[:8]})"
        assert last_route(gw)[1] == reason


async def test_responses_and_completions_turns_stay_on_one_replica(
    two_replicas: RunningGateway,
) -> None:
    client = two_replicas.openai()
    question = conversations_on_both_replicas()[1]
    expected = home(chat_prefix_key(TINY, messages(question, 1)))
    served = []
    for turn in range(1, 4):
        history = messages(question, turn)[1:]  # the system prompt goes as instructions
        await client.responses.create(
            model=TINY, instructions=SYSTEM, input=history, max_output_tokens=2
        )
        served.append(last_route(two_replicas)[0])
    assert served == [expected] * 3

    # A raw prompt's key is its first 1,024 characters: an agent's instructions fill them.
    prompt = SYSTEM * 3 + f"\nUser: {question}\nAssistant:"
    first = home(completion_prefix_key(TINY, prompt))
    for turn in range(3):
        await client.completions.create(model=TINY, prompt=prompt, max_tokens=2)
        assert last_route(two_replicas)[0] == first
        prompt += f" Step {turn} done.\nUser: next\nAssistant:"
