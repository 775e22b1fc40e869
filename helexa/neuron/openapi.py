"""GET /openapi.json on the neuron: every route, from the app's own route table."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from helexa import __version__
from helexa.openapi import Operation, build_document
from helexa.protocol.neuron import LoadRequest, TokenizeRequest, UnloadRequest
from helexa.protocol.openai import ChatCompletionRequest, CompletionRequest

OPERATIONS: dict[tuple[str, str], Operation] = {
    ("GET", "/health"): Operation("Liveness", public=True),
    ("GET", "/openapi.json"): Operation("This document"),
    ("GET", "/discovery"): Operation("Host, engine and devices (read fresh)"),
    ("GET", "/models"): Operation("Models held here, with state and load"),
    ("GET", "/v1/models"): Operation("OpenAI-style list of the models this neuron serves"),
    ("POST", "/models/load"): Operation("Load a model; returns when loaded or failed", LoadRequest),
    ("POST", "/models/unload"): Operation("Drain, then unload a model", UnloadRequest),
    ("POST", "/v1/tokenize"): Operation("Prompt token count", TokenizeRequest),
    ("GET", "/metrics"): Operation("Prometheus metrics", content_type="text/plain"),
    ("POST", "/v1/chat/completions"): Operation(
        "OpenAI chat completion", ChatCompletionRequest, streams=True
    ),
    ("POST", "/v1/completions"): Operation(
        "OpenAI text completion", CompletionRequest, streams=True
    ),
}


async def openapi_json(request: Request) -> Response:
    return JSONResponse(
        build_document("helexa neuron", __version__, request.app.routes, OPERATIONS)
    )


ROUTES = [Route("/openapi.json", openapi_json, methods=["GET"])]
