"""OpenAI Responses API: `POST /v1/responses`, stream and not.

Translation is helexa.translate.responses_* (pure); this module moves bytes
like routes_anthropic: the request becomes a chat completion routed as
`/v1/chat/completions` is (dispatch.open_upstream: wait, cold-load,
failover) and the answer is translated back. Streams send
`response.created` at once and `: keep-alive` comments while the model
loads; a failure after that is `error` + `response.failed`. Errors before
the stream use the OpenAI envelope. The gateway keeps no conversation state,
so `previous_response_id` is a 400 (responses_request says why).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Iterator

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from helexa.errors import APIError, UpstreamError
from helexa.gateway import router
from helexa.gateway.app import Gateway
from helexa.gateway.dispatch import (
    SSE_HEADERS,
    RequestMeter,
    open_upstream,
    openai_error,
    parse_json_object,
)
from helexa.gateway.neuron_client import error_from_response
from helexa.gateway.proxy import KEEP_ALIVE, Opened
from helexa.translate.responses_request import parse_responses_request, translate_request
from helexa.translate.responses_response import ResponseContext, translate_response
from helexa.translate.responses_stream import ResponsesStreamTranslator, render_sse

log = logging.getLogger("helexa.gateway.responses")

DIALECT = "responses"
CHAT_PATH = "/chat/completions"


def gateway_of(request: Request) -> Gateway:
    gw: Gateway = request.app.state.gateway
    return gw


async def responses(request: Request) -> Response:
    gw = gateway_of(request)
    try:
        parsed = parse_responses_request(parse_json_object(await request.body()))
        resolved = router.resolve_or_raise(parsed.model, gw.config.models, gw.fleet)
    except APIError as exc:
        RequestMeter(gw.metrics, "", DIALECT).finish(None, exc.status)
        return openai_error(exc)
    body = translate_request(parsed)
    body["model"] = resolved.model_id
    payload = json.dumps(body).encode()
    meter = RequestMeter(gw.metrics, resolved.model_id, DIALECT)
    ctx = ResponseContext(f"resp_{uuid.uuid4().hex}", int(time.time()), parsed.model, parsed)
    if not parsed.stream:
        return await _whole(gw, resolved.model_id, payload, ctx, meter)
    opened: Opened | None = None
    if router.choose_replica(resolved.model_id, gw.fleet):
        # Loaded: open before answering, so a failure still gets its HTTP status.
        try:
            opened = await open_upstream(gw, resolved.model_id, CHAT_PATH, payload, stream=True)
        except APIError as exc:
            meter.finish(None, exc.status)
            return openai_error(exc)
    translator = ResponsesStreamTranslator(ctx)
    events = _stream(gw, resolved.model_id, payload, translator, meter, opened)
    return StreamingResponse(events, media_type="text/event-stream", headers=SSE_HEADERS)


async def _whole(
    gw: Gateway, model_id: str, payload: bytes, ctx: ResponseContext, meter: RequestMeter
) -> Response:
    neuron: str | None = None
    try:
        opened = await open_upstream(gw, model_id, CHAT_PATH, payload, stream=False)
        neuron = opened.target.neuron
        raw = await gw.proxy.read_all(opened, meter.usage)
        status = opened.response.status
        if status != 200:
            raise error_from_response(neuron, status, raw)
        answer = translate_response(json.loads(raw), ctx)
    except APIError as exc:
        meter.finish(neuron, exc.status)
        return openai_error(exc)
    except ValueError as exc:
        meter.finish(neuron, 502)
        return openai_error(UpstreamError(f"upstream answered unexpectedly: {exc}"))
    meter.finish(neuron, 200)
    return JSONResponse(answer)


async def _stream(
    gw: Gateway,
    model_id: str,
    payload: bytes,
    translator: ResponsesStreamTranslator,
    meter: RequestMeter,
    opened: Opened | None,
) -> AsyncIterator[bytes]:
    yield render_sse(translator.start())
    opening = asyncio.ensure_future(
        _already(opened)
        if opened is not None
        else open_upstream(gw, model_id, CHAT_PATH, payload, stream=True)
    )
    neuron: str | None = None
    status: int | str = "client_closed"
    try:
        while not opening.done():
            done, _ = await asyncio.wait({opening}, timeout=gw.keep_alive_interval)
            if not done:
                yield KEEP_ALIVE
        try:
            opened = opening.result()
        except APIError as exc:
            status = exc.status
            yield render_sse(translator.error(exc))
            return
        neuron = opened.target.neuron
        if opened.response.status != 200:
            status = opened.response.status
            raw = await opened.response.read()
            opened.response.release()
            yield render_sse(translator.error(error_from_response(neuron, status, raw)))
            return
        try:
            async for block in gw.proxy.relay(opened, meter.usage):
                out = _translate_block(block, translator)
                if out:
                    yield out
        except Exception:  # headers are out: a bug must still end the stream visibly
            log.exception("translating the stream from %s failed", neuron)
            yield render_sse(translator.fail("internal_error", "the gateway failed mid-stream"))
        if not translator.done:  # the upstream ended without [DONE]
            yield render_sse(translator.finish())
        status = "stream_error" if translator.failed else 200
    finally:
        if not opening.done():
            opening.cancel()
        meter.finish(neuron, status)


async def _already(opened: Opened) -> Opened:
    return opened


def _translate_block(block: bytes, translator: ResponsesStreamTranslator) -> bytes:
    """Whole OpenAI SSE events from the relay -> Responses SSE (comments pass as they are)."""
    out: list[bytes] = []
    for data in _payloads(block):
        if data is None:
            out.append(KEEP_ALIVE)
        elif data == b"[DONE]":
            out.append(render_sse(translator.finish()))
        else:
            try:
                chunk = json.loads(data)
            except ValueError:
                continue
            out.append(render_sse(translator.feed(chunk)))
    return b"".join(out)


def _payloads(block: bytes) -> Iterator[bytes | None]:
    """The data of each event in `block`; None for a keep-alive comment."""
    for event in block.split(b"\n\n"):
        if event.startswith(b":"):
            yield None
            continue
        for line in event.split(b"\n"):
            if line.startswith(b"data:"):
                yield line[5:].strip()
                break


ROUTES = [Route("/v1/responses", responses, methods=["POST"])]
