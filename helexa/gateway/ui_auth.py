"""Browser sign-in for /ui: the same api_keys as the API, carried in an HttpOnly cookie.

A browser cannot send `Authorization` on navigation, so this ASGI middleware
sits outside `keys.KeyMiddleware` and:

- answers `POST /ui/login` (form field `key`) and `GET /ui?key=KEY` (for a
  bookmark or a kiosk) with a 303 to /ui that sets the `helexa_ui` cookie;
  a wrong key gets the sign-in form again with 401;
- on read-only requests (GET/HEAD) to /ui, its assets, /admin/fleet and
  /admin/stats, turns a valid cookie into the `x-api-key` header the API check
  expects. Nothing that changes state accepts the cookie, so a cross-site
  form cannot act with it (SameSite=Strict says the same to the browser);
- serves the sign-in form (401) instead of a JSON error on an
  unauthenticated GET /ui.

The cookie holds `expires.nonce.HMAC(key, expires|nonce)`, not the key: each
sign-in gets a new one, the gateway refuses it after `expires` (7 days) whatever
the browser keeps, and it stops working as soon as its key leaves api_keys (no
configured key reproduces its HMAC). A leaked cookie opens the read-only views
only and says nothing about the key. Over TLS it is marked `Secure`.

Sign-in is guarded against login CSRF (a page elsewhere signing the browser in
with the attacker's key): `POST /ui/login` takes a form body only and refuses an
`Origin` that is not the gateway's own; `GET /ui?key=` refuses a cross-site
navigation (`Sec-Fetch-Site: cross-site`).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
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


def session_token(key: str, expires: int, nonce: str) -> str:
    """What the cookie holds for `key`: the expiry, a nonce and their keyed hash."""
    message = f"helexa-ui-session|{expires}|{nonce}".encode()
    return f"{expires}.{nonce}.{hmac.new(key.encode(), message, hashlib.sha256).hexdigest()}"


def new_session_token(key: str, now: float) -> str:
    return session_token(key, int(now) + COOKIE_MAX_AGE_S, secrets.token_hex(16))


def key_for_token(token: str, keys: Sequence[str], now: float) -> str | None:
    """The configured key that signed `token`, if it has not expired."""
    expires_text, _, rest = token.partition(".")
    nonce, _, _ = rest.partition(".")
    if not expires_text.isdigit() or int(expires_text) <= now or not nonce.isalnum():
        return None
    found: str | None = None
    for key in keys:  # no early exit: timing does not say which key matched
        if hmac.compare_digest(session_token(key, int(expires_text), nonce), token):
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

    def __init__(
        self,
        app: ASGIApp,
        keys: Callable[[], Sequence[str]],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.app = app
        self.keys = keys
        self.clock = clock

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        keys = self.keys()
        if scope["type"] != "http" or not keys:
            await self.app(scope, receive, send)
            return
        if scope["path"] == LOGIN_PATH and scope["method"] == "POST":
            refusal = login_refusal(scope)
            if refusal is not None:
                status, text = refusal
                await send_whole(send, status, text, [(b"content-type", b"text/plain")])
                return
            form = parse_qs((await _read_body(receive)).decode("utf-8", "replace"))
            await self._sign_in(scope, form.get("key", [""])[0], keys, send)
            return
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        if scope["path"] == "/ui" and "key" in query:
            if _header(scope, b"sec-fetch-site") == "cross-site":
                text = b"sign-in from another site is refused"
                await send_whole(send, 403, text, [(b"content-type", b"text/plain")])
                return
            await self._sign_in(scope, query["key"][0], keys, send)
            return
        if cookie_applies(scope) and presented_key(scope["headers"]) is None:
            key = key_for_token(cookie_token(scope) or "", keys, self.clock())
            if key is not None:
                headers = [*scope["headers"], (b"x-api-key", key.encode())]
                await self.app({**scope, "headers": headers}, receive, send)
                return
            if scope["path"] == "/ui":
                await send_whole(send, 401, login_page(), [(b"content-type", b"text/html")])
                return
        await self.app(scope, receive, send)

    async def _sign_in(self, scope: Scope, key: str, keys: Sequence[str], send: Send) -> None:
        if not key_matches(key, keys):
            await send_whole(send, 401, login_page(), [(b"content-type", b"text/html")])
            return
        cookie = (
            f"{COOKIE}={new_session_token(key, self.clock())}; Path=/; HttpOnly; "
            f"SameSite=Strict; Max-Age={COOKIE_MAX_AGE_S}"
        )
        if scope.get("scheme") == "https":
            cookie += "; Secure"
        # 303 to the bare /ui: the key leaves the address bar and the history entry.
        await send_whole(send, 303, b"", [(b"location", b"/ui"), (b"set-cookie", cookie.encode())])


def login_refusal(scope: Scope) -> tuple[int, bytes] | None:
    """Why a POST /ui/login is refused before reading it (login CSRF), or None."""
    media = (_header(scope, b"content-type") or "").split(";", 1)[0].strip().lower()
    if media != "application/x-www-form-urlencoded":
        return 415, b"sign in with the form (application/x-www-form-urlencoded)"
    origin = _header(scope, b"origin")
    own = f"{scope.get('scheme', 'http')}://{_header(scope, b'host') or ''}"
    if origin is not None and origin != own:
        return 403, b"sign-in from another site is refused"
    return None


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


async def _read_body(receive: Receive) -> bytes:
    body = b""
    while True:
        message: Message = await receive()
        chunk: bytes = message.get("body", b"")
        body += chunk
        if len(body) > MAX_FORM_BYTES or not message.get("more_body"):
            return body[:MAX_FORM_BYTES]
