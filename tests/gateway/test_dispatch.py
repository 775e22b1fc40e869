"""dispatch's streams (helexa.sse.SSEResponse) end to end: a real gateway over a
scripted upstream on loopback."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from tests.gateway.harness import RunningGateway, run_gateway, write_configs
from tests.gateway.scripted_upstream import ScriptedUpstream

MODEL = "vendor/big"


@pytest.fixture
async def gateway(
    tmp_path: Path, scripted_upstream: ScriptedUpstream
) -> AsyncIterator[RunningGateway]:
    fleet = (
        f'[[neurons]]\nname = "big"\nkind = "openai"\n'
        f'endpoint = "{scripted_upstream.url}/v1"\nmodels = ["{MODEL}"]\n'
    )
    async with run_gateway(write_configs(tmp_path, fleet, "")) as running:
        yield running


def _body(stream: bool) -> dict[str, object]:
    return {"model": MODEL, "stream": stream, "messages": [{"role": "user", "content": "hi"}]}


async def test_a_stream_arrives_whole_with_sse_headers(
    gateway: RunningGateway, scripted_upstream: ScriptedUpstream
) -> None:
    scripted_upstream.script.pieces = [f"p{i}" for i in range(30)]
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{gateway.url}/v1/chat/completions", json=_body(True)) as resp,
    ):
        text = await resp.text()
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/event-stream")
        assert resp.headers["Cache-Control"] == "no-cache"
    assert all(f'"p{i}"' in text for i in range(30))
    assert text.rstrip().endswith("data: [DONE]")
    assert '"usage"' not in text  # asked for by the gateway, hidden from this client


async def test_a_client_that_leaves_mid_stream_disconnects_the_upstream(
    gateway: RunningGateway, scripted_upstream: ScriptedUpstream, caplog: pytest.LogCaptureFixture
) -> None:
    scripted_upstream.script.piece_delay = 0.2
    scripted_upstream.script.pieces = ["x"] * 100  # 20 s if nobody stopped it
    session = aiohttp.ClientSession()
    resp = await session.post(f"{gateway.url}/v1/chat/completions", json=_body(True))
    assert resp.status == 200
    await resp.content.readany()
    resp.close()  # drops the connection: the gateway sees http.disconnect
    await session.close()
    await asyncio.wait_for(scripted_upstream.disconnected.wait(), timeout=5)
    assert scripted_upstream.disconnects == 1
    metrics = gateway.gateway.metrics.render().decode()
    assert 'status="client_closed"' in metrics
    # The cancelled send is ours to swallow: nothing reaches the gateway's server as a crash
    # (the scripted upstream's own aiohttp server does complain, rightly: it was cut off).
    ours = [r for r in caplog.records if r.name.startswith(("uvicorn", "helexa", "starlette"))]
    assert not [r for r in ours if r.levelno >= logging.ERROR]
