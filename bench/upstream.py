"""The processes every gateway contestant talks to or is measured against.

- the stub: a minimal OpenAI-compatible aiohttp server (canned answers, no
  model), the upstream of every proxy in the bench and the "direct" side;
- the minimal proxy: starlette + one shared aiohttp session and nothing else
  (no routing, metrics, auth): the floor any Python proxy pays on this box.

Each runs in its own process: `python -m bench.upstream stub PORT` or
`python -m bench.upstream minimal PORT UPSTREAM_URL`.
"""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

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


def wants_stream(body: bytes) -> bool:
    return b'"stream": true' in body or b'"stream":true' in body


async def _stub_chat(request: web.Request) -> web.StreamResponse:
    body = await request.read()
    if not wants_stream(body):
        return web.Response(body=COMPLETION, content_type="application/json")
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await resp.prepare(request)
    await resp.write(STREAM)
    await resp.write_eof()
    return resp


async def _stub_models(_: web.Request) -> web.Response:
    return web.json_response({"object": "list", "data": [{"id": MODEL, "object": "model"}]})


def _install_uvloop() -> None:
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass


def run_stub(port: int) -> None:
    app = web.Application()
    app.router.add_post("/v1/chat/completions", _stub_chat)
    app.router.add_get("/v1/models", _stub_models)
    _install_uvloop()
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


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
