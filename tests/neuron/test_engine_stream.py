"""Streaming from the real tiny model: exactness vs generate, batching, seeds, cancellation."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from helexa.errors import BadRequest, ContextLengthExceeded, ModelUnloading
from helexa.neuron.engine import DeviceBudget, LoadedModel, LoadSpec, MemoryBudget, SamplingParams
from helexa.neuron.engine import load as load_model

BUDGET = MemoryBudget((DeviceBudget(0, "cpu", 16_000),))
PROMPTS = [
    "hello world",
    "def add(a, b):\n    return",
    "The quick brown fox jumps over the lazy dog and then",
    '{"name": "helexa", "tokens": [1, 2,',
]
N = 24


@pytest.fixture(scope="module")
def engine(tiny_model_dir: Path) -> Iterator[LoadedModel]:
    loaded = load_model(LoadSpec("tiny", path=tiny_model_dir), BUDGET)
    yield loaded
    loaded.close()


@pytest.fixture(scope="module")
def prompt_ids(engine: LoadedModel) -> list[list[int]]:
    return [engine.tokenizer(p)["input_ids"] for p in PROMPTS]


def greedy(engine: LoadedModel, n: int = N) -> SamplingParams:
    # min_new_tokens = n masks eos exactly as generate(min_new_tokens=n) does.
    return SamplingParams(
        max_new_tokens=n, temperature=0, min_new_tokens=n, stop_token_ids=engine.eos_token_ids
    )


def reference(engine: LoadedModel, prompt: list[int], n: int = N) -> list[int]:
    with torch.inference_mode():
        out = engine.model.generate(
            torch.tensor([prompt]),
            max_new_tokens=n,
            min_new_tokens=n,
            do_sample=False,
            eos_token_id=sorted(engine.eos_token_ids),
            pad_token_id=0,
        )
    tokens: list[int] = out[0, len(prompt) :].tolist()
    return tokens


async def collect(engine: LoadedModel, prompt: list[int], params: SamplingParams) -> list[int]:
    return [t async for t in engine.stream(prompt, params)]


async def wait_until_idle(engine: LoadedModel, deadline_s: float = 10.0) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if not engine.active_sequences:
            return
        await asyncio.sleep(0.01)


async def test_single_stream_matches_generate_token_for_token(
    engine: LoadedModel, prompt_ids: list[list[int]]
) -> None:
    for prompt in prompt_ids:
        assert await collect(engine, prompt, greedy(engine)) == reference(engine, prompt)


async def test_concurrent_streams_each_match_their_solo_generate(
    engine: LoadedModel, prompt_ids: list[list[int]]
) -> None:
    expected = [reference(engine, p) for p in prompt_ids]

    got = await asyncio.gather(*(collect(engine, p, greedy(engine)) for p in prompt_ids))

    assert got == expected


async def test_sequences_joining_a_running_batch_do_not_change_its_output(
    engine: LoadedModel, prompt_ids: list[list[int]]
) -> None:
    first, *others = prompt_ids
    expected = [reference(engine, p) for p in prompt_ids]
    first_tokens: list[int] = []
    joined: list[asyncio.Task[list[int]]] = []
    async with contextlib.aclosing(engine.stream(first, greedy(engine))) as stream:
        async for token in stream:
            first_tokens.append(token)
            if len(first_tokens) == 5:  # join mid-way, with caches of other lengths
                joined = [asyncio.create_task(collect(engine, p, greedy(engine))) for p in others]

    assert [first_tokens, *await asyncio.gather(*joined)] == expected


async def test_same_seed_gives_same_tokens_alone_and_in_a_batch(
    engine: LoadedModel, prompt_ids: list[list[int]]
) -> None:
    seeded = SamplingParams(max_new_tokens=N, temperature=1.0, top_p=0.95, seed=7)
    alone = await collect(engine, prompt_ids[0], seeded)

    batched = await asyncio.gather(
        collect(engine, prompt_ids[0], seeded),
        *(collect(engine, p, SamplingParams(max_new_tokens=N, seed=1)) for p in prompt_ids[1:]),
    )
    other_seed = await collect(engine, prompt_ids[0], SamplingParams(max_new_tokens=N, seed=8))

    assert batched[0] == alone
    assert other_seed != alone


async def test_top_k_one_and_tiny_top_p_sample_the_greedy_token(
    engine: LoadedModel, prompt_ids: list[list[int]]
) -> None:
    expected = await collect(engine, prompt_ids[1], greedy(engine))
    eos = engine.eos_token_ids

    top_k = SamplingParams(N, top_k=1, seed=3, min_new_tokens=N, stop_token_ids=eos)
    top_p = SamplingParams(N, top_p=1e-6, seed=3, min_new_tokens=N, stop_token_ids=eos)

    assert await collect(engine, prompt_ids[1], top_k) == expected
    assert await collect(engine, prompt_ids[1], top_p) == expected


async def test_a_stop_id_ends_the_stream_unyielded_unless_min_new_tokens(
    engine: LoadedModel, prompt_ids: list[list[int]]
) -> None:
    # A prompt whose greedy output changes token after the first one: stop on the new token.
    prompt, expected, cut = next(
        (p, out, i)
        for p in prompt_ids
        for out in [reference(engine, p)]
        for i in range(1, N)
        if out[i] not in out[:i]
    )
    stop = frozenset({expected[cut]})

    stopped = await collect(engine, prompt, SamplingParams(N, 0, stop_token_ids=stop))
    held = SamplingParams(N, 0, stop_token_ids=stop, min_new_tokens=cut + 1)
    longer = await collect(engine, prompt, held)

    assert stopped == expected[:cut]
    assert len(longer) > cut and expected[cut] not in longer[: cut + 1]


async def test_max_new_tokens_bounds_the_stream(
    engine: LoadedModel, prompt_ids: list[list[int]]
) -> None:
    assert len(await collect(engine, prompt_ids[0], SamplingParams(max_new_tokens=3))) == 3
    assert await collect(engine, prompt_ids[0], SamplingParams(max_new_tokens=0)) == []


async def test_eight_concurrent_streams_all_progress(
    engine: LoadedModel, prompt_ids: list[list[int]]
) -> None:
    events: list[tuple[str, int]] = []

    async def consume(index: int) -> None:
        prompt = prompt_ids[index % len(prompt_ids)]
        async for _ in engine.stream(prompt, greedy(engine, 48)):
            if ("first", index) not in events:
                events.append(("first", index))
        events.append(("done", index))

    tasks = []
    for index in range(8):
        tasks.append(asyncio.create_task(consume(index)))
        await asyncio.sleep(0)  # let each start in turn
    await asyncio.gather(*tasks)

    assert events.index(("first", 7)) < events.index(("done", 0))


async def test_cancelling_a_stream_frees_its_slot_and_the_rest_continue(
    engine: LoadedModel, prompt_ids: list[list[int]]
) -> None:
    expected = [reference(engine, p) for p in prompt_ids[1:]]
    five_tokens = asyncio.Event()

    async def doomed() -> None:
        count = 0
        async for _ in engine.stream(prompt_ids[0], greedy(engine, 10_000)):
            count += 1
            if count == 5:
                five_tokens.set()

    victim = asyncio.create_task(doomed())
    survivors = [asyncio.create_task(collect(engine, p, greedy(engine))) for p in prompt_ids[1:]]
    await five_tokens.wait()
    victim.cancel()

    assert await asyncio.gather(*survivors) == expected
    # Uncancelled, the victim would run to the model's 4096 positions: seconds more.
    await wait_until_idle(engine, deadline_s=2.0)
    assert engine.active_sequences == 0
    assert victim.cancelled()


async def test_a_prompt_past_the_model_positions_is_refused(engine: LoadedModel) -> None:
    too_long = [5] * engine.max_positions

    with pytest.raises(ContextLengthExceeded):
        await collect(engine, too_long, SamplingParams(max_new_tokens=4))


async def test_empty_prompts_and_unknown_token_ids_are_bad_requests(engine: LoadedModel) -> None:
    with pytest.raises(BadRequest):
        await collect(engine, [], SamplingParams(max_new_tokens=4))
    with pytest.raises(BadRequest):
        await collect(engine, [1, engine.vocab_size], SamplingParams(max_new_tokens=4))
    assert engine.active_sequences == 0


async def test_generation_stops_at_the_model_positions(engine: LoadedModel) -> None:
    nearly_full = [5] * (engine.max_positions - 3)

    tokens = await collect(engine, nearly_full, SamplingParams(max_new_tokens=50, temperature=0))

    assert len(tokens) == 3


async def test_close_fails_open_streams_with_model_unloading(tiny_model_dir: Path) -> None:
    loaded = load_model(LoadSpec("tiny", path=tiny_model_dir), BUDGET)
    prompt = loaded.tokenizer("hello")["input_ids"]
    started = asyncio.Event()

    async def endless() -> None:
        async for _ in loaded.stream(prompt, greedy(loaded, 100_000)):
            started.set()

    task = asyncio.create_task(endless())
    await started.wait()
    await asyncio.to_thread(loaded.close)

    with pytest.raises(ModelUnloading):
        await task


async def test_streams_after_close_are_refused(tiny_model_dir: Path) -> None:
    loaded = load_model(LoadSpec("tiny", path=tiny_model_dir), BUDGET)
    loaded.close()

    with pytest.raises(ModelUnloading):
        await collect(loaded, [1, 2, 3], SamplingParams(max_new_tokens=4))
