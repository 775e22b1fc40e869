"""SSE keep-alives: sent during silences, never at the cost of a frame; cleanup on close."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from helexa.sse import KEEP_ALIVE, sse_stream


async def test_keep_alive_fills_silences_without_losing_frames() -> None:
    release = asyncio.Event()

    async def frames() -> AsyncIterator[str]:
        yield "data: 1\n\n"
        await release.wait()  # silence until the consumer has seen keep-alives
        yield "data: 2\n\n"

    seen: list[bytes] = []
    async for frame in sse_stream(frames(), keep_alive_s=0.01):
        seen.append(frame)
        if seen.count(KEEP_ALIVE) == 2:
            release.set()
    assert seen == [b"data: 1\n\n", KEEP_ALIVE, KEEP_ALIVE, b"data: 2\n\n"]


async def test_closing_the_stream_closes_the_source() -> None:
    closed = asyncio.Event()

    async def frames() -> AsyncIterator[str]:
        try:
            yield "data: 1\n\n"
            await asyncio.Event().wait()  # never produces again
            yield "unreachable"
        finally:
            closed.set()

    stream = sse_stream(frames(), keep_alive_s=0.01)
    assert await anext(stream) == b"data: 1\n\n"
    assert await anext(stream) == KEEP_ALIVE
    await stream.aclose()  # what a client disconnect does to the response body
    assert closed.is_set()
