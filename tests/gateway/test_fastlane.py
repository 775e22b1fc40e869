"""The fast lane: hot POST routes skip starlette's layers but keep every check and dialect."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from helexa.gateway.app import build_app
from helexa.gateway.core import Gateway
from helexa.gateway.fastlane import GatewayApp, HotHandler
from helexa.gateway.keys import KeyMiddleware, Ticket
from helexa.gateway.transport import CoalescingHttpToolsProtocol
from helexa.testing.neuron_proc import serve_in_process
from tests.gateway.harness import write_configs

CHAT = "/v1/chat/completions"
MESSAGES = "/v1/messages"


class Recorder:
    """A hot handler that remembers the bodies it was given."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    async def __call__(self, _: Gateway, raw: bytes, ticket: Ticket | None) -> Response:
        self.bodies.append(raw)
        return JSONResponse({"ok": True})


async def boom(_: Gateway, raw: bytes, ticket: Ticket | None) -> Response:
    raise RuntimeError("handler bug")


def gateway(tmp_path: Path, gateway_toml: str = "") -> Gateway:
    config = write_configs(tmp_path, f"[gateway]\n{gateway_toml}\n", "")
    return Gateway(config)


async def not_a_hot_route(_: object) -> Response:
    return JSONResponse({"slow": True})


@pytest.fixture
async def keyed(tmp_path: Path) -> AsyncIterator[tuple[str, Recorder]]:
    """A GatewayApp with a key, a 1 MB body limit and recording hot handlers."""
    recorder = Recorder()
    hot: dict[str, HotHandler] = {CHAT: recorder, MESSAGES: recorder}
    gw = gateway(tmp_path, 'api_keys = ["k"]\nmax_body_mb = 1')
    app = GatewayApp(gw, hot, routes=[Route(CHAT, not_a_hot_route, methods=["GET"])])
    app.add_middleware(KeyMiddleware, ring=lambda: gw.keyring)
    async with serve_in_process(app, http=CoalescingHttpToolsProtocol) as url:
        yield url, recorder


async def test_the_body_reaches_the_handler_as_sent(keyed: tuple[str, Recorder]) -> None:
    url, recorder = keyed
    body = b'{"model": "m",  "messages": []}'
    async with httpx.AsyncClient(base_url=url) as http:
        answer = await http.post(CHAT, content=body, headers={"x-api-key": "k"})
    assert answer.status_code == 200 and answer.json() == {"ok": True}
    assert recorder.bodies == [body]


async def test_keys_and_body_limits_are_checked_first_in_the_dialect(
    keyed: tuple[str, Recorder],
) -> None:
    url, recorder = keyed
    key = {"x-api-key": "k"}
    async with httpx.AsyncClient(base_url=url) as http:
        no_key = await http.post(MESSAGES, json={})
        wrong_key = await http.post(CHAT, json={}, headers={"authorization": "Bearer x"})
        too_big = await http.post(CHAT, content=b"[" + b" " * (2 << 20) + b"]", headers=key)
        not_json = await http.post(
            MESSAGES, content=b"hi", headers={**key, "content-type": "text/plain"}
        )
        too_deep = await http.post(CHAT, content=b"[" * 100 + b"]" * 100, headers=key)
    assert no_key.status_code == 401
    assert no_key.json()["type"] == "error"  # Anthropic's envelope on /v1/messages
    assert no_key.json()["error"]["type"] == "authentication_error"
    assert wrong_key.status_code == 401
    assert wrong_key.json()["error"]["code"] == "invalid_api_key"
    assert too_big.status_code == 413 and "error" in too_big.json()
    assert not_json.status_code == 415 and not_json.json()["type"] == "error"
    assert too_deep.status_code == 400 and "nested deeper" in too_deep.json()["error"]["message"]
    assert recorder.bodies == []


async def test_other_methods_take_the_full_stack(keyed: tuple[str, Recorder]) -> None:
    url, recorder = keyed
    async with httpx.AsyncClient(base_url=url) as http:
        refused = await http.get(CHAT)  # the API-key middleware still guards the rest
        routed = await http.get(CHAT, headers={"x-api-key": "k"})
    assert refused.status_code == 401
    assert routed.status_code == 200 and routed.json() == {"slow": True}
    assert recorder.bodies == []


async def test_a_handler_failure_is_a_500_in_the_route_dialect(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    app = GatewayApp(gateway(tmp_path), {CHAT: boom, MESSAGES: boom})
    async with (
        serve_in_process(app, http=CoalescingHttpToolsProtocol) as url,
        httpx.AsyncClient(base_url=url) as http,
    ):
        with caplog.at_level(logging.ERROR, logger="helexa.gateway"):
            openai_style = await http.post(CHAT, json={})
            anthropic_style = await http.post(MESSAGES, json={})
            # The connection stays usable after a failure.
            again = await http.post(CHAT, json={})
    assert openai_style.status_code == anthropic_style.status_code == again.status_code == 500
    assert openai_style.json()["error"]["type"] == "server_error"
    assert anthropic_style.json()["type"] == "error"
    assert anthropic_style.json()["error"]["type"] == "api_error"
    assert any("handler bug" in (r.exc_text or "") for r in caplog.records)


def test_build_app_puts_the_proxied_routes_in_the_fast_lane(tmp_path: Path) -> None:
    app = build_app(gateway(tmp_path), manage_lifecycle=False)
    assert isinstance(app, GatewayApp)
    assert set(app.hot) == {CHAT, "/v1/completions", MESSAGES, "/v1/responses"}
