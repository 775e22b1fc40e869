"""The `signature` of the thinking blocks helexa emits.

Anthropic signs thinking blocks so its API can verify them when a client sends
them back; a local model has nothing to verify, but clients expect a non-empty
string. helexa uses a deterministic digest of the thinking text: the same in
streamed and non-streamed responses, and recognisable as helexa's own
(`helexa:` prefix). It proves nothing and is never checked on the way back in.
"""

from __future__ import annotations

import hashlib

SIGNATURE_PREFIX = "helexa:"


def thinking_signature(thinking: str) -> str:
    digest = hashlib.sha256(thinking.encode("utf-8")).hexdigest()[:32]
    return f"{SIGNATURE_PREFIX}{digest}"
