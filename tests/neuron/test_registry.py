"""Registry on the real engine and tiny model: states, failures, drain and abort."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from helexa.errors import ModelNotFound, ModelNotLoaded, ModelUnloading
from helexa.neuron.admission import Admission
from helexa.neuron.config import NeuronConfig
from helexa.neuron.engine.spec import SamplingParams
from helexa.neuron.generate import Outcome, generate
from helexa.neuron.loading import engine_loader
from helexa.neuron.registry import Registry, ServingModel
from helexa.protocol.neuron import LoadRequest
from helexa.testing.neuron_proc import eventually

TINY = "helexa/tiny"
LONG = SamplingParams(max_new_tokens=5000, min_new_tokens=5000, seed=1)


def _registry(loader: object = None) -> Registry:
    config = NeuronConfig.model_validate({"devices": {"reserve_mb": 0}})
    return Registry(
        loader or engine_loader(config),  # type: ignore[arg-type]
        lambda _m: Admission(max_in_flight=4, max_queue=4, queue_timeout=5),
        default_drain_timeout=5,
    )


async def test_failed_load_is_visible_then_replaced(tiny_model_dir: Path, tmp_path: Path) -> None:
    registry = _registry()
    with pytest.raises(ModelNotFound):
        await registry.load(LoadRequest(model=TINY, path=str(tmp_path / "missing")))
    (failed,) = registry.infos()
    assert failed.state == "failed" and failed.error
    with pytest.raises(ModelNotLoaded):
        registry.servable(TINY)
    entry = await registry.load(LoadRequest(model=TINY, path=str(tiny_model_dir)))
    assert entry.state == "loaded" and entry.info().error is None
    await registry.close()
    assert registry.infos() == [] and registry.cycles == 1


async def test_drain_timeout_aborts_generation_then_frees_the_model(tiny_model_dir: Path) -> None:
    registry = _registry()
    entry = await registry.load(LoadRequest(model=TINY, path=str(tiny_model_dir)))
    model = entry.model
    assert model is not None
    first_piece = asyncio.Event()
    outcomes: list[Outcome] = []

    async def run() -> None:
        async with registry.generation(entry) as gen:
            async for event in generate(entry, gen, [1, 2, 3], LONG, [], parse_output=False):
                first_piece.set()
                if isinstance(event, Outcome):
                    outcomes.append(event)

    task = asyncio.create_task(run())
    await first_piece.wait()
    await registry.unload(TINY, drain_timeout_s=0.2)
    await task
    (outcome,) = outcomes
    assert 0 < outcome.completion_tokens < LONG.max_new_tokens  # cut short, not run out
    assert entry.admission.in_flight == 0
    assert registry.cycles == 1 and registry.entry(TINY) is None
    assert getattr(model, "model", "gone") is None  # engine released its weights


async def test_unloading_model_refuses_new_work(tiny_model_dir: Path) -> None:
    registry = _registry()
    entry = await registry.load(LoadRequest(model=TINY, path=str(tiny_model_dir)))
    async with registry.generation(entry):
        unload = asyncio.create_task(registry.unload(TINY, drain_timeout_s=5))
        await eventually(lambda: entry.state == "unloading")
        with pytest.raises(ModelUnloading):
            registry.servable(TINY)
        assert not unload.done()  # waits for our generation
    await unload
    with pytest.raises(ModelNotLoaded):
        registry.servable(TINY)


async def test_unload_during_load_waits_for_the_load(tiny_model_dir: Path) -> None:
    gate = threading.Event()
    config = NeuronConfig.model_validate({"devices": {"reserve_mb": 0}})
    real = engine_loader(config)

    gate_waiters: list[str] = []

    def slow_loader(request: LoadRequest) -> ServingModel:
        gate_waiters.append(request.model)
        gate.wait(10)
        return real(request)

    registry = _registry(slow_loader)
    load = asyncio.create_task(registry.load(LoadRequest(model=TINY, path=str(tiny_model_dir))))
    await eventually(lambda: bool(registry.infos()))
    assert registry.infos()[0].state == "loading"
    unload = asyncio.create_task(registry.unload(TINY))
    await eventually(lambda: not load.done() and len(gate_waiters) == 1)
    gate.set()
    await load
    await unload
    assert registry.infos() == [] and registry.cycles == 1
