"""The live fleet page: `/ui` (static files shipped in the wheel) and `/admin/stats`.

The page is plain HTML + JS with no build step; it polls `/admin/fleet` and
`/admin/stats` every two seconds. Access follows the API's api_keys (the
header check in auth.py, plus the browser cookie of ui_auth.py).
"""

from __future__ import annotations

import time
from importlib import resources

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from helexa.gateway import ui_stats
from helexa.gateway.core import gateway_of

# The only files /ui serves: a fixed map, so no path from a request reaches the disk.
ASSETS = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
}
# The page changes with the fleet every poll; the assets change with the version.
NO_STORE = {"Cache-Control": "no-store"}


def asset(name: str) -> Response:
    body = resources.files("helexa").joinpath("ui", name).read_bytes()
    return Response(body, media_type=ASSETS[name], headers=NO_STORE)


async def page(_: Request) -> Response:
    return asset("index.html")


async def static(request: Request) -> Response:
    name = request.path_params["name"]
    if name not in ASSETS:
        return JSONResponse({"error": {"message": f"no such file: {name}"}}, status_code=404)
    return asset(name)


async def stats(request: Request) -> Response:
    """Per-model totals, req/s and tok/s over the last minute of polls, TTFT percentiles."""
    gateway = gateway_of(request)
    window: ui_stats.RateWindow = rate_window(request)
    current = ui_stats.totals(gateway.metrics.registry.collect())
    return JSONResponse(ui_stats.summary(window, current, time.time()), headers=NO_STORE)


def rate_window(request: Request) -> ui_stats.RateWindow:
    """One window per app, created on first use (app state outlives requests)."""
    state = request.app.state
    if not hasattr(state, "ui_rate_window"):
        state.ui_rate_window = ui_stats.RateWindow()
    window: ui_stats.RateWindow = state.ui_rate_window
    return window


ROUTES = [
    Route("/ui", page, methods=["GET"]),
    Route("/ui/{name}", static, methods=["GET"]),
    Route("/admin/stats", stats, methods=["GET"]),
]
