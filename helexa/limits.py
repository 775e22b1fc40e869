"""Request body limits shared by the gateway and the neuron (pure ASGI middleware).

Hostile bodies are refused before any route parses them:

- larger than `max_bytes` -> 413 (from Content-Length at once, else while reading);
- a declared Content-Type that is not JSON -> 415 (a missing one is taken as JSON:
  bare `curl -d` and some SDKs send none);
- JSON nested deeper than `max_depth` -> 400 (`json.loads` would raise RecursionError,
  and chat templates recurse over tool schemas).

Each app renders the error in its routes' dialect (`ErrorRenderer`). The body is read
once here and replayed to the app; everything after it (a disconnect) passes through,
so streaming responses still see their client leave.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from helexa.asgi import JSON, send_whole
from helexa.errors import APIError, BadRequest, PayloadTooLarge, UnsupportedMediaType

MB = 1024 * 1024
DEFAULT_MAX_BODY_MB = 32  # Anthropic's own request limit for the Messages API
SCAN_OFF_LOOP_BYTES = 256 * 1024  # larger bodies are scanned in a worker thread
DEFAULT_MAX_DEPTH = 64  # far past any real tool schema, far below Python's recursion limit

_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
# One JSON string, linear in the body: possessive quantifiers never backtrack, and a
# string left open runs to the end of the body instead of failing (a failed match would
# be retried from every later quote: quadratic on a quote-backslash pair repeated).
_JSON_STRING = re.compile(rb'"(?:[^"\\]++|\\.)*+(?:"|\\?\Z)', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


# Counts per request, past which a body is refused (400) before it is validated: 800k
# tiny messages in a 28 MB body cost a neuron 26 s of CPU and 2 GB of memory.
MAX_MESSAGES = 10_000  # `messages` (chat, Anthropic) or `input` items (Responses)
MAX_CONTENT_BLOCKS = 1_000  # content blocks of one message
MAX_TOOLS = 512
PARSE_OFF_LOOP_BYTES = 256 * 1024  # larger bodies are parsed in a worker thread
# A \uD800-\uDFFF escape: json.loads keeps a lone surrogate, which no encoder accepts.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89abcdefABCDEF]")


@dataclass(frozen=True)
class BodyLimits:
    max_bytes: int = DEFAULT_MAX_BODY_MB * MB
    max_depth: int = DEFAULT_MAX_DEPTH


# (path, error) -> the JSON body of the error response, in that path's dialect.
ErrorRenderer = Callable[[str, APIError], bytes]


def is_json_content_type(value: str | None) -> bool:
    """Missing, `application/json`, or any `+json` type, parameters ignored."""
    if value is None:
        return True
    media = value.split(";", 1)[0].strip().lower()
    return media in ("", "application/json") or media.endswith("+json")


def nesting_depth(body: bytes) -> int:
    """The deepest `[`/`{` nesting outside strings (an estimate for invalid JSON)."""
    if body.count(b"[") + body.count(b"{") == 0:
        return 0
    brackets = _JSON_STRING.sub(b"", body).translate(None, _NOT_BRACKETS)
    depth = deepest = 0
    for byte in brackets:
        if byte in b"[{":
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def too_deep(body: bytes, max_depth: int) -> bool:
    # Fewer brackets than the limit cannot nest past it: skip the scan (the common case).
    if body.count(b"[") + body.count(b"{") <= max_depth:
        return False
    return nesting_depth(body) > max_depth


def declared_length(headers: list[tuple[bytes, bytes]]) -> int | None:
    for name, value in headers:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def header(headers: list[tuple[bytes, bytes]], wanted: bytes) -> str | None:
    for name, value in headers:
        if name == wanted:
            return value.decode("latin-1")
    return None


class BodyLimitMiddleware:
    """Refuses oversized, non-JSON and too-deeply-nested bodies before the routes."""

    def __init__(
        self, app: ASGIApp, limits: Callable[[], BodyLimits], render: ErrorRenderer
    ) -> None:
        self.app = app
        self.limits = limits  # read per request: a config reload changes the limit
        self.render = render

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in _BODY_METHODS:
            await self.app(scope, receive, send)
            return
        body = await read_body(scope, receive, send, self.limits(), self.render)
        if body is not None:
            await self.app(scope, _replay(body, receive), send)


async def read_body(
    scope: Scope, receive: Receive, send: Send, limits: BodyLimits, render: ErrorRenderer
) -> bytes | None:
    """The whole request body, or None once it was refused (answered here) or the client left.

    Shared by `BodyLimitMiddleware` and the gateway's fast lane.
    """
    headers: list[tuple[bytes, bytes]] = scope["headers"]
    path: str = scope["path"]
    declared = declared_length(headers)
    if declared is not None and declared > limits.max_bytes:
        await _refuse(path, send, _too_large(limits), render)
        return None
    if declared != 0 and not is_json_content_type(header(headers, b"content-type")):
        media = UnsupportedMediaType("request bodies must be JSON (application/json)")
        await _refuse(path, send, media, render)
        return None
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None  # the client left before sending its body
        chunk: bytes = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        if size > limits.max_bytes:
            await _refuse(path, send, _too_large(limits), render)
            return None
        if not message.get("more_body", False):
            break
    body = chunks[0] if len(chunks) == 1 else b"".join(chunks)  # one chunk: no copy
    if len(body) > SCAN_OFF_LOOP_BYTES:  # a 32 MB scan would hold every stream back
        deep = await asyncio.to_thread(too_deep, body, limits.max_depth)
    else:
        deep = too_deep(body, limits.max_depth)
    if deep:
        depth = BadRequest(f"request JSON is nested deeper than {limits.max_depth} levels")
        await _refuse(path, send, depth, render)
        return None
    return body


async def _refuse(path: str, send: Send, error: APIError, render: ErrorRenderer) -> None:
    # The unread rest of the body makes this connection unusable.
    await send_whole(send, error.status, render(path, error), [JSON, (b"connection", b"close")])


def _too_large(limits: BodyLimits) -> PayloadTooLarge:
    return PayloadTooLarge(f"request body is larger than {limits.max_bytes} bytes")


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive that yields the already-read body once, then the real channel."""
    pending: list[Message] = [{"type": "http.request", "body": body, "more_body": False}]

    async def replay() -> Message:
        if pending:
            return pending.pop()
        return await receive()

    return replay


