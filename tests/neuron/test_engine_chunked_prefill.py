"""Chunked prefill: a long prompt goes in chunks between the running batch's decode steps,
and its output equals the unchunked one, token for token, with fixed chunks or chunks
sized by measured time ("auto")."""

from __future__ import annotations

import asyncio
import itertools
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from helexa.neuron.engine import DeviceBudget, LoadedModel, LoadSpec, MemoryBudget, SamplingParams
from helexa.neuron.engine import load as load_model
from helexa.neuron.engine import worker as worker_module
from helexa.neuron.engine.batch import decode_step
from helexa.neuron.engine.chunk_size import CHUNK_BUDGET, CHUNK_FLOOR
from helexa.neuron.engine.prefill import extend
from helexa.neuron.engine.spec import PrefillChunk

BUDGET = MemoryBudget((DeviceBudget(0, "cpu", 16_000),))
CHUNK = 64


def load(directory: Path, chunk: PrefillChunk) -> LoadedModel:
    spec = LoadSpec("tiny", path=directory, prefill_chunk_tokens=chunk)  # no prefix cache
    return load_model(spec, BUDGET)


@pytest.fixture(scope="module")
def chunked(tiny_model_dir: Path) -> Iterator[LoadedModel]:
    loaded = load(tiny_model_dir, CHUNK)
    yield loaded
    loaded.close()


@pytest.fixture(scope="module")
def auto(tiny_model_dir: Path) -> Iterator[LoadedModel]:
    loaded = load(tiny_model_dir, "auto")
    yield loaded
    loaded.close()


@pytest.fixture(scope="module")
def whole(tiny_model_dir: Path) -> Iterator[LoadedModel]:
    loaded = load(tiny_model_dir, 0)
    yield loaded
    loaded.close()


def greedy(max_new: int) -> SamplingParams:
    # Penalising repeats makes the random model's greedy output vary (see the cache tests).
    return SamplingParams(max_new_tokens=max_new, temperature=0, repetition_penalty=5.0)


def prompt(seed: int, length: int) -> list[int]:
    rng = random.Random(seed)
    return [rng.randrange(3, 4000) for _ in range(length)]


async def run(
    engine: LoadedModel, ids: list[int], max_new: int = 12, started: asyncio.Event | None = None
) -> list[int]:
    tokens = []
    async for token in engine.stream(ids, greedy(max_new)):
        tokens.append(token)
        if started is not None:
            started.set()
    return tokens


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """ "chunk" / "step" for each prefill chunk and decode step the worker runs, in order."""
    seen: list[str] = []

    def chunk_spy(*args: Any) -> Any:
        seen.append("chunk")
        return extend(*args)

    def step_spy(*args: Any) -> Any:
        seen.append("step")
        return decode_step(*args)

    monkeypatch.setattr(worker_module, "extend", chunk_spy)
    monkeypatch.setattr(worker_module, "decode_step", step_spy)
    return seen


async def test_a_long_prompt_alone_decodes_the_same_chunked_or_whole(
    chunked: LoadedModel, whole: LoadedModel, calls: list[str]
) -> None:
    ids = prompt(1, 5 * CHUNK + 7)

    tokens = await run(chunked, ids)

    assert calls.count("chunk") == 6
    assert tokens == await run(whole, ids)
    assert len(set(tokens)) > 2  # the output varies: equal means the logits agree


async def test_running_streams_keep_decoding_between_the_chunks_of_a_long_prompt(
    chunked: LoadedModel, whole: LoadedModel, calls: list[str]
) -> None:
    shorts = [prompt(10 + i, 5 + 9 * i) for i in range(3)]
    long = prompt(2, 6 * CHUNK)
    expected = [await run(whole, p, max_new=40) for p in shorts]
    expected_long = await run(whole, long)
    calls.clear()

    started = [asyncio.Event() for _ in shorts]
    running = [
        asyncio.create_task(run(chunked, p, 40, event))
        for p, event in zip(shorts, started, strict=True)
    ]
    for event in started:
        await event.wait()
    long_tokens = await run(chunked, long)

    first, last = calls.index("chunk"), len(calls) - calls[::-1].index("chunk") - 1
    between = calls[first : last + 1]
    assert between.count("chunk") == 6
    assert between.count("step") >= 5  # a decode step of the running batch after each chunk
    assert long_tokens == expected_long
    assert await asyncio.gather(*running) == expected


