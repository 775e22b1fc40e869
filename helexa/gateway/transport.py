"""One send(2) per response instead of one per ASGI message, for the gateway's HTTP server.

uvicorn writes a response's status line and headers as soon as the app
sends `http.response.start`, then each body message on its own: a small
non-streamed answer costs two socket writes and a streamed one at least
three. On loopback a write is the most expensive thing a proxy does (in a
py-spy profile of the gateway under load, uvicorn's `send` and aiohttp's
writer together held about 45% of the CPU time, nearly all of it inside
the socket call). `CoalescingTransport` gathers what is written during one
turn of the event loop and hands it to the socket as one write at the end
of that turn; a stream still leaves as its events arrive (the next turn),
so nothing waits on a timer.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

from helexa.httpguard import GuardedHttpToolsProtocol


class CoalescingTransport:
    """Wraps a transport: writes are joined until the loop's next turn; the rest passes."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not self._pending:
            self._loop.call_soon(self.flush)
        self._pending.append(bytes(data))

    def flush(self) -> None:
        if not self._pending:
            return
        data = self._pending[0] if len(self._pending) == 1 else b"".join(self._pending)
        self._pending.clear()
        if not self._transport.is_closing():
            self._transport.write(data)

    def close(self) -> None:
        self.flush()  # a close after the last body write must not lose it
        self._transport.close()

    def abort(self) -> None:
        self._pending.clear()
        self._transport.abort()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class CoalescingHttpToolsProtocol(GuardedHttpToolsProtocol):
    """The guarded httptools protocol (helexa.httpguard) over a `CoalescingTransport`."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        wrapped = CoalescingTransport(transport, self.loop)
        super().connection_made(cast(asyncio.Transport, wrapped))
