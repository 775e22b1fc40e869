"""/v1/messages end to end: the real anthropic SDK -> gateway -> real neuron (tiny model)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import anthropic
import httpx
import pytest
from aiohttp import web

from helexa.testing.neuron_proc import InProcessNeuron
from helexa.translate.anthropic_request import parse_count_tokens_request, tokenize_request
from tests.gateway.harness import (
    RunningGateway,
    anthropic_prompt_tokens,
    run_gateway,
    write_configs,
)

TINY = "helexa/tiny"
LAZY = "helexa/lazy"


@pytest.fixture
async def served(
    tmp_path: Path, tiny_model_dir: Path, neuron_a: InProcessNeuron
) -> AsyncIterator[RunningGateway]:
    await neuron_a.load(TINY, tiny_model_dir)
    fleet = f'[[neurons]]\nname = "a"\nendpoint = "{neuron_a.url}"\n'
    models = "".join(
        f'[[models]]\nid = "{name}"\npath = "{tiny_model_dir}"\n' for name in (TINY, LAZY)
    )
    models += f'[aliases]\n"claude-*" = "{TINY}"\n'
    async with run_gateway(write_configs(tmp_path, fleet, models)) as gw:
        yield gw


def client(gw: RunningGateway) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=gw.url, api_key="unused", max_retries=0, timeout=60)


async def test_messages_non_streaming_through_an_alias(served: RunningGateway) -> None:
    message = await client(served).messages.create(
        model="claude-3-5-haiku-latest",
        max_tokens=4,
        messages=[{"role": "user", "content": "hi"}],
    )
    assert message.model == "claude-3-5-haiku-latest"  # echoed as the client named it
    assert message.usage.input_tokens > 0 and message.usage.output_tokens > 0
    assert message.stop_reason in ("end_turn", "max_tokens")


async def test_messages_streaming_with_a_cold_load(served: RunningGateway) -> None:
    async with client(served).messages.stream(
        model=LAZY, max_tokens=4, messages=[{"role": "user", "content": "hi"}]
    ) as stream:
        final = await stream.get_final_message()
    assert final.usage.output_tokens > 0
    assert served.decisions("load") == [LAZY]


async def test_count_tokens_equals_the_reported_input_tokens(served: RunningGateway) -> None:
    c = client(served)
    system = "Be brief."
    messages: list[anthropic.types.MessageParam] = [
        {"role": "user", "content": "How many tokens is this?"}
    ]
    counted = await c.messages.count_tokens(model=TINY, system=system, messages=messages)
    message = await c.messages.create(model=TINY, system=system, messages=messages, max_tokens=1)
    assert counted.input_tokens == anthropic_prompt_tokens(message.usage) > 0


async def test_unknown_model_is_404_in_anthropic_shape(served: RunningGateway) -> None:
    with pytest.raises(anthropic.NotFoundError) as info:
        await client(served).messages.create(
            model="nope", max_tokens=1, messages=[{"role": "user", "content": "hi"}]
        )
    assert isinstance(info.value.body, dict)
    error = info.value.body["error"]
    assert info.value.body["type"] == "error" and error["type"] == "not_found_error"
    assert error["message"].startswith("The model 'nope' does not exist")


async def test_unmapped_claude_name_says_how_to_map_it(tmp_path: Path) -> None:
    models = f'[[models]]\nid = "{TINY}"\npath = "{tmp_path}"\n'  # no [aliases]
    async with run_gateway(write_configs(tmp_path, "", models)) as gw:
        with pytest.raises(anthropic.NotFoundError) as info:
            await client(gw).messages.create(
                model="claude-sonnet-4-5", max_tokens=1, messages=[{"role": "user", "content": "x"}]
            )
        with pytest.raises(anthropic.NotFoundError) as counting:
            await client(gw).messages.count_tokens(
                model="claude-sonnet-4-5", messages=[{"role": "user", "content": "x"}]
            )
    for exc in (info.value, counting.value):
        assert isinstance(exc.body, dict)
        assert exc.body["error"]["type"] == "not_found_error"
        assert f'[aliases] "claude-*" = "{TINY}"' in exc.body["error"]["message"]


async def test_bad_key_is_an_authentication_error(tmp_path: Path) -> None:
    fleet = '[gateway]\napi_keys = ["right"]\n'
    async with run_gateway(write_configs(tmp_path, fleet, "")) as gw:
        bad = anthropic.AsyncAnthropic(base_url=gw.url, api_key="wrong", max_retries=0)
        with pytest.raises(anthropic.AuthenticationError) as info:
            await bad.messages.create(
                model=TINY, max_tokens=1, messages=[{"role": "user", "content": "x"}]
            )
    assert isinstance(info.value.body, dict)
    assert info.value.body["error"]["type"] == "authentication_error"


async def test_stream_final_message_equals_the_non_streaming_one(served: RunningGateway) -> None:
    # Seeded sampling (passed through as an extension): both must draw the same tokens.
    request = {
        "model": TINY,
        "max_tokens": 12,
        "messages": [{"role": "user", "content": "tell me something"}],
    }
    extra = {"seed": 1234, "min_tokens": 12, "temperature": 1.0}
    c = client(served)
    whole = await c.messages.create(**request, extra_body=extra)  # type: ignore[call-overload]
    async with c.messages.stream(**request, extra_body=extra) as stream:  # type: ignore[arg-type]
        streamed = await stream.get_final_message()
    assert whole.usage.output_tokens == 12
    assert [(b.type, getattr(b, "text", None)) for b in streamed.content] == [
        (b.type, getattr(b, "text", None)) for b in whole.content
    ]
    assert (streamed.stop_reason, streamed.usage.output_tokens) == (
        whole.stop_reason,
        whole.usage.output_tokens,
    )
    assert anthropic_prompt_tokens(streamed.usage) == anthropic_prompt_tokens(whole.usage)


async def test_count_tokens_equals_the_neurons_own_count(
    served: RunningGateway, neuron_a: InProcessNeuron
) -> None:
    body = {
        "model": TINY,
        "system": [{"type": "text", "text": "You are terse."}],
        "tools": [
            {
                "name": "lookup",
                "description": "Look a word up",
                "input_schema": {"type": "object", "properties": {"word": {"type": "string"}}},
            }
        ],
        "messages": [{"role": "user", "content": "define helexa"}],
    }
    counted = await client(served).messages.count_tokens(**body)  # type: ignore[arg-type]
    async with httpx.AsyncClient(base_url=neuron_a.url) as neuron:
        direct = await neuron.post(
            "/v1/tokenize", json=tokenize_request(parse_count_tokens_request(body))
        )
    assert direct.status_code == 200
    assert counted.input_tokens == direct.json()["count"] > 0


async def test_max_tokens_past_the_context_generates_up_to_the_context(
    served: RunningGateway,
) -> None:
    # Claude Code asks for max_tokens=32000+; the tiny model's context is 4096. A long
    # prompt leaves a few tokens, and the answer must use exactly those, not fail.
    c = client(served)

    def prompt(repeats: int) -> list[anthropic.types.MessageParam]:
        return [{"role": "user", "content": "lorem ipsum dolor " * repeats}]

    one = (await c.messages.count_tokens(model=TINY, messages=prompt(100))).input_tokens
    two = (await c.messages.count_tokens(model=TINY, messages=prompt(200))).input_tokens
    per_repeat = (two - one) / 100
    messages = prompt(int((4096 - 40 - one) / per_repeat) + 100)
    counted = await c.messages.count_tokens(model=TINY, messages=messages)
    assert 3900 < counted.input_tokens < 4090  # leaves room for a short answer only
    message = await c.messages.create(
        model=TINY, max_tokens=64000, messages=messages, extra_body={"ignore_eos": True}
    )
    assert message.stop_reason == "max_tokens"
    assert anthropic_prompt_tokens(message.usage) + message.usage.output_tokens == 4096


async def _garbage_stream(request: web.Request) -> web.StreamResponse:
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await resp.prepare(request)
    await resp.write(b'data: {"choices": 5}\n\n')  # no translator can make sense of it
    await resp.write(b"data: [DONE]\n\n")
    return resp


async def _no_models(_: web.Request) -> web.Response:
    return web.json_response({"object": "list", "data": []})


async def test_an_untranslatable_stream_ends_with_an_error_event(tmp_path: Path) -> None:
    app = web.Application()
    app.router.add_post("/v1/chat/completions", _garbage_stream)
    app.router.add_get("/v1/models", _no_models)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    fleet = (
        f'[[neurons]]\nname = "odd"\nkind = "openai"\n'
        f'endpoint = "http://127.0.0.1:{port}/v1"\nmodels = ["vendor/odd"]\n'
    )
    try:
        async with run_gateway(write_configs(tmp_path, fleet, "")) as gw, gw.http() as http:
            body = {
                "model": "vendor/odd",
                "max_tokens": 5,
                "stream": True,
                "messages": [{"role": "user", "content": "hi"}],
            }
            reply = await http.post("/v1/messages", json=body)
    finally:
        await runner.cleanup()
    assert reply.status_code == 200
    assert reply.text.startswith("event: message_start")
    last = reply.text.strip().split("\n\n")[-1]
    assert last.startswith("event: error\ndata: ")
    assert json.loads(last.split("data: ", 1)[1])["error"]["type"] == "api_error"


async def test_a_streamed_prompt_too_long_for_a_loaded_model_is_a_400(
    served: RunningGateway,
) -> None:
    # The model is loaded, so the upstream is opened before answering: its refusal keeps
    # its status instead of arriving as an error event inside a 200 stream.
    with pytest.raises(anthropic.BadRequestError) as info:
        async with client(served).messages.stream(
            model=TINY, max_tokens=4, messages=[{"role": "user", "content": "lorem " * 5000}]
        ) as stream:
            await stream.get_final_message()
    assert info.value.status_code == 400
    assert "context length is 4096" in str(info.value.message)
