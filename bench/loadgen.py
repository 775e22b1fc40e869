"""The one load generator every contestant is driven with (raw asyncio, httptools).

`drive` runs `clients` concurrent closed-loop clients against one URL for a
fixed time (not a fixed count: LiteLLM is ~100x slower than the rest, and a
time box keeps every contestant's run the same length). Each client sends
the same body again as soon as its previous answer has fully arrived.
Requests still in flight at the deadline finish and count.

Why not aiohttp: the bench shares a 2-CPU box with the proxy under test, and
an aiohttp ClientSession cost ~0.12 ms of CPU per request, CPU the proxy
then lacked. Here each client holds one keep-alive HTTP/1.1 connection (an
asyncio.Protocol), writes a request pre-encoded once per run, and httptools
(llhttp, in C) finds the status and the answer's end (Content-Length or
chunked); the body itself is dropped. No redirects are followed (a 3xx counts
as an error) and an answer that ends only when its connection closes is not
understood: no contestant sends either.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import cast
from urllib.parse import urlsplit

import httptools  # a uvicorn[standard] dependency, so always there

JSON_HEADERS: Mapping[str, str] = {"Content-Type": "application/json"}
TIMEOUT = 120.0  # seconds a request may still run after the deadline before it counts as failed


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


@dataclass(frozen=True)
class Endpoint:
    """Where a Target's requests go and their bytes, encoded once."""

    host: str
    port: int
    tls: bool
    request: bytes

    @staticmethod
    def of(target: Target) -> Endpoint:
        url = urlsplit(target.url)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError(f"not an http(s) URL: {target.url!r}")
        tls = url.scheme == "https"
        port = url.port or (443 if tls else 80)
        path = (url.path or "/") + (f"?{url.query}" if url.query else "")
        lines = [f"POST {path} HTTP/1.1", f"Host: {url.netloc}"]
        lines += [f"Content-Length: {len(target.body)}"]
        own = {"host", "content-length", "transfer-encoding"}
        lines += [f"{k}: {v}" for k, v in target.headers.items() if k.lower() not in own]
        head = "\r\n".join(lines).encode("latin-1") + b"\r\n\r\n"
        return Endpoint(url.hostname, port, tls, head + target.body)


class Connection(asyncio.Protocol):
    """One client's keep-alive connection: one request at a time, read to its end.

    `send` returns a future for the answer's status; `first_body` is when the
    answer's first body bytes arrived (0.0 before any), for streams' TTFC. A
    connection that breaks fails the pending future with ConnectionError and
    is `usable` no more; so is one whose server asked to close it.
    """

    def __init__(self) -> None:
        self._parser = httptools.HttpResponseParser(self)
        self._transport: asyncio.Transport | None = None
        self._waiter: asyncio.Future[int] | None = None
        self.first_body = 0.0
        self.usable = True

    def send(self, request: bytes) -> asyncio.Future[int]:
        assert self._transport is not None and self._waiter is None
        self.first_body = 0.0
        self._waiter = waiter = asyncio.get_running_loop().create_future()
        self._transport.write(request)
        return waiter

    def close(self) -> None:
        self.usable = False
        if self._transport is not None:
            self._transport.close()

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # cast, not isinstance: uvloop's transports do not subclass asyncio.Transport
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade) as exc:
            self._fail(ConnectionError(f"bad HTTP answer: {exc}"))
            self.abort()

    def eof_received(self) -> bool | None:
        self._fail(ConnectionError("closed by the server"))
        return None  # let the transport close

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(ConnectionError(f"connection lost: {exc}"))

    def _fail(self, exc: Exception) -> None:
        self.usable = False
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)

    # httptools callbacks (only the ones defined here are called).
    def on_body(self, body: bytes) -> None:
        if not self.first_body:
            self.first_body = time.perf_counter()

    def on_message_complete(self) -> None:
        if not self._parser.should_keep_alive():
            self.close()
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(self._parser.get_status_code())


async def connect(endpoint: Endpoint) -> Connection:
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(TIMEOUT):
        _, conn = await loop.create_connection(
            Connection, endpoint.host, endpoint.port, ssl=endpoint.tls or None
        )
    return conn


async def drive(target: Target, *, clients: int, seconds: float) -> RunStats:
    """`clients` closed-loop clients for `seconds`; every answer is read to its end.

    A non-200 answer or a failed connection counts as an error (not as a
    latency); a broken connection is re-opened for the client's next request.
    """
    endpoint = Endpoint.of(target)
    request, stream = endpoint.request, target.stream
    latencies: list[float] = []
    first_chunk: list[float] = []
    errors = 0
    live: set[Connection] = set()
    clock = time.perf_counter
    deadline = clock() + seconds

    async def client() -> None:
        nonlocal errors
        conn: Connection | None = None
        try:
            while clock() < deadline:
                started = clock()
                try:
                    if conn is None:
                        conn = await connect(endpoint)
                        live.add(conn)
                    status = await conn.send(request)
                    ended, first = clock(), conn.first_body
                except (OSError, TimeoutError):  # ConnectionError is an OSError
                    status = 0
                if conn is not None and not conn.usable:
                    conn.close()
                    live.discard(conn)
                    conn = None
                if status != 200:
                    errors += 1
                    continue
                latencies.append(ended - started)
                if stream:  # an empty body's first chunk is its end
                    first_chunk.append((first or ended) - started)
        finally:
            if conn is not None:
                conn.close()
                live.discard(conn)

    def cut_off() -> None:
        """Whatever still hangs TIMEOUT s after the deadline fails (and counts as an error)."""
        for conn in list(live):
            conn.abort()

    watchdog = asyncio.get_running_loop().call_later(seconds + TIMEOUT, cut_off)
    started = clock()
    try:
        await asyncio.gather(*(client() for _ in range(clients)))
    finally:
        watchdog.cancel()
    elapsed = clock() - started
    return RunStats(elapsed, latencies, first_chunk, errors)
