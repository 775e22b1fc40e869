"""Whole responses sent by the pure ASGI layers (body limits, API keys, UI sign-in, fast lane).

These answer before any route runs, so they speak raw ASGI rather than build
a starlette `Response`.
"""

from __future__ import annotations

from collections.abc import Sequence

from starlette.types import Send

JSON = (b"content-type", b"application/json")


async def send_whole(
    send: Send, status: int, body: bytes, headers: Sequence[tuple[bytes, bytes]] = (JSON,)
) -> None:
    """Status, `headers` plus Content-Length, then the body in one message."""
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*headers, (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
