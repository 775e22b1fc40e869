"""Anthropic routes: `/v1/messages` and `/v1/messages/count_tokens` (docs/gateway.md).

Translation is helexa.translate (pure); this module only moves bytes: the
Messages request becomes an OpenAI chat completion that takes the same
routing as `/v1/chat/completions` (dispatch.open_upstream: wait, cold-load,
failover), and the answer is translated back. Streams start with
`message_start` at once and send `event: ping` while the model loads; any
failure after that is an `event: error`.

Two things here are for clients that hard-code Anthropic's world (Claude
Code): an unknown claude-* name gets a 404 that says which [aliases] line
would map it, and a max_tokens past the model's whole context is dropped
instead of refused (fit_max_tokens).
"""

from __future__ import annotations

import logging
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from helexa import fastjson
from helexa.errors import APIError, BadRequest, UpstreamError
from helexa.gateway import router
from helexa.gateway.core import Gateway, gateway_of
from helexa.gateway.dispatch import open_upstream, read_tracked
from helexa.gateway.keys import Ticket, check_model_access, request_ticket
from helexa.gateway.metrics import RequestMeter
from helexa.gateway.translated_stream import StreamDialect, open_if_loaded, translated_stream
from helexa.limits import parse_json_object
from helexa.protocol.neuron import TokenizeRequest
from helexa.sse import SSEResponse
from helexa.translate.anthropic_request import (
    messages_to_chat_request,
    parse_count_tokens_request,
    parse_messages_request,
    tokenize_request,
)
from helexa.translate.anthropic_response import chat_completion_to_message
from helexa.translate.anthropic_stream import (
    PING_SSE,
    AnthropicStreamTranslator,
    render_anthropic_sse,
)
from helexa.translate.errors import api_error_to_anthropic, openai_error_to_anthropic

log = logging.getLogger("helexa.gateway.anthropic")

DIALECT = "anthropic"
CHAT_PATH = "/chat/completions"
STREAM = StreamDialect(render=render_anthropic_sse, keep_alive=PING_SSE)


def anthropic_error(exc: APIError) -> JSONResponse:
    return JSONResponse(api_error_to_anthropic(exc), status_code=exc.status, headers=exc.headers())


# OpenAI-side knobs Anthropic lacks, passed through when a client sends them (as the
# SDKs' extra_body does): a seed for reproducible sampling, lengths for tests and benches.
SAMPLING_EXTENSIONS = ("seed", "min_tokens", "ignore_eos")


def sampling_extensions(extra: dict[str, Any] | None) -> dict[str, Any]:
    return {key: extra[key] for key in SAMPLING_EXTENSIONS if extra and key in extra}


def fit_max_tokens(body: dict[str, Any], context: int | None) -> None:
    """Drop a max_tokens the model cannot reach anyway.

    Anthropic requires max_tokens and clients send their own ceiling (Claude Code
    asks for 32000-64000), often past a local model's whole context; the neuron
    would refuse that with a 400. Without it, the neuron generates up to the
    context that is left, which is all the client's ceiling could have given.
    """
    if context is not None and body.get("max_tokens", 0) >= context:
        del body["max_tokens"]


def context_length(gw: Gateway, resolved: router.ResolvedModel) -> int | None:
    """The served context: what a neuron reports for the loaded model, else models.toml."""
    reported = [
        loc.context_length
        for loc in gw.fleet.locations(resolved.model_id)
        if loc.context_length is not None
    ]
    if reported:
        return min(reported)
    return resolved.spec.context_length if resolved.spec is not None else None


def resolve_model(name: str, gw: Gateway) -> router.ResolvedModel:
    return router.resolve_or_raise(name, gw.config.models, gw.fleet)


async def messages_endpoint(request: Request) -> Response:
    """The starlette endpoint: reads the body and the key's ticket for `messages`."""
    gw = gateway_of(request)
    return await messages(gw, await request.body(), request_ticket(gw, request))


