"""The gateway's body limits (helexa.limits), with errors in each route's dialect.

`/v1/messages*` answers with Anthropic's envelope, every other route with OpenAI's.
The size limit is `[gateway] max_body_mb` from fleet.toml, read per request so a
reload applies at once.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from starlette.types import ASGIApp

from helexa.config import Config
from helexa.errors import APIError
from helexa.gateway.transport import CoalescingHttpToolsProtocol
from helexa.httpguard import ConnectionLimits, GuardedHttpToolsProtocol, guarded_protocol
from helexa.limits import MB, BodyLimitMiddleware, BodyLimits
from helexa.translate.errors import api_error_to_anthropic


def render_error(path: str, error: APIError) -> bytes:
    if path.startswith("/v1/messages"):
        return json.dumps(api_error_to_anthropic(error)).encode()
    return json.dumps(error.to_openai()).encode()


def gateway_body_limits(app: ASGIApp, limits: Callable[[], BodyLimits]) -> BodyLimitMiddleware:
    return BodyLimitMiddleware(app, limits, render_error)


def body_limits(config: Config) -> BodyLimits:
    return BodyLimits(max_bytes=config.fleet.gateway.max_body_mb * MB)


def gateway_protocol(config: Config) -> type[GuardedHttpToolsProtocol]:
    """The uvicorn protocol `helexa serve` runs: joined writes, connection limits."""
    gw = config.fleet.gateway
    limits = ConnectionLimits(
        max_header_bytes=gw.max_header_kb * 1024,
        header_timeout=gw.header_timeout,
        body_timeout=gw.body_timeout,
        max_connections=gw.max_connections,
    )
    return guarded_protocol(CoalescingHttpToolsProtocol, limits, render_error)
