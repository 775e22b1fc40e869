"""Write coalescing: what one loop turn writes reaches the socket as one write."""

from __future__ import annotations

import asyncio
from typing import Any, cast

from helexa.gateway.transport import CoalescingTransport


class RecordingTransport:
    """Stands in for the socket transport: records what reaches it."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False
        self.aborted = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def is_closing(self) -> bool:
        return self.closed or self.aborted

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 1) if name == "peername" else default


def wrap(raw: RecordingTransport) -> CoalescingTransport:
    return CoalescingTransport(cast(asyncio.Transport, raw), asyncio.get_running_loop())


async def next_turn() -> None:
    await asyncio.sleep(0)  # one loop turn: the flush scheduled with call_soon runs


async def test_one_turn_of_writes_is_one_socket_write() -> None:
    raw = RecordingTransport()
    transport = wrap(raw)
    transport.write(b"HTTP/1.1 200 OK\r\n\r\n")
    transport.write(b"hello")
    transport.write(bytearray(b" world"))
    assert raw.writes == []  # nothing leaves before the turn ends
    await next_turn()
    assert raw.writes == [b"HTTP/1.1 200 OK\r\n\r\nhello world"]
    transport.write(b"next")
    await next_turn()
    assert raw.writes[1:] == [b"next"]


async def test_close_sends_what_is_pending_first() -> None:
    raw = RecordingTransport()
    transport = wrap(raw)
    transport.write(b"last bytes")
    transport.close()
    assert raw.writes == [b"last bytes"] and raw.closed
    await next_turn()  # the scheduled flush finds nothing left
    assert raw.writes == [b"last bytes"]


async def test_abort_drops_what_is_pending() -> None:
    raw = RecordingTransport()
    transport = wrap(raw)
    transport.write(b"never sent")
    transport.abort()
    await next_turn()
    assert raw.writes == [] and raw.aborted


async def test_nothing_is_written_to_a_closing_transport() -> None:
    raw = RecordingTransport()
    transport = wrap(raw)
    transport.write(b"late")
    raw.closed = True  # the peer went away before the turn ended
    await next_turn()
    assert raw.writes == []


async def test_everything_else_passes_through() -> None:
    transport = wrap(RecordingTransport())
    assert transport.get_extra_info("peername") == ("127.0.0.1", 1)
    assert transport.is_closing() is False
