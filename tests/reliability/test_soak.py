"""A bounded soak through a real `helexa serve` over a real neuron (tiny model).

Quick profile by default (2,000 requests, 32 clients; `make test`); `make soak` sets
HELEXA_SOAK_REQUESTS=20000 HELEXA_SOAK_CLIENTS=64. Promises checked: no errors other
than 429/503 with Retry-After; gateway RSS grows < 10% from after warm-up to the end;
no in-flight or queued request left counted on the neuron or the gateway afterwards.
"""

from __future__ import annotations

import asyncio
import os
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from helexa.testing.neuron_proc import TINY_MODEL_ID, free_port
from tests.reliability.figures import record
from tests.reliability.loadgen import run_load
from tests.reliability.procs import HelexaProcess

REQUESTS = int(os.environ.get("HELEXA_SOAK_REQUESTS", "2000"))
CLIENTS = int(os.environ.get("HELEXA_SOAK_CLIENTS", "32"))
WARM_UP = max(200, REQUESTS // 10)
MAX_RSS_GROWTH = 0.10


@pytest.fixture
def served(tiny_model_dir: Path, tmp_path: Path) -> Iterator[tuple[HelexaProcess, HelexaProcess]]:
    neuron_port, gateway_port, metrics_port = free_port(), free_port(), free_port()
    # The queue holds every client: refusals stay possible (queue_timeout), not the rule.
    (tmp_path / "neuron.toml").write_text(
        textwrap.dedent(
            f"""
            [neuron]
            name = "soak"
            offline = true
            max_in_flight = 8
            max_queue = {CLIENTS}
            [devices]
            reserve_mb = 0
            """
        )
    )
    (tmp_path / "fleet.toml").write_text(
        textwrap.dedent(
            f"""
            [gateway]
            listen = "127.0.0.1:{gateway_port}"
            metrics_listen = "127.0.0.1:{metrics_port}"
            poll_interval = "1s"
            [reconcile]
            watch = false
            [[neurons]]
            name = "soak"
            endpoint = "http://127.0.0.1:{neuron_port}"
            """
        )
    )
    (tmp_path / "models.toml").write_text(
        textwrap.dedent(
            f"""
            [[models]]
            id = "{TINY_MODEL_ID}"
            path = "{tiny_model_dir}"
            vram_mb = 64
            """
        )
    )
    neuron = HelexaProcess(
        [
            "neuron",
            "--config",
            str(tmp_path / "neuron.toml"),
            "--listen",
            f"127.0.0.1:{neuron_port}",
        ],
        f"http://127.0.0.1:{neuron_port}",
        tmp_path / "neuron.log",
    )
    gateway = HelexaProcess(
        [
            "serve",
            "--fleet",
            str(tmp_path / "fleet.toml"),
            "--models",
            str(tmp_path / "models.toml"),
        ],
        f"http://127.0.0.1:{gateway_port}",
        tmp_path / "gateway.log",
    )
    with neuron, gateway:
        yield neuron, gateway


def idle_counts(neuron_url: str, gateway_url: str) -> tuple[int, int]:
    """(in_flight + queued on the neuron, in_flight the gateway counts)."""
    models = httpx.get(f"{neuron_url}/models", timeout=5).json()["models"]
    on_neuron = sum(m["in_flight"] + m["queued"] for m in models)
    fleet = httpx.get(f"{gateway_url}/admin/fleet", timeout=5).json()
    on_gateway = sum(loc["in_flight"] for m in fleet["models"] for loc in m["locations"])
    return on_neuron, on_gateway


async def test_soak(served: tuple[HelexaProcess, HelexaProcess]) -> None:
    neuron, gateway = served
    process = psutil.Process(gateway.pid)
    warm = await run_load(gateway.url, WARM_UP, CLIENTS)
    assert warm.errors == [], warm.errors[:5]
    rss_after_warm_up = process.memory_info().rss
    started = time.monotonic()
    result = await run_load(gateway.url, REQUESTS, CLIENTS)
    seconds = time.monotonic() - started
    rss_at_end = process.memory_info().rss
    growth = rss_at_end / rss_after_warm_up - 1

    deadline = time.monotonic() + 10
    counts = idle_counts(neuron.url, gateway.url)
    while counts != (0, 0) and time.monotonic() < deadline:
        await asyncio.sleep(0.1)  # the neuron finishes cancelled work on its own thread
        counts = idle_counts(neuron.url, gateway.url)

    record(
        f"soak_{REQUESTS}x{CLIENTS}",
        requests=result.total,
        clients=CLIENTS,
        warm_up_requests=warm.total,
        outcomes=dict(result.outcomes),
        errors=len(result.errors),
        seconds=round(seconds, 1),
        requests_per_second=round(result.total / seconds, 1),
        gateway_rss_mb_after_warm_up=round(rss_after_warm_up / 2**20, 1),
        gateway_rss_mb_at_end=round(rss_at_end / 2**20, 1),
        gateway_rss_growth_percent=round(growth * 100, 2),
        leaked_in_flight=counts,
    )
    assert result.total == REQUESTS
    assert result.errors == [], result.errors[:5]
    assert result.outcomes["ok"] > REQUESTS // 2
    assert growth < MAX_RSS_GROWTH, f"gateway RSS grew {growth:.1%}"
    assert counts == (0, 0), f"in flight after the soak (neuron, gateway): {counts}"
