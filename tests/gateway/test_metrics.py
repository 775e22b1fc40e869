"""cortex_* metrics: exact names, a per-gateway registry, promtool-clean after real traffic."""

from __future__ import annotations

import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from helexa.gateway.metrics import GatewayMetrics, ModelSample, NeuronSample, metrics_app
from helexa.testing.neuron_proc import serve_in_process
from tests.gateway.harness import RunningGateway, run_gateway, write_configs
from tests.gateway.scripted_upstream import ScriptedUpstream

PROMTOOL = "/usr/bin/promtool"
# The metrics table in docs/gateway.md (counters without their _total suffix).
DOCUMENTED_NAMES = {
    "cortex_requests",
    "cortex_request_duration_seconds",
    "cortex_time_to_first_token_seconds",
    "cortex_tokens_per_second",
    "cortex_prompt_tokens",
    "cortex_completion_tokens",
    "cortex_prompt_cached_tokens",
    "cortex_cold_loads",
    "cortex_model_load_seconds",
    "cortex_evictions",
    "cortex_queue_wait_seconds",
    "cortex_neuron_up",
    "cortex_device_memory_used_bytes",
    "cortex_device_memory_total_bytes",
    "cortex_model_loaded",
    "cortex_model_in_flight",
    "cortex_reconcile_runs",
    "cortex_reconcile_pending_actions",
}


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def total(text: str, name: str) -> float:
    return sum(v for (n, _), v in samples(text).items() if n == name)


def promtool_check(text: str) -> None:
    result = subprocess.run(
        [PROMTOOL, "check", "metrics"], input=text.encode(), capture_output=True, check=False
    )
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout + result.stderr


def test_exactly_the_documented_names_and_separate_registries() -> None:
    first, second = GatewayMetrics(), GatewayMetrics()
    names = {f.name for f in text_string_to_metric_families(first.render().decode())}
    assert names == DOCUMENTED_NAMES
    first.requests.labels("m", "n", "openai", "200").inc()
    assert total(second.render().decode(), "cortex_requests_total") == 0


def test_fleet_gauges_follow_the_fleet() -> None:
    metrics = GatewayMetrics()
    metrics.observe_fleet(
        [NeuronSample("a", True, ((0, 3 * 2**20, 8 * 2**20),)), NeuronSample("b", False)],
        [ModelSample("m", "a", True, 2)],
    )
    text = metrics.render().decode()
    values = samples(text)
    assert values[("cortex_neuron_up", frozenset({("neuron", "b")}))] == 0
    assert (
        values[("cortex_device_memory_used_bytes", frozenset({("neuron", "a"), ("device", "0")}))]
        == 3 * 2**20
    )
    metrics.observe_fleet([NeuronSample("a", True)], [])
    text = metrics.render().decode()
    assert total(text, "cortex_model_in_flight") == 0  # gone with its model
    promtool_check(text)


@pytest.fixture
async def openai_fleet(
    tmp_path: Path, scripted_upstream: ScriptedUpstream
) -> AsyncIterator[RunningGateway]:
    fleet = f"""
        [[neurons]]
        name = "big"
        kind = "openai"
        endpoint = "{scripted_upstream.url}/v1"
        models = ["vendor/big"]
    """
    models = """
        [aliases]
        "gpt-4" = "vendor/big"
    """
    async with run_gateway(write_configs(tmp_path, fleet, models)) as gw:
        yield gw


async def test_openai_kind_upstream_is_listed_and_routed(
    openai_fleet: RunningGateway, scripted_upstream: ScriptedUpstream
) -> None:
    client = openai_fleet.openai()
    ids = [m.id async for m in client.models.list()]
    assert "vendor/big" in ids and "gpt-4" in ids
    reply = await client.chat.completions.create(
        model="gpt-4", messages=[{"role": "user", "content": "hi"}]
    )
    assert reply.choices[0].message.content == "Hello world!"
    assert scripted_upstream.requests[-1]["model"] == "vendor/big"


async def test_promtool_clean_and_counters_move_after_traffic(
    openai_fleet: RunningGateway,
) -> None:
    gw = openai_fleet.gateway
    async with serve_in_process(metrics_app(gw.metrics)) as base:
        url = f"{base}/metrics"
        client = openai_fleet.openai()
        stream = await client.chat.completions.create(
            model="vendor/big", messages=[{"role": "user", "content": "hi"}], stream=True
        )
        assert [c async for c in stream]
        await client.completions.create(model="vendor/big", prompt="x")
        async with httpx.AsyncClient() as http:
            text = (await http.get(url)).text
    promtool_check(text)
    values = samples(text)
    assert total(text, "cortex_time_to_first_token_seconds_count") == 1
    assert total(text, "cortex_completion_tokens_total") == 6  # 3 streamed + 3 not
    assert total(text, "cortex_prompt_tokens_total") == 14
    ok = frozenset(
        {("model", "vendor/big"), ("neuron", "big"), ("dialect", "openai"), ("status", "200")}
    )
    assert values[("cortex_requests_total", ok)] == 2
    assert values[("cortex_neuron_up", frozenset({("neuron", "big")}))] == 1


async def test_the_listener_serves_one_text_exposition_on_metrics_only() -> None:
    metrics = GatewayMetrics()
    metrics.requests.labels("m", "a", "openai", "200").inc()
    async with serve_in_process(metrics_app(metrics)) as base, httpx.AsyncClient() as http:
        plain = await http.get(f"{base}/metrics")
        # What Prometheus asks for: still the text format (one exposition for dashboards).
        negotiated = await http.get(
            f"{base}/metrics",
            headers={
                "Accept": "application/openmetrics-text;version=1.0.0,text/plain;q=0.5",
                "Accept-Encoding": "gzip",
            },
        )
        elsewhere = await http.get(f"{base}/")
    assert plain.status_code == 200 and plain.content == metrics.render()
    assert plain.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert negotiated.content == plain.content and "content-encoding" not in negotiated.headers
    assert elsewhere.status_code == 404
