"""SSE framing helpers: keep-alive comments during silences, prompt cleanup on exit."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

KEEP_ALIVE = ": keep-alive\n\n"


async def sse_stream(frames: AsyncIterator[str], keep_alive_s: float) -> AsyncGenerator[str, None]:
    """`frames` as they come, plus a comment whenever nothing was sent for `keep_alive_s`.

    The pending read survives a keep-alive (it is waited on, never cancelled by a
    timeout), so no token is lost; when the consumer goes away the read is cancelled
    and `frames` closed, which cancels the generation behind it.
    """
    pending: asyncio.Future[str] | None = None
    try:
        while True:
            if pending is None:
                pending = asyncio.ensure_future(anext(frames))
            done, _ = await asyncio.wait({pending}, timeout=keep_alive_s)
            if not done:
                yield KEEP_ALIVE
                continue
            try:
                frame = pending.result()
            except StopAsyncIteration:
                return
            pending = None
            yield frame
    finally:
        if pending is not None and not pending.done():
            pending.cancel()
            with contextlib.suppress(BaseException):
                await pending
        await aclose(frames)


async def aclose(iterator: AsyncIterator[Any]) -> None:
    """Close an async generator (a no-op for iterators that cannot be closed)."""
    close = getattr(iterator, "aclose", None)
    if close is not None:
        await close()
