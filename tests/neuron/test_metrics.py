"""neuron_* metrics: the right families with the right values, and promtool accepts them."""

from __future__ import annotations

import asyncio
from asyncio.subprocess import PIPE, STDOUT
from collections.abc import Awaitable, Callable
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from helexa.testing.neuron_proc import TINY_MODEL_ID as TINY
from helexa.testing.neuron_proc import InProcessNeuron, chat_body, exact_length

StartNeuron = Callable[..., Awaitable[InProcessNeuron]]
PROMTOOL = "/usr/bin/promtool"


async def test_metrics_count_the_work_and_pass_promtool(neuron: InProcessNeuron) -> None:
    reply = await neuron.openai().chat.completions.create(**chat_body(), **exact_length(6))
    assert reply.usage is not None
    async with neuron.http() as http:
        await http.post("/v1/chat/completions", json=chat_body(model="absent"))
        response = await http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text

    promtool = await asyncio.create_subprocess_exec(
        PROMTOOL, "check", "metrics", stdin=PIPE, stdout=PIPE, stderr=STDOUT
    )
    report, _ = await asyncio.wait_for(promtool.communicate(text.encode()), 30)
    assert promtool.returncode == 0, report.decode()

    families = {f.name: f for f in text_string_to_metric_families(text)}
    types = {name: f.type for name, f in families.items()}
    assert types["neuron_decode_tokens_per_second"] == "histogram"
    assert types["neuron_time_to_first_token_seconds"] == "histogram"
    assert "summary" not in types.values()

    def value(name: str, **labels: str) -> float:
        for sample in families[name].samples:
            if sample.name in (name, f"{name}_total") and all(
                sample.labels.get(k) == v for k, v in labels.items()
            ):
                return float(sample.value)
        raise AssertionError(f"{name}{labels} not exported")

    assert value("neuron_generated_tokens", model=TINY) == 6
    assert value("neuron_prompt_tokens", model=TINY) == reply.usage.prompt_tokens
    assert value("neuron_requests", model=TINY, route="chat", status="200") == 1
    assert value("neuron_requests", model="absent", route="chat", status="404") == 1
    assert value("neuron_model_memory_bytes", model=TINY) > 0
    assert value("neuron_in_flight", model=TINY) == 0
    assert value("neuron_queued", model=TINY) == 0
    assert value("neuron_model_state", model=TINY, state="loaded") == 1
    assert value("neuron_model_loads", result="loaded") == 1
    assert value("neuron_prefix_cache_queried_tokens", model=TINY) == reply.usage.prompt_tokens
    assert value("neuron_prefix_cache_hit_tokens", model=TINY) == 0
    assert value("neuron_prefix_cache_bytes", model=TINY) > 0  # the finished turn, kept
    assert value("neuron_prefix_cache_evictions", model=TINY) == 0


async def test_prefix_cache_hits_bytes_and_evictions_are_counted(
    start_neuron: StartNeuron, tiny_model_dir: Path
) -> None:
    # The tiny model's KV is 1 KiB per token: 1 MiB holds one 600-token prompt, not two.
    live = await start_neuron({"neuron": {"prefix_cache_mb": 1}})
    await live.load(TINY, tiny_model_dir)
    long_a, long_b = "alpha beta gamma " * 55, "delta epsilon zeta " * 55
    usages = []
    for content in (long_a, long_a, long_b):
        reply = await live.openai().chat.completions.create(
            **chat_body(content=content), **exact_length(2), temperature=0
        )
        assert reply.usage is not None
        usages.append(reply.usage)
    async with live.http() as http:
        text = (await http.get("/metrics")).text
        (info,) = (await http.get("/models")).json()["models"]
    samples = {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples}

    hit = usages[1].prompt_tokens - 1
    assert usages[1].prompt_tokens_details.cached_tokens == hit
    assert samples["neuron_prefix_cache_queried_tokens_total"] == sum(
        u.prompt_tokens for u in usages
    )
    assert samples["neuron_prefix_cache_hit_tokens_total"] == hit
    # The second turn's entry extends (and replaces) the first; the third evicts it.
    assert samples["neuron_prefix_cache_evictions_total"] == 1
    assert samples["neuron_prefix_cache_bytes"] == info["prefix_cache_bytes"] > 0
    assert info["prefix_cache_mb"] == 1


async def test_rejections_are_counted(start_neuron: StartNeuron, tiny_model_dir: Path) -> None:
    live = await start_neuron({"neuron": {"max_in_flight": 1, "max_queue": 0}})
    await live.load(TINY, tiny_model_dir)
    entry = live.state.registry.entry(TINY)
    assert entry is not None
    await entry.admission.acquire()  # the only slot
    async with live.http() as http:
        refused = await http.post("/v1/chat/completions", json=chat_body(max_tokens=1))
        entry.admission.release()
        text = (await http.get("/metrics")).text
    assert refused.status_code == 503
    assert 'neuron_rejections_total{model="helexa/tiny",reason="queue_full"} 1.0' in text
    assert 'neuron_requests_total{model="helexa/tiny",route="chat",status="503"} 1.0' in text
