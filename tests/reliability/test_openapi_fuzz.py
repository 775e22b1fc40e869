"""/openapi.json documents every route; a hypothesis fuzzer driven by it never gets a 5xx.

For every POST operation with a request body (gateway and neuron), bodies are drawn
from its JSON schema (tests/reliability/schema_fuzz.py): mostly schema-shaped with
wrong-typed leaves, sometimes arbitrary JSON. Every answer must be below 500, and an
error must come in the route's dialect.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.routing import Route

from helexa.gateway import openapi as gateway_openapi
from helexa.gateway.app import build_app
from helexa.neuron import openapi as neuron_openapi
from helexa.openapi import UNDOCUMENTED
from tests.reliability.figures import record
from tests.reliability.hostile import is_dialect_error, valid_body
from tests.reliability.schema_fuzz import body_for, mutated
from tests.reliability.stack import GATEWAY_KEY, NEURON_TOKEN, Stack, ThreadedStack

EXAMPLES_PER_ROUTE = 25
# Never fuzzed: they would unload the model every other case depends on.
DESTRUCTIVE = {("neuron", "/models/unload"), ("gateway", "/admin/models/unload")}
# Routes with a known valid body (tests/reliability/hostile.py) to mutate from.
VALID_KIND = {
    "/v1/chat/completions": "chat",
    "/v1/completions": "completion",
    "/v1/messages": "anthropic",
    "/v1/messages/count_tokens": "count",
    "/v1/tokenize": "tokenize",
}
TRIED: dict[str, int] = {}
STATUSES: dict[int, int] = {}


@pytest.fixture(scope="module")
def threaded(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with ThreadedStack(tmp_path_factory.mktemp("fuzz"), tiny_model_dir) as stack:
        yield stack
    statuses = {str(k): v for k, v in sorted(STATUSES.items())}
    record("openapi_fuzz", requests=sum(TRIED.values()), per_route=TRIED, statuses=statuses)


def client(stack: Stack, side: str) -> httpx.Client:
    if side == "gateway":
        return httpx.Client(
            base_url=stack.gateway.url, headers={"x-api-key": GATEWAY_KEY}, timeout=60
        )
    return httpx.Client(
        base_url=stack.neuron.url, headers={"Authorization": f"Bearer {NEURON_TOKEN}"}, timeout=60
    )


def document(stack: Stack, side: str) -> dict[str, Any]:
    with client(stack, side) as http:
        response = http.get("/openapi.json")
    assert response.status_code == 200
    doc: dict[str, Any] = response.json()
    return doc


def test_documents_cover_every_route(threaded: Stack) -> None:
    apps = {
        "gateway": build_app(threaded.gateway.gateway, manage_lifecycle=False),
        "neuron": threaded.neuron.app,
    }
    for side, app in apps.items():
        doc = document(threaded, side)
        assert doc["openapi"].startswith("3.")
        for route in app.routes:
            assert isinstance(route, Route)
            path = route.path.replace(":path", "")
            for method in (route.methods or set()) - {"HEAD"}:
                op = doc["paths"][path][method.lower()]
                assert op["summary"] != UNDOCUMENTED, f"{side} {method} {route.path}"
        assert doc["paths"]["/health"]["get"]["security"] == []


def fuzzed_operations() -> list[tuple[str, str]]:
    out = []
    for side, table in (
        ("gateway", gateway_openapi.OPERATIONS),
        ("neuron", neuron_openapi.OPERATIONS),
    ):
        for (method, path), op in table.items():
            if method == "POST" and op.request is not None and (side, path) not in DESTRUCTIVE:
                out.append((side, path))
    return out


@pytest.mark.parametrize(("side", "path"), fuzzed_operations())
def test_fuzzed_bodies_never_get_a_5xx(threaded: Stack, side: str, path: str) -> None:
    doc = document(threaded, side)
    components = doc["components"]["schemas"]
    schema = doc["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]
    dialect = "anthropic" if side == "gateway" and path.startswith("/v1/messages") else "openai"
    label = f"{side} {path}"

    bodies = body_for(schema, components)
    if path in VALID_KIND:
        near_valid = mutated(valid_body(VALID_KIND[path]), schema, components)
        bodies = st.one_of(bodies, near_valid, near_valid)

    @settings(
        max_examples=EXAMPLES_PER_ROUTE,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(body=bodies, stream=st.booleans())
    def check(body: Any, stream: bool) -> None:
        if isinstance(body, dict) and "stream" in body:
            body["stream"] = stream
        TRIED[label] = TRIED.get(label, 0) + 1
        with client(threaded, side) as http:
            response = http.post(path, content=json.dumps(body).encode())
            text = response.read().decode("utf-8", "replace")
        STATUSES[response.status_code] = STATUSES.get(response.status_code, 0) + 1
        assert response.status_code < 500, f"{label} {body!r} -> {response.status_code} {text}"
        if response.status_code >= 400:
            assert is_dialect_error(dialect, json.loads(text)), text

    check()
