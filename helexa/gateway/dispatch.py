"""Getting one OpenAI request to a neuron and its answer back (routing steps 2-5).

Used by the OpenAI routes, and by any dialect route that translates to
OpenAI first. `respond` picks the path:

- loaded somewhere: open the upstream now (failover before the first byte),
  so an error still gets a real HTTP status;
- otherwise, streaming: answer 200 at once and send `: keep-alive` comments
  while the model is waited for / cold-loaded, then relay; failures become
  an error event;
- otherwise, not streaming: wait, then answer.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send

from helexa.errors import APIError
from helexa.fleet.neuron_client import error_from_response
from helexa.fleet.state import ModelLocation
from helexa.gateway import router
from helexa.gateway.core import Gateway
from helexa.gateway.keys import Ticket
from helexa.gateway.metrics import GatewayMetrics
from helexa.gateway.proxy import (
    KEEP_ALIVE,
    Opened,
    Usage,
    error_event,
    keep_alive_while_loading,
)

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


class SSEResponse(Response):
    """A streamed `text/event-stream` answer without a task group per request.

    Starlette's StreamingResponse (for uvicorn's ASGI 2.3) runs the body in an
    anyio task group beside a disconnect listener: the largest per-request
    cost of a streamed relay after the sockets themselves. Here the listener
    is one plain task whose completion cancels the sending task, so a client
    that leaves still ends the stream at once and closes the upstream (the
    event generator's `finally`), which cancels the neuron's generation.
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
            aclose = getattr(self.events, "aclose", None)
            if aclose is not None:
                await aclose()


async def _until_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


@dataclass
class RequestMeter:
    """Feeds the per-request metrics once, when the response has ended."""

    metrics: GatewayMetrics
    model: str
    dialect: str
    usage: Usage = field(default_factory=Usage)
    done: bool = False
    ticket: Ticket | None = None  # the calling key's, when keys are configured

    def finish(self, neuron: str | None, status: int | str) -> None:
        if self.done:
            return
        self.done = True
        u = self.usage
        end = u.finished_at or time.monotonic()
        labels = (self.model, neuron or "", self.dialect)
        m = self.metrics
        m.requests.inc((*labels, str(status)))
        m.request_duration.observe(labels, end - u.started)
        if self.ticket is not None:
            self.ticket.finish(neuron, status, u, end - u.started)
        if u.first_token_at is not None:
            m.ttft.observe(labels, u.first_token_at - u.started)
        if neuron is None:
            return
        where = (self.model, neuron)
        if u.prompt_tokens:
            m.prompt_tokens.inc(where, u.prompt_tokens)
        if u.completion_tokens:
            m.completion_tokens.inc(where, u.completion_tokens)
            decoding = end - (u.first_token_at or u.started)
            if u.completion_tokens > 1 and decoding > 0:
                m.tokens_per_second.observe(where, (u.completion_tokens - 1) / decoding)


def openai_error(exc: APIError) -> JSONResponse:
    return JSONResponse(exc.to_openai(), status_code=exc.status, headers=exc.headers())


async def open_upstream(
    gw: Gateway,
    model_id: str,
    path: str,
    payload: bytes,
    *,
    stream: bool,
    candidates: list[ModelLocation] | None = None,
    hint: router.RoutingHint = router.NO_HINT,
) -> Opened:
    """Wait for / cold-load the model, then open it with failover (steps 2-5)."""
    started = time.monotonic()
    within = gw.config.fleet.gateway.load_timeout
    if candidates is None:
        candidates = router.choose_replica(model_id, gw.fleet, hint)
    if not candidates:
        candidates = await gw.loader.servable(model_id, within)
        gw.metrics.queue_wait.labels(model_id).observe(time.monotonic() - started)
    return await gw.proxy.open(gw.targets(candidates, path), payload, stream=stream)


async def respond(
    gw: Gateway,
    model_id: str,
    path: str,
    payload: bytes,
    *,
    stream: bool,
    meter: RequestMeter,
    drop_usage_event: bool = False,
) -> Response:
    """The client's response for an OpenAI request whose model is already resolved."""
    candidates = router.choose_replica(model_id, gw.fleet)
    if stream and not candidates:
        events = _wait_then_relay(gw, model_id, path, payload, meter, drop_usage_event)
        return SSEResponse(events)
    try:
        opened = await open_upstream(
            gw, model_id, path, payload, stream=stream, candidates=candidates
        )
    except APIError as exc:
        meter.finish(None, exc.status)
        return openai_error(exc)
    status = opened.response.status
    if not stream or status != 200:
        return await _whole(gw, opened, meter, model_id)
    events = _relay(gw, opened, meter, model_id, drop_usage_event)
    return SSEResponse(events)


async def _whole(gw: Gateway, opened: Opened, meter: RequestMeter, model_id: str) -> Response:
    neuron = opened.target.neuron
    _track(gw, model_id, neuron)
    try:
        body = await gw.proxy.read_all(opened, meter.usage)
    except APIError as exc:
        meter.finish(neuron, exc.status)
        return openai_error(exc)
    finally:
        _untrack(gw, model_id, neuron)
    status = opened.response.status
    meter.finish(neuron, status)
    content_type = opened.response.headers.get("Content-Type", "application/json")
    return Response(body, status_code=status, media_type=content_type, headers=_retry_after(opened))


async def _relay(
    gw: Gateway, opened: Opened, meter: RequestMeter, model_id: str, drop_usage_event: bool
) -> AsyncIterator[bytes]:
    neuron = opened.target.neuron
    _track(gw, model_id, neuron)
    status: int | str = "client_closed"
    try:
        async for chunk in gw.proxy.relay(opened, meter.usage, drop_usage_event=drop_usage_event):
            if chunk.startswith(b'data: {"error"'):
                status = "stream_error"
            yield chunk
        if status == "client_closed":
            status = 200
    finally:
        _untrack(gw, model_id, neuron)
        meter.finish(neuron, status)


async def _wait_then_relay(
    gw: Gateway,
    model_id: str,
    path: str,
    payload: bytes,
    meter: RequestMeter,
    drop_usage_event: bool,
) -> AsyncIterator[bytes]:
    opening = asyncio.create_task(open_upstream(gw, model_id, path, payload, stream=True))
    try:
        # Headers and a first comment go out at once: the client sees we are alive.
        yield KEEP_ALIVE
        while not opening.done():
            done, _ = await asyncio.wait({opening}, timeout=gw.keep_alive_interval)
            if not done:
                yield keep_alive_while_loading(
                    KEEP_ALIVE, model_id, gw.fleet.load_percent(model_id)
                )
        try:
            opened = opening.result()
        except APIError as exc:
            meter.finish(None, exc.status)
            yield error_event(exc)
            return
        if opened.response.status != 200:
            raw = await opened.response.read()
            opened.response.release()
            err = error_from_response(opened.target.neuron, opened.response.status, raw)
            meter.finish(opened.target.neuron, opened.response.status)
            yield error_event(err)
            return
        async for chunk in _relay(gw, opened, meter, model_id, drop_usage_event):
            yield chunk
    finally:
        if not opening.done():
            opening.cancel()  # the client left; a shared cold load carries on (shielded)


def _track(gw: Gateway, model_id: str, neuron: str) -> None:
    """Count the request in the fleet's ledger so least-busy sees it before the next poll."""
    gw.fleet.in_flight.start(neuron, model_id)


def _untrack(gw: Gateway, model_id: str, neuron: str) -> None:
    gw.fleet.in_flight.finish(neuron, model_id)


def _retry_after(opened: Opened) -> dict[str, str]:
    value = opened.response.headers.get("Retry-After")
    return {"Retry-After": value} if value else {}
