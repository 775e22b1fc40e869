"""A scripted OpenAI-compatible upstream (kind = "openai") that calls tools.

It answers like an agent's model would, so clients (the SDKs, Claude Code)
can run a whole tool loop through the gateway:

- the conversation ends with a tool-role message: a text answer quoting the
  tool's output, `FOLLOW_UP_PREFIX + content`;
- the request offers the scripted tool: a call to it, streamed with the
  arguments split across many chunks (the case peers get wrong);
- anything else (a title request, a request without tools): `text`.

Every request body is kept in `requests`, so tests assert on what the
gateway sent (the tool_result coming back, the translated fields).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

FOLLOW_UP_PREFIX = "The tool said: "
ARGUMENT_PIECE_CHARS = 5
TEXT_PIECE_CHARS = 4
PROMPT_TOKENS = 11


@dataclass
class ToolCallScript:
    name: str
    arguments: dict[str, Any]


@dataclass
class ToolScript:
    calls: list[ToolCallScript] = field(default_factory=list)  # empty: never call a tool
    text: str = "Hello from the scripted upstream."
    lead_text: str = ""  # text sent before the tool calls, in the same turn
    reasoning: str = ""  # reasoning_content sent before the tool calls (a thinking model)


class ToolUpstream:
    """An aiohttp server on a free loopback port; `url` ends in /v1 like a foreign server."""

    def __init__(self, models: list[str], script: ToolScript | None = None) -> None:
        self.models = models
        self.script = script or ToolScript()
        self.requests: list[dict[str, Any]] = []
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def start(self) -> ToolUpstream:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_get("/v1/models", self._models)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}/v1"
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def tool_messages(self) -> list[dict[str, Any]]:
        """Every tool-role message the upstream received, in order."""
        return [m for body in self.requests for m in body["messages"] if m["role"] == "tool"]

    async def _models(self, _: web.Request) -> web.Response:
        data = [{"id": m, "object": "model"} for m in self.models]
        return web.json_response({"object": "list", "data": data})

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append(body)
        text, calls = self.answer(body)
        reasoning = self.script.reasoning if calls else ""
        if not body.get("stream"):
            return web.json_response(_completion(body["model"], text, calls, reasoning))
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        for chunk in _chunks(body["model"], text, calls, reasoning):
            await resp.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
        await resp.write(b"data: [DONE]\n\n")
        return resp

    def answer(self, body: dict[str, Any]) -> tuple[str, list[ToolCallScript]]:
        """(text, tool calls) for one request, by the rules in the module docstring."""
        messages = body.get("messages") or []
        if messages and messages[-1].get("role") == "tool":
            return FOLLOW_UP_PREFIX + _text_of(messages[-1].get("content")), []
        offered = {t["function"]["name"] for t in body.get("tools") or []}
        calls = [c for c in self.script.calls if c.name in offered]
        if calls:
            return self.script.lead_text, calls
        return self.script.text, []


def _text_of(content: Any) -> str:
    if isinstance(content, list):
        return "".join(str(part.get("text", "")) for part in content)
    return str(content or "")


def _call_id(index: int) -> str:
    return f"call_{index}"


def _completion(
    model: str, text: str, calls: list[ToolCallScript], reasoning: str
) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": text or None}
    if reasoning:
        message["reasoning_content"] = reasoning
    if calls:
        message["tool_calls"] = [
            {
                "id": _call_id(n),
                "type": "function",
                "function": {"name": c.name, "arguments": json.dumps(c.arguments)},
            }
            for n, c in enumerate(calls)
        ]
    return {
        "id": "chatcmpl-tools",
        "object": "chat.completion",
        "created": 1,
        "model": model,
        "choices": [
            {"index": 0, "message": message, "finish_reason": "tool_calls" if calls else "stop"}
        ],
        "usage": _usage(text, calls),
    }


def _usage(text: str, calls: list[ToolCallScript]) -> dict[str, int]:
    completion = max(1, len(text.split()) + 5 * len(calls))
    return {
        "prompt_tokens": PROMPT_TOKENS,
        "completion_tokens": completion,
        "total_tokens": PROMPT_TOKENS + completion,
    }


def _chunks(
    model: str, text: str, calls: list[ToolCallScript], reasoning: str
) -> Iterator[dict[str, Any]]:
    base = {"id": "chatcmpl-tools", "object": "chat.completion.chunk", "created": 1, "model": model}

    def delta(d: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return base | {"choices": [{"index": 0, "delta": d, "finish_reason": finish}]}

    yield delta({"role": "assistant", "content": ""})
    for start in range(0, len(reasoning), TEXT_PIECE_CHARS):
        yield delta({"reasoning_content": reasoning[start : start + TEXT_PIECE_CHARS]})
    for start in range(0, len(text), TEXT_PIECE_CHARS):
        yield delta({"content": text[start : start + TEXT_PIECE_CHARS]})
    for n, call in enumerate(calls):
        head = {"id": _call_id(n), "type": "function", "function": {"name": call.name}}
        yield delta({"tool_calls": [{"index": n, **head}]})
        arguments = json.dumps(call.arguments)
        for start in range(0, len(arguments), ARGUMENT_PIECE_CHARS):
            piece = arguments[start : start + ARGUMENT_PIECE_CHARS]
            yield delta({"tool_calls": [{"index": n, "function": {"arguments": piece}}]})
    yield delta({}, "tool_calls" if calls else "stop")
    yield base | {"choices": [], "usage": _usage(text, calls)}


def fleet_toml(upstream: ToolUpstream, name: str = "agent") -> str:
    """A fleet.toml with the upstream as its only (foreign) neuron."""
    models = ", ".join(f'"{m}"' for m in upstream.models)
    return (
        f'[[neurons]]\nname = "{name}"\nkind = "openai"\n'
        f'endpoint = "{upstream.url}"\nmodels = [{models}]\n'
    )