async def parse_json_object(raw: bytes) -> dict[str, object]:
    """The request body as a JSON object within the count limits, or BadRequest.

    Bodies over `PARSE_OFF_LOOP_BYTES` are parsed in a worker thread, so a large
    one does not hold every stream on the event loop back.
    """
    if len(raw) > PARSE_OFF_LOOP_BYTES:
        return await asyncio.to_thread(json_object, raw)
    return json_object(raw)


def json_object(raw: bytes) -> dict[str, object]:
    try:
        body = json.loads(raw)
    except ValueError as exc:
        raise BadRequest(f"request body is not valid JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise BadRequest("request body must be a JSON object")
    check_counts(body)
    if _SURROGATE_ESCAPE.search(raw) and _has_lone_surrogate(body):
        raise BadRequest("request body holds a lone UTF-16 surrogate (\\ud800-\\udfff)")
    return body


def check_counts(body: dict[str, object]) -> None:
    """Refuse more messages, content blocks per message or tools than the limits."""
    for key in ("messages", "input"):
        items = body.get(key)
        if not isinstance(items, list):
            continue
        if len(items) > MAX_MESSAGES:
            raise BadRequest(f"{key}: at most {MAX_MESSAGES} items per request", param=key)
        for index, item in enumerate(items):
            content = item.get("content") if isinstance(item, dict) else None
            if isinstance(content, list) and len(content) > MAX_CONTENT_BLOCKS:
                param = f"{key}.{index}.content"
                raise BadRequest(
                    f"{param}: at most {MAX_CONTENT_BLOCKS} content blocks per message",
                    param=param,
                )
    tools = body.get("tools")
    if isinstance(tools, list) and len(tools) > MAX_TOOLS:
        raise BadRequest(f"tools: at most {MAX_TOOLS} tools per request", param="tools")


def _has_lone_surrogate(value: object) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False
