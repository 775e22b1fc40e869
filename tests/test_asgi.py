"""Whole responses from the pure ASGI layers."""

from __future__ import annotations

from starlette.types import Message

from helexa.asgi import JSON, send_whole


async def test_a_whole_response_is_start_then_one_body() -> None:
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    await send_whole(send, 413, b'{"error": {}}', [JSON, (b"connection", b"close")])
    assert sent == [
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [JSON, (b"connection", b"close"), (b"content-length", b"13")],
        },
        {"type": "http.response.body", "body": b'{"error": {}}'},
    ]
