"""A saturated neuron serves the higher-priority key first (the gateway passes the key's
priority upstream; the neuron's admission queue orders by it)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from openai.types.chat import ChatCompletionMessageParam

from helexa.config.keys import hash_key
from helexa.neuron.config import NeuronConfig
from helexa.testing.neuron_proc import InProcessNeuron, eventually
from tests.gateway.harness import RunningGateway, run_gateway, write_configs

TINY = "helexa/tiny"
HI: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hi"}]


@pytest.fixture
async def one_slot(tmp_path: Path, tiny_model_dir: Path) -> AsyncIterator[InProcessNeuron]:
    config = NeuronConfig.model_validate(
        {
            "neuron": {"name": "a", "offline": True, "max_in_flight": 1, "max_queue": 8},
            "devices": {"reserve_mb": 0, "max_memory_mb": 0},
        }
    )
    async with InProcessNeuron.start(config) as neuron:
        await neuron.load(TINY, tiny_model_dir)
        yield neuron


@pytest.fixture
async def served(
    tmp_path: Path, tiny_model_dir: Path, one_slot: InProcessNeuron
) -> AsyncIterator[RunningGateway]:
    fleet = f'[[neurons]]\nname = "a"\nendpoint = "{one_slot.url}"\n'
    models = f'[[models]]\nid = "{TINY}"\npath = "{tiny_model_dir}"\n'
    (tmp_path / "keys.toml").write_text(
        f'[[keys]]\nname = "batch"\nsha256 = "{hash_key("k-batch")}"\n\n'
        f'[[keys]]\nname = "editor"\nsha256 = "{hash_key("k-editor")}"\npriority = 10\n'
    )
    async with run_gateway(write_configs(tmp_path, fleet, models)) as gw:
        yield gw


async def test_the_higher_priority_key_is_served_first(
    served: RunningGateway, one_slot: InProcessNeuron
) -> None:
    entry = one_slot.state.registry.entry(TINY)
    assert entry is not None
    finished: list[str] = []

    async def ask(key: str, tokens: int) -> None:
        await served.openai(api_key=key).chat.completions.create(
            model=TINY, messages=HI, max_tokens=tokens, extra_body={"min_tokens": tokens}
        )
        finished.append(key)

    # The one slot is busy with a long answer; then batch queues, then the editor.
    busy = asyncio.create_task(ask("k-batch", 64))
    await eventually(lambda: entry.admission.in_flight == 1, within_s=30)
    first = asyncio.create_task(ask("k-batch", 2))
    await eventually(lambda: entry.admission.queued == 1, within_s=30)
    second = asyncio.create_task(ask("k-editor", 2))
    await eventually(lambda: entry.admission.queued == 2, within_s=30)
    await asyncio.gather(busy, first, second)
    assert finished == ["k-batch", "k-editor", "k-batch"]
