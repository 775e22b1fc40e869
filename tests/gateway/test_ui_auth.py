"""Sign-in cookie helpers (the middleware itself runs in test_routes_ui.py)."""

from __future__ import annotations

from helexa.gateway.ui_auth import cookie_applies, cookie_token, key_for_token, session_token


def test_token_maps_back_to_its_key_only() -> None:
    keys = ["k1", "k2"]
    assert key_for_token(session_token("k2"), keys) == "k2"
    assert key_for_token(session_token("k3"), keys) is None
    assert key_for_token("", keys) is None
    assert session_token("k1") != session_token("k2") and "k1" not in session_token("k1")


def test_cookie_is_read_from_the_cookie_header() -> None:
    scope = {"headers": [(b"cookie", b"other=1; helexa_ui=abc")]}
    assert cookie_token(scope) == "abc"
    assert cookie_token({"headers": []}) is None


def test_cookie_opens_read_only_views_only() -> None:
    def scope(method: str, path: str) -> dict[str, str]:
        return {"method": method, "path": path}

    assert cookie_applies(scope("GET", "/ui"))
    assert cookie_applies(scope("GET", "/ui/app.js"))
    assert cookie_applies(scope("GET", "/admin/fleet"))
    assert cookie_applies(scope("GET", "/admin/stats"))
    assert not cookie_applies(scope("POST", "/admin/models/load"))
    assert not cookie_applies(scope("GET", "/v1/models"))
    assert not cookie_applies(scope("GET", "/admin/fleetx"))
