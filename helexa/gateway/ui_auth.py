"""Browser sign-in for /ui: the same api_keys as the API, carried in an HttpOnly cookie.

A browser cannot send `Authorization` on navigation, so this ASGI middleware
sits outside `auth.ApiKeyMiddleware` and:

- answers `POST /ui/login` (form field `key`) and `GET /ui?key=KEY` (for a
  bookmark or a kiosk) with a 303 to /ui that sets the `helexa_ui` cookie;
  a wrong key gets the sign-in form again with 401;
- on read-only requests (GET/HEAD) to /ui, its assets, /admin/fleet and
  /admin/stats, turns a valid cookie into the `x-api-key` header the API check
  expects. Nothing that changes state accepts the cookie, so a cross-site
  form cannot act with it (SameSite=Strict says the same to the browser);
- serves the sign-in form (401) instead of a JSON error on an
  unauthenticated GET /ui.

The cookie holds an HMAC of the key, not the key: a leaked cookie opens the
read-only views only and says nothing about the key itself.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Sequence
from http.cookies import SimpleCookie
from importlib import resources
from urllib.parse import parse_qs

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from helexa.asgi import send_whole
from helexa.gateway.auth import key_matches, presented_key

COOKIE = "helexa_ui"
COOKIE_MAX_AGE_S = 7 * 24 * 3600
LOGIN_PATH = "/ui/login"
MAX_FORM_BYTES = 4096
# Read-only routes a signed-in browser may reach with the cookie alone.
COOKIE_PATHS = ("/ui", "/admin/fleet", "/admin/stats", "/admin/usage")


def session_token(key: str) -> str:
    """What the cookie holds for `key`: keyed hash, stable while the key is configured."""
    return hmac.new(key.encode(), b"helexa-ui-session", hashlib.sha256).hexdigest()


def key_for_token(token: str, keys: Sequence[str]) -> str | None:
    """The configured key whose session token is `token`, if any."""
    found: str | None = None
    for key in keys:  # no early exit: timing does not say which key matched
        if hmac.compare_digest(session_token(key), token):
            found = key
    return found


def cookie_token(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"cookie":
            jar: SimpleCookie = SimpleCookie()
            jar.load(value.decode("latin-1"))
            if COOKIE in jar:
                return jar[COOKIE].value
    return None


def cookie_applies(scope: Scope) -> bool:
    path: str = scope["path"]
    read_only = scope["method"] in ("GET", "HEAD")
    return read_only and any(path == p or path.startswith(p + "/") for p in COOKIE_PATHS)


def login_page() -> bytes:
    return resources.files("helexa").joinpath("ui", "login.html").read_bytes()


class UiSessionMiddleware:
    """Cookie sign-in for the /ui page; a no-op while no api_keys are configured."""

    def __init__(self, app: ASGIApp, keys: Callable[[], Sequence[str]]) -> None:
        self.app = app
        self.keys = keys

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        keys = self.keys()
        if scope["type"] != "http" or not keys:
            await self.app(scope, receive, send)
            return
        if scope["path"] == LOGIN_PATH and scope["method"] == "POST":
            form = parse_qs((await _read_body(receive)).decode("utf-8", "replace"))
            await self._sign_in(form.get("key", [""])[0], keys, send)
            return
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        if scope["path"] == "/ui" and "key" in query:
            await self._sign_in(query["key"][0], keys, send)
            return
        if cookie_applies(scope) and presented_key(scope["headers"]) is None:
            key = key_for_token(cookie_token(scope) or "", keys)
            if key is not None:
                headers = [*scope["headers"], (b"x-api-key", key.encode())]
                await self.app({**scope, "headers": headers}, receive, send)
                return
            if scope["path"] == "/ui":
                await send_whole(send, 401, login_page(), [(b"content-type", b"text/html")])
                return
        await self.app(scope, receive, send)

    async def _sign_in(self, key: str, keys: Sequence[str], send: Send) -> None:
        if not key_matches(key, keys):
            await send_whole(send, 401, login_page(), [(b"content-type", b"text/html")])
            return
        cookie = (
            f"{COOKIE}={session_token(key)}; Path=/; HttpOnly; SameSite=Strict; "
            f"Max-Age={COOKIE_MAX_AGE_S}"
        )
        # 303 to the bare /ui: the key leaves the address bar and the history entry.
        await send_whole(send, 303, b"", [(b"location", b"/ui"), (b"set-cookie", cookie.encode())])


async def _read_body(receive: Receive) -> bytes:
    body = b""
    while True:
        message: Message = await receive()
        chunk: bytes = message.get("body", b"")
        body += chunk
        if len(body) > MAX_FORM_BYTES or not message.get("more_body"):
            return body[:MAX_FORM_BYTES]
