"""The owner thread's inbox: a burst is prefilled together; handover, cancel and stop races."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from helexa.errors import ModelUnloading
from helexa.neuron.engine import DeviceBudget, LoadedModel, LoadSpec, MemoryBudget, SamplingParams
from helexa.neuron.engine import load as load_model
from helexa.neuron.engine import worker as worker_module
from helexa.neuron.engine.prefill import prefill
from helexa.neuron.engine.sampling import RowSampler
from helexa.neuron.engine.worker import EngineWorker, Sequence

BUDGET = MemoryBudget((DeviceBudget(0, "cpu", 16_000),))
CPU = torch.device("cpu")
GREEDY = SamplingParams(max_new_tokens=4, temperature=0)


@pytest.fixture(scope="module")
def engine(tiny_model_dir: Path) -> Iterator[LoadedModel]:
    loaded = load_model(LoadSpec("tiny", path=tiny_model_dir), BUDGET)
    yield loaded
    loaded.close()


def sequence(seq_id: int, prompt: list[int]) -> Sequence:
    return Sequence(seq_id, prompt, RowSampler.create(GREEDY, CPU), asyncio.get_running_loop())


async def test_streams_started_in_one_tick_are_prefilled_together(
    engine: LoadedModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    sizes: list[int] = []

    def spy(model: Any, prompts: list[list[int]], device: torch.device) -> Any:
        sizes.append(len(prompts))
        return prefill(model, prompts, device)

    monkeypatch.setattr(worker_module, "prefill", spy)

    async def collect(prompt: list[int]) -> list[int]:
        return [t async for t in engine.stream(prompt, GREEDY)]

    prompts = [[10 + i] * (3 + i) for i in range(8)]
    outputs = await asyncio.gather(*(collect(p) for p in prompts))

    assert sizes == [8]
    assert all(len(tokens) == 4 for tokens in outputs)


async def test_a_sequence_cancelled_before_its_handover_never_reaches_the_thread(
    engine: LoadedModel,
) -> None:
    worker = EngineWorker(engine.model, CPU, engine.max_positions, name="cancel")
    try:
        doomed, kept = sequence(1, [5, 6, 7]), sequence(2, [5, 6, 7])
        worker.submit(doomed)
        worker.submit(kept)
        worker.cancel(doomed)  # same tick: still pending on this loop

        tokens = [await kept.outbox.get() for _ in range(4)]
        assert all(isinstance(token, int) for token in tokens)
        assert isinstance(await kept.outbox.get(), worker_module.EndOfSequence)
        assert doomed.outbox.empty()
    finally:
        worker.stop()


async def test_a_sequence_submitted_just_before_a_stop_fails_with_model_unloading(
    engine: LoadedModel,
) -> None:
    worker = EngineWorker(engine.model, CPU, engine.max_positions, name="stop")
    late = sequence(1, [5, 6, 7])
    worker.submit(late)
    worker.stop()  # before the next tick hands `late` over

    assert isinstance(await asyncio.wait_for(late.outbox.get(), 5), ModelUnloading)
    with pytest.raises(ModelUnloading):
        worker.submit(sequence(2, [5, 6, 7]))
