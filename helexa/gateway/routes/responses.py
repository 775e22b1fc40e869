"""OpenAI Responses API: `POST /v1/responses`, stream and not.

Translation is helexa.translate.responses_* (pure); this module moves bytes
like routes.anthropic: the request becomes a chat completion routed as
`/v1/chat/completions` is (dispatch.open_upstream: wait, cold-load,
failover) and the answer is translated back. Streams send
`response.created` at once and `: keep-alive` comments while the model
loads; a failure after that is `error` + `response.failed`. Errors before
the stream use the OpenAI envelope. The gateway keeps no conversation state,
so `previous_response_id` is a 400 (responses_request says why).
"""

from __future__ import annotations

import logging
import time
import uuid

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from helexa import fastjson
from helexa.errors import APIError, UpstreamError
from helexa.fleet.neuron_client import error_from_response
from helexa.gateway import router
from helexa.gateway.affinity import first_string
from helexa.gateway.core import Gateway, gateway_of
from helexa.gateway.dispatch import open_upstream, openai_error, read_tracked
from helexa.gateway.keys import Ticket, request_ticket
from helexa.gateway.metrics import RequestMeter
from helexa.gateway.translated_stream import StreamDialect, open_if_loaded, translated_stream
from helexa.limits import parse_json_object
from helexa.sse import KEEP_ALIVE, SSEResponse
from helexa.translate.responses_request import parse_responses_request, responses_to_chat_request
from helexa.translate.responses_response import ResponseContext, chat_completion_to_response
from helexa.translate.responses_stream import ResponsesStreamTranslator, render_responses_sse

log = logging.getLogger("helexa.gateway.responses")

DIALECT = "responses"
CHAT_PATH = "/chat/completions"
STREAM = StreamDialect(render=render_responses_sse, keep_alive=KEEP_ALIVE)


async def responses_endpoint(request: Request) -> Response:
    """The starlette endpoint: reads the body and the key's ticket for `responses`."""
    gw = gateway_of(request)
    return await responses(gw, await request.body(), request_ticket(gw, request))


async def responses(gw: Gateway, raw: bytes, ticket: Ticket | None = None) -> Response:
    """`POST /v1/responses` with its body read (also the fast lane's handler)."""
    try:
        parsed = parse_responses_request(await parse_json_object(raw))
        resolved = router.resolve_or_raise(parsed.model, gw.config.models, gw.fleet)
        body = responses_to_chat_request(parsed)  # tool and input rules raise BadRequest too
        if ticket is not None:
            ticket.admit(resolved.model_id, len(raw))
    except APIError as exc:
        RequestMeter(gw.metrics, "", DIALECT, ticket=ticket).finish(None, exc.status)
        return openai_error(exc)
    body["model"] = resolved.model_id
    payload = fastjson.dumps(body)
    meter = RequestMeter(gw.metrics, resolved.model_id, DIALECT, ticket=ticket)
    ctx = ResponseContext(f"resp_{uuid.uuid4().hex}", int(time.time()), parsed.model, parsed)
    session = first_string(parsed.prompt_cache_key, parsed.user)
    hint = router.upstream_hint(session, resolved.model_id, body)
    if not parsed.stream:
        return await _whole(gw, resolved.model_id, payload, ctx, meter, hint)
    try:
        opened = await open_if_loaded(gw, resolved.model_id, payload, meter, hint)
    except APIError as exc:
        return openai_error(exc)
    translator = ResponsesStreamTranslator(ctx)
    events = translated_stream(
        gw, resolved.model_id, payload, translator, STREAM, meter, opened, hint
    )
    return SSEResponse(events)


async def _whole(
    gw: Gateway,
    model_id: str,
    payload: bytes,
    ctx: ResponseContext,
    meter: RequestMeter,
    hint: router.RoutingHint,
) -> Response:
    neuron: str | None = None
    try:
        opened = await open_upstream(gw, model_id, CHAT_PATH, payload, stream=False, hint=hint)
        neuron = opened.target.neuron
        raw = await read_tracked(gw, opened, meter.stats, model_id)
        status = opened.response.status
        if status != 200:
            raise error_from_response(neuron, status, raw)
        answer = chat_completion_to_response(fastjson.loads(raw), ctx)
    except APIError as exc:
        meter.finish(neuron, exc.status)
        return openai_error(exc)
    except ValueError as exc:
        meter.finish(neuron, 502)
        return openai_error(UpstreamError(f"upstream answered unexpectedly: {exc}"))
    meter.finish(neuron, 200)
    return Response(fastjson.dumps(answer), media_type="application/json")


ROUTES = [Route("/v1/responses", responses_endpoint, methods=["POST"])]
