"""API keys: `Authorization: Bearer <key>` or `x-api-key: <key>`; `/health` is public.

The check itself (a hash lookup of the presented key in the key ring) is
helexa.gateway.keys; this module reads the key from the headers and renders
the 401, which speaks the route's dialect: Anthropic's envelope on
`/v1/messages`, OpenAI's everywhere else.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Sequence

from helexa.config.fleet import GatewayConfig
from helexa.errors import Unauthorized

PUBLIC_PATHS = frozenset({"/health"})


def presented_key(headers: Sequence[tuple[bytes, bytes]]) -> str | None:
    """The key a request carries, from either header."""
    for name, value in headers:
        if name == b"x-api-key":
            return value.decode("latin-1").strip()
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer":
                return token.strip()
    return None


def repeated_credentials(headers: Sequence[tuple[bytes, bytes]]) -> bool:
    """Two Authorization (or two x-api-key) headers: refused, never one picked (servers and
    proxies disagree on which one counts)."""
    names = [name for name, _ in headers if name in (b"authorization", b"x-api-key")]
    return len(names) != len(set(names))


def key_matches(presented: str | None, keys: Sequence[str]) -> bool:
    if presented is None:
        return False
    # Compare against every key so timing does not say which one nearly matched.
    found = False
    for key in keys:
        found |= hmac.compare_digest(presented.encode(), key.encode())
    return found


def open_access_warning(gateway: GatewayConfig) -> str | None:
    """The warning for a gateway anyone on the network may use (at start and in /health)."""
    if not gateway.is_open_to_network:
        return None
    return (
        f"the gateway listens on {gateway.listen} (not loopback) and [gateway] api_keys "
        "is empty: anyone who can reach it can use every model. Set api_keys in fleet.toml."
    )


def unauthorized_body(path: str, message: str) -> bytes:
    err = Unauthorized(message)
    if path.startswith("/v1/messages"):
        return json.dumps(
            {"type": "error", "error": {"type": err.type, "message": err.message}}
        ).encode()
    return json.dumps(err.to_openai()).encode()
