"""JSON for the per-chunk paths of a stream (orjson: several times the stdlib's speed).

A translated stream parses every upstream chunk and encodes every event it
sends; with the stdlib that was about a third of the gateway's work per
streamed Anthropic request. Used for those chunks and events only, never for
a client's request body: orjson reads an integer past 64 bits as a float,
so a re-encoded `seed` could change, and it refuses to encode one at all
(`dumps` falls back to the stdlib then).

`dumps` gives compact UTF-8 bytes, as `json.dumps(obj, ensure_ascii=False,
separators=(",", ":")).encode()` would; `loads` raises ValueError on
invalid input, as `json.loads` does.
"""

from __future__ import annotations

import json
from typing import Any

import orjson


def loads(data: bytes | str) -> Any:
    return orjson.loads(data)


def dumps(obj: Any) -> bytes:
    try:
        return orjson.dumps(obj)
    except TypeError:  # an integer past 64 bits, a key that is not a string
        return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()
