"""The owner thread's inbox: a burst is prefilled together; handover, cancel and stop races."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from helexa.errors import APIError, GenerationFailed, ModelUnloading, Overloaded
from helexa.neuron.engine import DeviceBudget, LoadedModel, LoadSpec, MemoryBudget, SamplingParams
from helexa.neuron.engine import load as load_model
from helexa.neuron.engine import worker as worker_module
from helexa.neuron.engine.batch import keep_rows, merge
from helexa.neuron.engine.generation import EndOfSequence, Generation
from helexa.neuron.engine.prefill import prefill
from helexa.neuron.engine.sampling import RowSampler
from helexa.neuron.engine.worker import EngineWorker
from helexa.testing.tiny_model import with_sliding_window

BUDGET = MemoryBudget((DeviceBudget(0, "cpu", 16_000),))
CPU = torch.device("cpu")
GREEDY = SamplingParams(max_new_tokens=4, temperature=0)


@pytest.fixture(scope="module")
def engine(tiny_model_dir: Path) -> Iterator[LoadedModel]:
    loaded = load_model(LoadSpec("tiny", path=tiny_model_dir), BUDGET)
    yield loaded
    loaded.close()


def sequence(seq_id: int, prompt: list[int]) -> Generation:
    return Generation(seq_id, prompt, RowSampler.create(GREEDY), asyncio.get_running_loop())


@pytest.fixture
def prefill_sizes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many prompts each prefill the worker runs takes, in order."""
    sizes: list[int] = []

    def spy(model: Any, prompts: list[list[int]], device: torch.device) -> Any:
        sizes.append(len(prompts))
        return prefill(model, prompts, device)

    monkeypatch.setattr(worker_module, "prefill", spy)
    return sizes


async def test_streams_started_in_one_tick_are_prefilled_together(
    engine: LoadedModel, prefill_sizes: list[int]
) -> None:

    async def collect(prompt: list[int]) -> list[int]:
        return [t async for t in engine.stream(prompt, GREEDY)]

    prompts = [[10 + i] * (3 + i) for i in range(8)]
    outputs = await asyncio.gather(*(collect(p) for p in prompts))

    assert prefill_sizes == [8]
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
        assert isinstance(await kept.outbox.get(), EndOfSequence)
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


LONG = SamplingParams(max_new_tokens=12, min_new_tokens=12, temperature=0)


async def collect(engine: LoadedModel, prompt: list[int], params: SamplingParams) -> list[int]:
    return [t async for t in engine.stream(prompt, params)]


async def outcome(engine: LoadedModel, prompt: list[int], params: SamplingParams) -> Any:
    """The tokens, or the exception the stream ended with."""
    try:
        return await asyncio.wait_for(collect(engine, prompt, params), 30)
    except APIError as exc:
        return exc


def failing_once(real: Any, error: BaseException) -> Any:
    calls = {"n": 0}

    def fake(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 1:
            raise error
        return real(*args, **kwargs)

    return fake


async def test_a_failed_merge_fails_every_sequence_and_the_model_keeps_serving(
    engine: LoadedModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(worker_module, "merge", failing_once(merge, RuntimeError("merge broke")))
    running = engine.stream([5, 6, 7], LONG)
    first = await anext(running)  # running alone, so the next newcomer is merged in
    joining = asyncio.ensure_future(outcome(engine, [8, 9], LONG))

    with pytest.raises(GenerationFailed, match="merge broke"):
        async for _ in running:
            pass
    failed = await joining

    assert isinstance(first, int)
    assert isinstance(failed, GenerationFailed) and failed.status == 500
    assert len(await collect(engine, [5, 6, 7], LONG)) == 12  # the thread still serves


async def test_a_failed_row_drop_fails_the_rest_of_the_batch_and_the_model_keeps_serving(
    engine: LoadedModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        worker_module, "keep_rows", failing_once(keep_rows, RuntimeError("slice broke"))
    )
    short = SamplingParams(max_new_tokens=2, min_new_tokens=2, temperature=0)

    ended, left = await asyncio.gather(
        outcome(engine, [5, 6, 7], short), outcome(engine, [8, 9, 10], LONG)
    )

    assert len(ended) == 2  # finished before its row was dropped
    assert isinstance(left, GenerationFailed) and "slice broke" in left.message
    assert engine.active_sequences == 0
    assert len(await collect(engine, [5, 6, 7], LONG)) == 12


@pytest.mark.parametrize("stage", ["decode_step", "prefill"])
async def test_out_of_memory_while_generating_is_a_retryable_503_and_the_model_keeps_serving(
    engine: LoadedModel, monkeypatch: pytest.MonkeyPatch, stage: str
) -> None:
    real = getattr(worker_module, stage)
    oom = torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
    monkeypatch.setattr(worker_module, stage, failing_once(real, oom))

    failed = await outcome(engine, [5, 6, 7], LONG)

    assert isinstance(failed, Overloaded)
    assert (failed.status, failed.code) == (503, "out_of_memory")
    assert failed.headers() == {"Retry-After": "1"}
    assert len(await collect(engine, [5, 6, 7], LONG)) == 12


async def test_a_prefill_takes_newcomers_up_to_its_token_cap(
    engine: LoadedModel, prefill_sizes: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(worker_module, "PREFILL_MAX_TOKENS", 10)

    outputs = await asyncio.gather(*(collect(engine, [7] * 4, GREEDY) for _ in range(3)))

    assert prefill_sizes == [2, 1]  # 4 + 4 fit in 10 tokens, the third prompt waits a step
    assert all(len(tokens) == 4 for tokens in outputs)


@pytest.fixture(scope="module")
def sliding_engine(
    tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LoadedModel]:
    """The tiny model with every layer a sliding-window layer (as Gemma / Mistral have some)."""
    directory = with_sliding_window(tiny_model_dir, tmp_path_factory.mktemp("sliding"))
    loaded = load_model(LoadSpec("sliding", path=directory), BUDGET)
    yield loaded
    loaded.close()


async def test_sliding_window_models_serve_concurrent_requests_one_at_a_time(
    sliding_engine: LoadedModel,
) -> None:
    prompts = [[5 + i] * (3 + 4 * i) for i in range(3)]  # the longest runs past the window
    alone = [await collect(sliding_engine, p, LONG) for p in prompts]

    together = await asyncio.gather(*(outcome(sliding_engine, p, LONG) for p in prompts))

    assert together == alone


async def test_a_dead_engine_thread_fails_its_streams_and_refuses_new_ones(
    engine: LoadedModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    worker = EngineWorker(engine.model, CPU, engine.max_positions, name="dies")

    def die() -> bool:
        raise SystemExit  # anything that ends the thread

    monkeypatch.setattr(worker, "_iterate", die)  # from the loop's next pass on
    running = sequence(1, [5, 6, 7])
    worker.submit(running)
    items = [await asyncio.wait_for(running.outbox.get(), 10)]
    while not isinstance(items[-1], BaseException):
        items.append(await asyncio.wait_for(running.outbox.get(), 10))
    await asyncio.to_thread(worker._thread.join, 10)

    assert isinstance(items[-1], GenerationFailed) and "SystemExit" in items[-1].message
    assert not worker.alive
    with pytest.raises(GenerationFailed, match="engine thread has stopped"):
        worker.submit(sequence(2, [5, 6, 7]))
