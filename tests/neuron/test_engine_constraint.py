"""Constrained decoding inside the batched engine (tiny random model, which never writes
valid JSON by chance): constrained rows follow their grammar, free rows are untouched."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch

from helexa.errors import BadRequest
from helexa.neuron.engine import DeviceBudget, LoadedModel, LoadSpec, MemoryBudget, SamplingParams
from helexa.neuron.engine import load as load_model
from helexa.neuron.engine.constraint import (
    Grammar,
    advance,
    grammars_for,
    json_schema_grammar,
    mask_logits,
)

BUDGET = MemoryBudget((DeviceBudget(0, "cpu", 16_000),))
SCHEMA = {
    "type": "object",
    "properties": {
        "n": {"type": "integer", "minimum": 0, "maximum": 999},
        "ok": {"type": "boolean"},
        "tag": {"type": "string", "enum": ["red", "green"]},
    },
    "required": ["n", "ok", "tag"],
    "additionalProperties": False,
}


@pytest.fixture(scope="module")
def engine(tiny_model_dir: Path) -> Iterator[LoadedModel]:
    loaded = load_model(LoadSpec("tiny", path=tiny_model_dir), BUDGET)
    yield loaded
    loaded.close()


def grammar_of(engine: LoadedModel, schema: dict[str, Any]) -> Grammar:
    grammars = grammars_for(engine.tokenizer, engine.vocab_size, engine.eos_token_ids)
    return grammars.compile(json_schema_grammar(schema), "schema")


def sampled(engine: LoadedModel, seed: int, grammar: Grammar | None = None) -> SamplingParams:
    return SamplingParams(
        max_new_tokens=40,
        temperature=1.0,
        seed=seed,
        stop_token_ids=engine.eos_token_ids,
        grammar=grammar,
    )


async def run(engine: LoadedModel, prompt: list[int], params: SamplingParams) -> list[int]:
    return [token async for token in engine.stream(prompt, params)]


def text(engine: LoadedModel, tokens: list[int]) -> str:
    decoded: str = engine.tokenizer.decode(tokens, skip_special_tokens=True)
    return decoded


async def test_free_output_of_the_random_model_is_not_json(engine: LoadedModel) -> None:
    tokens = await run(engine, [5, 6, 7], sampled(engine, seed=3))
    with pytest.raises(ValueError):
        json.loads(text(engine, tokens))


async def test_constrained_rows_answer_valid_json_sampled_and_greedy(engine: LoadedModel) -> None:
    grammar = grammar_of(engine, SCHEMA)
    params = [sampled(engine, seed, grammar) for seed in range(6)]
    params.append(replace(params[0], temperature=0.0, seed=None))
    outputs = await asyncio.gather(*(run(engine, [9, 10 + i], p) for i, p in enumerate(params)))
    for tokens in outputs:
        value = json.loads(text(engine, tokens))
        assert set(value) == {"n", "ok", "tag"} and value["tag"] in ("red", "green")
        assert isinstance(value["ok"], bool) and 0 <= value["n"] <= 999


async def test_free_rows_are_token_identical_beside_constrained_ones(
    engine: LoadedModel,
) -> None:
    grammar = grammar_of(engine, SCHEMA)
    free = [sampled(engine, seed) for seed in (11, 12, 13)]
    greedy = replace(free[0], temperature=0.0, seed=None)
    alone = [await run(engine, [20 + i, 21], p) for i, p in enumerate([*free, greedy])]

    constrained = [sampled(engine, seed, grammar) for seed in (1, 2, 3, 4)]
    mixed = await asyncio.gather(
        *(run(engine, [20 + i, 21], p) for i, p in enumerate([*free, greedy])),
        *(run(engine, [30 + i], p) for i, p in enumerate(constrained)),
    )
    assert list(mixed[:4]) == alone
    assert all(len(tokens) == 40 for tokens in alone)  # never cut short by the others


def test_mask_leaves_unconstrained_rows_bit_identical(engine: LoadedModel) -> None:
    class Row:
        def __init__(self, grammar: Grammar | None) -> None:
            self.constraint = grammar.start() if grammar is not None else None

    rows = [Row(None), Row(grammar_of(engine, SCHEMA)), Row(None)]
    logits = torch.randn(3, engine.vocab_size, generator=torch.Generator().manual_seed(0))
    before = logits.clone()
    mask_logits(logits, rows)
    assert torch.equal(logits[0], before[0]) and torch.equal(logits[2], before[2])
    allowed = torch.isfinite(logits[1]).nonzero().flatten().tolist()
    assert allowed and all(text(engine, [t]).startswith("{") for t in allowed)
    advance(rows, [0, allowed[0], 0])  # free rows ignore their token


def test_a_row_whose_matcher_failed_may_only_end(engine: LoadedModel) -> None:
    class Row:
        constraint = grammar_of(engine, SCHEMA).start()

    row = Row()
    bad = engine.tokenizer.encode("x", add_special_tokens=False)[0]
    advance([row], [bad])  # outside the grammar: the matcher is now in error
    logits = torch.zeros(1, engine.vocab_size)
    mask_logits(logits, [row])
    allowed = set(torch.isfinite(logits[0]).nonzero().flatten().tolist())
    assert allowed and allowed <= set(engine.eos_token_ids)


def test_a_schema_the_library_cannot_enforce_names_the_keyword(engine: LoadedModel) -> None:
    with pytest.raises(BadRequest) as info:
        grammar_of(engine, {"type": "object", "properties": {"a": {"$dynamicRef": "#x"}}})
    assert "$dynamicRef" in str(info.value) and info.value.param == "schema"


def test_masks_of_a_vocabulary_wider_than_one_chunk_match_the_library_bits(
    engine: LoadedModel,
) -> None:
    vocab = 40_000  # 3 chunks; ids past the tokenizer's own are padding, never allowed
    grammars = grammars_for(engine.tokenizer, vocab, engine.eos_token_ids)
    grammar = grammars.compile(json_schema_grammar({"type": "string", "maxLength": 3}), "s")

    class Row:
        constraint = grammar.start()

    row = Row()
    for token in engine.tokenizer.encode('"a', add_special_tokens=False):
        bits = row.constraint.matcher.compute_bitmask()
        expected = {i for i in range(vocab) if bits[i // 8] >> (i % 8) & 1}
        logits = torch.zeros(1, vocab)
        mask_logits(logits, [row])
        assert set(torch.isfinite(logits[0]).nonzero().flatten().tolist()) == expected
        advance([row], [token])
