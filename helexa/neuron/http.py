"""HTTP plumbing shared by the neuron's routes: JSON bodies, the error envelope, auth.

Every failure leaves as the OpenAI envelope `{"error": {...}}` with
Retry-After on retryable statuses, whatever raised it (our APIError, a
pydantic ValidationError, starlette's 404/405, an unexpected bug).
"""

from __future__ import annotations

import hmac
import json
import logging
import re
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from helexa.errors import APIError, BadRequest, NoSuchRoute, Unauthorized

log = logging.getLogger("helexa.neuron.http")

M = TypeVar("M", bound=BaseModel)


async def parse_body(request: Request, model: type[M]) -> M:
    """The request body as `model`; malformed JSON or wrong fields -> 400 naming the field."""
    raw = await request.body()
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise BadRequest(f"request body is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise BadRequest("request body must be a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc) from exc


# pydantic names the union member that failed inside `loc` ("str", "list[int]"); a
# client wants the field path only.
_UNION_TAG = re.compile(r"^(str|int|float|bool|dict|list|none|[a-z-]+\[.*\])$")


def validation_error(exc: ValidationError) -> BadRequest:
    first = exc.errors()[0]
    path = [str(part) for part in first["loc"] if not _UNION_TAG.match(str(part))]
    param = ".".join(path) or None
    return BadRequest(f"{param}: {first['msg']}" if param else first["msg"], param=param)


def error_response(error: APIError) -> JSONResponse:
    return JSONResponse(error.to_openai(), status_code=error.status, headers=error.headers())


async def api_error_handler(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, APIError)
    return error_response(exc)


async def http_error_handler(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return error_response(NoSuchRoute.of(exc.status_code, str(exc.detail)))


async def unexpected_error_handler(_: Request, exc: Exception) -> Response:
    log.exception("unhandled error", exc_info=exc)
    return error_response(APIError(f"internal error: {type(exc).__name__}: {exc}"))


EXCEPTION_HANDLERS: dict[Any, Any] = {
    APIError: api_error_handler,
    HTTPException: http_error_handler,
    Exception: unexpected_error_handler,
}


class BearerAuth:
    """Pure ASGI middleware (streams pass through untouched): every path but the public ones
    needs `Authorization: Bearer <token>`."""

    def __init__(self, app: ASGIApp, token: str | None, public: frozenset[str]) -> None:
        self.app = app
        self.token = token
        self.public = public

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.token is None or scope["type"] != "http" or scope["path"] in self.public:
            await self.app(scope, receive, send)
            return
        header = dict(scope["headers"]).get(b"authorization", b"").decode("latin-1")
        scheme, _, presented = header.partition(" ")
        # Bytes, not str: compare_digest raises on non-ASCII str (a hostile header -> 500).
        matches = hmac.compare_digest(presented.strip().encode("latin-1"), self.token.encode())
        if scheme.lower() == "bearer" and matches:
            await self.app(scope, receive, send)
            return
        message = "missing bearer token" if not header else "invalid bearer token"
        response = error_response(Unauthorized(message))
        response.headers["WWW-Authenticate"] = "Bearer"
        await response(scope, receive, send)
