"""Connection limits on both servers (helexa.httpguard), over raw sockets on loopback.

A huge request head gets 431 before any app code runs; an idle connection, a
head that trickles in, and a body that trickles in are cut off at their
deadlines (the stack runs with a 1 s head and a 3 s body deadline). A client
that kept going past several deadlines would mean the server holds it forever.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import pytest

from tests.reliability.stack import (
    BODY_TIMEOUT_S,
    GATEWAY_KEY,
    HEADER_TIMEOUT_S,
    NEURON_TOKEN,
    Stack,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")

SIDES = ["gateway", "neuron"]
DRIP_S = 0.25  # one piece of the request this often
# Far past every deadline: a server that lets the drip finish never cuts anyone off.
DRIP_PIECES = int(4 * max(HEADER_TIMEOUT_S, BODY_TIMEOUT_S) / DRIP_S)


def address(stack: Stack, side: str) -> tuple[str, int, str]:
    url = stack.gateway.url if side == "gateway" else stack.neuron.url
    parts = urlsplit(url)
    assert parts.hostname is not None and parts.port is not None
    secret = GATEWAY_KEY if side == "gateway" else NEURON_TOKEN
    return parts.hostname, parts.port, secret


@contextlib.asynccontextmanager
async def connection(
    stack: Stack, side: str
) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter, str]]:
    host, port, secret = address(stack, side)
    reader, writer = await asyncio.open_connection(host, port)
    try:
        yield reader, writer, secret
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def read_all(reader: asyncio.StreamReader) -> bytes:
    """Everything until the server closes (a reset after its answer counts as closed)."""
    chunks = []
    with contextlib.suppress(ConnectionError):
        while chunk := await reader.read(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def status_and_body(response: bytes) -> tuple[int, object]:
    head, _, body = response.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), json.loads(body)


async def send_until_answered(
    writer: asyncio.StreamWriter, reader: asyncio.StreamReader, pieces: list[bytes], pause: float
) -> tuple[int, bytes]:
    """Send pieces (pausing between them) until the server answers or closes.

    Returns how many pieces went out and what came back.
    """
    answer = asyncio.create_task(read_all(reader))
    sent = 0
    for piece in pieces:
        if answer.done():
            break
        try:
            writer.write(piece)
            await writer.drain()
        except ConnectionError:
            break
        sent += 1
        if pause:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(answer), pause)
    return sent, await asyncio.wait_for(answer, 30)


@pytest.mark.parametrize("side", SIDES)
async def test_a_one_megabyte_header_gets_431(stack: Stack, side: str) -> None:
    async with connection(stack, side) as (reader, writer, secret):
        head = f"GET /health HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {secret}\r\n".encode()
        padding = [b"X-Pad: " + b"a" * 16_000 + b"\r\n" for _ in range(64)]  # 1 MB
        _, response = await send_until_answered(writer, reader, [head, *padding], 0)
    status, body = status_and_body(response)
    assert status == 431
    assert isinstance(body, dict) and body["error"]["code"] == "request_header_fields_too_large"


@pytest.mark.parametrize("side", SIDES)
async def test_an_idle_connection_is_closed(stack: Stack, side: str) -> None:
    async with connection(stack, side) as (reader, _, _):
        # Returns once the server closes; the suite's timeout would end a server that never does.
        assert await asyncio.wait_for(read_all(reader), HEADER_TIMEOUT_S * 20) == b""


@pytest.mark.parametrize("side", SIDES)
async def test_a_head_that_trickles_in_gets_408(stack: Stack, side: str) -> None:
    async with connection(stack, side) as (reader, writer, _):
        pieces = [b"GET /health HTTP/1.1\r\n"] + [
            b"X-Slow-%d: y\r\n" % i for i in range(DRIP_PIECES)
        ]
        sent, response = await send_until_answered(writer, reader, pieces, DRIP_S)
    assert sent < len(pieces), "the head was allowed to trickle in forever"
    status, body = status_and_body(response)
    assert status == 408
    assert isinstance(body, dict) and body["error"]["code"] == "request_timeout"


@pytest.mark.parametrize("side", SIDES)
async def test_a_body_that_trickles_in_is_cut_off(stack: Stack, side: str) -> None:
    async with connection(stack, side) as (reader, writer, secret):
        head = (
            "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
            f"Authorization: Bearer {secret}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {DRIP_PIECES + 10}\r\n\r\n"
        ).encode()
        pieces = [head] + [b" "] * DRIP_PIECES
        sent, _ = await send_until_answered(writer, reader, pieces, DRIP_S)
    assert sent < len(pieces), "the body was allowed to trickle in forever"


@pytest.mark.parametrize("side", SIDES)
async def test_a_keep_alive_connection_serves_requests_within_the_deadlines(
    stack: Stack, side: str
) -> None:
    """The deadlines do not cut a healthy client: two requests on one connection."""
    async with connection(stack, side) as (reader, writer, _):
        for _ in range(2):
            writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200")
            length = next(
                int(line.split(b":")[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length")
            )
            await reader.readexactly(length)
