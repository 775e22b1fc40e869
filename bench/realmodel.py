"""The neuron engine vs raw transformers on a real model: SmolLM2-135M-Instruct (Q4_1 GGUF).

The same comparisons as the `neuron` section, on trained weights loaded from a
GGUF file (dequantized to float32 on CPU): single-stream tok/s vs raw
`generate`, 8 concurrent vs 8 sequential, time to first token at 1 and 8
streams, and load time vs raw `from_pretrained(..., gguf_file=...)`.
Prompts go through the model's chat template, as a chat request's would.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import torch

from bench.neuron import (
    CONCURRENCY,
    NEW_TOKENS,
    PROMPTS,
    _alternate,
    _compare_concurrent,
    _compare_single,
    _first_token_table,
)
from helexa.neuron.engine import LoadSpec, load
from helexa.neuron.hardware import discover, memory_budget
from helexa.testing.smollm2 import fetch

REPO = Path(__file__).resolve().parent.parent


async def run(quick: bool) -> str:
    gguf = await asyncio.to_thread(fetch, REPO / ".cache" / "models" / "smollm2")
    reps = 1 if quick else 2
    # The quick profile (run by `make test`) keeps to one load and the single stream.
    load_table = "" if quick else await _compare_loads(gguf, reps)
    budget = memory_budget(discover().devices, reserve_mb=0)
    spec = LoadSpec("SmolLM2-135M-Instruct", path=gguf, dtype="float32")
    loaded = await asyncio.to_thread(load, spec, budget)
    try:
        prompts = [
            loaded.tokenizer.apply_chat_template(
                [{"role": "user", "content": p}], add_generation_prompt=True, tokenize=True
            )["input_ids"]
            for p in PROMPTS[:CONCURRENCY]
        ]
        single = await _compare_single(loaded, prompts[0], reps)
        batched = "" if quick else await _compare_concurrent(loaded, prompts, reps)
        first_token = "" if quick else await _first_token_table(loaded, prompts, reps)
        memory_mb = loaded.memory_mb
    finally:
        loaded.close()
    intro = (
        "## real model (SmolLM2-135M-Instruct, GGUF)\n\n"
        f"`{gguf.name}` (134.5M parameters, {gguf.stat().st_size / 2**20:.0f} MB file) "
        f"dequantized to float32 on CPU ({memory_mb} MB measured), torch threads "
        f"{torch.get_num_threads()}, chat-templated prompts, greedy, {NEW_TOKENS} new tokens "
        f"per request (eos masked so every run decodes exactly {NEW_TOKENS}), {reps} "
        "alternating repetitions after a warm-up of each. The `neuron` section's caveats "
        "about a shared machine apply here in full.\n"
    )
    return "\n".join(part for part in (intro, single, batched, first_token, load_table) if part)


async def _compare_loads(gguf: Path, reps: int) -> str:
    def engine_load() -> float:
        budget = memory_budget(discover().devices, reserve_mb=0)
        started = time.perf_counter()
        loaded = load(LoadSpec("bench", path=gguf, dtype="float32"), budget)
        seconds = time.perf_counter() - started
        loaded.close()
        return seconds

    def raw_load() -> float:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        started = time.perf_counter()
        AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model: Any = AutoModelForCausalLM.from_pretrained(
            gguf.parent, gguf_file=gguf.name, dtype=torch.float32
        )
        model.eval()
        return time.perf_counter() - started

    engine, raw = await _alternate(
        reps,
        lambda: asyncio.to_thread(engine_load),
        lambda: asyncio.to_thread(raw_load),
        higher_is_better=False,
    )
    return "\n".join(
        [
            "### load of the GGUF (seconds, tokenizer + dequantized model, warm page cache)",
            "",
            "| | helexa `load()` | raw `from_pretrained(gguf_file=...)` | ratio |",
            "|---|---:|---:|---:|",
            f"| median | {engine.median:.2f} | {raw.median:.2f} | "
            f"{engine.median / raw.median:.2f}x |",
            f"| best | {engine.best:.2f} | {raw.best:.2f} | {engine.best / raw.best:.2f}x |",
            "",
            "`load()` also reads the GGUF header for the budget check (dequantized size), "
            "measures the footprint and starts the owner thread.",
            "",
        ]
    )
