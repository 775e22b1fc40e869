"""The processes every gateway contestant talks to or is measured against.

- the stub: a minimal OpenAI-compatible server (canned answers, no model),
  the upstream of every proxy in the bench and the "direct" side. It is a raw
  asyncio.Protocol with httptools (llhttp, in C) parsing the requests and
  every reply pre-encoded, as in the issue's reference setup: on a 2-CPU box
  an aiohttp.web stub spent ~0.07 ms of CPU per request, CPU that the
  single-threaded proxy under test then lacked;
- the minimal proxy: starlette + one shared aiohttp session and nothing else
  (no routing, metrics, auth): the floor any Python proxy pays on this box.

Each runs in its own process: `python -m bench.upstream stub PORT` or
`python -m bench.upstream minimal PORT UPSTREAM_URL`.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from collections.abc import AsyncIterator, Callable
from typing import cast

import aiohttp
import httptools  # a uvicorn[standard] dependency, so always there

MODEL = "stub/model"
STREAM_PIECES = 20  # content chunks per streamed answer (the reference figure)


def _chunk(payload: dict[str, object]) -> bytes:
    base = {"id": "b", "object": "chat.completion.chunk", "created": 0, "model": MODEL}
    return b"data: " + json.dumps(base | payload).encode() + b"\n\n"


COMPLETION = json.dumps(
    {
        "id": "b",
        "object": "chat.completion",
        "created": 0,
        "model": MODEL,
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6},
    }
).encode()
STREAM = (
    _chunk({"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]})
    + b"".join(
        _chunk({"choices": [{"index": 0, "delta": {"content": f"w{i} "}}]})
        for i in range(STREAM_PIECES)
    )
    + _chunk({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    + _chunk({"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": STREAM_PIECES}})
    + b"data: [DONE]\n\n"
)
MODELS = json.dumps({"object": "list", "data": [{"id": MODEL, "object": "model"}]}).encode()


def wants_stream(body: bytes) -> bool:
    return b'"stream": true' in body or b'"stream":true' in body


def _reply(status: bytes, content_type: bytes, body: bytes, chunked: bool) -> tuple[bytes, bytes]:
    """A whole response, pre-encoded: (keep-alive form, `Connection: close` form).

    A stream goes out chunked, as a real neuron's does: the body as one chunk,
    then the terminating 0-chunk, all in one write.
    """
    head = b"HTTP/1.1 " + status + b"\r\nContent-Type: " + content_type + b"\r\n"
    if chunked:
        head += b"Transfer-Encoding: chunked\r\n"
        payload = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
    else:
        head += b"Content-Length: %d\r\n" % len(body)
        payload = body
    return head + b"\r\n" + payload, head + b"Connection: close\r\n\r\n" + payload


_COMPLETION_REPLY = _reply(b"200 OK", b"application/json", COMPLETION, chunked=False)
_STREAM_REPLY = _reply(b"200 OK", b"text/event-stream", STREAM, chunked=True)
_MODELS_REPLY = _reply(b"200 OK", b"application/json; charset=utf-8", MODELS, chunked=False)
_NOT_FOUND = _reply(b"404 Not Found", b"text/plain; charset=utf-8", b"404: Not Found", False)
_BAD_REQUEST = _reply(b"400 Bad Request", b"text/plain; charset=utf-8", b"400: Bad Request", False)


def _reply_for(method: bytes, url: bytes, body: bytes) -> tuple[bytes, bytes]:
    path = url.split(b"?", 1)[0]
    if method == b"POST" and path == b"/v1/chat/completions":
        return _STREAM_REPLY if wants_stream(body) else _COMPLETION_REPLY
    if method == b"GET" and path == b"/v1/models":
        return _MODELS_REPLY
    return _NOT_FOUND


class StubProtocol(asyncio.Protocol):
    """One client connection of the stub.

    httptools finds each request's end whatever the framing (Content-Length or
    a chunked body, a request split over many reads or several pipelined in
    one) and says whether the client wants the connection kept; each complete
    request gets its canned reply, in order.
    """

    def __init__(self) -> None:
        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None
        self._url = b""
        self._body: list[bytes] = []
        self._closing = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # cast, not isinstance: uvloop's transports do not subclass asyncio.Transport
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if self._closing:
            return
        try:
            self._parser.feed_data(data)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade):
            self._send(_BAD_REQUEST, keep_alive=False)

    # Backpressure: a client that does not read its answers stops being read.
    def pause_writing(self) -> None:
        if self._transport is not None:
            self._transport.pause_reading()

    def resume_writing(self) -> None:
        if self._transport is not None:
            self._transport.resume_reading()

    # httptools callbacks (only the ones defined here are called).
    def on_message_begin(self) -> None:
        self._url = b""
        self._body.clear()

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        if self._closing:  # pipelined after a `Connection: close` request
            return
        body = b"".join(self._body)
        reply = _reply_for(self._parser.get_method(), self._url, body)
        self._send(reply, keep_alive=self._parser.should_keep_alive())

    def _send(self, reply: tuple[bytes, bytes], keep_alive: bool) -> None:
        assert self._transport is not None
        if keep_alive:
            self._transport.write(reply[0])
            return
        self._closing = True
        self._transport.write(reply[1])
        self._transport.close()  # after the buffered reply is flushed


async def serve_stub(host: str, port: int) -> asyncio.Server:
    """The stub listening on `host`:`port` (0: any free port), serving until closed."""
    loop = asyncio.get_running_loop()
    # A deep backlog: the bench opens 128 connections at once, and a dropped SYN costs 1 s.
    return await loop.create_server(StubProtocol, host, port, backlog=1024)


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def run_stub(port: int) -> None:
    async def main() -> None:
        server = await serve_stub("127.0.0.1", port)
        stopped = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stopped.set)
        await stopped.wait()
        server.close()

    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        runner.run(main())


def run_minimal_proxy(port: int, upstream: str) -> None:
    """The reference: starlette + a shared aiohttp session, nothing else."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response, StreamingResponse
    from starlette.routing import Route

    sessions: list[aiohttp.ClientSession] = []

    async def chat(request: Request) -> Response:
        if not sessions:
            connector = aiohttp.TCPConnector(limit=0)
            sessions.append(aiohttp.ClientSession(connector=connector))
        body = await request.body()
        resp = await sessions[0].post(
            upstream, data=body, headers={"Content-Type": "application/json"}
        )
        if not wants_stream(body):
            data = await resp.read()
            return Response(data, status_code=resp.status, media_type="application/json")

        async def relay() -> AsyncIterator[bytes]:
            async for chunk in resp.content.iter_any():
                yield chunk
            resp.release()

        return StreamingResponse(relay(), media_type="text/event-stream")

    async def models(_: Request) -> Response:
        return Response(b'{"data": []}', media_type="application/json")

    app = Starlette(
        routes=[
            Route("/v1/chat/completions", chat, methods=["POST"]),
            Route("/v1/models", models, methods=["GET"]),
        ]
    )
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
        loop="uvloop",
        http="httptools",
    )


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "stub":
        run_stub(int(sys.argv[2]))
    elif len(sys.argv) == 4 and sys.argv[1] == "minimal":
        run_minimal_proxy(int(sys.argv[2]), sys.argv[3])
    else:
        sys.exit("usage: python -m bench.upstream stub PORT | minimal PORT UPSTREAM_URL")
