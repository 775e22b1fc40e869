"""The `signature` of the thinking blocks helexa emits, and the
`encrypted_content` of its Responses reasoning items.

Anthropic signs thinking blocks so its API can verify them when a client sends
them back; a local model has nothing to verify, but clients expect a non-empty
string. helexa uses a deterministic digest of the thinking text: the same in
streamed and non-streamed responses, and recognisable as helexa's own
(`helexa:` prefix). It proves nothing and is never checked on the way back in.
"""

from __future__ import annotations

import base64
import binascii
import hashlib

SIGNATURE_PREFIX = "helexa:"
REASONING_TOKEN_PREFIX = "helexa-reasoning:v1:"


def thinking_signature(thinking: str) -> str:
    return f"{SIGNATURE_PREFIX}{_digest(thinking)}"


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def reasoning_token(text: str) -> str:
    """The `encrypted_content` of a Responses reasoning item.

    OpenAI encrypts the reasoning so a stateless client (`store: false`) can
    send it back on the next turn without reading it. Here the client already
    holds the text (the item's `content`), so the token is the text itself,
    base64url-encoded, followed by its digest: opaque to clients that treat it
    as such, and readable back by `read_reasoning_token` when a client sends
    only the token (as OpenAI's own clients may)."""
    encoded = base64.urlsafe_b64encode(text.encode("utf-8")).decode("ascii").rstrip("=")
    return f"{REASONING_TOKEN_PREFIX}{encoded}.{_digest(text)}"


def read_reasoning_token(token: str) -> str | None:
    """The reasoning text of a token `reasoning_token` made; None for anything else
    (another provider's encrypted reasoning, a damaged token): the caller drops it."""
    if not token.startswith(REASONING_TOKEN_PREFIX):
        return None
    encoded, _, digest = token.removeprefix(REASONING_TOKEN_PREFIX).rpartition(".")
    try:
        text = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    return text if _digest(text) == digest else None
