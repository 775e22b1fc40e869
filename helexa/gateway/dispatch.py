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

from starlette.responses import JSONResponse, Response

from helexa.errors import APIError
from helexa.fleet.neuron_client import error_from_response
from helexa.fleet.state import ModelLocation
from helexa.gateway import router
from helexa.gateway.core import Gateway
from helexa.gateway.metrics import RequestMeter
from helexa.gateway.proxy import (
    Opened,
    ResponseStats,
    error_event,
    keep_alive_while_loading,
)
from helexa.gateway.route_log import record_route
from helexa.sse import KEEP_ALIVE, SSEResponse


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
        candidates = pick_replicas(gw, model_id, hint)
    if not candidates:
        candidates = await gw.loader.servable(model_id, within)
        gw.metrics.queue_wait.labels(model_id).observe(time.monotonic() - started)
    return await gw.proxy.open(gw.targets(candidates, path), payload, stream=stream)


def pick_replicas(
    gw: Gateway, model_id: str, hint: router.RoutingHint = router.NO_HINT
) -> list[ModelLocation]:
    """The servable copies in the order to try them, the choice logged (route_log)."""
    settings = gw.config.fleet.gateway
    policy = router.RoutingPolicy(settings.routing, settings.affinity_slack)
    choice = router.choose_replica_explained(model_id, gw.fleet, hint, policy)
    if choice.reason is not None:
        record_route(gw.fleet, model_id, choice.candidates[0].neuron, choice.reason)
    return choice.candidates


async def respond(
    gw: Gateway,
    model_id: str,
    path: str,
    payload: bytes,
    *,
    stream: bool,
    meter: RequestMeter,
    drop_usage_event: bool = False,
    hint: router.RoutingHint = router.NO_HINT,
) -> Response:
    """The client's response for an OpenAI request whose model is already resolved."""
    candidates = pick_replicas(gw, model_id, hint)
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
    track_request(gw, model_id, neuron)
    try:
        body = await gw.proxy.read_all(opened, meter.stats)
    except APIError as exc:
        meter.finish(neuron, exc.status)
        return openai_error(exc)
    finally:
        untrack_request(gw, model_id, neuron)
    status = opened.response.status
    meter.finish(neuron, status)
    content_type = opened.response.headers.get("Content-Type", "application/json")
    return Response(body, status_code=status, media_type=content_type, headers=_retry_after(opened))


async def _relay(
    gw: Gateway, opened: Opened, meter: RequestMeter, model_id: str, drop_usage_event: bool
) -> AsyncIterator[bytes]:
    neuron = opened.target.neuron
    track_request(gw, model_id, neuron)
    status: int | str = "client_closed"
    try:
        async for chunk in gw.proxy.relay(opened, meter.stats, drop_usage_event=drop_usage_event):
            if chunk.startswith(b'data: {"error"'):
                status = "stream_error"
            yield chunk
        if status == "client_closed":
            status = 200
    finally:
        untrack_request(gw, model_id, neuron)
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


def track_request(gw: Gateway, model_id: str, neuron: str) -> None:
    """Count the request in the fleet's ledger so routing sees it before the next poll."""
    gw.fleet.in_flight.start(neuron, model_id)


def untrack_request(gw: Gateway, model_id: str, neuron: str) -> None:
    gw.fleet.in_flight.finish(neuron, model_id)


async def read_tracked(gw: Gateway, opened: Opened, stats: ResponseStats, model_id: str) -> bytes:
    """A non-streamed body, counted in flight on its replica while it is read."""
    track_request(gw, model_id, opened.target.neuron)
    try:
        return await gw.proxy.read_all(opened, stats)
    finally:
        untrack_request(gw, model_id, opened.target.neuron)


def _retry_after(opened: Opened) -> dict[str, str]:
    value = opened.response.headers.get("Retry-After")
    return {"Retry-After": value} if value else {}
