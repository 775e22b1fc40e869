"""Connection limits in the HTTP protocol layer, shared by the gateway and the neuron.

uvicorn's httptools protocol reads a request head of any size (httptools keeps
a header it has not finished in memory: four connections holding 128 MB of
unfinished headers cost 530 MB) and waits on a slow client forever (an idle
connection, a header line every few seconds, a body byte every few seconds).
`GuardedHttpToolsProtocol` adds, per connection, before any app code runs:

- a request head larger than `max_header_bytes` -> 431 and the connection closed;
- a head not complete within `header_timeout` of the connection opening (or of the
  previous response ending) -> 408 and closed: the deadline is for the whole head,
  so a byte now and then does not extend it;
- a body not complete within `body_timeout` of its head -> the connection closed
  (the app sees the client leave);
- `max_connections` is uvicorn's `limit_concurrency`: past it, requests get 503.

The limits are read when the server starts (`guarded_protocol` bakes them into
a subclass); a change needs a restart.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from helexa.errors import APIError, BadRequest

log = logging.getLogger("helexa.httpguard")

DEFAULT_MAX_HEADER_KB = 64
DEFAULT_HEADER_TIMEOUT_S = 10.0
DEFAULT_BODY_TIMEOUT_S = 60.0

_REASONS = {408: b"Request Timeout", 431: b"Request Header Fields Too Large"}


@dataclass(frozen=True)
class ConnectionLimits:
    max_header_bytes: int = DEFAULT_MAX_HEADER_KB * 1024
    header_timeout: float = DEFAULT_HEADER_TIMEOUT_S
    body_timeout: float = DEFAULT_BODY_TIMEOUT_S
    max_connections: int | None = None  # uvicorn's limit_concurrency


def openai_envelope(_: str, error: APIError) -> bytes:
    return json.dumps(error.to_openai()).encode()


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a head size cap and head/body deadlines."""

    limits: ClassVar[ConnectionLimits] = ConnectionLimits()
    # (path, error) -> the error body, in the dialect of the path (when it is known).
    render: ClassVar[Callable[[str, APIError], bytes]] = staticmethod(openai_envelope)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.limits.max_connections is not None:
            self.limit_concurrency = self.limits.max_connections
        self._in_head = True  # reading a request head (or waiting for one)
        self._head_bytes = 0
        # One timer per connection, moved lazily: a phase change only writes `_phase` and
        # `_due`; the timer, when it fires, looks at them and re-arms itself if early.
        # (A cancel + call_later per phase, four per request, cost the loop more.)
        self._phase: str = "head"  # "head" | "body" | "busy" (a response under way)
        self._due = 0.0
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._enter("head", self.limits.header_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._in_head:
            self._head_bytes += len(data)
        super().data_received(data)
        # Counted per read: a head that ends inside this read passed (on_headers_complete
        # cleared _in_head); what is kept in memory is at most the cap plus one read.
        if self._in_head and self._head_bytes > self.limits.max_header_bytes:
            self._refuse(431, f"request headers exceed {self.limits.max_header_bytes} bytes")

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._enter("body", self.limits.body_timeout)
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._phase = "busy"  # the response may take as long as it takes
        self._in_head = True
        self._head_bytes = 0
        super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and not self.pipeline and self._in_head:
            self._enter("head", self.limits.header_timeout)

    def _enter(self, phase: str, seconds: float) -> None:
        self._phase = phase
        self._due = self.loop.time() + seconds
        if self._timer is None:
            self._timer = self.loop.call_at(self._due, self._check)
        elif self._timer.when() > self._due:  # a shorter deadline than the timer's
            self._timer.cancel()
            self._timer = self.loop.call_at(self._due, self._check)

    def _check(self) -> None:
        self._timer = None
        if self.transport.is_closing():
            return
        if self._phase == "busy":  # look again later; completion sets the next deadline
            self._timer = self.loop.call_later(self.limits.header_timeout, self._check)
        elif self.loop.time() < self._due:
            self._timer = self.loop.call_at(self._due, self._check)
        elif self._phase == "head":
            self._head_timed_out()
        else:
            self._body_timed_out()

    def _head_timed_out(self) -> None:
        if self._head_bytes == 0:
            # Idle: close without a word (a client reusing the connection just now would
            # take a 408 for the answer to its next request).
            self.transport.close()
            return
        self._refuse(408, f"request head not received within {self.limits.header_timeout:g}s")

    def _body_timed_out(self) -> None:
        seconds = self.limits.body_timeout
        log.warning("closing %s: body not received within %gs", self.client, seconds)
        self.transport.close()

    def _refuse(self, status: int, message: str) -> None:
        if self.transport.is_closing():
            return
        log.warning("refusing %s: %s", self.client, message)
        path = self.url.split(b"?", 1)[0].decode("latin-1") if self.headers is not None else ""
        code = "request_timeout" if status == 408 else "request_header_fields_too_large"
        body = type(self).render(path, BadRequest(message, status=status, code=code))
        head = b"HTTP/1.1 %d %s\r\n" % (status, _REASONS[status])
        self.transport.write(
            head
            + b"content-type: application/json\r\n"
            + b"content-length: %d\r\n" % len(body)
            + b"connection: close\r\n\r\n"
            + body
        )
        self.transport.close()


def guarded_protocol(
    base: type[GuardedHttpToolsProtocol],
    limits: ConnectionLimits,
    render: Callable[[str, APIError], bytes] = openai_envelope,
) -> type[GuardedHttpToolsProtocol]:
    """`base` with `limits` and `render` baked in (uvicorn.Config(http=...) takes a class)."""
    attributes = {"limits": limits, "render": staticmethod(render)}
    return type(f"{base.__name__}Limited", (base,), attributes)
