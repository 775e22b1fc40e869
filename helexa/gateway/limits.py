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
