"""Neurons dying under the gateway: real `helexa neuron` processes killed with SIGKILL."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
import pytest

from helexa.testing.neuron_proc import NeuronProcess, free_port
from tests.gateway.harness import RunningGateway, run_gateway, write_configs

TINY = "helexa/tiny"


def neuron_toml(directory: Path, name: str, tiny_dir: Path) -> Path:
    path = directory / f"neuron-{name}.toml"
    path.write_text(
        f"""
[neuron]
name = "{name}"
offline = true
[devices]
reserve_mb = 0
[[preload]]
model = "{TINY}"
path = "{tiny_dir}"
"""
    )
    return path


def fleet_toml(neurons: dict[str, NeuronProcess]) -> str:
    return "".join(
        f'\n[[neurons]]\nname = "{name}"\nendpoint = "{n.url}"\n' for name, n in neurons.items()
    )


def models_toml(tiny_dir: Path) -> str:
    return f'[[models]]\nid = "{TINY}"\npath = "{tiny_dir}"\n'


async def start_with_model(config: Path, port: int | None = None) -> NeuronProcess:
    neuron = await NeuronProcess(config, port=port).__aenter__()
    async with neuron_http(neuron) as http:
        await until_async(lambda: _loaded(http), 120)
    return neuron


def neuron_http(neuron: NeuronProcess) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=neuron.url, timeout=5)


async def _loaded(http: httpx.AsyncClient) -> bool:
    models = (await http.get("/models")).json()["models"]
    return any(m["id"] == TINY and m["state"] == "loaded" for m in models)


async def until_async(check: Callable[[], Awaitable[bool]], within: float) -> None:
    """Poll `check` with a deadline (a neuron process offers nothing to await)."""
    deadline = time.monotonic() + within
    while not await check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.1)


async def until(check: Callable[[], bool], within: float) -> None:
    async def wrapped() -> bool:
        return check()

    await until_async(wrapped, within)


@pytest.fixture
async def two_neurons(
    tmp_path: Path, tiny_model_dir: Path
) -> AsyncIterator[dict[str, NeuronProcess]]:
    configs = {n: neuron_toml(tmp_path, n, tiny_model_dir) for n in ("a", "b")}
    started = await asyncio.gather(*(start_with_model(c) for c in configs.values()))
    neurons = dict(zip(configs, started, strict=True))
    yield neurons
    await asyncio.gather(*(asyncio.to_thread(n.stop) for n in neurons.values()))


async def test_failover_before_the_first_byte_and_health_flips(
    tmp_path: Path, tiny_model_dir: Path, two_neurons: dict[str, NeuronProcess]
) -> None:
    config = write_configs(tmp_path, fleet_toml(two_neurons), models_toml(tiny_model_dir))
    async with run_gateway(config) as gw:
        await until(lambda: len(gw.gateway.fleet.healthy_neurons()) == 2, 10)
        a = two_neurons["a"]
        assert a.process is not None
        a.process.kill()  # "a" is first by name and still looks healthy to the gateway
        a.process.wait()
        client = gw.openai()
        for stream in (False, True):
            reply = await client.chat.completions.create(
                model=TINY,
                messages=[{"role": "user", "content": "hi"}],
                max_tokens=2,
                stream=stream,
            )
            if stream:
                assert [chunk async for chunk in reply]  # type: ignore[union-attr]
        served_by = {
            s.labels["neuron"]
            for fam in gw.gateway.metrics.registry.collect()
            if fam.name == "cortex_requests"
            for s in fam.samples
            if s.name == "cortex_requests_total" and s.value > 0
        }
        assert served_by == {"b"}
        await until(lambda: not gw.gateway.fleet.neurons["a"].healthy, 10)
        assert (await health(gw))["status"] == "degraded"
        restarted = await start_with_model(a.config or Path(), port=a.port)
        try:
            await until(lambda: gw.gateway.fleet.neurons["a"].healthy, 10)
            assert (await health(gw))["status"] == "ok"
        finally:
            await asyncio.to_thread(restarted.stop)


async def health(gw: RunningGateway) -> dict[str, object]:
    async with gw.http() as http:
        body: dict[str, object] = (await http.get("/health")).json()
        return body


async def test_a_stream_cut_midway_ends_with_an_error_event(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    config_path = neuron_toml(tmp_path, "solo", tiny_model_dir)
    neuron = await start_with_model(config_path, port=free_port())
    try:
        fleet = fleet_toml({"solo": neuron})
        async with run_gateway(write_configs(tmp_path, fleet, models_toml(tiny_model_dir))) as gw:
            await until(lambda: bool(gw.gateway.fleet.healthy_neurons()), 10)
            body = {
                "model": TINY,
                "messages": [{"role": "user", "content": "hi"}],
                "max_tokens": 4000,
                "min_tokens": 4000,
                "stream": True,
            }
            events: list[str] = []
            async with (
                gw.http() as http,
                http.stream("POST", "/v1/chat/completions", json=body) as response,
            ):
                assert response.status_code == 200
                killed_at = None
                async for line in response.aiter_lines():
                    if line.startswith("data: "):
                        events.append(line[6:])
                    if killed_at is None and len(events) >= 3:
                        assert neuron.process is not None
                        neuron.process.kill()
                        killed_at = time.monotonic()
            assert killed_at is not None and time.monotonic() - killed_at < 10
            last = json.loads(events[-1])
            assert last["error"]["code"] == "upstream_error"
            assert "[DONE]" not in events
    finally:
        await asyncio.to_thread(neuron.stop)
