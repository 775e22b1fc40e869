"""Constrained decoding: what a grammar costs per token, alone and in a shared batch.

- one stream: constrained (a JSON schema that cannot finish within the run) vs free,
  greedy, the same prompt and token count;
- 8 concurrent requests, half of them constrained, vs the same 8 all free;
- both on the small tiny model and, when its file is present, the real SmolLM2-135M
  (GGUF, dequantized by transformers) whose 49k vocabulary makes masks 6x wider.

Contestants alternate (A, B, A, B, ...) after a warm-up and medians are reported.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import torch

from bench.neuron import PROMPTS, Samples, _alternate, model_dir
from helexa.neuron.engine import LoadedModel, LoadSpec, SamplingParams, load
from helexa.neuron.engine.constraint import Grammar, grammars_for, json_schema_grammar
from helexa.neuron.hardware import discover, memory_budget

REPO = Path(__file__).resolve().parent.parent
SMOLLM2 = REPO / ".cache" / "models" / "smollm2" / "SmolLM2-135M-Instruct.Q4_1.gguf"
NEW_TOKENS = 48
CONCURRENCY = 8
TARGET = 0.8  # constrained / free tokens per second
# Never complete within NEW_TOKENS, so both sides decode exactly as many tokens; strings,
# integers and punctuation give masks of every size (from one token to most of the vocabulary).
SCHEMA = {
    "type": "array",
    "minItems": 100,
    "items": {
        "type": "object",
        "properties": {"id": {"type": "integer"}, "name": {"type": "string", "maxLength": 6}},
        "required": ["id", "name"],
        "additionalProperties": False,
    },
}


async def run(quick: bool) -> str:
    size = "tiny" if quick else "small"
    reps = 2 if quick else 5
    budget = memory_budget(discover().devices, reserve_mb=0)
    loaded = await asyncio.to_thread(load, LoadSpec(f"helexa-{size}", path=model_dir(size)), budget)
    tables = [await _tables(loaded, f"helexa-{size} (random weights)", reps)]
    if SMOLLM2.exists() and not quick:
        real = await asyncio.to_thread(_load_gguf, SMOLLM2)
        tables.append(await _tables(real, "SmolLM2-135M-Instruct (Q4_1 GGUF, dequantized)", reps))
    intro = (
        "## constrained decoding\n\n"
        f"Greedy, {NEW_TOKENS} new tokens per request, torch threads "
        f"{torch.get_num_threads()}, {reps} alternating repetitions after a warm-up; the "
        "constrained side follows a JSON schema (an array of objects with an integer and a "
        "short string) that cannot finish within the run. Free rows mask eos so both sides "
        "decode the same count. The grammar library is llguidance (docs/neuron.md says why).\n"
    )
    return "\n".join([intro, *tables])


async def _tables(loaded: LoadedModel, name: str, reps: int) -> str:
    try:
        grammars = grammars_for(loaded.tokenizer, loaded.vocab_size, loaded.eos_token_ids)
        grammar = grammars.compile(json_schema_grammar(SCHEMA), "bench")
        prompts = [loaded.tokenizer(p)["input_ids"] for p in PROMPTS[:CONCURRENCY]]
        single_c, single_f = await _alternate(
            reps,
            lambda: _tokens_per_s(loaded, prompts[:1], [grammar]),
            lambda: _tokens_per_s(loaded, prompts[:1], [None]),
        )
        half = CONCURRENCY // 2
        mixed, free = await _alternate(
            reps,
            lambda: _tokens_per_s(loaded, prompts, [grammar] * half + [None] * half),
            lambda: _tokens_per_s(loaded, prompts, [None] * CONCURRENCY),
        )
    finally:
        loaded.close()
    return "\n".join(
        [
            f"### {name}: tokens/s",
            "",
            "| | constrained | free | ratio | target |",
            "|---|---:|---:|---:|---:|",
            _row("1 stream, median", single_c, single_f, "median"),
            _row("1 stream, best", single_c, single_f, "best"),
            _row(
                f"{CONCURRENCY} streams ({half} constrained) vs {CONCURRENCY} free, median",
                mixed,
                free,
                "median",
            ),
            _row(
                f"{CONCURRENCY} streams ({half} constrained) vs {CONCURRENCY} free, best",
                mixed,
                free,
                "best",
            ),
            "",
        ]
    )


def _row(label: str, ours: Samples, theirs: Samples, which: str) -> str:
    a, b = getattr(ours, which), getattr(theirs, which)
    ratio = a / b
    verdict = "met" if ratio >= TARGET else "**missed**"
    return f"| {label} | {a:.1f} | {b:.1f} | {ratio:.2f}x | >= {TARGET}x ({verdict}) |"


async def _tokens_per_s(
    loaded: LoadedModel, prompts: list[list[int]], grammars: list[Grammar | None]
) -> float:
    async def one(prompt: list[int], grammar: Grammar | None) -> int:
        params = SamplingParams(
            max_new_tokens=NEW_TOKENS,
            temperature=0,
            min_new_tokens=0 if grammar else NEW_TOKENS,
            stop_token_ids=loaded.eos_token_ids,
            grammar=grammar,
        )
        return sum([1 async for _ in loaded.stream(prompt, params)])

    started = time.perf_counter()
    counts = await asyncio.gather(*(one(p, g) for p, g in zip(prompts, grammars, strict=True)))
    return sum(counts) / (time.perf_counter() - started)


def _load_gguf(path: Path) -> LoadedModel:
    """The neuron cannot load GGUF yet: transformers dequantizes it, wrapped like a load."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    started = time.perf_counter()
    tokenizer: Any = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    model: Any = AutoModelForCausalLM.from_pretrained(
        path.parent, gguf_file=path.name, dtype=torch.float32
    ).eval()
    eos = model.generation_config.eos_token_id
    return LoadedModel(
        model_id="smollm2",
        model=model,
        tokenizer=tokenizer,
        dtype="float32",
        devices=[],
        device=torch.device("cpu"),
        memory_mb=0,
        context_length=2048,
        max_positions=int(model.config.max_position_embeddings),
        eos_token_ids=frozenset(eos if isinstance(eos, list) else [eos]),
        load_seconds=time.perf_counter() - started,
    )
