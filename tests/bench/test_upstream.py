"""The raw-asyncio bench stub speaks enough HTTP/1.1 for every client the bench points at it.

Real sockets on loopback: the aiohttp client (what the gateway and the minimal
proxy use) and hand-written byte streams for what aiohttp never does on its own
(pipelining, a request torn across reads, `Connection: close` mid-pipeline).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import urlsplit

import aiohttp

from bench.loadgen import Target, drive
from bench.procs import start_stub, stop
from bench.upstream import COMPLETION, MODEL, STREAM, StubProtocol

CHAT = "/v1/chat/completions"
PLAIN_BODY = b'{"model": "stub/model", "messages": []}'
STREAM_BODY = b'{"model": "stub/model", "stream": true, "messages": []}'

Response = tuple[int, dict[str, str], bytes]


def raw_request(method: str, path: str, body: bytes = b"", extra: str = "") -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: t\r\nContent-Length: {len(body)}\r\n{extra}\r\n"
    return head.encode() + body


def split_responses(data: bytes) -> list[Response]:
    """Every HTTP/1.1 response in `data`: (status, lower-cased headers, decoded body)."""
    out: list[Response] = []
    while data:
        head, _, rest = data.partition(b"\r\n\r\n")
        status_line, *lines = head.decode().split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, v in (ln.split(":", 1) for ln in lines)}
        body = b""
        if headers.get("transfer-encoding") == "chunked":
            while True:
                size_line, _, rest = rest.partition(b"\r\n")
                size = int(size_line, 16)
                body, rest = body + rest[:size], rest[size + 2 :]
                if size == 0:
                    break
        else:
            size = int(headers["content-length"])
            body, rest = rest[:size], rest[size:]
        out.append((int(status_line.split()[1]), headers, body))
        data = rest
    return out


async def open_raw(url: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    parts = urlsplit(url)
    assert parts.hostname is not None and parts.port is not None
    return await asyncio.open_connection(parts.hostname, parts.port)


async def test_a_plain_completion_is_the_canned_json(stub_url: str) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.post(stub_url + CHAT, data=PLAIN_BODY) as resp,
    ):
        assert resp.status == 200
        assert resp.content_type == "application/json"
        assert resp.content_length == len(COMPLETION)
        assert await resp.read() == COMPLETION


async def test_a_stream_is_chunked_server_sent_events(stub_url: str) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.post(stub_url + CHAT, data=STREAM_BODY) as resp,
    ):
        assert resp.status == 200
        assert resp.content_type == "text/event-stream"
        assert resp.headers["Transfer-Encoding"] == "chunked"
        assert await resp.read() == STREAM


async def test_a_chunked_request_body_is_read_to_its_end(stub_url: str) -> None:
    async def parts() -> AsyncIterator[bytes]:  # aiohttp sends an async iterable chunked
        yield STREAM_BODY[:10]
        yield STREAM_BODY[10:30]
        yield STREAM_BODY[30:]

    async with (
        aiohttp.ClientSession() as session,
        session.post(stub_url + CHAT, data=parts()) as resp,
    ):
        assert resp.status == 200
        assert await resp.read() == STREAM


async def test_the_models_list_and_a_404(stub_url: str) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.get(stub_url + "/v1/models") as resp:
            assert resp.status == 200
            assert await resp.json() == {
                "object": "list",
                "data": [{"id": MODEL, "object": "model"}],
            }
        for method, path in (("GET", "/nope"), ("POST", "/v1/models"), ("GET", CHAT)):
            async with session.request(method, stub_url + path) as resp:
                assert resp.status == 404, (method, path)
                await resp.read()


async def test_the_aiohttp_client_reuses_one_connection(stub_url: str) -> None:
    created = 0

    async def on_created(
        _: aiohttp.ClientSession,
        __: SimpleNamespace,
        ___: aiohttp.TraceConnectionCreateEndParams,
    ) -> None:
        nonlocal created
        created += 1

    trace = aiohttp.TraceConfig()
    trace.on_connection_create_end.append(on_created)
    async with aiohttp.ClientSession(trace_configs=[trace]) as session:
        for body, expected in [(PLAIN_BODY, COMPLETION), (STREAM_BODY, STREAM)] * 3:
            async with session.post(stub_url + CHAT, data=body) as resp:
                assert await resp.read() == expected
    assert created == 1


async def test_pipelined_requests_are_answered_in_order_until_connection_close(
    stub_url: str,
) -> None:
    reader, writer = await open_raw(stub_url)
    writer.write(
        raw_request("POST", CHAT, PLAIN_BODY)
        + raw_request("POST", CHAT, STREAM_BODY)
        + raw_request("GET", "/v1/models")
        + raw_request("GET", "/nope")
        + raw_request("POST", CHAT, PLAIN_BODY, extra="Connection: close\r\n")
        + raw_request("POST", CHAT, STREAM_BODY)  # after the close: never answered
    )
    data = await reader.read()  # to EOF: the server closes after the 5th answer
    writer.close()
    await writer.wait_closed()
    answers = split_responses(data)
    assert [status for status, _, _ in answers] == [200, 200, 200, 404, 200]
    assert [answers[i][2] for i in (0, 1, 4)] == [COMPLETION, STREAM, COMPLETION]
    assert "connection" not in answers[0][1]
    assert answers[4][1]["connection"] == "close"


class RecordingStub(StubProtocol):
    """The real stub protocol that also tells the test each time a read arrived."""

    def __init__(self, reads: asyncio.Queue[bytes]) -> None:
        super().__init__()
        self._reads = reads

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._reads.put_nowait(data)


async def test_requests_torn_across_many_reads_are_reassembled() -> None:
    reads: asyncio.Queue[bytes] = asyncio.Queue()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: RecordingStub(reads), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    chunked_body = b"".join(
        b"%x\r\n%s\r\n" % (len(part), part) for part in (STREAM_BODY[:7], STREAM_BODY[7:])
    )
    wire = (
        raw_request("POST", CHAT, PLAIN_BODY)
        + (
            f"POST {CHAT} HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n"
            "Connection: close\r\n\r\n"
        ).encode()
        + chunked_body
        + b"0\r\n\r\n"
    )
    cuts = [0, 3, 17, 40, 90, 95, 130, 160, 175, 190, 200, len(wire)]
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for start, end in itertools.pairwise(cuts):
            writer.write(wire[start:end])
            received = b""
            while len(received) < end - start:  # the server has it before the next piece goes
                received += await reads.get()
        data = await reader.read()
        writer.close()
        await writer.wait_closed()
    finally:
        server.close()
        await server.wait_closed()
    answers = split_responses(data)
    assert [(status, body) for status, _, body in answers] == [(200, COMPLETION), (200, STREAM)]


async def test_the_stub_process_serves_until_terminated(tmp_path: Path) -> None:
    """`python -m bench.upstream stub PORT` (uvloop) answers the load generator, exits 0 on TERM."""
    stub = await start_stub(tmp_path)
    assert stub.process is not None
    try:
        stats = await drive(Target(stub.base_url + CHAT, STREAM_BODY, True), clients=2, seconds=0.2)
    finally:
        stop(stub.process)
    assert stats.errors == 0 and stats.latencies
    assert stub.process.returncode == 0


async def test_an_unparseable_request_gets_400_and_a_close(stub_url: str) -> None:
    reader, writer = await open_raw(stub_url)
    writer.write(b"NOT HTTP AT ALL\r\n\r\n")
    data = await reader.read()
    writer.close()
    await writer.wait_closed()
    [(status, headers, _)] = split_responses(data)
    assert status == 400 and headers["connection"] == "close"