async def test_without_chunks_a_long_prompt_is_prefilled_in_one_pass(
    whole: LoadedModel, calls: list[str]
) -> None:
    await run(whole, prompt(3, 6 * CHUNK))
    assert "chunk" not in calls  # the batched prefill took it


# Costs on a virtual clock (seconds), so the sizes the worker picks are known: a decode
# step costs STEP, a chunk of n prompt tokens CHUNK_BASE + n x PER_TOKEN. A chunk then
# costs the budget at (CHUNK_BUDGET x STEP - CHUNK_BASE) / PER_TOKEN = 60 tokens.
STEP, CHUNK_BASE, PER_TOKEN = 0.010, 0.002, 0.0001


@pytest.fixture
def virtual(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """("chunk", tokens) / ("step", rows) for each pass the worker runs, each advancing the
    worker's clock by its virtual cost."""
    now = [0.0]
    seen: list[tuple[str, int]] = []

    def chunk_spy(model: Any, batch: Any, tokens: list[int], start: int) -> Any:
        seen.append(("chunk", len(tokens)))
        now[0] += CHUNK_BASE + PER_TOKEN * len(tokens)
        return extend(model, batch, tokens, start)

    def step_spy(model: Any, batch: Any) -> Any:
        seen.append(("step", int(batch.positions.shape[0])))
        now[0] += STEP
        return decode_step(model, batch)

    monkeypatch.setattr(worker_module, "extend", chunk_spy)
    monkeypatch.setattr(worker_module, "decode_step", step_spy)
    monkeypatch.setattr(worker_module, "perf_counter", lambda: now[0])
    return seen


async def test_auto_chunks_are_sized_by_measured_cost_between_decode_steps(
    auto: LoadedModel, whole: LoadedModel, virtual: list[tuple[str, int]]
) -> None:
    shorts = [prompt(20 + i, 4 + 4 * i) for i in range(3)]  # at most 12 tokens: no chunks
    long = prompt(4, 6 * CHUNK)
    expected = [await run(whole, p, max_new=60) for p in shorts]
    expected_long = await run(whole, long)

    started = [asyncio.Event() for _ in shorts]
    running = [
        asyncio.create_task(run(auto, p, 60, event))
        for p, event in zip(shorts, started, strict=True)
    ]
    for event in started:
        await event.wait()
    virtual.clear()
    long_tokens = await run(auto, long)

    sizes = [n for kind, n in virtual if kind == "chunk"]
    assert sum(sizes) == len(long)
    assert sizes[0] == CHUNK_FLOOR  # nothing measured yet: the floor
    assert len(set(sizes)) >= 4  # each chunk re-sized from the last one's cost
    assert 50 <= max(sizes) <= 60  # approaching the size that costs the budget
    for n in sizes:  # no chunk costs more than the budget: the streams' gap stays bounded
        assert CHUNK_BASE + PER_TOKEN * n <= CHUNK_BUDGET * STEP + 1e-9
    kinds = [kind for kind, _ in virtual]
    first, last = kinds.index("chunk"), len(kinds) - kinds[::-1].index("chunk") - 1
    between = kinds[first : last + 1]
    assert "chunk" not in [a for a, b in itertools.pairwise(between) if b == "chunk"]
    assert long_tokens == expected_long  # varying chunk sizes, the same greedy output
    assert await asyncio.gather(*running) == expected


async def test_auto_with_nothing_running_prefills_a_long_prompt_in_one_pass(
    auto: LoadedModel, whole: LoadedModel, virtual: list[tuple[str, int]]
) -> None:
    ids = prompt(5, 6 * CHUNK)
    tokens = await run(auto, ids)
    assert "chunk" not in [kind for kind, _ in virtual]  # the batched prefill took it whole
    assert tokens == await run(whole, ids)
