"""HTTP plumbing shared by the neuron's routes: JSON bodies, the error envelope, auth.

Every failure leaves as the OpenAI envelope `{"error": {...}}` with
Retry-After on retryable statuses, whatever raised it (our APIError, a
pydantic ValidationError, starlette's 404/405, an unexpected bug).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import re
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from helexa.config.fields import is_loopback_host
from helexa.errors import APIError, BadRequest, NoSuchRoute, Unauthorized, UnsupportedMediaType
from helexa.limits import PARSE_OFF_LOOP_BYTES, is_json_content_type, parse_json_object

log = logging.getLogger("helexa.neuron.http")

M = TypeVar("M", bound=BaseModel)


async def parse_body(request: Request, model: type[M]) -> M:
    """The request body as `model`; malformed JSON or wrong fields -> 400 naming the field."""
    raw = await request.body()
    data = await parse_json_object(raw)  # counts checked, large bodies off the loop
    if len(raw) > PARSE_OFF_LOOP_BYTES:
        return await asyncio.to_thread(_validate, model, data)
    return _validate(model, data)


def _validate(model: type[M], data: dict[str, object]) -> M:
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
    # The exception text may quote the request or the host: the log has it, not the client.
    return error_response(APIError("internal error in the neuron (see its log)"))


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
        values = [v for name, v in scope["headers"] if name == b"authorization"]
        if len(values) > 1:  # servers disagree on which one counts: refuse, never pick
            await error_response(BadRequest("send one Authorization header, not several"))(
                scope, receive, send
            )
            return
        header = values[0].decode("latin-1") if values else ""
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


def is_loopback_name(host: str) -> bool:
    """`localhost`, 127.0.0.0/8 or ::1, with or without a port."""
    if host.startswith("["):
        host = host[1:].partition("]")[0]
    elif host.count(":") == 1:
        host = host.partition(":")[0]
    return is_loopback_host(host.lower())


class BrowserGuard:
    """Pure ASGI middleware refusing what only a web page on another site would send.

    The neuron is called by the gateway and the CLI, never by a browser:
    - a request with an `Origin` header is refused (403);
    - a POST must declare a JSON content type (415): an HTML form or a no-cors
      fetch cannot send one without a CORS preflight, which the neuron never grants;
    - without a token, the `Host` must be a loopback name (403): DNS rebinding points
      a site's own name at 127.0.0.1 to reach a neuron open on loopback.
    """

    def __init__(self, app: ASGIApp, open_to_loopback: bool) -> None:
        self.app = app
        self.check_host = open_to_loopback

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            refusal = self.refusal(scope)
            if refusal is not None:
                await error_response(refusal)(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def refusal(self, scope: Scope) -> APIError | None:
        headers: list[tuple[bytes, bytes]] = scope["headers"]
        if any(name == b"origin" for name, _ in headers):
            return APIError("requests from web pages are refused", status=403, code="forbidden")
        if self.check_host:
            host = next((v.decode("latin-1") for n, v in headers if n == b"host"), "")
            if not is_loopback_name(host):
                message = "a neuron without a token answers to loopback names only"
                return APIError(message, status=403, code="forbidden")
        if scope["method"] == "POST":
            media = next((v.decode("latin-1") for n, v in headers if n == b"content-type"), None)
            if media is None or not is_json_content_type(media):
                return UnsupportedMediaType("POST bodies must be sent as application/json")
        return None
