"""/ui, its assets, the browser sign-in and /admin/stats on a real gateway (loopback).

The upstream is the scripted OpenAI-compatible server (kind="openai"), so the
metrics behind /admin/stats come from real proxied requests without a model load.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from helexa.gateway.ui_auth import COOKIE, session_token
from tests.gateway.harness import RunningGateway, run_gateway, write_configs
from tests.gateway.scripted_upstream import ScriptedUpstream

KEY = "operator-key"


def fleet_toml(upstream: ScriptedUpstream, keys: str) -> str:
    return (
        f"[gateway]\napi_keys = [{keys}]\n"
        f'[[neurons]]\nname = "big"\nkind = "openai"\n'
        f'endpoint = "{upstream.url}/v1"\nmodels = ["vendor/big"]\n'
    )


def browser(gw: RunningGateway) -> httpx.AsyncClient:
    """A client like a browser: no Authorization header, keeps cookies, no auto-redirect."""
    return httpx.AsyncClient(base_url=gw.url, timeout=30, follow_redirects=False)


async def test_open_gateway_serves_the_page_and_assets(
    tmp_path: Path, scripted_upstream: ScriptedUpstream
) -> None:
    config = write_configs(tmp_path, fleet_toml(scripted_upstream, ""), "")
    async with run_gateway(config) as gw, browser(gw) as client:
        page = await client.get("/ui")
        script = await client.get("/ui/app.js")
        style = await client.get("/ui/style.css")
        missing = await client.get("/ui/secrets.txt")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert '<script src="/ui/app.js"' in page.text
    assert script.status_code == 200 and "/admin/fleet" in script.text
    assert style.status_code == 200 and style.headers["content-type"].startswith("text/css")
    assert missing.status_code == 404


async def test_keys_guard_the_page_until_sign_in(
    tmp_path: Path, scripted_upstream: ScriptedUpstream
) -> None:
    config = write_configs(tmp_path, fleet_toml(scripted_upstream, f'"{KEY}"'), "")
    async with run_gateway(config) as gw, browser(gw) as client:
        refused_page = await client.get("/ui")
        refused_fleet = await client.get("/admin/fleet")
        refused_stats = await client.get("/admin/stats")
        wrong = await client.get("/ui", params={"key": "nope"})
        assert not client.cookies
        signed_in = await client.get("/ui", params={"key": KEY})
        page = await client.get("/ui")
        fleet = await client.get("/admin/fleet")
        stats = await client.get("/admin/stats")
        # The cookie opens the read-only views only: no state change rides on it.
        load = await client.post("/admin/models/load", json={"model": "vendor/big"})
    assert refused_page.status_code == 401 and 'action="/ui/login"' in refused_page.text
    assert refused_fleet.status_code == refused_stats.status_code == 401
    assert wrong.status_code == 401
    assert signed_in.status_code == 303 and signed_in.headers["location"] == "/ui"
    cookie = signed_in.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert KEY not in cookie and session_token(KEY) in cookie
    assert page.status_code == 200 and "app.js" in page.text
    assert fleet.status_code == 200 and fleet.json()["neurons"][0]["name"] == "big"
    assert stats.status_code == 200
    assert load.status_code == 401


async def test_login_form_sets_the_cookie(
    tmp_path: Path, scripted_upstream: ScriptedUpstream
) -> None:
    config = write_configs(tmp_path, fleet_toml(scripted_upstream, f'"{KEY}"'), "")
    async with run_gateway(config) as gw, browser(gw) as client:
        bad = await client.post("/ui/login", data={"key": "guess"})
        good = await client.post("/ui/login", data={"key": KEY})
        forged = await client.get("/admin/fleet", cookies={COOKIE: session_token("guess")})
    assert bad.status_code == 401 and "API key" in bad.text
    assert good.status_code == 303 and COOKIE in good.headers["set-cookie"]
    assert forged.status_code == 401


@pytest.mark.parametrize("header", ["Authorization", "x-api-key"])
async def test_stats_count_proxied_requests(
    tmp_path: Path, scripted_upstream: ScriptedUpstream, header: str
) -> None:
    config = write_configs(tmp_path, fleet_toml(scripted_upstream, f'"{KEY}"'), "")
    value = f"Bearer {KEY}" if header == "Authorization" else KEY
    async with run_gateway(config) as gw, gw.http() as client:
        client.headers[header] = value
        first = (await client.get("/admin/stats")).json()
        for _ in range(3):
            async with gw.openai(api_key=KEY) as sdk:
                stream = await sdk.chat.completions.create(
                    model="vendor/big", messages=[{"role": "user", "content": "hi"}], stream=True
                )
                async for _chunk in stream:
                    pass
        second = (await client.get("/admin/stats")).json()
    assert [m["requests"] for m in first["models"]] in ([], [0])
    (big,) = second["models"]
    assert big["model"] == "vendor/big" and big["requests"] == 3 and big["errors"] == 0
    assert big["requests_per_s"] > 0
    assert big["ttft_s"]["p50"] is not None and big["ttft_s"]["p50"] <= big["ttft_s"]["p99"]
