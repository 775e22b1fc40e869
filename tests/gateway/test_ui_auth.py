"""Sign-in cookie helpers (the middleware itself runs in routes/test_ui.py)."""

from __future__ import annotations

from helexa.gateway.ui_auth import (
    cookie_applies,
    cookie_token,
    key_for_token,
    new_session_token,
    session_token,
)

NOW = 1_800_000_000.0


def test_token_maps_back_to_its_key_only() -> None:
    keys = ["k1", "k2"]
    assert key_for_token(new_session_token("k2", NOW), keys, NOW) == "k2"
    assert key_for_token(new_session_token("k3", NOW), keys, NOW) is None
    assert key_for_token("", keys, NOW) is None
    assert key_for_token("x.y.z", keys, NOW) is None
    assert "k1" not in new_session_token("k1", NOW)


def test_every_sign_in_gets_a_new_token() -> None:
    assert new_session_token("k1", NOW) != new_session_token("k1", NOW)


def test_a_token_expires_on_the_server_whatever_the_browser_keeps() -> None:
    token = session_token("k1", int(NOW) + 10, "abc123")
    assert key_for_token(token, ["k1"], NOW) == "k1"
    assert key_for_token(token, ["k1"], NOW + 10) is None
    # The expiry is signed: moving it forward breaks the HMAC.
    moved = token.replace(str(int(NOW) + 10), str(int(NOW) + 10_000), 1)
    assert key_for_token(moved, ["k1"], NOW + 10) is None


def test_a_token_dies_with_its_key() -> None:
    token = new_session_token("k1", NOW)
    assert key_for_token(token, ["k1", "k2"], NOW) == "k1"
    assert key_for_token(token, ["k2"], NOW) is None


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
