"""Cold loads that must evict: a neuron capped by max_memory_mb takes a new model."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from helexa.fleet.poller import PollSettings
from helexa.gateway.core import Gateway
from helexa.testing.neuron_proc import InProcessNeuron
from tests.gateway.harness import RunningGateway, neuron_config, run_gateway, write_configs

# Each id is the tiny model (4 MB of weights; measured at 4 MB or more on CPU, depending
# on how much RSS the first load in this process adds), estimated at 6 MB, on a neuron
# capped at 8 MB: one fits, and whatever the first measures, the second only fits after
# evicting it.
CAP_MB = 8
ESTIMATE_MB = 6


@pytest.fixture
async def capped(tmp_path: Path, tiny_model_dir: Path) -> AsyncIterator[RunningGateway]:
    async with InProcessNeuron.start(neuron_config("small", max_memory_mb=CAP_MB)) as neuron:
        fleet = f'[[neurons]]\nname = "small"\nendpoint = "{neuron.url}"\n'
        models = "".join(
            f'[[models]]\nid = "m/{name}"\npath = "{tiny_model_dir}"\nvram_mb = {ESTIMATE_MB}\n'
            for name in ("first", "second")
        )
        async with run_gateway(write_configs(tmp_path, fleet, models)) as gw:
            yield gw


async def ask(gw: RunningGateway, model: str) -> None:
    reply = await gw.openai().chat.completions.create(
        model=model, messages=[{"role": "user", "content": "hi"}], max_tokens=1
    )
    assert reply.model == model


async def test_the_lru_model_is_evicted_for_a_new_one(capped: RunningGateway) -> None:
    await ask(capped, "m/first")
    await ask(capped, "m/second")
    held = {loc.model_id for loc in capped.gateway.fleet.neurons["small"].models.values()}
    assert held == {"m/second"}
    assert capped.decisions("evict") == ["m/first"]
    assert capped.decisions("load") == ["m/first", "m/second"]
    evictions = capped.gateway.metrics.evictions.labels("m/first", "small", "make_room")
    assert evictions._value.get() == 1


async def test_a_copy_polled_busy_that_is_idle_now_is_still_evicted(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    async with InProcessNeuron.start(neuron_config("small", max_memory_mb=CAP_MB)) as neuron:
        fleet = f'[[neurons]]\nname = "small"\nendpoint = "{neuron.url}"\n'
        models = "".join(
            f'[[models]]\nid = "m/{name}"\npath = "{tiny_model_dir}"\nvram_mb = {ESTIMATE_MB}\n'
            for name in ("first", "second")
        )
        # No polling round during the test: only the cold loader's own polls refresh.
        gateway = Gateway(write_configs(tmp_path, fleet, models), poll=PollSettings(3600.0))
        await gateway.start()
        try:
            await gateway.loader.servable("m/first", 60)
            # What a poll sees when it lands just after the last byte reached us: the
            # neuron still counts the request. The cold loader looks again, not 503.
            gateway.fleet.neurons["small"].models["m/first"].in_flight = 1
            assert [loc.model_id for loc in await gateway.loader.servable("m/second", 60)] == [
                "m/second"
            ]
        finally:
            await gateway.stop()
        evicted = [d.model for d in gateway.fleet.decisions if d.kind == "evict"]
        assert evicted == ["m/first"]
