"""OpenAPI 3.1 documents built from a starlette app's own routes (gateway and neuron).

The document is derived from the routes the app really has, so a route cannot be
served undocumented: one without an `Operation` entry shows up with the summary
`UNDOCUMENTED`, which the tests refuse. Request bodies come from the wire models
in helexa.protocol (pydantic JSON schemas), so the document and the parsers agree.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel
from starlette.routing import BaseRoute, Route

UNDOCUMENTED = "UNDOCUMENTED"
_PARAM = re.compile(r"\{(\w+)(?::\w+)?\}")


@dataclass(frozen=True)
class Operation:
    summary: str
    request: type[BaseModel] | None = None
    public: bool = False  # answers without a key
    streams: bool = False  # may answer text/event-stream
    content_type: str = "application/json"  # of a 200


def _error_response(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def _operation(
    method: str, path: str, op: Operation, schemas: dict[str, Any], dialect_errors: str
) -> dict[str, Any]:
    ok: dict[str, Any] = {op.content_type: {"schema": {}}}
    if op.streams:
        ok["text/event-stream"] = {"schema": {"type": "string"}}
    out: dict[str, Any] = {
        "operationId": f"{method.lower()}_{re.sub(r'[^a-z0-9]+', '_', path.lower()).strip('_')}",
        "summary": op.summary,
        "responses": {
            "200": {"description": "success", "content": ok},
            "4XX": _error_response(f"client error ({dialect_errors})"),
            "5XX": _error_response("server or upstream error; Retry-After when retryable"),
        },
    }
    params = _PARAM.findall(path)
    if params:
        out["parameters"] = [
            {"name": p, "in": "path", "required": True, "schema": {"type": "string"}}
            for p in params
        ]
    if op.request is not None:
        out["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": _schema_ref(op.request, schemas)}},
        }
    if op.public:
        out["security"] = []
    return out


def _schema_ref(model: type[BaseModel], schemas: dict[str, Any]) -> dict[str, Any]:
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(schema.pop("$defs", {}))
    schemas[model.__name__] = schema
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def build_document(
    title: str,
    version: str,
    routes: Sequence[BaseRoute],
    operations: Mapping[tuple[str, str], Operation],
    *,
    dialect_errors: str = "OpenAI envelope",
) -> dict[str, Any]:
    """The OpenAPI document for `routes`, described by `operations[(METHOD, path)]`."""
    schemas: dict[str, Any] = {
        "Error": {
            "type": "object",
            "description": 'OpenAI {"error": {...}} or, on /v1/messages, Anthropic '
            '{"type": "error", "error": {...}}',
        }
    }
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        if not isinstance(route, Route):
            continue
        path = _PARAM.sub(r"{\1}", route.path)
        for method in sorted((route.methods or set()) - {"HEAD"}):
            op = operations.get((method, route.path), Operation(UNDOCUMENTED))
            paths.setdefault(path, {})[method.lower()] = _operation(
                method, path, op, schemas, dialect_errors
            )
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version},
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
    }
