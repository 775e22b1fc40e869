"""Hostile input: every case x route is a clear 4xx in the route's dialect, never a 5xx.

Runs against a real gateway over a real neuron holding the tiny model, both keyed,
with a 1 MB body limit. After the barrage both still serve a normal request.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from helexa.testing.neuron_proc import TINY_MODEL_ID
from tests.reliability.hostile import ROUTES, Case, Route, encode, is_dialect_error, matrix
from tests.reliability.hostile import valid_body as valid
from tests.reliability.stack import MAX_BODY_MB, Stack

pytestmark = pytest.mark.asyncio(loop_scope="module")

MB = 1024 * 1024


def client(stack: Stack, route: Route) -> httpx.AsyncClient:
    return stack.gateway_http() if route.side == "gateway" else stack.neuron_http()


def case_id(value: object) -> str:
    return value.name if isinstance(value, Case) else str(value)


@pytest.mark.parametrize(("case", "route"), matrix(), ids=case_id)
async def test_hostile_body_gets_a_clear_answer(stack: Stack, case: Case, route: Route) -> None:
    headers = {"content-type": "application/json"} | case.headers
    async with client(stack, route) as http:
        response = await http.post(route.path, content=case.build(route), headers=headers)
    expected = case.expected_status(route)
    assert response.status_code == expected, response.text[:300]
    if expected >= 400:
        assert is_dialect_error(route.dialect, response.json()), response.text[:300]


@pytest.mark.parametrize("route", ROUTES, ids=str)
async def test_oversized_chunked_body_is_cut_off(stack: Stack, route: Route) -> None:
    """No Content-Length (chunked upload): the limit is enforced while reading."""

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"model": "m", "padding": "'
        for _ in range(MAX_BODY_MB * 4):
            yield b"x" * (MB // 2)

    async with client(stack, route) as http:
        response = await http.post(
            route.path, content=chunks(), headers={"content-type": "application/json"}
        )
    assert response.status_code == 413
    assert is_dialect_error(route.dialect, response.json())


async def test_non_ascii_credentials_are_refused_not_crashed(stack: Stack) -> None:
    for http in (stack.gateway_http(key=None), stack.neuron_http(token=None)):
        async with http:
            response = await http.post(
                "/v1/chat/completions",
                content=encode(valid("chat")),
                headers={b"authorization": "Bearer clé-\u2603".encode()},
            )
        assert response.status_code == 401


async def test_both_still_serve_after_the_barrage(stack: Stack) -> None:
    for http in (stack.gateway_http(), stack.neuron_http()):
        async with http:
            assert (await http.get("/health")).status_code == 200
            response = await http.post("/v1/chat/completions", json=valid("chat"))
        assert response.status_code == 200, response.text
        assert response.json()["choices"][0]["message"]["role"] == "assistant"


async def test_a_lone_surrogate_in_responses_input_is_a_400(stack: Stack) -> None:
    body = b'{"model": "' + TINY_MODEL_ID.encode() + b'", "input": "hi \\udfff there"}'
    async with stack.gateway_http() as http:
        response = await http.post(
            "/v1/responses", content=body, headers={"content-type": "application/json"}
        )
    assert response.status_code == 400, response.text
    assert is_dialect_error("openai", response.json())
