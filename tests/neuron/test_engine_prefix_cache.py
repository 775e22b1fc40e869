"""The prefix cache: longest-prefix lookup, replacement of an extended entry, LRU budget;
and on the tiny model, reuse is exact: greedy output with the cache equals output without."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from helexa.neuron.engine import DeviceBudget, LoadedModel, LoadSpec, MemoryBudget, SamplingParams
from helexa.neuron.engine import load as load_model
from helexa.neuron.engine.prefix_cache import BLOCK_TOKENS, PrefixCache
from helexa.neuron.engine.spec import StreamStats
from helexa.testing.tiny_model import with_sliding_window

BUDGET = MemoryBudget((DeviceBudget(0, "cpu", 16_000),))


def states(length: int, value: float = 1.0) -> list[torch.Tensor]:
    """Two layers' keys and values, (1, 2, length, 4) float32: 128 bytes per position."""
    return [torch.full((1, 2, length, 4), value) for _ in range(4)]


def test_lookup_finds_the_longest_cached_prefix_token_by_token() -> None:
    cache = PrefixCache(budget_bytes=1 << 20)
    tokens = list(range(100, 150))
    cache.insert(tokens, states(50))

    match = cache.lookup([*tokens[:37], 7, 8, 9])

    assert match is not None
    assert match.length == 37  # not rounded down to a block
    assert [s.shape[-2] for s in match.states] == [37] * 4
    assert (cache.counters.queried_tokens, cache.counters.hit_tokens) == (40, 37)


def test_lookup_always_leaves_the_last_prompt_token_to_prefill() -> None:
    cache = PrefixCache(budget_bytes=1 << 20)
    tokens = list(range(40))
    cache.insert(tokens, states(40))

    match = cache.lookup(tokens)

    assert match is not None and match.length == 39


def test_less_than_a_block_in_common_is_a_miss() -> None:
    cache = PrefixCache(budget_bytes=1 << 20)
    cache.insert(list(range(40)), states(40))

    assert cache.lookup(list(range(BLOCK_TOKENS - 1)) + [999] * 20) is None
    assert cache.lookup([5, *range(1, 40)]) is None


def test_an_entry_extending_an_older_one_replaces_it() -> None:
    cache = PrefixCache(budget_bytes=1 << 20)
    turn_1 = list(range(40))
    cache.insert(turn_1, states(40))
    cache.insert(turn_1 + list(range(500, 520)), states(60))

    assert len(cache) == 1
    assert cache.bytes_held == 60 * 128


def test_the_least_recently_used_entry_is_evicted_for_room() -> None:
    per_entry = 40 * 128
    cache = PrefixCache(budget_bytes=2 * per_entry)
    first, second, third = ([n] * 40 for n in (1, 2, 3))
    cache.insert(first, states(40))
    cache.insert(second, states(40))
    assert cache.lookup(first) is not None  # first is now the most recently used

    cache.insert(third, states(40))

    assert cache.lookup(second) is None
    assert cache.lookup(first) is not None and cache.lookup(third) is not None
    assert (cache.bytes_held, cache.counters.evictions) == (2 * per_entry, 1)


def test_an_entry_larger_than_the_budget_is_not_kept() -> None:
    cache = PrefixCache(budget_bytes=1000)
    cache.insert(list(range(40)), states(40))
    assert (len(cache), cache.bytes_held) == (0, 0)


# --- on the tiny model -------------------------------------------------------------------


def load(directory: Path, prefix_cache_mb: int, chunk: int = 512) -> LoadedModel:
    spec = LoadSpec(
        "tiny", path=directory, prefix_cache_mb=prefix_cache_mb, prefill_chunk_tokens=chunk
    )
    return load_model(spec, BUDGET)


@pytest.fixture(scope="module")
def cached(tiny_model_dir: Path) -> Iterator[LoadedModel]:
    loaded = load(tiny_model_dir, prefix_cache_mb=64)
    yield loaded
    loaded.close()


@pytest.fixture(scope="module")
def uncached(tiny_model_dir: Path) -> Iterator[LoadedModel]:
    loaded = load(tiny_model_dir, prefix_cache_mb=0)
    yield loaded
    loaded.close()


def greedy(max_new: int) -> SamplingParams:
    # The random model's greedy output repeats one token; penalising repeats makes it vary,
    # so an equal output says the logits agree.
    return SamplingParams(max_new_tokens=max_new, temperature=0, repetition_penalty=5.0)


async def run(
    engine: LoadedModel,
    prompt: list[int],
    max_new: int = 12,
    started: asyncio.Event | None = None,
) -> tuple[list[int], int]:
    """Greedy tokens and the prompt tokens taken from the cache; `started` is set at the
    first token."""
    stats = StreamStats()
    tokens = []
    async for token in engine.stream(prompt, greedy(max_new), stats):
        tokens.append(token)
        if started is not None:
            started.set()
    return tokens, stats.cached_tokens


