"""/ui, its assets, the browser sign-in and /admin/stats on a real gateway (loopback).

The upstream is the scripted OpenAI-compatible server (kind="openai"), so the
metrics behind /admin/stats come from real proxied requests without a model load.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from helexa.gateway.app import build_app
from helexa.gateway.ui_auth import COOKIE, key_for_token, new_session_token, session_token
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
    assert KEY not in cookie
    assert key_for_token(cookie.split(";")[0].split("=", 1)[1], [KEY], time.time()) == KEY
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
        forged_token = new_session_token("guess", time.time())
        forged = await client.get("/admin/fleet", cookies={COOKIE: forged_token})
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


async def test_the_cookie_is_new_per_sign_in_and_ends_with_its_key_or_its_time(
    tmp_path: Path, scripted_upstream: ScriptedUpstream
) -> None:
    config = write_configs(tmp_path, fleet_toml(scripted_upstream, f'"{KEY}", "other"'), "")
    async with run_gateway(config) as gw, browser(gw) as client:
        first = (await client.post("/ui/login", data={"key": KEY})).cookies[COOKIE]
        second = (await client.post("/ui/login", data={"key": KEY})).cookies[COOKIE]
        assert first != second
        assert (await client.get("/admin/fleet", cookies={COOKIE: first})).status_code == 200
        expired = session_token(KEY, int(time.time()) - 1, "abc123")
        assert (await client.get("/admin/fleet", cookies={COOKIE: expired})).status_code == 401
        # The key leaves api_keys (a reload): its cookies stop working at once.
        gw.gateway.set_config(write_configs(tmp_path, fleet_toml(scripted_upstream, '"other"'), ""))
        assert (await client.get("/admin/fleet", cookies={COOKIE: first})).status_code == 401


async def test_sign_in_from_another_site_is_refused(
    tmp_path: Path, scripted_upstream: ScriptedUpstream
) -> None:
    """Login CSRF: a page elsewhere must not sign the browser in with its own key."""
    config = write_configs(tmp_path, fleet_toml(scripted_upstream, f'"{KEY}"'), "")
    async with run_gateway(config) as gw, browser(gw) as client:
        cross = await client.post(
            "/ui/login", data={"key": KEY}, headers={"Origin": "http://evil.example"}
        )
        not_a_form = await client.post(
            "/ui/login", content=f"key={KEY}", headers={"content-type": "text/plain"}
        )
        navigated = await client.get(
            "/ui", params={"key": KEY}, headers={"Sec-Fetch-Site": "cross-site"}
        )
        assert not client.cookies
        own = await client.post("/ui/login", data={"key": KEY}, headers={"Origin": gw.url})
    assert cross.status_code == 403 and "set-cookie" not in cross.headers
    assert not_a_form.status_code == 415 and "set-cookie" not in not_a_form.headers
    assert navigated.status_code == 403 and "set-cookie" not in navigated.headers
    assert own.status_code == 303 and COOKIE in own.headers["set-cookie"]


async def test_the_cookie_is_secure_over_tls(
    tmp_path: Path, scripted_upstream: ScriptedUpstream
) -> None:
    config = write_configs(tmp_path, fleet_toml(scripted_upstream, f'"{KEY}"'), "")
    async with run_gateway(config) as gw:
        app = build_app(gw.gateway)  # the same app, spoken to as if behind https
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="https://gw.example") as tls:
            over_tls = await tls.post("/ui/login", data={"key": KEY})
        async with browser(gw) as client:
            plain = await client.post("/ui/login", data={"key": KEY})
    assert "; Secure" in over_tls.headers["set-cookie"]
    assert "Secure" not in plain.headers["set-cookie"]
