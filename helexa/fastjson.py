"""JSON for the gateway's translated dialects (orjson: several times the stdlib's speed).

A translated stream parses every upstream chunk and encodes every event it
sends; with the stdlib that was about a third of the gateway's work per
streamed Anthropic request. `loads` is for what upstreams send (chunks,
answers), never for a client's request body: orjson reads an integer past
64 bits as a float, so a re-encoded `seed` could change. `dumps` is safe for
anything: orjson refuses such an integer, and the stdlib encodes it then.

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
