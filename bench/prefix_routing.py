"""Prefix-aware routing: two replicas of one model on two neurons, agent conversations
replayed through `helexa serve` with `routing = "prefix_affinity"` and then with
`routing = "least_busy"` (issue 16, benchmark row 3).

Two real `helexa neuron` processes each load the model; one gateway process per
routing mode fronts both. A replay is C conversations run concurrently, each T
turns in sequence, streamed with the openai SDK: every conversation starts with
a long system prompt (the same for all, or one per conversation: tenants with
their own context, the shape where routing decides the hit rate) and its own
first question, and each
turn appends the model's answer and a new question (the growing history agents
resend). Per turn: TTFT at the client, `usage.prompt_tokens` and
`usage.prompt_tokens_details.cached_tokens`, and the replica the gateway chose
(its route decisions in /admin/fleet name the conversation's key in both modes).

Between turns a conversation pauses 0-200 ms (seeded: the same in both modes),
as an agent does while its tools run; without it, closed-loop conversations on
equally fast replicas make least-busy sticky by accident (a conversation's own
replica is the one that just freed up).

Reported per mode: affinity = the share of turns 2..T served by the replica that
served turn 1 of their conversation (what a per-replica prefix cache needs);
hit rate = sum(cached) / sum(prompt tokens) over all turns (0 until the neurons
report cached tokens); TTFT p50 of turns 2..T. The modes use different system
prompts of the same length, so the second cannot reuse the first's cache.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, cast

import aiohttp
import openai

from bench.neuron import model_dir
from bench.procs import python_module, spawn, stop, wait_http
from helexa.gateway.affinity import chat_prefix_key
from helexa.testing.neuron_proc import NeuronProcess, free_port

REPO = Path(__file__).resolve().parent.parent
GGUF = REPO / ".cache" / "models" / "smollm2" / "SmolLM2-135M-Instruct.Q4_1.gguf"
MODES = ("prefix_affinity", "least_busy")
TARGET_HIT_RATE = 0.9
NEURONS = ("a", "b")


@dataclass(frozen=True)
class Workload:
    """One model under one replay shape."""

    label: str
    model: str
    load: dict[str, Any]  # the POST /models/load body
    conversations: int
    turns: int
    system_words: int
    new_tokens: int
    # True: every conversation starts with the same system prompt (one agent, many
    # sessions); False: each has its own (tenants with their own long context), so
    # only the replica that served a conversation before holds any of its prefix.
    shared_system: bool = True
    tool_pause_s: float = 0.2  # an agent runs tools between turns: 0..this, seeded


@dataclass
class Turn:
    conversation: int
    turn: int
    ttft: float
    prompt_tokens: int
    cached_tokens: int


@dataclass
class Replay:
    mode: str
    turns: list[Turn] = field(default_factory=list)
    served: dict[int, list[str]] = field(default_factory=dict)  # conversation -> replicas

    @property
    def affinity(self) -> float:
        later = [n for replicas in self.served.values() for n in replicas[1:]]
        stayed = sum(
            1 for replicas in self.served.values() for n in replicas[1:] if n == replicas[0]
        )
        return stayed / len(later) if later else 0.0

    def hit_rate(self, *, later_turns: bool) -> float:
        """Cached / prompt tokens; `later_turns`: turns 2..T only (a conversation's
        first turn has nothing of its own cached anywhere yet)."""
        turns = [t for t in self.turns if t.turn > 1 or not later_turns]
        prompt = sum(t.prompt_tokens for t in turns)
        return sum(t.cached_tokens for t in turns) / prompt if prompt else 0.0

    def ttft_p50(self, *, later_turns: bool) -> float:
        return statistics.median(t.ttft for t in self.turns if t.turn > 1 or not later_turns)

    @property
    def split(self) -> str:
        """How the conversations' first turns fell on the replicas."""
        firsts = [replicas[0] for replicas in self.served.values() if replicas]
        return "/".join(str(firsts.count(name)) for name in NEURONS)


def workloads(quick: bool) -> list[Workload]:
    tiny = Workload(
        "helexa-tiny (random weights), a system prompt per conversation",
        "helexa-tiny",
        {"model": "helexa-tiny", "path": str(model_dir("tiny"))},
        conversations=8,
        turns=4 if quick else 6,
        system_words=300 if quick else 1500,
        new_tokens=8,
        shared_system=False,
    )
    if quick:
        return [tiny]
    tiny_shared = replace(
        tiny, label="helexa-tiny (random weights), one system prompt shared", shared_system=True
    )
    real = Workload(
        "SmolLM2-135M-Instruct (Q4_1 GGUF, float32), a system prompt per conversation",
        "smollm2",
        {"model": "smollm2", "path": str(GGUF), "dtype": "float32"},
        conversations=8,
        turns=4,
        system_words=600,
        new_tokens=8,
        shared_system=False,
    )
    return [tiny, tiny_shared, real]


