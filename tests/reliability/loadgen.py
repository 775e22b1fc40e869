"""A bounded mixed load through the gateway: both dialects, streaming and not.

Each answer is classed as ok, refused (429/503 carrying Retry-After: deliberate
back-pressure) or an error (anything else, including a stream that ends in an
error event or without its terminator).
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from helexa.testing.neuron_proc import TINY_MODEL_ID

OVERLOADED_IN_STREAM = "overloaded in stream"
KINDS = ("openai", "openai-stream", "anthropic", "anthropic-stream")


@dataclass
class LoadResult:
    outcomes: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.outcomes.values())


def request_for(kind: str, index: int) -> tuple[str, dict[str, Any]]:
    text = f"request {index}: say something"
    stream = kind.endswith("stream")
    if kind.startswith("anthropic"):
        return "/v1/messages", {
            "model": TINY_MODEL_ID,
            "max_tokens": 4,
            "messages": [{"role": "user", "content": text}],
            "stream": stream,
        }
    return "/v1/chat/completions", {
        "model": TINY_MODEL_ID,
        "max_tokens": 4,
        "messages": [{"role": "user", "content": text}],
        "stream": stream,
    }


def judge(kind: str, status: int, headers: Any, body: bytes) -> str | None:
    """None when the answer is fine, else what is wrong with it."""
    if status in (429, 503):
        return None if headers.get("Retry-After") else f"{status} without Retry-After"
    if status != 200:
        return f"{status}: {body[:200]!r}"
    if kind == "openai":
        return None if json.loads(body).get("choices") else f"no choices: {body[:200]!r}"
    if kind == "anthropic":
        return (
            None if json.loads(body).get("type") == "message" else f"not a message: {body[:200]!r}"
        )
    # Matched as whole SSE lines: generated text may well contain the word "error".
    if b'\ndata: {"error"' in body or b"\nevent: error" in body:
        # Back-pressure after the headers went out (a stream that waited for a cold
        # load): the 503 arrives as an overloaded error event instead of a status.
        if b"overloaded" in body:
            return OVERLOADED_IN_STREAM
        return f"stream error: {body[-300:]!r}"
    end = b"data: [DONE]" if kind == "openai-stream" else b"event: message_stop"
    return None if end in body else f"stream without its end: {body[-200:]!r}"


async def run_load(
    base_url: str, requests: int, clients: int, on_progress: Any = None
) -> LoadResult:
    result = LoadResult()
    counter = iter(range(requests))
    timeout = aiohttp.ClientTimeout(total=120)
    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(base_url, timeout=timeout, connector=connector) as session:

        async def client() -> None:
            for index in counter:
                kind = KINDS[index % len(KINDS)]
                path, body = request_for(kind, index)
                try:
                    async with session.post(path, json=body) as response:
                        raw = await response.read()
                        problem = judge(kind, response.status, response.headers, raw)
                        status = response.status
                except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                    problem, status = f"{type(exc).__name__}: {exc}", 0
                if problem == OVERLOADED_IN_STREAM:
                    result.outcomes["refused_in_stream"] += 1
                elif problem is None:
                    result.outcomes["ok" if status == 200 else f"refused_{status}"] += 1
                else:
                    result.outcomes["error"] += 1
                    result.errors.append(f"{kind}: {problem}")
                if on_progress is not None:
                    on_progress(result.total)

        await asyncio.gather(*(client() for _ in range(clients)))
    return result
