"""`GET /admin/usage`: per key and per model totals over a window (`?window=1h&key=NAME`).

An admin key (or an open gateway) sees every key; any other key sees its own
usage only. Each key's row carries its current limits and requests in flight.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from helexa.config.durations import parse_duration
from helexa.errors import BadRequest
from helexa.gateway.core import gateway_of
from helexa.gateway.dispatch import openai_error
from helexa.gateway.usage import DAY_S

DEFAULT_WINDOW = "1h"


async def usage(request: Request) -> Response:
    gw = gateway_of(request)
    query = request.query_params
    try:
        window = parse_duration(query.get("window", DEFAULT_WINDOW))
    except ValueError as exc:
        return openai_error(BadRequest(f"window: {exc}", param="window"))
    if not 0 < window <= DAY_S:
        return openai_error(BadRequest("window: between 1s and 24h", param="window"))
    principal = request.scope.get("state", {}).get("principal")
    key = query.get("key")
    if principal is not None and not principal.admin:
        key = principal.name  # a user key sees itself only
    out: dict[str, Any] = gw.usage.summary(window, key=key)
    limits = {p.name: p.to_json() for p in gw.keyring.names()}
    for row in out["keys"]:
        row["limits"] = limits.get(row["key"])
    return JSONResponse(out, headers={"Cache-Control": "no-store"})


ROUTES = [Route("/admin/usage", usage, methods=["GET"])]