def system_prompt(words: int, variant: str) -> str:
    """An agent's long instructions: the same for every conversation of one replay."""
    rules = [
        "Read the file before you edit it.",
        "Run the tests that cover your change.",
        "Keep functions small and typed.",
        "Explain the reason for each change in the commit message.",
        "Never delete a test to make the suite pass.",
    ]
    out = [f"You are {variant}, a careful coding agent working in a Python repository."]
    count = len(out[0].split())
    i = 0
    while count < words:
        rule = f"Rule {i + 1}: {rules[i % len(rules)]}"
        out.append(rule)
        count += len(rule.split())
        i += 1
    return "\n".join(out)


async def run(quick: bool) -> str:
    sections = [_intro(quick)]
    for workload in workloads(quick):
        with tempfile.TemporaryDirectory(prefix="bench-prefix-") as tmp:
            replays = await _measure(workload, Path(tmp))
        sections.append(_table(workload, replays))
    return "\n".join(sections)


async def _measure(workload: Workload, work: Path) -> list[Replay]:
    for name in NEURONS:
        (work / f"neuron-{name}.toml").write_text(
            f'[neuron]\nname = "{name}"\noffline = true\nmax_in_flight = 8\ntorch_threads = 1\n'
            "[devices]\nreserve_mb = 0\n"
        )
    async with (
        NeuronProcess(work / "neuron-a.toml", log_path=work / "neuron-a.log") as a,
        NeuronProcess(work / "neuron-b.toml", log_path=work / "neuron-b.log") as b,
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=600)) as http,
    ):
        for neuron in (a, b):
            async with http.post(f"{neuron.url}/models/load", json=workload.load) as resp:
                if resp.status != 200:
                    raise RuntimeError(f"load failed: {resp.status} {await resp.text()}")
        replays = []
        for mode in MODES:
            async with _gateway(work, mode, workload, {"a": a.url, "b": b.url}) as url:
                replays.append(await _replay(url, mode, workload))
    return replays


@asynccontextmanager
async def _gateway(
    work: Path, mode: str, workload: Workload, neurons: dict[str, str]
) -> AsyncIterator[str]:
    """`helexa serve` over both neurons with `routing = mode`; yields its base URL."""
    port, metrics = free_port(), free_port()
    fleet = work / f"fleet-{mode}.toml"
    fleet.write_text(
        f'[gateway]\nlisten = "127.0.0.1:{port}"\nmetrics_listen = "127.0.0.1:{metrics}"\n'
        f'routing = "{mode}"\npoll_interval = 0.5\n'
        '[reconcile]\nauto_apply = "off"\n'
        + "".join(f'[[neurons]]\nname = "{n}"\nendpoint = "{u}"\n' for n, u in neurons.items())
    )
    models = work / "models.toml"
    models.write_text(f'[[models]]\nid = "{workload.model}"\nreplicas = 2\n')
    args = python_module("helexa", "serve", "--fleet", str(fleet), "--models", str(models))
    process = spawn([*args, "--log-level", "WARNING"], work / f"gateway-{mode}.log")
    base = f"http://127.0.0.1:{port}"
    try:
        await wait_http(f"{base}/v1/models/{workload.model}", process)
        await _until_both_replicas(base, workload.model)
        yield base
    finally:
        stop(process)


async def _until_both_replicas(base: str, model: str, within: float = 60.0) -> None:
    deadline = time.monotonic() + within
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            async with http.get(f"{base}/admin/fleet") as resp:
                fleet = await resp.json()
            rows = [m for m in fleet["models"] if m["id"] == model]
            if rows and sum(loc["state"] == "loaded" for loc in rows[0]["locations"]) == 2:
                return
            await asyncio.sleep(0.2)
    raise TimeoutError(f"the gateway did not see {model} on both neurons")


async def _replay(base: str, mode: str, workload: Workload) -> Replay:
    client = openai.AsyncOpenAI(base_url=f"{base}/v1", api_key="x", max_retries=0, timeout=600)
    replay = Replay(mode)
    keys: dict[str, int] = {}

    async def conversation(index: int) -> None:
        variant = f"agent-{mode}" if workload.shared_system else f"agent-{mode}-tenant-{index}"
        system = system_prompt(workload.system_words, variant)
        messages: list[dict[str, Any]] = [
            {"role": "system", "content": system},
            {"role": "user", "content": f"Task {index}: the parser drops trailing commas."},
        ]
        key = chat_prefix_key(workload.model, messages)
        assert key is not None
        keys[key.digest[:8]] = index
        pauses = random.Random(index)  # the same pauses in both modes
        for turn in range(1, workload.turns + 1):
            await asyncio.sleep(pauses.uniform(0, workload.tool_pause_s))
            answer, measured = await _turn(client, workload, messages)
            replay.turns.append(Turn(index, turn, *measured))
            messages += [
                {"role": "assistant", "content": answer},
                {"role": "user", "content": f"Now step {turn + 1} of task {index}."},
            ]

    await asyncio.gather(*(conversation(i) for i in range(workload.conversations)))
    await client.close()
    async with aiohttp.ClientSession() as http, http.get(f"{base}/admin/fleet") as resp:
        routes = (await resp.json())["routes"]
    for decision in routes:  # in decision order: each conversation's turns in sequence
        index = next((i for key, i in keys.items() if f"key={key}" in decision["reason"]), None)
        if index is not None:
            replay.served.setdefault(index, []).append(decision["neuron"])
    return replay


