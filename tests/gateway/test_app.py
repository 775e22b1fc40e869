"""The gateway end to end: the real openai SDK -> gateway -> real neuron (tiny model)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import openai
import pytest

from helexa.testing.neuron_proc import InProcessNeuron
from tests.gateway.harness import RunningGateway, run_gateway, write_configs

# The engine still passes a kwarg transformers deprecates (reported); not ours to test here.

TINY = "helexa/tiny"
LAZY = "helexa/lazy"  # same weights, another id: never preloaded


def fleet_toml(neuron_url: str, api_keys: str = "[]") -> str:
    return f"""
        [gateway]
        api_keys = {api_keys}
        [[neurons]]
        name = "a"
        endpoint = "{neuron_url}"
    """


def models_toml(tiny_dir: Path) -> str:
    return f"""
        [[models]]
        id = "{TINY}"
        path = "{tiny_dir}"
        aliases = ["tiny-alias"]
        [[models]]
        id = "{LAZY}"
        path = "{tiny_dir}"
        [aliases]
        "gpt-*" = "{TINY}"
    """


@pytest.fixture
async def served(
    tmp_path: Path, tiny_model_dir: Path, neuron_a: InProcessNeuron
) -> AsyncIterator[RunningGateway]:
    """A gateway in front of neuron "a", which holds helexa/tiny already."""
    await neuron_a.load(TINY, tiny_model_dir)
    config = write_configs(tmp_path, fleet_toml(neuron_a.url), models_toml(tiny_model_dir))
    async with run_gateway(config) as gw:
        yield gw


async def test_chat_non_streaming(served: RunningGateway) -> None:
    client = served.openai()
    reply = await client.chat.completions.create(
        model=TINY, messages=[{"role": "user", "content": "hi"}], max_tokens=5, seed=1
    )
    assert reply.model == TINY
    assert reply.usage is not None and reply.usage.completion_tokens > 0
    assert reply.choices[0].message.role == "assistant"


async def test_chat_streaming_has_content_and_no_unasked_usage(served: RunningGateway) -> None:
    client = served.openai()
    stream = await client.chat.completions.create(
        model=TINY,
        messages=[{"role": "user", "content": "hi"}],
        max_tokens=6,
        stream=True,
        extra_body={"min_tokens": 6},
    )
    chunks = [chunk async for chunk in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text
    assert all(c.usage is None for c in chunks)  # the gateway's own usage request is hidden


async def test_streaming_usage_when_asked(served: RunningGateway) -> None:
    client = served.openai()
    stream = await client.chat.completions.create(
        model=TINY,
        messages=[{"role": "user", "content": "hi"}],
        max_tokens=4,
        stream=True,
        stream_options={"include_usage": True},
    )
    usages = [c.usage for c in [chunk async for chunk in stream] if c.usage is not None]
    assert len(usages) == 1 and usages[0].prompt_tokens > 0


async def test_completions(served: RunningGateway) -> None:
    reply = await served.openai().completions.create(model=TINY, prompt="Once", max_tokens=4)
    assert reply.choices[0].text is not None
    assert reply.usage is not None and reply.usage.prompt_tokens > 0


@pytest.mark.parametrize("name", ["tiny-alias", "gpt-4o"])
async def test_alias_is_rewritten_to_the_model_id(served: RunningGateway, name: str) -> None:
    reply = await served.openai().chat.completions.create(
        model=name, messages=[{"role": "user", "content": "hi"}], max_tokens=2
    )
    assert reply.model == TINY


async def test_unknown_model_is_404_in_openai_shape(served: RunningGateway) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        await served.openai().chat.completions.create(
            model="nope/nothing", messages=[{"role": "user", "content": "hi"}]
        )
    assert info.value.code == "model_not_found"


async def test_models_listing_and_lookup_with_slash(served: RunningGateway) -> None:
    client = served.openai()
    ids = [m.id async for m in client.models.list()]
    assert {TINY, LAZY, "tiny-alias"} <= set(ids)
    model = await client.models.retrieve(TINY)
    assert model.id == TINY
    assert (model.model_extra or {}).get("loaded") is True


async def test_cold_load_on_demand(served: RunningGateway, neuron_a: InProcessNeuron) -> None:
    reply = await served.openai().chat.completions.create(
        model=LAZY, messages=[{"role": "user", "content": "hi"}], max_tokens=2
    )
    assert reply.model == LAZY
    assert neuron_a.loader.calls.count(LAZY) == 1
    assert served.decisions("load") == [LAZY]


async def test_streaming_cold_load_sends_keep_alives_while_waiting(
    served: RunningGateway,
) -> None:
    body = {
        "model": LAZY,
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 2,
        "stream": True,
    }
    # Holding the neuron's evict+load lock keeps the cold load waiting as long as we like.
    lock = served.gateway.action_locks("a")
    await lock.acquire()
    async with served.http() as http, http.stream("POST", "/v1/chat/completions", json=body) as r:
        assert r.status_code == 200
        lines = r.aiter_lines()
        # 3 comments, each followed by a blank line; each must come within a few seconds
        waiting = [await asyncio.wait_for(anext(lines), 5) for _ in range(6)]
        lock.release()
        rest = [line async for line in lines]
    assert waiting == [": keep-alive", ""] * 3
    data = [line for line in rest if line.startswith("data: ")]
    assert data[-1] == "data: [DONE]" and len(data) >= 3


async def test_concurrent_first_requests_share_one_load(
    served: RunningGateway, neuron_a: InProcessNeuron
) -> None:
    client = served.openai()

    async def ask(stream: bool) -> str:
        if stream:
            chunks = await client.chat.completions.create(
                model=LAZY,
                messages=[{"role": "user", "content": "hi"}],
                max_tokens=2,
                stream=True,
            )
            return "".join([c.choices[0].delta.content or "" async for c in chunks if c.choices])
        reply = await client.chat.completions.create(
            model=LAZY, messages=[{"role": "user", "content": "hi"}], max_tokens=2
        )
        return reply.model

    await asyncio.gather(ask(False), ask(True), ask(False))
    assert neuron_a.loader.calls.count(LAZY) == 1
    assert served.decisions("load") == [LAZY]


async def test_health_and_admin_fleet(served: RunningGateway) -> None:
    async with served.http() as http:
        health = (await http.get("/health")).json()
        fleet = (await http.get("/admin/fleet")).json()
    assert health == {"status": "ok", "neurons": {"healthy": 1, "total": 1}, "warnings": []}
    assert [n["name"] for n in fleet["neurons"]] == ["a"]
    tiny = next(m for m in fleet["models"] if m["id"] == TINY)
    assert tiny["locations"][0]["state"] == "loaded"
    assert fleet["config"]["error"] is None


async def test_admin_load_and_unload(served: RunningGateway, neuron_a: InProcessNeuron) -> None:
    async with served.http() as http:
        loaded = await http.post("/admin/models/load", json={"model": LAZY, "neuron": "a"})
        assert loaded.status_code == 200, loaded.text
        assert loaded.json()["locations"] == [{"neuron": "a", "state": "loaded"}]
        unloaded = await http.post("/admin/models/unload", json={"model": LAZY})
        assert unloaded.status_code == 200, unloaded.text
        assert unloaded.json()["locations"] == []
        missing = await http.post("/admin/models/load", json={"model": "nope"})
        assert missing.status_code == 404
    assert [d.kind for d in served.gateway.fleet.decisions] == ["load", "unload"]


async def test_api_keys(tmp_path: Path, tiny_model_dir: Path, neuron_a: InProcessNeuron) -> None:
    await neuron_a.load(TINY, tiny_model_dir)
    fleet = fleet_toml(neuron_a.url, api_keys='["sekrit"]')
    config = write_configs(tmp_path, fleet, models_toml(tiny_model_dir))
    async with run_gateway(config) as gw:
        with pytest.raises(openai.AuthenticationError) as info:
            await gw.openai("wrong").models.list()
        assert info.value.code == "invalid_api_key"
        ok = await gw.openai("sekrit").chat.completions.create(
            model=TINY, messages=[{"role": "user", "content": "hi"}], max_tokens=1
        )
        assert ok.model == TINY
        async with gw.http() as http:
            assert (await http.get("/health")).status_code == 200
            via_header = await http.get("/admin/fleet", headers={"x-api-key": "sekrit"})
            assert via_header.status_code == 200
            assert (await http.get("/admin/fleet")).status_code == 401


async def test_unknown_paths_and_methods_answer_json_in_the_dialect(tmp_path: Path) -> None:
    import httpx

    from helexa.gateway.app import build_app
    from helexa.gateway.core import Gateway

    config = write_configs(
        tmp_path, '[[neurons]]\nname = "a"\nendpoint = "http://127.0.0.1:9"\n', ""
    )
    app = build_app(Gateway(config), manage_lifecycle=False)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
        missing = await client.get("/v1/nope")
        assert missing.status_code == 404
        assert missing.json()["error"]["code"] == "not_found"
        assert missing.json()["error"]["type"] == "invalid_request_error"
        assert "GET /v1/nope" in missing.json()["error"]["message"]
        wrong = await client.delete("/v1/chat/completions")
        assert wrong.status_code == 405 and wrong.json()["error"]["code"] == "method_not_allowed"
        anthropic = await client.get("/v1/messages")
        assert anthropic.status_code == 405
        assert anthropic.json()["type"] == "error"
        assert anthropic.json()["error"]["type"] == "invalid_request_error"
        by_header = await client.get("/v1/nope", headers={"anthropic-version": "2023-06-01"})
        assert by_header.json()["type"] == "error"
