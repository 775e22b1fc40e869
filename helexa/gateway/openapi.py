"""GET /openapi.json on the gateway: every route, from the app's own route table."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from helexa import __version__
from helexa.openapi import Operation, build_document
from helexa.protocol.anthropic import CountTokensRequest, MessagesRequest
from helexa.protocol.base import WireModel
from helexa.protocol.openai import ChatCompletionRequest, CompletionRequest
from helexa.protocol.responses import ResponsesRequest


class AdminModelOperation(WireModel):
    """The body of /admin/models/load and /admin/models/unload (routes.admin._operation)."""

    model: str
    neuron: str | None = None


OPERATIONS: dict[tuple[str, str], Operation] = {
    ("GET", "/health"): Operation("Liveness and fleet health, with warnings", public=True),
    ("GET", "/openapi.json"): Operation("This document"),
    ("GET", "/v1/models"): Operation("The catalogue: models.toml x what the fleet holds"),
    ("GET", "/v1/models/{model:path}"): Operation("One catalogue entry"),
    ("POST", "/v1/chat/completions"): Operation(
        "OpenAI chat completion (proxied)", ChatCompletionRequest, streams=True
    ),
    ("POST", "/v1/completions"): Operation(
        "OpenAI text completion (proxied)", CompletionRequest, streams=True
    ),
    ("POST", "/v1/messages"): Operation(
        "Anthropic Messages (translated)", MessagesRequest, streams=True
    ),
    ("POST", "/v1/messages/count_tokens"): Operation(
        "Exact input tokens for a Messages request", CountTokensRequest
    ),
    ("POST", "/v1/responses"): Operation(
        "OpenAI Responses (translated)", ResponsesRequest, streams=True
    ),
    ("GET", "/admin/fleet"): Operation("Observed fleet state, reconcile and config errors"),
    ("GET", "/admin/stats"): Operation("Request statistics for the UI"),
    ("GET", "/admin/usage"): Operation("Usage per key and per model over a window"),
    ("POST", "/admin/models/load"): Operation("Load a model", AdminModelOperation),
    ("POST", "/admin/models/unload"): Operation("Unload a model", AdminModelOperation),
    ("GET", "/ui"): Operation("The operator web UI", content_type="text/html"),
    ("GET", "/ui/{name}"): Operation("UI assets", content_type="application/octet-stream"),
}


async def openapi_json(request: Request) -> Response:
    document = build_document(
        "helexa gateway",
        __version__,
        request.app.routes,
        OPERATIONS,
        dialect_errors="OpenAI envelope; Anthropic envelope on /v1/messages",
    )
    return JSONResponse(document)


ROUTES = [Route("/openapi.json", openapi_json, methods=["GET"])]