async def _turn(
    client: openai.AsyncOpenAI, workload: Workload, messages: list[dict[str, Any]]
) -> tuple[str, tuple[float, int, int]]:
    """One streamed turn: the answer, and (TTFT, prompt tokens, cached tokens)."""
    started = time.perf_counter()
    first: float | None = None
    pieces: list[str] = []
    prompt = cached = 0
    stream = await client.chat.completions.create(
        model=workload.model,
        messages=cast(Any, messages),  # plain dicts, as agents send them
        stream=True,
        stream_options={"include_usage": True},
        max_tokens=workload.new_tokens,
        temperature=0,
        extra_body={"min_tokens": workload.new_tokens, "ignore_eos": True},
    )
    async for chunk in stream:
        for choice in chunk.choices:
            if choice.delta.content:
                if first is None:
                    first = time.perf_counter()
                pieces.append(choice.delta.content)
        if chunk.usage is not None:
            prompt = chunk.usage.prompt_tokens
            details = chunk.usage.prompt_tokens_details
            cached = (details.cached_tokens or 0) if details else 0
    ttft = (first or time.perf_counter()) - started
    return "".join(pieces), (ttft, prompt, cached)


def _intro(quick: bool) -> str:
    return "\n".join(
        [
            "## prefix-aware routing: two replicas (issue 16, row 3)",
            "",
            "Two `helexa neuron` processes (1 torch thread each) hold the same model; "
            '`helexa serve` fronts both, once with `routing = "prefix_affinity"` and once '
            'with `routing = "least_busy"`. The replay runs its conversations concurrently, '
            "each turn after the last (an agent's loop): a long system prompt (one per "
            "conversation, or one shared by all where the table says so), the "
            "conversation's own first question, then the model's answer and a new question "
            "per turn, after a seeded 0-200 ms pause (the agent running its tools); streamed, "
            "greedy, fixed-length answers. Affinity = the share of turns "
            "2..T served by the replica that served turn 1 (what a per-replica prefix cache "
            "needs to hit); hit rate = sum(cached_tokens) / sum(prompt_tokens) from the usage "
            "the neurons report, over turns 2..T (a first turn has nothing of its own cached "
            "anywhere) and over all turns; TTFT at the client. Target: hit rate of turns 2..T "
            f">= {TARGET_HIT_RATE} with prefix affinity (least-busy is expected near 0.5)."
            + (" Quick profile: the tiny model only." if quick else ""),
            "",
        ]
    )


def _table(workload: Workload, replays: list[Replay]) -> str:
    rows = [
        f"### {workload.label}: {workload.conversations} conversations x {workload.turns} "
        f"turns, ~{workload.system_words}-word system prompt",
        "",
        "| routing | split of turn 1 (a/b) | affinity, turns 2..T | prompt tokens "
        "| cached tokens | hit rate, turns 2..T | hit rate, all | TTFT p50, turns 2..T "
        "| TTFT p50, all |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in replays:
        prompt = sum(t.prompt_tokens for t in r.turns)
        cached = sum(t.cached_tokens for t in r.turns)
        rows.append(
            f"| {r.mode} | {r.split} | {r.affinity:.2f} | {prompt:,} | {cached:,} "
            f"| {r.hit_rate(later_turns=True):.2f} | {r.hit_rate(later_turns=False):.2f} "
            f"| {r.ttft_p50(later_turns=True) * 1000:.0f} ms "
            f"| {r.ttft_p50(later_turns=False) * 1000:.0f} ms |"
        )
    by_mode = {r.mode: r for r in replays}
    affinity, least = by_mode["prefix_affinity"], by_mode["least_busy"]
    ratio = affinity.ttft_p50(later_turns=True) / least.ttft_p50(later_turns=True)
    if not any(t.cached_tokens for r in replays for t in r.turns):
        verdict = "not measurable: the neurons reported no cached tokens (no prefix cache)"
    else:
        hit = affinity.hit_rate(later_turns=True)
        verdict = f"{'met' if hit >= TARGET_HIT_RATE else '**missed**'} ({hit:.2f})"
    rows += [
        "",
        f"TTFT p50 of turns 2..T, prefix affinity / least busy: {ratio:.2f}x. "
        f"Hit rate of turns 2..T, target >= {TARGET_HIT_RATE}: {verdict}; "
        f"affinity {affinity.affinity:.2f} vs {least.affinity:.2f}.",
        "",
    ]
    return "\n".join(rows)
