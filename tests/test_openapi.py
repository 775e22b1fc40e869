"""helexa.openapi: documents come from the route table; gaps are visible."""

from __future__ import annotations

from starlette.responses import Response
from starlette.routing import Route

from helexa.openapi import UNDOCUMENTED, Operation, build_document
from helexa.protocol.neuron import UnloadRequest


async def handler(_: object) -> Response:
    return Response()


def test_every_route_is_listed_and_gaps_are_marked() -> None:
    routes = [
        Route("/health", handler, methods=["GET"]),
        Route("/models/unload", handler, methods=["POST"]),
        Route("/v1/models/{model:path}", handler, methods=["GET"]),
    ]
    operations = {
        ("GET", "/health"): Operation("Liveness", public=True),
        ("POST", "/models/unload"): Operation("Unload", UnloadRequest),
    }
    doc = build_document("t", "1", routes, operations)
    assert set(doc["paths"]) == {"/health", "/models/unload", "/v1/models/{model}"}
    assert doc["paths"]["/health"]["get"]["security"] == []
    assert doc["paths"]["/v1/models/{model}"]["get"]["summary"] == UNDOCUMENTED
    assert doc["paths"]["/v1/models/{model}"]["get"]["parameters"][0]["name"] == "model"
    body = doc["paths"]["/models/unload"]["post"]["requestBody"]["content"]["application/json"]
    assert body["schema"] == {"$ref": "#/components/schemas/UnloadRequest"}
    assert "model" in doc["components"]["schemas"]["UnloadRequest"]["properties"]
