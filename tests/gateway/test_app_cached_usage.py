"""Prefix-cache counts through the gateway: an upstream reporting
`usage.prompt_tokens_details.cached_tokens` (scripted, exact shapes) -> every
dialect's usage, read by the real openai and anthropic SDKs."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anthropic
import pytest

from helexa.cli import status_view
from helexa.gateway.metrics import prefix_cache_rows
from tests.gateway.harness import RunningGateway, run_gateway, write_configs
from tests.gateway.scripted_upstream import ScriptedUpstream

MODEL = "vendor/big"
PROMPT, CACHED = 40, 32
HI: list[Any] = [{"role": "user", "content": "hi"}]


@pytest.fixture
async def gateway(
    tmp_path: Path, scripted_upstream: ScriptedUpstream
) -> AsyncIterator[RunningGateway]:
    scripted_upstream.script.prompt_tokens = PROMPT
    scripted_upstream.script.cached_tokens = CACHED
    fleet = (
        f'[[neurons]]\nname = "big"\nkind = "openai"\n'
        f'endpoint = "{scripted_upstream.url}/v1"\nmodels = ["{MODEL}"]\n'
    )
    async with run_gateway(write_configs(tmp_path, fleet, "")) as gw:
        yield gw


def claude(gw: RunningGateway) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=gw.url, api_key="unused", max_retries=0)


async def test_chat_completion_keeps_cached_tokens(gateway: RunningGateway) -> None:
    completion = await gateway.openai().chat.completions.create(model=MODEL, messages=HI)

    assert completion.usage is not None and completion.usage.prompt_tokens_details is not None
    assert completion.usage.prompt_tokens_details.cached_tokens == CACHED


async def test_chat_stream_final_usage_chunk_keeps_cached_tokens(gateway: RunningGateway) -> None:
    stream = await gateway.openai().chat.completions.create(
        model=MODEL, messages=HI, stream=True, stream_options={"include_usage": True}
    )
    usages = [chunk.usage async for chunk in stream if chunk.usage is not None]

    assert len(usages) == 1 and usages[0].prompt_tokens_details is not None
    assert usages[0].prompt_tokens_details.cached_tokens == CACHED


@pytest.mark.parametrize("stream", [False, True])
async def test_completions_keep_cached_tokens(gateway: RunningGateway, stream: bool) -> None:
    body: dict[str, Any] = {"model": MODEL, "prompt": "hi", "stream": stream}
    if stream:
        body["stream_options"] = {"include_usage": True}
    async with gateway.http() as http:
        resp = await http.post("/v1/completions", json=body)
    assert resp.status_code == 200
    if stream:
        payloads = [
            json.loads(line[6:]) for line in resp.text.splitlines() if line.startswith("data: {")
        ]
        usage = next(p["usage"] for p in payloads if p.get("usage"))
    else:
        usage = resp.json()["usage"]
    assert usage["prompt_tokens_details"] == {"cached_tokens": CACHED}


async def test_responses_report_input_tokens_details(gateway: RunningGateway) -> None:
    client = gateway.openai()
    response = await client.responses.create(model=MODEL, input="hi")
    async with client.responses.stream(model=MODEL, input="hi") as stream:
        final = await stream.get_final_response()

    for usage in (response.usage, final.usage):
        assert usage is not None
        assert (usage.input_tokens, usage.input_tokens_details.cached_tokens) == (PROMPT, CACHED)


async def test_anthropic_message_splits_input_into_uncached_and_cache_read(
    gateway: RunningGateway,
) -> None:
    message = await claude(gateway).messages.create(model=MODEL, max_tokens=16, messages=HI)

    usage = message.usage
    assert usage.input_tokens == PROMPT - CACHED
    assert usage.cache_read_input_tokens == CACHED
    assert usage.cache_creation_input_tokens == 0


async def test_anthropic_stream_message_delta_carries_the_split(gateway: RunningGateway) -> None:
    async with claude(gateway).messages.stream(model=MODEL, max_tokens=16, messages=HI) as stream:
        events = [event async for event in stream]
        final = await stream.get_final_message()

    delta = next(e for e in events if e.type == "message_delta")
    assert delta.usage.model_dump(exclude_none=True) == {
        "input_tokens": PROMPT - CACHED,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": CACHED,
        "output_tokens": 3,
    }
    assert (final.usage.input_tokens, final.usage.cache_read_input_tokens) == (
        PROMPT - CACHED,
        CACHED,
    )


async def test_without_a_cached_count_usage_is_as_before(
    gateway: RunningGateway, scripted_upstream: ScriptedUpstream
) -> None:
    scripted_upstream.script.cached_tokens = None

    message = await claude(gateway).messages.create(model=MODEL, max_tokens=16, messages=HI)
    async with claude(gateway).messages.stream(model=MODEL, max_tokens=16, messages=HI) as stream:
        final = await stream.get_final_message()
    response = await gateway.openai().responses.create(model=MODEL, input="hi")

    for usage in (message.usage, final.usage):
        assert usage.input_tokens == PROMPT
        assert usage.cache_read_input_tokens is None
        assert usage.cache_creation_input_tokens is None
    assert response.usage is not None
    assert response.usage.input_tokens_details.cached_tokens == 0


async def test_the_hit_rate_per_model_reaches_metrics_stats_fleet_and_status(
    gateway: RunningGateway, scripted_upstream: ScriptedUpstream
) -> None:
    client = gateway.openai()
    await client.chat.completions.create(model=MODEL, messages=HI)  # 32 of 40 cached
    scripted_upstream.script.cached_tokens = None  # a miss: 0 of 40
    await claude(gateway).messages.create(model=MODEL, max_tokens=16, messages=HI)
    async with gateway.http() as http:
        stats = (await http.get("/admin/stats")).json()
        fleet = (await http.get("/admin/fleet")).json()
    metrics = gateway.gateway.metrics.render().decode()

    assert f'cortex_prompt_cached_tokens_total{{model="{MODEL}",neuron="big"}} 32.0' in metrics
    (model,) = stats["models"]
    assert (model["prompt_tokens"], model["cached_tokens"]) == (80, 32)
    assert model["prefix_cache_hit_rate"] == 0.4
    assert fleet["prefix_cache"] == [
        {"model": MODEL, "prompt_tokens": 80, "cached_tokens": 32, "hit_rate": 0.4}
    ]
    shown = status_view.render(fleet, 120, 0.0)
    assert f"prefix cache {MODEL}: 40% hit (32 of 80 prompt tokens)" in shown


def test_prefix_cache_rows_sum_neurons_and_leave_an_unused_model_without_a_rate() -> None:
    prompt = {("m", "a"): 100.0, ("m", "b"): 60.0, ("idle", "a"): 0.0}
    cached = {("m", "a"): 90.0, ("m", "b"): 30.0}
    assert prefix_cache_rows(prompt, cached) == [
        {"model": "idle", "prompt_tokens": 0, "cached_tokens": 0, "hit_rate": None},
        {"model": "m", "prompt_tokens": 160, "cached_tokens": 120, "hit_rate": 0.75},
    ]
