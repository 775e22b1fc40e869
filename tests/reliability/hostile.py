"""Hostile request bodies, and the routes they are thrown at (pure data for the tests).

Each `Case` mutates a valid body for a route kind; `expected_status` says what
the route must answer. Every answer must be a 4xx in the route's dialect except
where noted (the Anthropic route clamps a max_tokens past the context on purpose).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from helexa.limits import MAX_CONTENT_BLOCKS, MAX_MESSAGES
from helexa.testing.neuron_proc import TINY_MODEL_ID
from tests.reliability.stack import MAX_BODY_MB

MB = 1024 * 1024
CONTEXT_TOKENS = 4096  # the tiny model's context length


@dataclass(frozen=True)
class Route:
    side: str  # "gateway" | "neuron"
    path: str
    kind: str  # "chat" | "completion" | "anthropic" | "count" | "tokenize"

    @property
    def dialect(self) -> str:
        return "anthropic" if self.path.startswith("/v1/messages") else "openai"

    @property
    def generates(self) -> bool:
        return self.kind in ("chat", "completion", "anthropic")

    def __str__(self) -> str:
        return f"{self.side}{self.path}"


ROUTES = [
    Route("gateway", "/v1/chat/completions", "chat"),
    Route("gateway", "/v1/completions", "completion"),
    Route("gateway", "/v1/messages", "anthropic"),
    Route("gateway", "/v1/messages/count_tokens", "count"),
    Route("neuron", "/v1/chat/completions", "chat"),
    Route("neuron", "/v1/completions", "completion"),
    Route("neuron", "/v1/tokenize", "tokenize"),
]


def valid_body(kind: str) -> dict[str, Any]:
    if kind == "completion":
        return {"model": TINY_MODEL_ID, "prompt": "hello", "max_tokens": 4}
    body: dict[str, Any] = {"model": TINY_MODEL_ID, "messages": [user("hello")]}
    if kind in ("chat", "anthropic"):
        body["max_tokens"] = 4
    return body


def user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": text}


def tool(kind: str, index: int, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    schema = schema or {"type": "object", "properties": {"a": {"type": "string"}}}
    if kind in ("anthropic", "count"):
        return {"name": f"tool_{index}", "description": "does a thing", "input_schema": schema}
    return {
        "type": "function",
        "function": {"name": f"tool_{index}", "description": "does a thing", "parameters": schema},
    }


def nested_schema(depth: int) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string"}
    for _ in range(depth):
        schema = {"type": "object", "properties": {"x": schema}}
    return schema


def encode(body: dict[str, Any]) -> bytes:
    return json.dumps(body).encode()


@dataclass(frozen=True)
class Case:
    name: str
    build: Callable[[Route], bytes]
    status: int | Callable[[Route], int]
    headers: dict[str, str] = field(default_factory=dict)
    applies: Callable[[Route], bool] = lambda _: True

    def expected_status(self, route: Route) -> int:
        return self.status(route) if callable(self.status) else self.status


def _oversized(route: Route) -> bytes:
    body = valid_body(route.kind) | {"padding": "x" * (MAX_BODY_MB * MB + 1)}
    return encode(body)


def _deep_array(_: Route) -> bytes:
    return b'{"model": "m", "messages": ' + b"[" * 50_000 + b"]" * 50_000 + b"}"


def _unterminated_escapes(_: Route) -> bytes:
    # Quadratic for a backtracking string scan: this body held the loop for minutes.
    return b'{"model": "m", "messages": ' + b"[" * 65 + b'"\\' * (400 * 1024)


def _deep_tool_schema(route: Route) -> bytes:
    return encode(valid_body(route.kind) | {"tools": [tool(route.kind, 0, nested_schema(200))]})


def _invalid_utf8(route: Route) -> bytes:
    return encode(valid_body(route.kind)).replace(b"hello", b"he\xc3\x28llo\xff")


def _huge_max_tokens(route: Route) -> bytes:
    # A prompt just short of the context: where the answer is a 200 (Anthropic), the
    # few tokens left keep the generation short.
    text = "hello " * (CONTEXT_TOKENS - 50)
    if route.kind == "completion":
        return encode(valid_body(route.kind) | {"prompt": text, "max_tokens": 10**30})
    return encode(valid_body(route.kind) | {"messages": [user(text)], "max_tokens": 10**30})


def _negative_temperature(route: Route) -> bytes:
    return encode(valid_body(route.kind) | {"temperature": -0.5})


def _seed_past_int64(route: Route) -> bytes:
    return encode(valid_body(route.kind) | {"seed": 2**70})


def _lone_surrogate_model(route: Route) -> bytes:
    return encode(valid_body(route.kind)).replace(TINY_MODEL_ID.encode(), b"tiny\\ud800")


def _lone_surrogate_text(route: Route) -> bytes:
    return encode(valid_body(route.kind)).replace(b"hello", b"he\\udc00llo")


def _too_many_messages(route: Route) -> bytes:
    if route.kind == "completion":
        return encode(valid_body(route.kind) | {"prompt": "x"})  # not applicable
    return encode(valid_body(route.kind) | {"messages": [user("hi")] * (MAX_MESSAGES + 1)})


def _too_many_blocks(route: Route) -> bytes:
    blocks = [{"type": "text", "text": "x"}] * (MAX_CONTENT_BLOCKS + 1)
    return encode(valid_body(route.kind) | {"messages": [{"role": "user", "content": blocks}]})


def _thousands_of_tools(route: Route) -> bytes:
    return encode(valid_body(route.kind) | {"tools": [tool(route.kind, i) for i in range(2000)]})


def _over_context(route: Route) -> bytes:
    text = "hello " * (CONTEXT_TOKENS * 2)
    if route.kind == "completion":
        return encode(valid_body(route.kind) | {"prompt": text})
    return encode(valid_body(route.kind) | {"messages": [user(text)]})


def _huge_max_tokens_status(route: Route) -> int:
    # Claude Code asks for 32k-64k tokens whatever the model: the Anthropic route drops a
    # max_tokens past the context (gateway.routes.anthropic.fit_max_tokens) and answers.
    return 200 if route.kind == "anthropic" else 400


CASES = [
    Case("oversized body", _oversized, 413),
    Case("deeply nested array", _deep_array, 400),
    Case("unterminated escapes after brackets (ReDoS)", _unterminated_escapes, 400),
    Case("deeply nested tool schema", _deep_tool_schema, 400),
    Case("invalid utf-8", _invalid_utf8, 400),
    Case("not json at all", lambda _: b"\x00\x01garbage{", 400),
    Case("json array body", lambda _: b"[1, 2, 3]", 400),
    Case("empty body", lambda _: b"", 400),
    Case("null fields", lambda r: encode({"model": None, "messages": None, "prompt": None}), 400),
    Case(
        "text/plain content type",
        lambda r: encode(valid_body(r.kind)),
        415,
        headers={"content-type": "text/plain"},
    ),
    Case(
        "form content type",
        lambda r: encode(valid_body(r.kind)),
        415,
        headers={"content-type": "application/x-www-form-urlencoded"},
    ),
    Case(
        "huge max_tokens",
        _huge_max_tokens,
        _huge_max_tokens_status,
        applies=lambda r: r.generates,
    ),
    Case("negative temperature", _negative_temperature, 400, applies=lambda r: r.generates),
    Case(
        "thousands of tools",
        _thousands_of_tools,
        400,
        applies=lambda r: r.kind in ("chat", "anthropic"),
    ),
    Case("seed past int64", _seed_past_int64, 400, applies=lambda r: r.generates),
    Case("lone surrogate in the model name", _lone_surrogate_model, 400),
    Case("lone surrogate in the text", _lone_surrogate_text, 400),
    Case(
        "more messages than the limit",
        _too_many_messages,
        400,
        applies=lambda r: r.kind != "completion",
    ),
    Case(
        "more content blocks than the limit",
        _too_many_blocks,
        400,
        applies=lambda r: r.kind != "completion",
    ),
    Case("prompt over the context length", _over_context, 400, applies=lambda r: r.generates),
]


def matrix() -> list[tuple[Case, Route]]:
    return [(case, route) for case in CASES for route in ROUTES if case.applies(route)]


def is_dialect_error(dialect: str, body: Any) -> bool:
    """The body is an error envelope of `dialect` with a non-empty message."""
    if not isinstance(body, dict):
        return False
    if dialect == "anthropic":
        error = body.get("error")
        return body.get("type") == "error" and isinstance(error, dict) and bool(error.get("type"))
    error = body.get("error")
    return isinstance(error, dict) and bool(error.get("message")) and bool(error.get("type"))
