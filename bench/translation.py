"""Translation overhead: the same streamed request in three dialects through one gateway.

One `helexa serve` subprocess fronts the stub OpenAI upstream of
bench.upstream (its own process, 20 content pieces per stream). A single
client sends streaming requests for the same answer as OpenAI chat
(relayed byte for byte), Anthropic Messages and OpenAI Responses (both
translated chunk by chunk), interleaved round-robin so background load on
the machine hits every dialect alike. We report time to the first content
event (OpenAI: first content chunk; Anthropic: first content_block_delta;
Responses: first output_text.delta) and to the end of the stream, p50/p99,
and each translated dialect's p50 over the OpenAI one.
"""

from __future__ import annotations

import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from bench.procs import spawn as _spawn
from bench.procs import stop as _stop
from bench.procs import wait_http as _wait_http
from bench.upstream import MODEL
from helexa.testing.neuron_proc import free_port


@dataclass(frozen=True)
class Dialect:
    name: str
    path: str
    body: dict[str, object]
    first_marker: bytes  # the bytes that start the first content event


DIALECTS = (
    Dialect(
        "OpenAI chat (relayed)",
        "/v1/chat/completions",
        {"model": MODEL, "stream": True, "messages": [{"role": "user", "content": "hi"}]},
        b'"content": "w',
    ),
    Dialect(
        "Anthropic Messages",
        "/v1/messages",
        {
            "model": MODEL,
            "stream": True,
            "max_tokens": 16,
            "messages": [{"role": "user", "content": "hi"}],
        },
        b"event: content_block_delta",
    ),
    Dialect(
        "OpenAI Responses",
        "/v1/responses",
        {"model": MODEL, "stream": True, "input": "hi"},
        b"event: response.output_text.delta",
    ),
)


@dataclass
class Timings:
    first: list[float] = field(default_factory=list)
    total: list[float] = field(default_factory=list)


def percentile(values: list[float], q: float) -> float:
    data = sorted(values)
    return data[min(len(data) - 1, int(q * len(data)))] if data else float("nan")


async def _one(session: aiohttp.ClientSession, url: str, dialect: Dialect, into: Timings) -> None:
    started = time.perf_counter()
    first: float | None = None
    async with session.post(url + dialect.path, json=dialect.body) as resp:
        if resp.status != 200:
            raise RuntimeError(f"{dialect.path}: HTTP {resp.status}: {await resp.text()}")
        async for line in resp.content:
            if first is None and dialect.first_marker in line:
                first = time.perf_counter() - started
    if first is None:
        raise RuntimeError(f"{dialect.path}: no content event in the stream")
    into.first.append(first)
    into.total.append(time.perf_counter() - started)


async def measure(url: str, rounds: int) -> dict[str, Timings]:
    results = {d.name: Timings() for d in DIALECTS}
    async with aiohttp.ClientSession() as session:
        for d in DIALECTS:  # warm-up: connections, first-request imports
            await _one(session, url, d, Timings())
        for _ in range(rounds):
            for d in DIALECTS:
                await _one(session, url, d, results[d.name])
    return results


async def run(quick: bool) -> str:
    rounds = 100 if quick else 500
    stub_port, api_port, metrics_port = (free_port() for _ in range(3))
    with tempfile.TemporaryDirectory(prefix="helexa-bench-translation-") as tmp:
        work = Path(tmp)
        (work / "fleet.toml").write_text(
            f'[gateway]\nlisten = "127.0.0.1:{api_port}"\n'
            f'metrics_listen = "127.0.0.1:{metrics_port}"\n'
            f'[[neurons]]\nname = "stub"\nkind = "openai"\n'
            f'endpoint = "http://127.0.0.1:{stub_port}/v1"\nmodels = ["{MODEL}"]\n'
        )
        (work / "models.toml").write_text("")
        stub = _spawn(
            [sys.executable, "-m", "bench.upstream", "stub", str(stub_port)], work / "stub.log"
        )
        gateway = _spawn(
            [
                sys.executable,
                "-m",
                "helexa",
                "serve",
                "--fleet",
                str(work / "fleet.toml"),
                "--models",
                str(work / "models.toml"),
                "--log-level",
                "WARNING",
            ],
            work / "gateway.log",
        )
        url = f"http://127.0.0.1:{api_port}"
        try:
            await _wait_http(f"http://127.0.0.1:{stub_port}/v1/models", stub)
            await _wait_http(f"{url}/health", gateway)
            await _wait_http(f"{url}/v1/models/{MODEL}", gateway)
            results = await measure(url, rounds)
        finally:
            _stop(gateway)
            _stop(stub)
    return render(results, rounds)


def render(results: dict[str, Timings], rounds: int) -> str:
    base = results[DIALECTS[0].name]
    lines = [
        "## translation",
        "",
        f"One client, {rounds} streamed requests per dialect, interleaved; gateway = "
        "`helexa serve`, upstream = the stub OpenAI server (20 content pieces). "
        "Times in ms; ratio = p50 over the relayed OpenAI p50.",
        "",
        "| dialect | first event p50 | p99 | total p50 | p99 | first ratio | total ratio |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for d in DIALECTS:
        t = results[d.name]
        first50, total50 = percentile(t.first, 0.5), percentile(t.total, 0.5)
        lines.append(
            f"| {d.name} | {first50 * 1e3:.2f} | {percentile(t.first, 0.99) * 1e3:.2f} "
            f"| {total50 * 1e3:.2f} | {percentile(t.total, 0.99) * 1e3:.2f} "
            f"| {first50 / percentile(base.first, 0.5):.2f}x "
            f"| {total50 / percentile(base.total, 0.5):.2f}x |"
        )
    return "\n".join(lines) + "\n"
