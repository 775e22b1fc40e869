"""The gateway's ASGI app: its routes, error handlers and middleware around a `Gateway`.

The routes (gateway/routes/: openai, anthropic, responses, admin, ui, usage;
openapi) reach the gateway through `gateway_of`
(core.py); the hot paths run on fastlane's own dispatch. The app's lifespan
starts and stops the gateway unless its owner (helexa.serve) does.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from helexa.errors import NoSuchRoute
from helexa.gateway import openapi
from helexa.gateway.core import Gateway
from helexa.gateway.dispatch import openai_error
from helexa.gateway.fastlane import GatewayApp
from helexa.gateway.keys import KeyMiddleware
from helexa.gateway.limits import gateway_body_limits
from helexa.gateway.routes import admin as routes_admin
from helexa.gateway.routes import anthropic as routes_anthropic
from helexa.gateway.routes import openai as routes_openai
from helexa.gateway.routes import responses as routes_responses
from helexa.gateway.routes import ui as routes_ui
from helexa.gateway.routes import usage as routes_usage
from helexa.gateway.routes.anthropic import anthropic_error
from helexa.gateway.ui_auth import UiSessionMiddleware


async def http_error_handler(request: Request, exc: Exception) -> Response:
    """starlette's 404/405 (no such path or method) as JSON in the caller's dialect:
    Anthropic for /v1/messages... or an `anthropic-version` header, else OpenAI."""
    assert isinstance(exc, HTTPException)
    error = NoSuchRoute.of(exc.status_code, f"{exc.detail}: {request.method} {request.url.path}")
    if request.url.path.startswith("/v1/messages") or "anthropic-version" in request.headers:
        return anthropic_error(error)
    return openai_error(error)


def build_app(gateway: Gateway, *, manage_lifecycle: bool = True) -> Starlette:
    """The ASGI app; with `manage_lifecycle` its lifespan starts and stops `gateway`."""

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        if manage_lifecycle:
            await gateway.start()
        try:
            yield
        finally:
            if manage_lifecycle:
                await gateway.stop()

    routes = (
        routes_openai.ROUTES
        + routes_anthropic.ROUTES
        + routes_responses.ROUTES
        + routes_admin.ROUTES
        + routes_ui.ROUTES
        + routes_usage.ROUTES
        + openapi.ROUTES
    )
    hot = {
        "/v1/chat/completions": routes_openai.chat_completions,
        "/v1/completions": routes_openai.completions,
        "/v1/messages": routes_anthropic.messages,
        "/v1/responses": routes_responses.responses,
    }
    app = GatewayApp(
        gateway,
        hot,
        routes=routes,
        lifespan=lifespan,
        exception_handlers={HTTPException: http_error_handler},
    )
    app.state.gateway = gateway
    # Added first = runs after auth: an unauthenticated client never makes us read a body.
    app.add_middleware(gateway_body_limits, limits=gateway.body_limits)
    app.add_middleware(KeyMiddleware, ring=lambda: gateway.keyring)
    # Outermost: turns the /ui sign-in cookie into the key the check above reads.
    app.add_middleware(UiSessionMiddleware, keys=lambda: gateway.config.fleet.gateway.api_keys)
    return app
