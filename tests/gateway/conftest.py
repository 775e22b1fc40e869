"""Gateway fixtures (shared by the gateway engineers: add, never remove)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from helexa.testing.neuron_proc import InProcessNeuron
from tests.gateway.harness import neuron_config
from tests.gateway.scripted_upstream import ScriptedUpstream


@pytest.fixture
async def scripted_upstream() -> AsyncIterator[ScriptedUpstream]:
    upstream = await ScriptedUpstream(["vendor/big"]).start()
    yield upstream
    await upstream.stop()


@pytest.fixture
async def neuron_a() -> AsyncIterator[InProcessNeuron]:
    async with InProcessNeuron.start(neuron_config("a")) as neuron:
        yield neuron
