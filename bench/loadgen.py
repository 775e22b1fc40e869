"""The one load generator every contestant is driven with (aiohttp clients).

`drive` runs `clients` concurrent closed-loop clients against one URL for a
fixed time (not a fixed count: LiteLLM is ~100x slower than the rest, and a
time box keeps every contestant's run the same length). Each client sends
the same body again as soon as its previous answer has fully arrived.
Requests still in flight at the deadline finish and count.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import aiohttp

JSON_HEADERS: Mapping[str, str] = {"Content-Type": "application/json"}


@dataclass(frozen=True)
class Target:
    """What one request is: where it goes, its body, and whether it streams."""

    url: str
    body: bytes
    stream: bool
    headers: Mapping[str, str] = field(default_factory=lambda: JSON_HEADERS)


@dataclass(frozen=True)
class RunStats:
    """One timed run: completed requests, errors, latencies and times to first chunk."""

    seconds: float
    latencies: list[float]
    first_chunk: list[float]
    errors: int

    @property
    def rps(self) -> float:
        return len(self.latencies) / self.seconds if self.seconds else 0.0

    def latency(self, q: float) -> float:
        return percentile(self.latencies, q)

    def ttfc(self, q: float) -> float:
        return percentile(self.first_chunk, q)


def percentile(values: Sequence[float], q: float) -> float:
    """The value at quantile `q` (nearest rank); NaN when there is none."""
    if not values:
        return float("nan")
    data = sorted(values)
    return data[min(len(data) - 1, int(q * len(data)))]


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


async def drive(target: Target, *, clients: int, seconds: float) -> RunStats:
    """`clients` closed-loop clients for `seconds`; every answer is read to its end."""
    latencies: list[float] = []
    first_chunk: list[float] = []
    errors = 0
    # No pool cap: the generator must never be the one queueing requests.
    connector = aiohttp.TCPConnector(limit=0, force_close=False)
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        deadline = time.perf_counter() + seconds

        async def client() -> None:
            nonlocal errors
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                try:
                    async with session.post(
                        target.url, data=target.body, headers=target.headers
                    ) as resp:
                        if target.stream:
                            await resp.content.readany()
                            first = time.perf_counter() - started
                        await resp.read()
                        ok = resp.status == 200
                except (aiohttp.ClientError, TimeoutError):
                    ok = False
                if not ok:
                    errors += 1
                    continue
                latencies.append(time.perf_counter() - started)
                if target.stream:
                    first_chunk.append(first)

        started = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(clients)))
        elapsed = time.perf_counter() - started
    return RunStats(elapsed, latencies, first_chunk, errors)
