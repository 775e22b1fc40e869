"""Every gateway and neuron route x no key / wrong key / right key.

The routes come from the apps themselves, so a route added later is in the
matrix at once; the only public route is `/health` on each side. A 401 speaks
the route's dialect, and the right key is never answered 401 or 5xx.
"""

from __future__ import annotations

import re

import httpx
import pytest
from starlette.routing import BaseRoute, Route

from helexa.gateway.app import build_app
from helexa.testing.neuron_proc import TINY_MODEL_ID
from tests.reliability.hostile import is_dialect_error
from tests.reliability.stack import GATEWAY_KEY, NEURON_TOKEN, Stack

pytestmark = pytest.mark.asyncio(loop_scope="module")

PUBLIC = {"gateway": {"/health"}, "neuron": {"/health"}}
_PARAM = re.compile(r"\{(\w+)[^}]*\}")


def endpoints(routes: list[BaseRoute]) -> list[tuple[str, str]]:
    """(method, concrete path) for every route; path parameters become the tiny model id."""
    out: list[tuple[str, str]] = []
    for route in routes:
        assert isinstance(route, Route), f"unexpected route type {route!r}: extend this test"
        path = _PARAM.sub(lambda m: TINY_MODEL_ID if m.group(1) == "model" else "x", route.path)
        out.extend((method, path) for method in sorted(route.methods or ()) if method != "HEAD")
    return out


def gateway_endpoints(stack: Stack) -> list[tuple[str, str]]:
    return endpoints(build_app(stack.gateway.gateway, manage_lifecycle=False).routes)


def neuron_endpoints(stack: Stack) -> list[tuple[str, str]]:
    return endpoints(stack.neuron.app.routes)


async def call(http: httpx.AsyncClient, method: str, path: str) -> httpx.Response:
    # `{}` is a valid JSON body no route acts on: the right key gets a 400, never a change.
    if method == "POST":
        return await http.post(path, content=b"{}", headers={"content-type": "application/json"})
    return await http.request(method, path)


def dialect(path: str) -> str:
    if path.startswith("/ui"):
        return "html"  # a browser gets the sign-in form (gateway/ui_auth.py)
    return "anthropic" if path.startswith("/v1/messages") else "openai"


def speaks(path: str, response: httpx.Response) -> bool:
    """The refusal is in the route's own language."""
    if dialect(path) == "html":  # the form for a browser, JSON for a client that sent a key
        if response.headers["content-type"].startswith("text/html"):
            return True
        return is_dialect_error("openai", response.json())
    return response.headers.get("www-authenticate") == "Bearer" and is_dialect_error(
        dialect(path), response.json()
    )


async def check_side(
    side: str, base_url: str, routes: list[tuple[str, str]], good: dict[str, str]
) -> int:
    bad_keys = [
        {},
        {"Authorization": "Bearer wrong"},
        {"x-api-key": "wrong"},
        {"Authorization": "Basic Zm9vOmJhcg=="},
    ]
    checked = 0
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as http:
        for method, path in routes:
            public = path in PUBLIC[side]
            for headers in bad_keys:
                http.headers.clear()
                http.headers.update(headers)
                response = await call(http, method, path)
                label = f"{side} {method} {path} with {headers or 'no key'}"
                if public:
                    assert response.status_code == 200, label
                else:
                    assert response.status_code == 401, label
                    assert speaks(path, response), label
                checked += 1
            http.headers.clear()
            http.headers.update(good)
            response = await call(http, method, path)
            assert response.status_code != 401, f"{side} {method} {path}: right key refused"
            assert response.status_code < 500, f"{side} {method} {path}: {response.text[:200]}"
            checked += 1
    return checked


async def test_gateway_matrix(stack: Stack) -> None:
    routes = gateway_endpoints(stack)
    assert ("POST", "/v1/messages") in routes and ("GET", "/admin/fleet") in routes
    checked = await check_side(
        "gateway", stack.gateway.url, routes, {"Authorization": f"Bearer {GATEWAY_KEY}"}
    )
    assert checked == 5 * len(routes)


async def test_gateway_accepts_x_api_key(stack: Stack) -> None:
    async with stack.gateway_http(key=None) as http:
        response = await http.get("/v1/models", headers={"x-api-key": GATEWAY_KEY})
    assert response.status_code == 200


async def test_neuron_matrix(stack: Stack) -> None:
    routes = neuron_endpoints(stack)
    assert ("POST", "/models/load") in routes and ("GET", "/metrics") in routes
    checked = await check_side(
        "neuron", stack.neuron.url, routes, {"Authorization": f"Bearer {NEURON_TOKEN}"}
    )
    assert checked == 5 * len(routes)


async def test_gateway_key_does_not_open_the_neuron(stack: Stack) -> None:
    async with stack.neuron_http(token=GATEWAY_KEY) as http:
        assert (await http.get("/models")).status_code == 401
