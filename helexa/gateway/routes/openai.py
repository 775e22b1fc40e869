"""OpenAI routes: the model catalogue and the proxied completions (docs/gateway.md)."""

from __future__ import annotations

import json

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from helexa.errors import APIError, BadRequest, ModelNotFound
from helexa.gateway import catalogue, router
from helexa.gateway.core import Gateway, gateway_of
from helexa.gateway.dispatch import openai_error, respond
from helexa.gateway.keys import Ticket, request_ticket
from helexa.gateway.metrics import RequestMeter
from helexa.limits import parse_json_object

DIALECT = "openai"


async def list_models(request: Request) -> Response:
    gw = gateway_of(request)
    entries = catalogue.build_catalogue(gw.config.models, gw.fleet, int(gw.started_at))
    return JSONResponse(catalogue.catalogue_json(entries))


async def get_model(request: Request) -> Response:
    gw = gateway_of(request)
    name = request.path_params["model"]
    entry = catalogue.lookup(name, gw.config.models, gw.fleet, int(gw.started_at))
    if entry is None:
        return openai_error(ModelNotFound(f"The model '{name}' does not exist", param="model"))
    return JSONResponse(entry.to_json())


async def chat_completions_endpoint(request: Request) -> Response:
    """The starlette endpoint: reads the body and the key's ticket for `chat_completions`."""
    gw = gateway_of(request)
    return await chat_completions(gw, await request.body(), request_ticket(gw, request))


async def completions_endpoint(request: Request) -> Response:
    """The starlette endpoint: reads the body and the key's ticket for `completions`."""
    gw = gateway_of(request)
    return await completions(gw, await request.body(), request_ticket(gw, request))


async def chat_completions(gw: Gateway, raw: bytes, ticket: Ticket | None = None) -> Response:
    """`POST /v1/chat/completions` with its body read (also the fast lane's handler)."""
    return await _completion(gw, raw, "/chat/completions", ticket)


async def completions(gw: Gateway, raw: bytes, ticket: Ticket | None = None) -> Response:
    """`POST /v1/completions` with its body read (also the fast lane's handler)."""
    return await _completion(gw, raw, "/completions", ticket)


async def _completion(gw: Gateway, raw: bytes, path: str, ticket: Ticket | None) -> Response:
    try:
        body = await parse_json_object(raw)
        name = body.get("model")
        if not isinstance(name, str) or not name:
            raise BadRequest("`model` is required", param="model")
        resolved = router.resolve_or_raise(name, gw.config.models, gw.fleet)
        if ticket is not None:
            ticket.admit(resolved.model_id, len(raw))
    except APIError as exc:
        RequestMeter(gw.metrics, "", DIALECT, ticket=ticket).finish(None, exc.status)
        return openai_error(exc)
    stream = body.get("stream") is True
    payload, drop_usage_event = upstream_payload(raw, body, resolved.model_id, stream=stream)
    meter = RequestMeter(gw.metrics, resolved.model_id, DIALECT, ticket=ticket)
    return await respond(
        gw,
        resolved.model_id,
        path,
        payload,
        stream=stream,
        meter=meter,
        drop_usage_event=drop_usage_event,
        hint=router.openai_hint(resolved.model_id, body),
    )


def upstream_payload(
    raw: bytes, body: dict[str, object], model_id: str, *, stream: bool
) -> tuple[bytes, bool]:
    """The body to send upstream, and whether the relay must hide the usage event.

    Neurons know models by id, not alias, and a stream must carry usage for our
    token metrics (hidden from a client that did not ask for it). When neither
    changes anything the client's bytes go up as they are: re-serializing JSON
    was a measurable share of the gateway's per-request work.
    """
    rename = body.get("model") != model_id
    options = body.get("stream_options")
    wants_usage = isinstance(options, dict) and bool(options.get("include_usage"))
    add_usage = stream and not wants_usage
    if not rename and not add_usage:
        return raw, False
    if not rename and "stream_options" not in body and raw.lstrip().startswith(b"{"):
        # Only the usage flag is missing: splice it in rather than re-encode the body.
        head, _, rest = raw.partition(b"{")
        return head + b'{"stream_options": {"include_usage": true}, ' + rest, True
    body["model"] = model_id
    if add_usage:
        merged = dict(options) if isinstance(options, dict) else {}
        merged["include_usage"] = True
        body["stream_options"] = merged
    return json.dumps(body).encode(), add_usage


ROUTES = [
    Route("/v1/models", list_models, methods=["GET"]),
    Route("/v1/models/{model:path}", get_model, methods=["GET"]),
    Route("/v1/chat/completions", chat_completions_endpoint, methods=["POST"]),
    Route("/v1/completions", completions_endpoint, methods=["POST"]),
]
