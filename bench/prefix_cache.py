"""Prefix cache and chunked prefill in the neuron's engine, side by side in one run.

Row 1, agent conversations: `CONVERSATIONS` conversations x `TURNS` turns, each
turn the whole history again (a shared system prompt of `SYSTEM_TOKENS` tokens,
then every earlier user message and reply), streamed through a real gateway
(`helexa serve`) in front of a real neuron process with the openai SDK, one
request at a time, conversations taken round-robin per turn. Greedy replies of
`REPLY_TOKENS` tokens, so both sides see the same histories. Measured: the
time to first token of turns 2..TURNS with the prefix cache on vs off (a
neuron each, run one after the other). Target: <= 0.1x on the real model.

Row 2, chunked prefill: 4 streams decode while a `LONG_TOKENS` prompt
arrives, in-process (LoadedModel): the p99 of the 4 streams' inter-token gaps
that overlap the long prompt's prefill, against their steady-state p99 before
it arrived, with `prefill_chunk_tokens` = "auto" (chunks sized by measured
time, the default) vs a fixed CHUNK vs 0 (whole), one after the other. Target:
chunked <= 2x steady state. Row 2 alone: `python -m bench.prefix_cache --row 2`
(prints its table; `--quick` for the tiny model only).

Row 4, nothing shared: rounds of 8 concurrent requests with unique random
prompts, cache on vs off (in-process, alternating), generated tokens per
second. Target: on >= 0.95x off.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openai

from bench.neuron import model_dir
from bench.procs import python_module, spawn, stop, wait_http
from helexa.neuron.engine import LoadedModel, LoadSpec, SamplingParams, load
from helexa.neuron.engine.spec import PrefillChunk
from helexa.neuron.hardware import discover, memory_budget
from helexa.testing.neuron_proc import NeuronProcess, free_port

REPO = Path(__file__).resolve().parent.parent
GGUF = REPO / ".cache" / "models" / "smollm2" / "SmolLM2-135M-Instruct.Q4_1.gguf"
CACHE_MB = 2048  # room for every conversation's history (SmolLM2 in float32: 46 KB/token)
CHUNK = 512  # the fixed size before "auto" became the default
TARGET_REPLAY = 0.1
TARGET_ITL = 2.0
TARGET_UNIQUE = 0.95
WORDS = [
    *("agent", "tool", "file", "read", "write", "search", "edit", "patch", "test", "build"),
    *("deploy", "config", "model", "token", "stream", "cache", "prefix", "route", "gateway"),
    *("neuron", "batch", "queue", "error", "retry", "budget", "memory"),
]


@dataclass(frozen=True)
class Sizes:
    conversations: int
    turns: int
    system_tokens: int
    reply_tokens: int
    long_tokens: int
    unique_rounds: int


@dataclass(frozen=True)
class Subject:
    name: str
    path: Path
    dtype: str
    sizes: Sizes


@dataclass
class Replay:
    later_ttft: list[float]  # turns 2.., seconds
    first_ttft: list[float]
    cached: list[int]  # usage.prompt_tokens_details.cached_tokens of turns 2.. (None -> -1)


@dataclass
class Arrival:
    steady_p99: float
    arrival_p99: float
    long_ttft: float
    chunk: str  # the chunk size at the end of the long prompt's prefill


def subjects(quick: bool) -> list[Subject]:
    tiny = Subject(
        "helexa-tiny (random weights)",
        model_dir("tiny"),
        "float32",
        Sizes(8, 6, 3000, 32, 4000, 3) if not quick else Sizes(2, 3, 1000, 8, 2000, 1),
    )
    if quick:
        return [tiny]
    # The real model on a 2-core machine: fewer conversations (see the page).
    real = Subject(
        "SmolLM2-135M-Instruct (Q4_1 GGUF, float32)",
        GGUF,
        "float32",
        Sizes(4, 6, 3000, 32, 8000, 3),
    )
    return [tiny, real]


async def run(quick: bool) -> str:
    rows = []
    for subject in subjects(quick):
        replay_on, replay_off = await replay_pair(subject)
        arrival = await asyncio.to_thread(arrival_pair, subject)
        unique = await unique_pair(subject)
        rows.append((subject, replay_on, replay_off, arrival, unique))
    return render(rows)


# --- row 1: agent conversations through the gateway ----------------------------------------


def system_prompt(tokenizer: Any, tokens: int) -> str:
    rng = random.Random(7)
    words = [rng.choice(WORDS) for _ in range(tokens * 2)]
    ids = tokenizer(" ".join(words))["input_ids"][:tokens]
    text: str = tokenizer.decode(ids)
    return text


def tokenizer_for(subject: Subject) -> Any:
    from transformers import AutoTokenizer

    if subject.path.suffix == ".gguf":
        return AutoTokenizer.from_pretrained(subject.path.parent, gguf_file=subject.path.name)
    return AutoTokenizer.from_pretrained(subject.path)


async def replay_pair(subject: Subject) -> tuple[Replay, Replay]:
    system = system_prompt(tokenizer_for(subject), subject.sizes.system_tokens)
    on = await replay(subject, system, CACHE_MB)
    off = await replay(subject, system, 0)
    return on, off


async def replay(subject: Subject, system: str, cache_mb: int) -> Replay:
    sizes = subject.sizes
    with tempfile.TemporaryDirectory(prefix="helexa-bench-prefix-") as tmp:
        work = Path(tmp)
        neuron_toml = work / "neuron.toml"
        neuron_toml.write_text(
            f"[neuron]\noffline = true\nmax_in_flight = 8\ntorch_threads = 2\n"
            f"prefix_cache_mb = {cache_mb}\n[devices]\nreserve_mb = 0\n"
        )
        async with NeuronProcess(neuron_toml, log_path=work / "neuron.log") as neuron:
            api_port, metrics_port = free_port(), free_port()
            (work / "fleet.toml").write_text(
                f'[gateway]\nlisten = "127.0.0.1:{api_port}"\n'
                f'metrics_listen = "127.0.0.1:{metrics_port}"\n'
                f'[[neurons]]\nname = "bench"\nendpoint = "{neuron.url}"\n'
            )
            (work / "models.toml").write_text(
                f'[[models]]\nid = "bench"\npath = "{subject.path}"\n'
                f'dtype = "{subject.dtype}"\nvram_mb = 800\n'
            )
            args = python_module(
                "helexa", "serve", "--fleet", str(work / "fleet.toml"),
                "--models", str(work / "models.toml"), "--log-level", "WARNING",
            )  # fmt: skip
            gateway = spawn(args, work / "gateway.log")
            try:
                base = f"http://127.0.0.1:{api_port}"
                await wait_http(f"{base}/v1/models", gateway)
                client = openai.AsyncOpenAI(
                    base_url=f"{base}/v1", api_key="unused", max_retries=0, timeout=900
                )
                await _turn(client, [{"role": "user", "content": "warm up"}], 2)  # cold load
                return await _conversations(client, system, sizes)
            finally:
                stop(gateway)


async def _conversations(client: openai.AsyncOpenAI, system: str, sizes: Sizes) -> Replay:
    histories = [[{"role": "system", "content": system}] for _ in range(sizes.conversations)]
    result = Replay([], [], [])
    rng = random.Random(11)
    for turn in range(sizes.turns):
        for number, history in enumerate(histories):
            ask = " ".join(rng.choice(WORDS) for _ in range(30))
            history.append({"role": "user", "content": f"Task {number}.{turn}: {ask}"})
            ttft, reply, cached = await _turn(client, history, sizes.reply_tokens)
            history.append({"role": "assistant", "content": reply})
            if turn == 0:
                result.first_ttft.append(ttft)
            else:
                result.later_ttft.append(ttft)
                result.cached.append(cached)
    return result


async def _turn(
    client: openai.AsyncOpenAI, messages: list[dict[str, str]], max_tokens: int
) -> tuple[float, str, int]:
    started = time.perf_counter()
    first: float | None = None
    pieces: list[str] = []
    cached = -1
    request: dict[str, Any] = {"model": "bench", "messages": messages}
    stream = await client.chat.completions.create(
        **request,
        max_tokens=max_tokens,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
        # Replies of exactly max_tokens: a random-words system prompt makes the real model
        # end its turn at once, and the histories should grow the same on both sides.
        extra_body={"min_tokens": max_tokens, "ignore_eos": True},
    )
    async for chunk in stream:
        for choice in chunk.choices:
            if choice.delta.content:
                first = first or time.perf_counter()
                pieces.append(choice.delta.content)
        details = chunk.usage.prompt_tokens_details if chunk.usage else None
        if details is not None and details.cached_tokens is not None:
            cached = details.cached_tokens
    return (first or time.perf_counter()) - started, "".join(pieces), cached


# --- row 2: streams decoding while a long prompt arrives -----------------------------------


def _engine(subject: Subject, cache_mb: int, chunk: PrefillChunk) -> LoadedModel:
    budget = memory_budget(discover().devices, reserve_mb=0)
    spec = LoadSpec(
        "bench",
        path=subject.path,
        dtype=subject.dtype,  # type: ignore[arg-type]
        prefix_cache_mb=cache_mb,
        prefill_chunk_tokens=chunk,
    )
    return load(spec, budget)


def arrival_pair(subject: Subject) -> dict[str, Arrival]:
    results = {}
    chunks: tuple[tuple[str, PrefillChunk], ...] = (
        ("auto (the default)", "auto"),
        (f"fixed {CHUNK}", CHUNK),
        ("whole", 0),
    )
    for label, chunk in chunks:
        engine = _engine(subject, 0, chunk)
        try:
            results[label] = asyncio.run(_arrival(engine, subject.sizes.long_tokens))
        finally:
            engine.close()
    return results


async def _arrival(engine: LoadedModel, long_tokens: int) -> Arrival:
    rng = random.Random(3)
    vocab = engine.vocab_size
    params = SamplingParams(max_new_tokens=100_000, temperature=0)
    stamps: list[list[float]] = [[] for _ in range(4)]
    steady, after = asyncio.Event(), asyncio.Event()
    first = float("inf")  # when the long prompt's first token came

    async def decode(row: int) -> None:
        prompt = [rng.randrange(3, vocab) for _ in range(40 + 10 * row)]
        async for _ in engine.stream(prompt, params):
            now = time.perf_counter()
            stamps[row].append(now)
            if all(len(s) >= 40 for s in stamps):
                steady.set()
            # Two tokens of every stream after it: the gap spanning the prefill is complete.
            if all(len(s) >= 2 and s[-2] > first for s in stamps):
                after.set()
        after.set()  # ended (the model's context is full): wait for no more

    streams = [asyncio.create_task(decode(row)) for row in range(4)]
    await steady.wait()
    arrived = time.perf_counter()
    long_prompt = [rng.randrange(3, vocab) for _ in range(long_tokens)]
    one = SamplingParams(max_new_tokens=1, temperature=0)
    async for _ in engine.stream(long_prompt, one):
        first = time.perf_counter()
    await after.wait()
    timer = engine._worker.timer  # what "auto" settled on (bench only: not an API)
    chunk = timer.tokens(running=True) if engine._worker._auto else None
    for task in streams:
        task.cancel()
    await asyncio.gather(*streams, return_exceptions=True)

    def gaps(keep: Callable[[float, float], bool]) -> list[float]:
        return [b - a for s in stamps for a, b in itertools.pairwise(s) if keep(a, b)]

    before = gaps(lambda a, b: b <= arrived)[-120:]
    during = gaps(lambda a, b: b > arrived and a < first)
    settled = "-"
    if chunk is not None and timer.step_seconds is not None:
        settled = f"{chunk} tokens (step {timer.step_seconds * 1000:.0f} ms)"
    return Arrival(_p99(before), _p99(during), first - arrived, settled)


def _p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] if ordered else 0.0


# --- row 4: unique prompts, cache on vs off ------------------------------------------------


async def unique_pair(subject: Subject) -> tuple[float, float]:
    on = await asyncio.to_thread(_engine, subject, CACHE_MB, "auto")
    off = await asyncio.to_thread(_engine, subject, 0, "auto")
    rates: dict[str, list[float]] = {"on": [], "off": []}
    rng = random.Random(5)
    try:
        await _unique_round(on, rng)  # warm both
        await _unique_round(off, rng)
        for _ in range(subject.sizes.unique_rounds):
            rates["on"].append(await _unique_round(on, rng))
            rates["off"].append(await _unique_round(off, rng))
    finally:
        on.close()
        off.close()
    return statistics.median(rates["on"]), statistics.median(rates["off"])


async def _unique_round(engine: LoadedModel, rng: random.Random) -> float:
    params = SamplingParams(max_new_tokens=32, temperature=0)
    prompts = [[rng.randrange(3, engine.vocab_size) for _ in range(300)] for _ in range(8)]

    async def one(prompt: list[int]) -> int:
        return len([t async for t in engine.stream(prompt, params)])

    started = time.perf_counter()
    counts = await asyncio.gather(*(one(p) for p in prompts))
    return sum(counts) / (time.perf_counter() - started)


# --- the page ------------------------------------------------------------------------------


def _verdict(met: bool) -> str:
    return "**met**" if met else "**missed**"


def render(
    rows: list[tuple[Subject, Replay, Replay, dict[str, Arrival], tuple[float, float]]],
) -> str:
    lines = [
        "## prefix cache and chunked prefill (agent traffic)",
        "",
        "Side by side in one run (`python -m bench --only prefix_cache`); bench/prefix_cache.py "
        "says what each row does. Times are medians unless marked p99.",
        "",
        "### 1. agent conversations through the gateway: TTFT of turns 2+ (cache on vs off)",
        "",
        "| model | conversations x turns | system prompt | turn 1 TTFT (off) | turns 2+ TTFT on "
        "| turns 2+ TTFT off | on / off | cached tokens (median) | target <= 0.1x |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for subject, on, off, _, _ in rows:
        s = subject.sizes
        ratio = statistics.median(on.later_ttft) / statistics.median(off.later_ttft)
        lines.append(
            f"| {subject.name} | {s.conversations} x {s.turns} | {s.system_tokens} tokens | "
            f"{statistics.median(off.first_ttft) * 1000:.0f} ms | "
            f"{statistics.median(on.later_ttft) * 1000:.0f} ms | "
            f"{statistics.median(off.later_ttft) * 1000:.0f} ms | {ratio:.3f}x | "
            f"{statistics.median(on.cached):.0f} (off: {statistics.median(off.cached):.0f}) | "
            f"{_verdict(ratio <= TARGET_REPLAY)} |"
        )
    lines += ["", *arrival_table([(subject, arrivals) for subject, _, _, arrivals, _ in rows])]
    lines += [
        "",
        "### 4. unique prompts (nothing shared): generated tokens/s, cache on vs off",
        "",
        "| model | on | off | on / off | target >= 0.95x |",
        "|---|---|---|---|---|",
    ]
    for subject, _, _, _, (on_rate, off_rate) in rows:
        ratio = on_rate / off_rate
        lines.append(
            f"| {subject.name} | {on_rate:.1f} | {off_rate:.1f} | {ratio:.2f}x | "
            f"{_verdict(ratio >= TARGET_UNIQUE)} |"
        )
    lines.append("")
    lines.append(f"Load average at the end: {', '.join(f'{x:.1f}' for x in os.getloadavg())}.")
    lines.append("")
    return "\n".join(lines)


def arrival_table(rows: list[tuple[Subject, dict[str, Arrival]]]) -> list[str]:
    lines = [
        "### 2. inter-token latency of 4 running streams while a long prompt arrives",
        "",
        "| model | long prompt | prefill | steady p99 | p99 while it arrives | ratio | "
        "long prompt TTFT | auto's chunk at the end | target <= 2x |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for subject, arrivals in rows:
        for label, a in arrivals.items():
            ratio = a.arrival_p99 / a.steady_p99 if a.steady_p99 else float("inf")
            verdict = _verdict(ratio <= TARGET_ITL) if label != "whole" else "(reference)"
            lines.append(
                f"| {subject.name} | {subject.sizes.long_tokens} tokens | {label} | "
                f"{a.steady_p99 * 1000:.0f} ms | {a.arrival_p99 * 1000:.0f} ms | {ratio:.1f}x | "
                f"{a.long_ttft:.2f} s | {a.chunk} | {verdict} |"
            )
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.prefix_cache", description=__doc__)
    parser.add_argument("--row", choices=["2"], required=True, help="run this row alone")
    parser.add_argument("--quick", action="store_true", help="the tiny model only")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    rows = [(subject, arrival_pair(subject)) for subject in subjects(args.quick)]
    print("\n".join(arrival_table(rows)))
    print(f"\nLoad average at the end: {', '.join(f'{x:.1f}' for x in os.getloadavg())}.")


if __name__ == "__main__":
    main()
