"""Neuron engine vs raw transformers, on the same loaded model in one run.

- single stream: LoadedModel.stream vs model.generate, greedy, 64 new tokens;
- 8 concurrent streams vs the same 8 requests one after another (aggregate tok/s),
  with one padded `generate` batch of the same 8 as the ceiling for reference;
- time to first token of one stream alone and of 8 started together;
- load: helexa's load() vs AutoModelForCausalLM.from_pretrained.

Contestants alternate (A, B, A, B, ...) and medians are reported, so load from
other work on the machine hits both sides alike.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from helexa.neuron.engine import LoadedModel, LoadSpec, SamplingParams, load
from helexa.neuron.hardware import discover, memory_budget

REPO = Path(__file__).resolve().parent.parent
NEW_TOKENS = 64
CONCURRENCY = 8
TARGET_SINGLE = 0.95  # engine single stream / raw generate
TARGET_CONCURRENT = 4.0  # 8 concurrent / 8 sequential
PROMPTS = [
    "Write a short note about the weather in the mountains.",
    "def fibonacci(n):\n    ",
    '{"name": "helexa", "kind": "gateway", "ports": [',
    "List three reasons to run models on your own hardware:",
    "The quick brown fox jumps over the lazy dog, and then",
    "Explain how a reverse proxy forwards a streaming response.",
    "Once upon a time, in a data centre far away,",
    "SELECT name, count(*) FROM requests GROUP BY",
]


def model_dir(size: str) -> Path:
    """The tiny model builder's output for `size`, built on first use."""
    from helexa.testing.tiny_model import build

    out = REPO / ".cache" / "models" / f"helexa-{size}"
    if not (out / "config.json").exists():
        build(out, size=size)
    return out


async def run(quick: bool) -> str:
    size = "tiny" if quick else "small"
    directory = model_dir(size)
    reps = 2 if quick else 5
    load_table = await _compare_loads(directory, 2 if quick else 3)
    budget = memory_budget(discover().devices, reserve_mb=0)
    loaded = await asyncio.to_thread(load, LoadSpec(f"helexa-{size}", path=directory), budget)
    parameters = sum(p.numel() for p in loaded.model.parameters())
    try:
        prompts = [loaded.tokenizer(p)["input_ids"] for p in PROMPTS[:CONCURRENCY]]
        single = await _compare_single(loaded, prompts[0], reps)
        batched = await _compare_concurrent(loaded, prompts, reps)
        first_token = await _first_token_table(loaded, prompts, reps)
    finally:
        loaded.close()
    intro = (
        f"## neuron engine\n\nModel `helexa-{size}` (tiny_model.py, random weights, "
        f"{parameters / 1e6:.0f}M parameters), {loaded.dtype} on {loaded.device}, "
        f"torch threads {torch.get_num_threads()}, greedy, {NEW_TOKENS} new tokens per "
        f"request (eos masked so every run decodes exactly {NEW_TOKENS}), "
        f"{reps} alternating repetitions (A, B, A, B, ...) after a warm-up of each.\n\n"
        "Other work shares this machine's CPUs, so single runs swing widely: `median` is "
        "the typical run, `best` the least disturbed one (closest to a quiet machine). "
        "Both contestants run torch from a non-main thread (the engine's owner thread, "
        "`asyncio.to_thread` for raw transformers): on a busy machine, torch called from "
        "the main thread was several times slower than from any other thread.\n"
    )
    return "\n".join([intro, single, batched, first_token, load_table])


@dataclass(frozen=True)
class Samples:
    """Repeated measurements of one contestant."""

    values: list[float]
    higher_is_better: bool = True

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    @property
    def best(self) -> float:
        """The least disturbed run: what the code does when the machine is quiet."""
        return max(self.values) if self.higher_is_better else min(self.values)


async def _compare_single(loaded: LoadedModel, prompt: list[int], reps: int) -> str:
    engine, raw = await _alternate(
        reps,
        lambda: _engine_run(loaded, [prompt], concurrent=True),
        lambda: _raw_generate(loaded, [prompt]),
    )
    return "\n".join(
        [
            "### single stream (tokens/s)",
            "",
            "| | engine `LoadedModel.stream` | raw `model.generate` | ratio | target |",
            "|---|---:|---:|---:|---:|",
            _row("median", engine.median, raw.median, TARGET_SINGLE),
            _row("best", engine.best, raw.best, TARGET_SINGLE),
            "",
        ]
    )


async def _compare_concurrent(loaded: LoadedModel, prompts: list[list[int]], reps: int) -> str:
    concurrent, sequential = await _alternate(
        reps,
        lambda: _engine_run(loaded, prompts, concurrent=True),
        lambda: _engine_run(loaded, prompts, concurrent=False),
    )
    padded = Samples([await _raw_generate(loaded, prompts) for _ in range(reps)])
    return "\n".join(
        [
            f"### {CONCURRENCY} requests, aggregate tokens/s",
            "",
            f"| | engine, {CONCURRENCY} concurrent | engine, {CONCURRENCY} sequential | ratio "
            "| target |",
            "|---|---:|---:|---:|---:|",
            _row("median", concurrent.median, sequential.median, TARGET_CONCURRENT),
            _row("best", concurrent.best, sequential.best, TARGET_CONCURRENT),
            "",
            f"Ceiling for reference: the same {CONCURRENCY} prompts as one left-padded "
            f"`model.generate` batch (run after the pairs): median {padded.median:.1f}, "
            f"best {padded.best:.1f} tokens/s; the engine's concurrent median is "
            f"{concurrent.median / padded.median:.2f}x of it.",
            "",
        ]
    )


