"""Gateway overhead (scenarios 1, 2 and 6): helexa vs direct vs a minimal proxy vs LiteLLM.

Every contestant fronts the same stub upstream (bench.upstream, its own
process): `direct` is the stub itself, `minimal proxy` is starlette + one
aiohttp session, `helexa` is a real `helexa serve` with the stub as a
`kind = "openai"` neuron, `LiteLLM` is its proxy (1 worker, no database,
no callbacks). One load generator (bench.loadgen) drives them all.

Cells: route (OpenAI chat, Anthropic Messages) x mode (non-streaming,
streaming) x clients (32, 128). For the Anthropic route `direct` is the
stub's OpenAI endpoint (what helexa translates to), and the minimal proxy
has no such route. Rounds are interleaved (every contestant runs once per
cell per round) so background load on the shared machine hits all alike;
the report gives medians over rounds and the best round.

While the cells run, each contestant's process CPU time and RSS are read
(scenario 6: CPU per request and memory under a soak).
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from bench import litellm_proxy
from bench.gateway_report import render
from bench.loadgen import JSON_HEADERS, RunStats, Target, drive
from bench.procs import Contestant, ProcessUsage, start_gateway, start_minimal, start_stub, stop
from bench.upstream import MODEL

CLIENT_COUNTS = (32, 128)
ROUTES = ("openai", "anthropic")
ANTHROPIC_HEADERS: Mapping[str, str] = {
    **JSON_HEADERS,
    "x-api-key": "sk-bench",
    "anthropic-version": "2023-06-01",
}


@dataclass(frozen=True)
class Cell:
    route: str  # "openai" | "anthropic"
    stream: bool
    clients: int

    @property
    def label(self) -> str:
        route = "OpenAI chat" if self.route == "openai" else "Anthropic Messages"
        return f"{route}, {'streaming' if self.stream else 'non-streaming'}, {self.clients} clients"


@dataclass
class Soak:
    """One contestant's process usage over all its runs."""

    requests: int = 0
    cpu_seconds: float = 0.0
    rss_start: int = 0
    rss_end: int = 0
    rss_peak: int = 0

    def add(self, before: ProcessUsage, after: ProcessUsage, requests: int) -> None:
        self.requests += requests
        self.cpu_seconds += after.cpu_seconds - before.cpu_seconds
        self.rss_start = self.rss_start or before.rss_bytes
        self.rss_end = after.rss_bytes
        self.rss_peak = max(self.rss_peak, after.rss_bytes)


@dataclass
class Results:
    runs: dict[tuple[Cell, str], list[RunStats]] = field(default_factory=dict)
    soak: dict[tuple[str, str], Soak] = field(default_factory=dict)  # (contestant, route)
    litellm_note: str | None = None
    seconds: float = 0.0
    rounds: int = 0
    load_average: tuple[tuple[float, ...], ...] = ()  # (1, 5, 15 min) before and after


def target_for(contestant: Contestant, cell: Cell) -> Target | None:
    """The request `contestant` gets for `cell`, or None when it has no such route."""
    if cell.route == "openai" or contestant.name == "direct":
        body: dict[str, object] = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}
        if cell.stream:
            body["stream"] = True
        url = f"{contestant.base_url}/v1/chat/completions"
        return Target(url, json.dumps(body).encode(), cell.stream)
    if contestant.name == "minimal proxy":
        return None
    body = {"model": MODEL, "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]}
    if cell.stream:
        body["stream"] = True
    url = f"{contestant.base_url}/v1/messages"
    return Target(url, json.dumps(body).encode(), cell.stream, ANTHROPIC_HEADERS)


def cells() -> list[Cell]:
    return [
        Cell(route, stream, clients)
        for route in ROUTES
        for stream in (False, True)
        for clients in CLIENT_COUNTS
    ]


async def measure(contestants: list[Contestant], rounds: int, seconds: float) -> Results:
    results = Results(seconds=seconds, rounds=rounds)
    for contestant in contestants:  # warm-up: connections, imports, first-request caches
        for cell in cells()[:: len(CLIENT_COUNTS)]:
            target = target_for(contestant, cell)
            if target is not None:
                await drive(target, clients=cell.clients, seconds=min(seconds / 2, 0.5))
    for _ in range(rounds):
        for cell in cells():
            for contestant in contestants:
                target = target_for(contestant, cell)
                if target is None:
                    continue
                stats = await _timed(contestant, target, cell, seconds, results)
                results.runs.setdefault((cell, contestant.name), []).append(stats)
    return results


async def _timed(
    contestant: Contestant, target: Target, cell: Cell, seconds: float, results: Results
) -> RunStats:
    assert contestant.process is not None
    before = ProcessUsage.of(contestant.process)
    stats = await drive(target, clients=cell.clients, seconds=seconds)
    after = ProcessUsage.of(contestant.process)
    soak = results.soak.setdefault((contestant.name, cell.route), Soak())
    soak.add(before, after, len(stats.latencies))
    return stats


async def run(quick: bool) -> str:
    rounds = 1 if quick else 3
    seconds = 0.2 if quick else 3.0
    with tempfile.TemporaryDirectory(prefix="helexa-bench-gateway-") as tmp:
        work = Path(tmp)
        started: list[Contestant] = []
        try:
            stub = await start_stub(work)
            started.append(stub)
            # Started together: each spends seconds importing, and quick runs are time-boxed.
            proxies = await asyncio.gather(
                start_minimal(work, stub),
                start_gateway(work, stub),
                litellm_proxy.start(work, stub, quick),
                return_exceptions=True,
            )
            for proxy in proxies:
                if isinstance(proxy, Contestant):
                    started.append(proxy)
                elif isinstance(proxy, BaseException):
                    raise proxy
            load_before = os.getloadavg()
            results = await measure(started, rounds, seconds)
            results.load_average = (load_before, os.getloadavg())
            results.litellm_note = proxies[2] if isinstance(proxies[2], str) else None
        finally:
            for contestant in reversed(started):
                if contestant.process is not None:
                    stop(contestant.process)
    return render(results, cells(), quick)
