"""A scripted OpenAI-compatible upstream on loopback (kind="openai" stand-in, proxy tests)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


class _ScriptedCut(Exception):
    """Raised inside the replay to drop the connection."""


@dataclass
class Script:
    """How the scripted upstream answers; tests flip these between requests."""

    pieces: list[str] = field(default_factory=lambda: ["Hello", " world", "!"])
    status: int = 200  # anything else: an OpenAI error envelope with this status
    error_code: str = "overloaded"
    cut_after: int | None = None  # abort the connection after this many content pieces
    piece_delay: float = 0.0
    hang_after: int | None = None  # stop sending (without closing) after this many pieces
    set_cookie: str | None = None  # a Set-Cookie header on non-streamed answers
    hold_whole: bool = False  # a non-streamed answer's body waits for release()
    # usage.prompt_tokens_details.cached_tokens, as a prefix-caching server reports it
    cached_tokens: int | None = None
    prompt_tokens: int = 7

    def usage(self) -> dict[str, Any]:
        completion = len(self.pieces)
        usage: dict[str, Any] = {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": completion,
            "total_tokens": self.prompt_tokens + completion,
        }
        if self.cached_tokens is not None:
            usage["prompt_tokens_details"] = {"cached_tokens": self.cached_tokens}
        return usage


class ScriptedUpstream:
    """An OpenAI-compatible server replaying exact SSE streams (kind="openai" stand-in)."""

    def __init__(self, models: list[str]) -> None:
        self.models = models
        self.script = Script()
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.disconnects = 0
        self.disconnected = asyncio.Event()
        self._release = asyncio.Event()  # frees hanging handlers at stop
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def start(self) -> ScriptedUpstream:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/v1/completions", self._chat)
        app.router.add_get("/v1/models", self._models)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    def release(self) -> None:
        """Free every handler waiting (hang_after, hold_whole)."""
        self._release.set()

    async def stop(self) -> None:
        self._release.set()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _models(self, _: web.Request) -> web.Response:
        return web.json_response(
            {"object": "list", "data": [{"id": m, "object": "model"} for m in self.models]}
        )

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append(body)
        self.headers.append(dict(request.headers))
        script = self.script
        if script.status != 200:
            envelope = {"error": {"message": "scripted", "type": "x", "code": script.error_code}}
            return web.json_response(envelope, status=script.status, headers={"Retry-After": "2"})
        chat = request.path.endswith("/chat/completions")
        if not body.get("stream"):
            text = "".join(script.pieces)
            choice = {"index": 0, "message": {"role": "assistant", "content": text}}
            if not chat:
                choice = {"index": 0, "text": text}
            usage = script.usage()
            cookie = {"Set-Cookie": script.set_cookie} if script.set_cookie else {}
            data = {
                "id": "x",
                "object": "chat.completion",
                "model": body["model"],
                "created": int(time.time()),
                "choices": [choice | {"finish_reason": "stop"}],
                "usage": usage,
            }
            if script.hold_whole:  # the status and headers now, the body on release()
                held = web.StreamResponse(headers={"Content-Type": "application/json"})
                await held.prepare(request)
                await self._release.wait()
                await held.write(json.dumps(data).encode())
                return held
            return web.json_response(headers=cookie, data=data)
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        try:
            async for event in self._events(body, chat):
                await resp.write(event)
        except _ScriptedCut:
            # Drop the TCP connection mid-body, as a crashed neuron would.
            assert request.transport is not None
            request.transport.abort()
        except (ConnectionResetError, asyncio.CancelledError):
            self.disconnects += 1
            self.disconnected.set()
            raise
        return resp

    async def _events(self, body: dict[str, Any], chat: bool) -> AsyncIterator[bytes]:
        script = self.script
        base = {"id": "x", "object": "chat.completion.chunk", "created": 1, "model": body["model"]}

        def event(payload: dict[str, Any]) -> bytes:
            return b"data: " + json.dumps(base | payload).encode() + b"\n\n"

        if chat:
            yield event({"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]})
        for n, piece in enumerate(script.pieces):
            if script.cut_after is not None and n >= script.cut_after:
                raise _ScriptedCut
            if script.hang_after is not None and n >= script.hang_after:
                await self._release.wait()
                return
            if script.piece_delay:
                await asyncio.sleep(script.piece_delay)
            if chat:
                yield event({"choices": [{"index": 0, "delta": {"content": piece}}]})
            else:
                yield event({"choices": [{"index": 0, "text": piece}]})
        yield event({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
        if (body.get("stream_options") or {}).get("include_usage"):
            yield event({"choices": [], "usage": script.usage()})
        yield b"data: [DONE]\n\n"