async def _first_token_table(loaded: LoadedModel, prompts: list[list[int]], reps: int) -> str:
    """Time to first token (ms): one stream alone, and each of 8 started at once."""
    await _first_tokens(loaded, prompts[:1])  # warm-up
    alone: list[float] = []
    together: list[float] = []
    for _ in range(reps):
        alone += await _first_tokens(loaded, prompts[:1])
        together += await _first_tokens(loaded, prompts)
    return "\n".join(
        [
            "### time to first token (ms, the bench prompts, greedy)",
            "",
            "| streams started together | p50 | max |",
            "|---:|---:|---:|",
            f"| 1 | {statistics.median(alone) * 1e3:.1f} | {max(alone) * 1e3:.1f} |",
            f"| {CONCURRENCY} | {statistics.median(together) * 1e3:.1f} "
            f"| {max(together) * 1e3:.1f} |",
            "",
        ]
    )


async def _first_tokens(loaded: LoadedModel, prompts: list[list[int]]) -> list[float]:
    """Seconds from `stream()` to each stream's first token id (streams run to the end)."""

    async def one(prompt: list[int]) -> float:
        started = time.perf_counter()
        first = float("nan")
        async for _ in loaded.stream(prompt, _params(loaded)):
            if first != first:
                first = time.perf_counter() - started
        return first

    return list(await asyncio.gather(*(one(p) for p in prompts)))


async def _compare_loads(directory: Path, reps: int) -> str:
    def engine_load() -> float:
        budget = memory_budget(discover().devices, reserve_mb=0)
        started = time.perf_counter()
        loaded = load(LoadSpec("bench", path=directory), budget)
        seconds = time.perf_counter() - started
        loaded.close()
        return seconds

    def raw_load() -> float:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        started = time.perf_counter()
        AutoTokenizer.from_pretrained(directory, local_files_only=True)
        model: Any = AutoModelForCausalLM.from_pretrained(directory, local_files_only=True)
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
            "### load (seconds, model + tokenizer, warm page cache)",
            "",
            "| | helexa `load()` | raw `from_pretrained` | ratio |",
            "|---|---:|---:|---:|",
            f"| median | {engine.median:.3f} | {raw.median:.3f} | "
            f"{engine.median / raw.median:.2f}x |",
            "",
            "`load()` also checks the memory budget, measures the footprint and starts "
            "the model's owner thread.",
            "",
        ]
    )


async def _alternate(
    reps: int,
    first: Callable[[], Awaitable[float]],
    second: Callable[[], Awaitable[float]],
    *,
    higher_is_better: bool = True,
) -> tuple[Samples, Samples]:
    """`reps` runs of each, interleaved, after one untimed warm-up of each."""
    await first()
    await second()
    a, b = [], []
    for _ in range(reps):
        a.append(await first())
        b.append(await second())
    return Samples(a, higher_is_better), Samples(b, higher_is_better)


def _row(label: str, ours: float, theirs: float, target: float) -> str:
    ratio = ours / theirs
    verdict = "met" if ratio >= target else "**missed**"
    return f"| {label} | {ours:.1f} | {theirs:.1f} | {ratio:.2f}x | >= {target}x ({verdict}) |"


def _params(loaded: LoadedModel) -> SamplingParams:
    return SamplingParams(
        max_new_tokens=NEW_TOKENS,
        temperature=0,
        min_new_tokens=NEW_TOKENS,
        stop_token_ids=loaded.eos_token_ids,
    )


async def _engine_run(loaded: LoadedModel, prompts: list[list[int]], concurrent: bool) -> float:
    """Aggregate tokens/s of the prompts through the engine, together or one by one."""

    async def one(prompt: list[int]) -> int:
        return sum([1 async for _ in loaded.stream(prompt, _params(loaded))])

    started = time.perf_counter()
    if concurrent:
        counts = await asyncio.gather(*(one(p) for p in prompts))
    else:
        counts = [await one(p) for p in prompts]
    return sum(counts) / (time.perf_counter() - started)


async def _raw_generate(loaded: LoadedModel, prompts: list[list[int]]) -> float:
    """Tokens/s of model.generate over the prompts as one left-padded batch.

    Runs in a worker thread like the engine's own: on a busy machine torch ops issued
    from the main thread were several times slower than from any other thread.
    """
    return await asyncio.to_thread(_generate_blocking, loaded, prompts)


def _generate_blocking(loaded: LoadedModel, prompts: list[list[int]]) -> float:
    longest = max(len(p) for p in prompts)
    ids = torch.tensor([[0] * (longest - len(p)) + p for p in prompts])
    mask = torch.tensor([[0] * (longest - len(p)) + [1] * len(p) for p in prompts])
    started = time.perf_counter()
    with torch.inference_mode():
        out = loaded.model.generate(
            ids.to(loaded.device),
            attention_mask=mask.to(loaded.device),
            max_new_tokens=NEW_TOKENS,
            min_new_tokens=NEW_TOKENS,
            do_sample=False,
            eos_token_id=sorted(loaded.eos_token_ids),
            pad_token_id=0,
        )
    seconds = time.perf_counter() - started
    return float((out.shape[1] - longest) * len(prompts) / seconds)
