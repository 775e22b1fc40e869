"""Server-sent events, shared by the gateway and the neuron: the streamed response,
keep-alive comments during silences, prompt cleanup when the client goes away."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

KEEP_ALIVE = b": keep-alive\n\n"  # an SSE comment: clients ignore it, proxies see traffic
# no-cache: a stream is never replayed; X-Accel-Buffering: nginx in front must not hold it back.
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


class SSEResponse(Response):
    """A streamed `text/event-stream` answer without a task group per request.

    Starlette's StreamingResponse (for uvicorn's ASGI 2.3) runs the body in an
    anyio task group beside a disconnect listener: the largest per-request
    cost of a streamed relay after the sockets themselves. Here the listener
    is one plain task whose completion cancels the sending task, so a client
    that leaves still ends the stream at once and closes `events` (its
    `finally`), which closes the upstream or cancels the generation behind it.
    """

    media_type = "text/event-stream"

    def __init__(self, events: AsyncIterator[bytes]) -> None:
        self.events = events
        self.status_code = 200
        self.background = None
        self.init_headers(SSE_HEADERS)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        sender = asyncio.current_task()
        assert sender is not None
        disconnected = False

        def on_disconnect(_: object) -> None:
            nonlocal disconnected
            disconnected = True
            sender.cancel()

        listener = asyncio.ensure_future(_until_disconnect(receive))
        listener.add_done_callback(on_disconnect)
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            async for chunk in self.events:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            listener.remove_done_callback(on_disconnect)  # the end is ours, not the client's
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except asyncio.CancelledError:
            if not disconnected:
                raise
            sender.uncancel()
        finally:
            listener.remove_done_callback(on_disconnect)
            listener.cancel()
            await aclose(self.events)


async def _until_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def sse_stream(
    frames: AsyncIterator[str], keep_alive_s: float
) -> AsyncGenerator[bytes, None]:
    """`frames` as they come (encoded), plus a comment whenever nothing was sent for
    `keep_alive_s`.

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
            yield frame.encode()
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