def conversation(seed: int, system: int = 70) -> tuple[list[int], list[int]]:
    """A shared system prompt and a user turn, random ids in the tiny vocabulary."""
    rng = random.Random(seed)
    return [rng.randrange(3, 4000) for _ in range(system)], [
        rng.randrange(3, 4000) for _ in range(9)
    ]


async def test_a_conversation_turn_reuses_the_last_turn_and_decodes_the_same_tokens(
    cached: LoadedModel, uncached: LoadedModel
) -> None:
    system, user = conversation(1)
    turn_1 = system + user
    reply, hit = await run(cached, turn_1)
    assert hit == 0
    assert reply == (await run(uncached, turn_1))[0]
    turn_2 = turn_1 + reply + [11, 12, 13, 14]

    again, hit = await run(cached, turn_2)

    # The KV of turn 1's prompt and of every reply token fed back (all but the last).
    assert hit == len(turn_1) + len(reply) - 1
    assert again == (await run(uncached, turn_2))[0]
    assert len(set(again)) > 2  # the comparison means something: the output varies


async def test_the_same_prompt_again_reuses_all_but_its_last_token(
    cached: LoadedModel, uncached: LoadedModel
) -> None:
    system, user = conversation(2)
    first, _ = await run(cached, system + user)

    second, hit = await run(cached, system + user)

    assert hit == len(system + user) - 1
    assert first == second == (await run(uncached, system + user))[0]


async def test_a_reply_that_ends_at_once_still_reports_its_cached_tokens(
    cached: LoadedModel,
) -> None:
    system, user = conversation(4)
    await run(cached, system + user)
    stops_at_once = SamplingParams(
        max_new_tokens=8, temperature=0, stop_token_ids=frozenset(range(cached.vocab_size))
    )
    stats = StreamStats()

    tokens = [t async for t in cached.stream(system + user, stops_at_once, stats)]

    assert (tokens, stats.cached_tokens) == ([], len(system + user) - 1)


async def test_a_running_request_s_prompt_is_found_before_it_finishes(
    cached: LoadedModel, uncached: LoadedModel
) -> None:
    system, user = conversation(5)
    started = asyncio.Event()
    running = asyncio.create_task(run(cached, system + user, 200, started))
    await started.wait()
    other = [*system, 31, 32, 33]

    tokens, hit = await run(cached, other)

    assert not running.done()  # still decoding: only its prompt can have been found
    assert hit == len(system)
    assert tokens == (await run(uncached, other))[0]
    running.cancel()


async def test_a_cached_prefix_joins_a_running_padded_batch_exactly(
    cached: LoadedModel, uncached: LoadedModel
) -> None:
    system, user = conversation(3)
    await run(cached, system + user, max_new=2)  # cache the system prompt's blocks
    others = [conversation(10 + i, system=5 + 7 * i)[0] for i in range(3)]
    expected = [(await run(uncached, p, max_new=30))[0] for p in others]
    branch = [*system, 21, 22, 23, 24, 25]
    expected_branch = (await run(uncached, branch))[0]

    started = [asyncio.Event() for _ in others]
    running = [
        asyncio.create_task(run(cached, p, 30, event))
        for p, event in zip(others, started, strict=True)
    ]
    for event in started:  # the batch is decoding (and padded: the lengths differ)
        await event.wait()
    joined, hit = await run(cached, branch)

    assert hit >= len(system) - 1
    assert joined == expected_branch
    assert [t for t, _ in await asyncio.gather(*running)] == expected


async def test_a_sliding_window_model_has_no_prefix_cache(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    directory = with_sliding_window(tiny_model_dir, tmp_path / "sliding")
    engine = load(directory, prefix_cache_mb=64)
    try:
        assert engine.prefix_cache is None and engine.prefix_cache_mb == 0
        prompt = list(range(3, 50))
        await run(engine, prompt)
        assert (await run(engine, prompt))[1] == 0
    finally:
        engine.close()


async def test_the_footprint_counts_the_bytes_the_cache_holds(tiny_model_dir: Path) -> None:
    engine = load(tiny_model_dir, prefix_cache_mb=64)
    try:
        before = engine.memory_mb
        await run(engine, list(range(3, 200)), max_new=4)
        held = engine.prefix_cache_bytes
        assert held > 0
        assert engine.memory_mb == before + -(-held // 2**20)
    finally:
        engine.close()


def test_the_budget_is_clamped_to_the_memory_left_past_the_weights(tiny_model_dir: Path) -> None:
    spec = LoadSpec("tiny", path=tiny_model_dir, prefix_cache_mb=1_000_000)
    engine = load_model(spec, MemoryBudget((DeviceBudget(0, "cpu", 100),)))
    try:
        assert 80 < engine.prefix_cache_mb < 100  # 100 MB free, less the weights x 1.2
        assert engine.prefix_cache is not None
        assert engine.prefix_cache.budget_bytes == engine.prefix_cache_mb * 2**20
    finally:
        engine.close()
