"""A request waiting on a cold load hears how far the load has read its weights.

Real gateway -> real neuron; the neuron's load reads a quarter of the tiny model's
weights through a map (as the engine does), then waits on an event.
"""

from __future__ import annotations

import asyncio
import mmap
import re
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from helexa.gateway.proxy import KEEP_ALIVE, keep_alive_while_loading
from helexa.neuron.registry import ServingModel
from helexa.protocol.neuron import LoadRequest
from helexa.testing.neuron_proc import InProcessNeuron
from tests.gateway.harness import RunningGateway, run_gateway, write_configs
from tests.gateway.test_app import LAZY, TINY, fleet_toml, models_toml

LOADING = re.compile(rf": loading model {re.escape(LAZY)} (\d+)%")
HI = [{"role": "user", "content": "hi"}]


@pytest.fixture
async def served(
    tmp_path: Path, tiny_model_dir: Path, neuron_a: InProcessNeuron
) -> AsyncIterator[RunningGateway]:
    await neuron_a.load(TINY, tiny_model_dir)
    config = write_configs(tmp_path, fleet_toml(neuron_a.url), models_toml(tiny_model_dir))
    async with run_gateway(config) as gw:
        yield gw


def test_the_keep_alive_names_the_percent_only_when_measured() -> None:
    ping = b'event: ping\ndata: {"type": "ping"}\n\n'
    assert keep_alive_while_loading(KEEP_ALIVE, "m/x", None) == KEEP_ALIVE
    assert keep_alive_while_loading(KEEP_ALIVE, "m/x", 42) == b": loading model m/x 42%\n\n"
    assert keep_alive_while_loading(ping, "m/x", 7) == b": loading model m/x 7%\n\n" + ping
    assert keep_alive_while_loading(KEEP_ALIVE, "m/\nx", 1) == b": loading model m/x 1%\n\n"


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/chat/completions", {"messages": HI}),
        ("/v1/messages", {"messages": HI}),  # translated: the comment precedes Anthropic's ping
    ],
)
async def test_a_request_waiting_on_a_cold_load_hears_its_progress(
    served: RunningGateway,
    neuron_a: InProcessNeuron,
    tiny_model_dir: Path,
    path: str,
    body: dict[str, Any],
) -> None:
    weights = tiny_model_dir / "model.safetensors"
    size = weights.stat().st_size
    real = neuron_a.loader.inner
    gate = threading.Event()

    def quarter_then_gated(request: LoadRequest) -> ServingModel:
        with weights.open("rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
            # a quarter: Linux may map up to the 2 MiB folio around it (at most 53%)
            for offset in range(0, size // 4, mmap.PAGESIZE):
                m[offset]
            gate.wait(30)
            return real(request)

    neuron_a.loader.inner = quarter_then_gated
    request = {"model": LAZY, "max_tokens": 2, "stream": True, **body}
    percents: list[int] = []
    try:
        async with served.http() as http, http.stream("POST", path, json=request) as r:
            assert r.status_code == 200
            lines = r.aiter_lines()
            while not percents:  # keep-alives every 50 ms; progress once polled (200 ms)
                line = await asyncio.wait_for(anext(lines), 10)
                if found := LOADING.fullmatch(line):
                    percents.append(int(found[1]))
            gate.set()
            rest = [line async for line in lines]
    finally:
        gate.set()
    assert 25 <= percents[0] <= 53
    assert any(line.startswith("data: ") and "error" not in line for line in rest)