async def messages(gw: Gateway, raw: bytes, ticket: Ticket | None = None) -> Response:
    """`POST /v1/messages` with its body read (also the fast lane's handler)."""
    try:
        parsed = parse_messages_request(await parse_json_object(raw))
        resolved = resolve_model(parsed.model, gw)
        if ticket is not None:
            ticket.admit(resolved.model_id, len(raw))
    except APIError as exc:
        RequestMeter(gw.metrics, "", DIALECT, ticket=ticket).finish(None, exc.status)
        return anthropic_error(exc)
    body = messages_to_chat_request(parsed) | sampling_extensions(parsed.model_extra)
    body["model"] = resolved.model_id
    fit_max_tokens(body, context_length(gw, resolved))
    meter = RequestMeter(gw.metrics, resolved.model_id, DIALECT, ticket=ticket)
    stops = parsed.stop_sequences or []
    user_id = parsed.metadata.user_id if parsed.metadata else None
    hint = router.upstream_hint(user_id, resolved.model_id, body)
    if not parsed.stream:
        return await _whole(gw, body, parsed.model, stops, meter, hint)
    body["stream"] = True
    body["stream_options"] = {"include_usage": True}
    payload = fastjson.dumps(body)
    try:
        opened = await open_if_loaded(gw, resolved.model_id, payload, meter, hint)
    except APIError as exc:
        return anthropic_error(exc)
    translator = AnthropicStreamTranslator(parsed.model, stops)
    events = translated_stream(
        gw, resolved.model_id, payload, translator, STREAM, meter, opened, hint
    )
    return SSEResponse(events)


async def _whole(
    gw: Gateway,
    body: dict[str, Any],
    client_model: str,
    stops: list[str],
    meter: RequestMeter,
    hint: router.RoutingHint,
) -> Response:
    neuron: str | None = None
    try:
        opened = await open_upstream(
            gw, body["model"], CHAT_PATH, fastjson.dumps(body), stream=False, hint=hint
        )
        neuron = opened.target.neuron
        raw = await read_tracked(gw, opened, meter.stats, body["model"])
        status = opened.response.status
        if status != 200:
            meter.finish(neuron, status)
            return JSONResponse(openai_error_to_anthropic(status, raw), status_code=status)
        message = chat_completion_to_message(
            fastjson.loads(raw), model=client_model, stop_sequences=stops
        )
    except APIError as exc:
        meter.finish(neuron, exc.status)
        return anthropic_error(exc)
    except ValueError as exc:
        meter.finish(neuron, 502)
        return anthropic_error(UpstreamError(f"upstream answered non-JSON: {exc}"))
    meter.finish(neuron, 200)
    answer = fastjson.dumps(message.model_dump(mode="json", exclude_none=True))
    return Response(answer, media_type="application/json")


async def count_tokens(request: Request) -> Response:
    """Exact input tokens: the served model's tokenizer + chat template, via a neuron."""
    gw = gateway_of(request)
    try:
        parsed = parse_count_tokens_request(await parse_json_object(await request.body()))
        resolved = resolve_model(parsed.model, gw)
        check_model_access(request, resolved.model_id)
        tokenize = TokenizeRequest.model_validate(tokenize_request(parsed))
        tokenize.model = resolved.model_id
        spec = gw.config.models.get(resolved.model_id)
        if spec is not None and spec.path is not None:
            tokenize.path = str(spec.path)  # lets a neuron count without the weights loaded
        count = await _count_on_some_neuron(gw, resolved.model_id, tokenize)
    except APIError as exc:
        return anthropic_error(exc)
    return JSONResponse({"input_tokens": count})


async def _count_on_some_neuron(gw: Gateway, model_id: str, request: TokenizeRequest) -> int:
    """A neuron holding the model first, else any healthy helexa neuron."""
    holders = [loc.neuron for loc in router.choose_replica(model_id, gw.fleet)]
    others = sorted(n.name for n in gw.fleet.healthy_neurons() if n.managed)
    last: APIError = BadRequest(f"no helexa neuron can count tokens for {model_id}")
    for name in dict.fromkeys([*holders, *others]):
        entry = gw.neuron_entry(name)
        if entry is None or entry.kind != "neuron":
            continue
        try:
            return await gw.client.tokenize(entry, request)
        except APIError as exc:
            last = exc
    raise last


ROUTES = [
    Route("/v1/messages", messages_endpoint, methods=["POST"]),
    Route("/v1/messages/count_tokens", count_tokens, methods=["POST"]),
]
