"""Cold loads against a real neuron: single-flight, cancellation-proof, no-placement errors."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from helexa.errors import ModelNotFound, NoFeasibleNeuron
from helexa.fleet.poller import PollSettings
from helexa.gateway.core import Gateway
from helexa.testing.neuron_proc import InProcessNeuron
from tests.gateway.harness import write_configs


@pytest.fixture
async def gateway(
    tmp_path: Path, tiny_model_dir: Path, neuron_a: InProcessNeuron
) -> AsyncIterator[Gateway]:
    fleet = f'[[neurons]]\nname = "a"\nendpoint = "{neuron_a.url}"\n'
    models = "".join(
        f'[[models]]\nid = "m/{name}"\npath = "{tiny_model_dir}"\n' for name in ("x", "y")
    )
    models += '[[models]]\nid = "m/elsewhere"\nneurons = ["b"]\n'
    models += f'[[models]]\nid = "m/missing"\npath = "{tmp_path / "private-dir"}"\n'
    fleet += '[[neurons]]\nname = "b"\nendpoint = "http://127.0.0.1:9"\n'  # never up
    gw = Gateway(write_configs(tmp_path, fleet, models), poll=PollSettings(interval=0.2))
    await gw.start()
    yield gw
    await gw.stop()


async def test_concurrent_callers_share_one_load(
    gateway: Gateway, neuron_a: InProcessNeuron
) -> None:
    results = await asyncio.gather(*(gateway.loader.servable("m/x", 60) for _ in range(5)))
    assert all([loc.neuron for loc in r] == ["a"] for r in results)
    assert neuron_a.loader.calls == ["m/x"]
    assert gateway.loader.loads_started == 1


async def test_a_caller_giving_up_does_not_cancel_the_shared_load(
    gateway: Gateway, neuron_a: InProcessNeuron
) -> None:
    impatient = asyncio.create_task(gateway.loader.servable("m/y", 60))
    patient = asyncio.create_task(gateway.loader.servable("m/y", 60))
    await asyncio.sleep(0)  # both have joined the load
    impatient.cancel()
    assert [loc.neuron for loc in await patient] == ["a"]
    assert neuron_a.loader.calls == ["m/y"]


async def test_loads_on_one_neuron_are_serialized(
    gateway: Gateway, neuron_a: InProcessNeuron
) -> None:
    lock = gateway.action_locks("a")
    await lock.acquire()
    pending = asyncio.create_task(gateway.loader.servable("m/x", 60))
    await asyncio.sleep(0.3)  # would be long enough to start a load (nothing to await)
    assert neuron_a.loader.calls == []
    lock.release()
    await pending
    assert neuron_a.loader.calls == ["m/x"]


async def test_no_placement_is_a_retryable_503_with_a_decision(gateway: Gateway) -> None:
    with pytest.raises(NoFeasibleNeuron) as info:
        await gateway.loader.servable("m/elsewhere", 10)
    assert info.value.status == 503 and info.value.retry_after
    decision = gateway.fleet.decisions[-1]
    assert (decision.kind, decision.model) == ("no_placement", "m/elsewhere")
    assert "b: starting (has not answered yet)" in decision.reason  # polled once so far


async def test_a_model_nobody_knows_cannot_be_loaded(gateway: Gateway) -> None:
    with pytest.raises(ModelNotFound):
        await gateway.loader.servable("not/in-models-toml", 10)


async def test_a_failed_load_tells_the_client_no_host_path(
    gateway: Gateway, tmp_path: Path
) -> None:
    with pytest.raises(ModelNotFound) as info:
        await gateway.loader.servable("m/missing", 10)
    assert "private-dir" not in info.value.message and str(tmp_path) not in info.value.message
    assert "m/missing" in info.value.message and info.value.code == "model_not_found"
