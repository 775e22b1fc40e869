"""The engine on real weights (SmolLM2-135M-Instruct, Q4_1 GGUF, dequantized to float32).

Random weights rarely end a turn; this model does, so here greedy decoding is
compared with raw `model.generate` up to its own end-of-turn token, alone and
batched with three prompts of other lengths, and a conversation's second turn
with its first turn taken from the prefix cache, alone and joining a running
batch; prompts longer than 48 tokens are prefilled in chunks.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from helexa.neuron.engine import DeviceBudget, LoadedModel, LoadSpec, MemoryBudget, SamplingParams
from helexa.neuron.engine import load as load_model
from helexa.neuron.engine.spec import StreamStats

BUDGET = MemoryBudget((DeviceBudget(0, "cpu", 16_000),))
QUESTIONS = [
    "What is the capital of France? Answer in one word.",
    "Name a primary color.",
    "Write one short sentence about the sea, and say why people like to look at it.",
    "What is 2 + 2?",
]
MAX_NEW = 32


@pytest.fixture(scope="module")
def engine(smollm2_gguf: Path) -> Iterator[LoadedModel]:
    # Prompts past 48 tokens are prefilled in chunks: every comparison with generate below
    # on a longer prompt (the system prompt ones) checks chunked prefill too.
    spec = LoadSpec(
        "smollm2",
        path=smollm2_gguf,
        dtype="float32",
        prefix_cache_mb=256,
        prefill_chunk_tokens=48,
    )
    loaded = load_model(spec, BUDGET)
    yield loaded
    loaded.close()


@pytest.fixture(scope="module")
def prompts(engine: LoadedModel) -> list[list[int]]:
    return [
        engine.tokenizer.apply_chat_template(
            [{"role": "user", "content": q}], add_generation_prompt=True, tokenize=True
        )["input_ids"]
        for q in QUESTIONS
    ]


def greedy(engine: LoadedModel) -> SamplingParams:
    return SamplingParams(
        max_new_tokens=MAX_NEW, temperature=0, stop_token_ids=engine.eos_token_ids
    )


def reference(engine: LoadedModel, prompt: list[int]) -> list[int]:
    """Raw generate, without the end-of-turn token it stops on (the engine never yields it)."""
    with torch.inference_mode():
        out = engine.model.generate(
            torch.tensor([prompt]),
            max_new_tokens=MAX_NEW,
            do_sample=False,
            eos_token_id=sorted(engine.eos_token_ids),
            pad_token_id=engine.tokenizer.pad_token_id,
        )
    tokens: list[int] = out[0, len(prompt) :].tolist()
    return [t for t in tokens if t not in engine.eos_token_ids]


async def collect(engine: LoadedModel, prompt: list[int]) -> list[int]:
    return [t async for t in engine.stream(prompt, greedy(engine))]


def test_the_gguf_loads_as_a_dequantized_float32_llama(engine: LoadedModel) -> None:
    assert (engine.weights_format, engine.quantization, engine.dtype) == ("gguf", "Q4_1", "float32")
    assert type(engine.model).__name__ == "LlamaForCausalLM"
    assert engine.memory_mb >= 134_515_008 * 4 // 2**20  # float32 parameters, measured
    assert engine.tokenizer.convert_ids_to_tokens(sorted(engine.eos_token_ids)) == ["<|im_end|>"]


async def test_greedy_alone_equals_generate_and_ends_at_end_of_turn(
    engine: LoadedModel, prompts: list[list[int]]
) -> None:
    tokens = await collect(engine, prompts[0])

    assert tokens == reference(engine, prompts[0])
    assert len(tokens) < MAX_NEW  # it ended on its own, at <|im_end|>
    assert engine.tokenizer.decode(tokens) == "The capital of France is Paris."


async def test_greedy_batched_with_three_others_equals_each_alone(
    engine: LoadedModel, prompts: list[list[int]]
) -> None:
    assert len({len(p) for p in prompts}) == len(prompts)  # different lengths: padding is real

    batched = await asyncio.gather(*(collect(engine, p) for p in prompts))

    assert batched == [reference(engine, p) for p in prompts]


SYSTEM = (
    "You are a careful assistant for a team of geographers. Answer briefly and exactly. "
    "Never invent facts; say so when you do not know. Use plain words. " * 6
)


def chat(engine: LoadedModel, messages: list[dict[str, str]]) -> list[int]:
    ids: list[int] = engine.tokenizer.apply_chat_template(
        messages, add_generation_prompt=True, tokenize=True
    )["input_ids"]
    return ids


async def collect_cached(
    engine: LoadedModel, prompt: list[int], started: asyncio.Event | None = None
) -> tuple[list[int], int]:
    stats = StreamStats()
    tokens = []
    async for token in engine.stream(prompt, greedy(engine), stats):
        tokens.append(token)
        if started is not None:
            started.set()
    return tokens, stats.cached_tokens


async def test_a_long_prompt_prefilled_in_chunks_equals_generate(engine: LoadedModel) -> None:
    travel = "You help travellers plan short trips by train. Keep answers to one line. " * 16
    ids = chat(engine, [{"role": "system", "content": travel}, {"role": "user", "content": "Hi"}])
    assert len(ids) > 4 * 48

    tokens, hit = await collect_cached(engine, ids)

    assert hit == 0
    assert tokens == reference(engine, ids)


async def test_a_second_turn_reuses_the_first_from_the_prefix_cache_and_equals_generate(
    engine: LoadedModel,
) -> None:
    first = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": QUESTIONS[0]}]
    turn_1 = chat(engine, first)
    reply, _ = await collect_cached(engine, turn_1)
    second = [
        *first,
        {"role": "assistant", "content": engine.tokenizer.decode(reply)},
        {"role": "user", "content": "And of Italy?"},
    ]
    turn_2 = chat(engine, second)

    tokens, hit = await collect_cached(engine, turn_2)

    assert hit >= len(turn_1)  # the whole first prompt, and the reply as far as it matches
    assert tokens == reference(engine, turn_2)
    assert "Rome" in engine.tokenizer.decode(tokens)


async def test_a_cached_prefix_joining_a_running_batch_equals_generate(
    engine: LoadedModel, prompts: list[list[int]]
) -> None:
    branch = chat(
        engine,
        [{"role": "system", "content": SYSTEM}, {"role": "user", "content": QUESTIONS[3]}],
    )
    await collect_cached(engine, chat(engine, [{"role": "system", "content": SYSTEM}]))
    started = [asyncio.Event() for _ in prompts[:3]]
    running = [
        asyncio.create_task(collect_cached(engine, p, event))
        for p, event in zip(prompts[:3], started, strict=True)
    ]
    for event in started:
        await event.wait()

    tokens, hit = await collect_cached(engine, branch)

    assert hit > 100  # the system prompt
    assert tokens == reference(engine, branch)
    assert [t for t, _ in await asyncio.gather(*running)] == [
        reference(engine, p) for p in prompts[:3]
    ]
