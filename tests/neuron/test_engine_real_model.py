"""The engine on real weights (SmolLM2-135M-Instruct, Q4_1 GGUF, dequantized to float32).

Random weights rarely end a turn; this model does, so here greedy decoding is
compared with raw `model.generate` up to its own end-of-turn token, alone and
batched with three prompts of other lengths.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from helexa.neuron.engine import DeviceBudget, LoadedModel, LoadSpec, MemoryBudget, SamplingParams
from helexa.neuron.engine import load as load_model

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
    loaded = load_model(LoadSpec("smollm2", path=smollm2_gguf, dtype="float32"), BUDGET)
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
