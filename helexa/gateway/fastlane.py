"""The fast lane: the proxied POST routes answered without starlette's per-request layers.

Every other request walks the full stack built in `app.build_app`:
starlette's server-error layer, UI session, API keys, body limits,
starlette's exception layer, the router and `request_response` (a
`Request`, exception wrappers). For the four routes that carry the
traffic (`/v1/chat/completions`, `/v1/completions`, `/v1/messages`,
`/v1/responses`) that walk cost about as much as everything helexa itself
does per request (20 us against 1 us for a bare ASGI call, measured
in-process), so `GatewayApp` answers them directly, with the same checks
in the same order and the same functions:

1. API keys (`keys.authenticate`, 401 in the path's dialect: a hash and a
   dict lookup);
2. body limits (`helexa.limits.read_body`: 413 / 415 / 400 in the dialect);
3. the route's handler (`routes.openai.chat_completions(gateway, body, ticket)`
   and its likes), whose starlette `Response` is then sent as usual. The key's ticket (None on an
   open gateway) is admitted by the handler once the model is known (403 /
   429) and settled when the answer ends, or here if it never ran.

The UI session layer has nothing to do for these paths: it acts only on
GET/HEAD of the UI pages and on the sign-in POST. An exception before the
response starts is logged and answered with a 500 in the dialect; one
raised while sending is left to uvicorn (it closes the connection), as
starlette's server-error layer would.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from starlette.applications import Starlette
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from helexa.asgi import send_whole
from helexa.errors import APIError
from helexa.gateway.core import Gateway
from helexa.gateway.keys import REFUSED, Ticket, authenticate, ticket_for
from helexa.gateway.limits import render_error
from helexa.gateway.proxy import UPSTREAM_PRIORITY
from helexa.limits import read_body

log = logging.getLogger("helexa.gateway")

# (gateway, request body, the key's ticket) -> the response: a route module's handler
# (routes.openai.chat_completions...), which its starlette `*_endpoint` also calls.
HotHandler = Callable[[Gateway, bytes, Ticket | None], Awaitable[Response]]


class GatewayApp(Starlette):
    """The gateway's ASGI app: the fast lane for `hot` POST paths, starlette for the rest."""

    def __init__(self, gateway: Gateway, hot: Mapping[str, HotHandler], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.gateway = gateway
        self.hot = dict(hot)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            handler = self.hot.get(scope["path"])
            if handler is not None:
                await self._serve_hot(handler, scope, receive, send)
                return
        await super().__call__(scope, receive, send)

    async def _serve_hot(
        self, handler: HotHandler, scope: Scope, receive: Receive, send: Send
    ) -> None:
        gw = self.gateway
        principal = await authenticate(scope, send, gw.keyring)
        if principal is REFUSED:
            return
        raw = await read_body(scope, receive, send, gw.body_limits(), render_error)
        if raw is None:
            return
        ticket = ticket_for(principal, gw.usage, gw.clock, scope["path"])
        if ticket is not None and ticket.principal.priority:
            UPSTREAM_PRIORITY.set(ticket.principal.priority)  # this request's task only
        try:
            try:
                response = await handler(gw, raw, ticket)
            except Exception:
                log.exception("%s failed", scope["path"])
                if ticket is not None:
                    ticket.finish(None, 500, None)
                await _internal_error(scope["path"], send)
                return
            await response(scope, receive, send)
        finally:
            if ticket is not None:
                ticket.close()


async def _internal_error(path: str, send: Send) -> None:
    body = render_error(path, APIError("internal error in the gateway (see its log)"))
    await send_whole(send, 500, body)
