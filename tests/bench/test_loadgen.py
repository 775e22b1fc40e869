"""The raw-asyncio load generator counts what it should against real loopback servers.

The stub (bench.upstream) for the happy path; small aiohttp.web servers for
what the stub never does (500s, a stream that pauses between chunks, closing
every connection), so the generator is checked against a second, independent
HTTP implementation too.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from bench.loadgen import Endpoint, Target, drive
from bench.upstream import STREAM

CHAT = "/v1/chat/completions"
PLAIN_BODY = b'{"model": "stub/model", "messages": []}'
STREAM_BODY = b'{"model": "stub/model", "stream": true, "messages": []}'
PAUSE = 0.02  # seconds the slow stream waits between its first chunk and the rest

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def serve(handler: Handler) -> TestServer:
    app = web.Application()
    app.router.add_post(CHAT, handler)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    return server


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
async def test_the_stub_is_driven_without_errors(stub_url: str, stream: bool) -> None:
    target = Target(stub_url + CHAT, STREAM_BODY if stream else PLAIN_BODY, stream)
    stats = await drive(target, clients=4, seconds=0.5)
    assert stats.errors == 0
    assert len(stats.latencies) > 4 and stats.rps > 0
    assert 0.4 < stats.seconds < 5
    if stream:
        assert len(stats.first_chunk) == len(stats.latencies)
        assert all(0 < f <= t for f, t in zip(stats.first_chunk, stats.latencies, strict=True))
    else:
        assert stats.first_chunk == []


async def test_non_200_answers_count_as_errors() -> None:
    async def fail(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(status=500, text="boom")

    server = await serve(fail)
    try:
        stats = await drive(
            Target(str(server.make_url(CHAT)), PLAIN_BODY, False), clients=2, seconds=0.2
        )
    finally:
        await server.close()
    assert stats.errors > 2 and stats.latencies == [] and stats.first_chunk == []


async def test_time_to_first_chunk_is_the_first_body_bytes_not_the_end() -> None:
    async def slow_stream(request: web.Request) -> web.StreamResponse:
        await request.read()
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        await resp.write(STREAM[:100])
        await asyncio.sleep(PAUSE)  # the gap under test: nothing to wait on but time
        await resp.write(STREAM[100:])
        await resp.write_eof()
        return resp

    server = await serve(slow_stream)
    try:
        stats = await drive(
            Target(str(server.make_url(CHAT)), STREAM_BODY, True), clients=2, seconds=0.2
        )
    finally:
        await server.close()
    assert stats.errors == 0 and stats.latencies
    gaps = [t - f for f, t in zip(stats.first_chunk, stats.latencies, strict=True)]
    assert min(gaps) >= PAUSE * 0.9


async def test_connections_the_server_closes_are_reopened() -> None:
    async def close_after(request: web.Request) -> web.Response:
        await request.read()
        resp = web.Response(body=b"{}", content_type="application/json")
        resp.force_close()  # `Connection: close` on every answer
        return resp

    server = await serve(close_after)
    try:
        stats = await drive(
            Target(str(server.make_url(CHAT)), PLAIN_BODY, False), clients=2, seconds=0.2
        )
    finally:
        await server.close()
    assert stats.errors == 0 and len(stats.latencies) > 2


async def test_a_dropped_connection_is_an_error_and_is_reopened() -> None:
    accepted = 0

    async def drop(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal accepted
        accepted += 1
        await reader.readuntil(b"\r\n\r\n")
        writer.close()  # no answer at all
        await writer.wait_closed()

    server = await asyncio.start_server(drop, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        target = Target(f"http://127.0.0.1:{port}{CHAT}", PLAIN_BODY, False)
        stats = await drive(target, clients=2, seconds=0.2)
    finally:
        server.close()
        await server.wait_closed()
    assert stats.latencies == []
    assert stats.errors > 2 and stats.errors == accepted  # one fresh connection per request


def test_the_request_is_encoded_once_with_its_own_framing() -> None:
    target = Target(
        "http://127.0.0.1:8080/v1/messages?beta=true",
        b"{}",
        False,
        {"Content-Type": "application/json", "x-api-key": "k", "Host": "ignored"},
    )
    endpoint = Endpoint.of(target)
    assert (endpoint.host, endpoint.port, endpoint.tls) == ("127.0.0.1", 8080, False)
    assert endpoint.request == (
        b"POST /v1/messages?beta=true HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n"
        b"Content-Length: 2\r\nContent-Type: application/json\r\nx-api-key: k\r\n\r\n{}"
    )
    with pytest.raises(ValueError, match="not an http"):
        Endpoint.of(Target("ftp://127.0.0.1/x", b"", False))
