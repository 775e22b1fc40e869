"""Translated requests (Anthropic, Responses) count in flight on their replica while
they run, streamed or not, so least-busy and the affinity load bound see them
before the next poll (a kind = "openai" upstream is never polled for it)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import anthropic
import pytest

from helexa.testing.neuron_proc import eventually
from tests.gateway.harness import run_gateway, write_configs
from tests.gateway.scripted_upstream import ScriptedUpstream

MODEL = "vendor/big"


async def test_a_translated_stream_counts_in_flight_until_it_ends(
    tmp_path: Path, scripted_upstream: ScriptedUpstream
) -> None:
    scripted_upstream.script.hang_after = 1  # one piece, then the stream stays open
    fleet = (
        f'[[neurons]]\nname = "big"\nkind = "openai"\n'
        f'endpoint = "{scripted_upstream.url}/v1"\nmodels = ["{MODEL}"]\n'
    )
    async with run_gateway(write_configs(tmp_path, fleet, "")) as gw:
        location = gw.gateway.fleet.neurons["big"].models[MODEL]
        claude = anthropic.AsyncAnthropic(base_url=gw.url, api_key="x", max_retries=0)
        async with claude.messages.stream(
            model=MODEL, max_tokens=8, messages=[{"role": "user", "content": "hi"}]
        ) as stream:
            async for event in stream:
                if event.type == "content_block_delta":
                    break  # the first piece is out: the relay runs
            assert location.active == 1
        await eventually(lambda: location.active == 0)


@pytest.mark.parametrize("dialect", ["anthropic", "responses"])
async def test_a_translated_whole_answer_counts_in_flight_while_it_is_read(
    tmp_path: Path, scripted_upstream: ScriptedUpstream, dialect: str
) -> None:
    scripted_upstream.script.hold_whole = True
    fleet = (
        f'[[neurons]]\nname = "big"\nkind = "openai"\n'
        f'endpoint = "{scripted_upstream.url}/v1"\nmodels = ["{MODEL}"]\n'
    )
    async with run_gateway(write_configs(tmp_path, fleet, "")) as gw:
        location = gw.gateway.fleet.neurons["big"].models[MODEL]
        if dialect == "anthropic":
            claude = anthropic.AsyncAnthropic(base_url=gw.url, api_key="x", max_retries=0)
            request = claude.messages.create(
                model=MODEL, max_tokens=8, messages=[{"role": "user", "content": "hi"}]
            )
        else:
            request = gw.openai().responses.create(model=MODEL, input="hi")  # type: ignore[assignment]
        answer = asyncio.create_task(request)
        # The upstream sent its headers and holds the body: the gateway is reading it.
        await eventually(lambda: location.active == 1)
        assert not answer.done()
        scripted_upstream.release()
        await answer
        assert location.active == 0
