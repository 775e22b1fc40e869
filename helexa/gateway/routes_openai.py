"""OpenAI routes: the model catalogue and the proxied completions (DESIGN section 6)."""

from __future__ import annotations

import json

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from helexa.errors import APIError, BadRequest, ModelNotFound
from helexa.gateway import catalogue, router
from helexa.gateway.app import Gateway
from helexa.gateway.dispatch import RequestMeter, openai_error, parse_json_object, respond

DIALECT = "openai"


def gateway_of(request: Request) -> Gateway:
    gw: Gateway = request.app.state.gateway
    return gw


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


async def chat_completions(request: Request) -> Response:
    return await _completion(request, "/chat/completions")


async def completions(request: Request) -> Response:
    return await _completion(request, "/completions")


async def _completion(request: Request, path: str) -> Response:
    gw = gateway_of(request)
    try:
        body = parse_json_object(await request.body())
        name = body.get("model")
        if not isinstance(name, str) or not name:
            raise BadRequest("`model` is required", param="model")
        resolved = router.resolve_or_raise(name, gw.config.models, gw.fleet)
    except APIError as exc:
        RequestMeter(gw.metrics, "", DIALECT).finish(None, exc.status)
        return openai_error(exc)
    body["model"] = resolved.model_id  # neurons know models by id, not by alias
    stream = body.get("stream") is True
    drop_usage_event = False
    if stream:
        options = body.get("stream_options")
        options = dict(options) if isinstance(options, dict) else {}
        if not options.get("include_usage"):
            # Ask for usage for our own token metrics; relay hides it from this client.
            options["include_usage"] = True
            drop_usage_event = True
        body["stream_options"] = options
    meter = RequestMeter(gw.metrics, resolved.model_id, DIALECT)
    return await respond(
        gw,
        resolved.model_id,
        path,
        json.dumps(body).encode(),
        stream=stream,
        meter=meter,
        drop_usage_event=drop_usage_event,
    )


ROUTES = [
    Route("/v1/models", list_models, methods=["GET"]),
    Route("/v1/models/{model:path}", get_model, methods=["GET"]),
    Route("/v1/chat/completions", chat_completions, methods=["POST"]),
    Route("/v1/completions", completions, methods=["POST"]),
]
