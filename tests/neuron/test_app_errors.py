"""Every failure leaves as the OpenAI error envelope, with the right status and param."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import openai
import pytest

from helexa.testing.neuron_proc import TINY_MODEL_ID as TINY
from helexa.testing.neuron_proc import InProcessNeuron, chat_body, exact_length

StartNeuron = Callable[..., Awaitable[InProcessNeuron]]


def _envelope(body: dict[str, Any]) -> dict[str, Any]:
    assert set(body) == {"error"}
    error: dict[str, Any] = body["error"]
    assert {"message", "type", "code", "param"} <= set(error)
    assert error["message"]
    return error


@pytest.mark.parametrize(
    ("path", "body", "status", "code", "param"),
    [
        (
            "/v1/chat/completions",
            {**chat_body(), "max_tokens": "many"},
            400,
            "invalid_request",
            "max_tokens",
        ),
        ("/v1/chat/completions", {"model": TINY}, 400, "invalid_request", "messages"),
        (
            "/v1/chat/completions",
            {**chat_body(), "temperature": -1},
            400,
            "invalid_request",
            "temperature",
        ),
        (
            "/v1/chat/completions",
            {**chat_body(), "messages": [{"role": "user", "content": 5}]},
            400,
            "invalid_request",
            "messages.0.content",
        ),
        ("/v1/chat/completions", {**chat_body(), "n": 3}, 400, "invalid_request", "n"),
        ("/v1/chat/completions", chat_body(model="not/here"), 404, "model_not_loaded", "model"),
        (
            "/v1/completions",
            {"model": TINY, "prompt": ["a", "b"]},
            400,
            "invalid_request",
            "prompt",
        ),
        (
            "/v1/chat/completions",
            {**chat_body(), "max_tokens": 5000},
            400,
            "context_length_exceeded",
            "max_tokens",
        ),
        ("/models/load", {"path": "/x"}, 400, "invalid_request", "model"),
        ("/models/unload", {"model": "never/loaded"}, 404, "model_not_loaded", "model"),
        ("/v1/tokenize", {"model": TINY}, 400, "invalid_request", "messages"),
    ],
)
async def test_bad_inputs(
    neuron: InProcessNeuron,
    path: str,
    body: dict[str, Any],
    status: int,
    code: str,
    param: str,
) -> None:
    async with neuron.http() as http:
        response = await http.post(path, json=body)
    assert response.status_code == status, response.text
    error = _envelope(response.json())
    assert (error["code"], error["param"]) == (code, param)


async def test_malformed_json_and_non_object_bodies(neuron: InProcessNeuron) -> None:
    async with neuron.http() as http:
        broken = await http.post(
            "/v1/chat/completions",
            content=b'{"model": ',
            headers={"content-type": "application/json"},
        )
        listed = await http.post("/v1/chat/completions", json=[1, 2])
    for response in (broken, listed):
        assert response.status_code == 400
        assert _envelope(response.json())["type"] == "invalid_request_error"


async def test_unknown_route_and_method(neuron: InProcessNeuron) -> None:
    async with neuron.http() as http:
        missing = await http.get("/v1/nothing")
        wrong = await http.get("/v1/chat/completions")
    assert missing.status_code == 404 and _envelope(missing.json())["code"] == "not_found"
    assert wrong.status_code == 405 and _envelope(wrong.json())["code"] == "method_not_allowed"
    assert _envelope(missing.json())["type"] == "invalid_request_error"  # a client mistake


async def test_prompt_longer_than_the_context_names_the_limit(
    start_neuron: StartNeuron, tiny_model_dir: Path
) -> None:
    live = await start_neuron()
    await live.load(TINY, tiny_model_dir, context_length=32)
    with pytest.raises(openai.BadRequestError) as info:
        await live.openai().chat.completions.create(**chat_body(content="word " * 60))
    assert info.value.code == "context_length_exceeded"
    assert "32" in info.value.message


async def test_admission_overload_is_503_with_retry_after(
    start_neuron: StartNeuron, tiny_model_dir: Path
) -> None:
    live = await start_neuron({"neuron": {"max_in_flight": 1, "max_queue": 0}})
    await live.load(TINY, tiny_model_dir)
    stream = await live.openai().chat.completions.create(
        **chat_body(), **exact_length(2000), stream=True
    )
    await anext(aiter(stream))
    async with live.http() as http:
        refused = await http.post("/v1/chat/completions", json=chat_body(max_tokens=2))
    await stream.close()
    assert refused.status_code == 503
    assert int(refused.headers["Retry-After"]) >= 1
    assert _envelope(refused.json())["code"] == "overloaded"


async def test_queue_timeout_is_503(start_neuron: StartNeuron, tiny_model_dir: Path) -> None:
    live = await start_neuron(
        {"neuron": {"max_in_flight": 1, "max_queue": 1, "queue_timeout": "200ms"}}
    )
    await live.load(TINY, tiny_model_dir)
    stream = await live.openai().chat.completions.create(
        **chat_body(), **exact_length(2000), stream=True
    )
    await anext(aiter(stream))
    with pytest.raises(openai.InternalServerError) as info:  # the SDK's class for 503
        await live.openai().chat.completions.create(**chat_body(max_tokens=2))
    await stream.close()
    assert info.value.status_code == 503
    assert info.value.response.headers["Retry-After"] == "1"
    entry = live.state.registry.entry(TINY)
    assert entry is not None and entry.admission.queued == 0


async def test_bearer_token_guards_every_route_but_health(
    start_neuron: StartNeuron, tiny_model_dir: Path
) -> None:
    live = await start_neuron(token="s3cret")
    await live.load(TINY, tiny_model_dir)  # with the token
    async with live.http() as authed, live.http(headers={"Authorization": "Bearer nope"}) as bad:
        assert (await bad.get("/health")).status_code == 200
        for path in ("/models", "/discovery", "/metrics"):
            refused = await bad.get(path)
            assert refused.status_code == 401
            assert _envelope(refused.json())["type"] == "authentication_error"
            assert (await authed.get(path)).status_code == 200
    rogue = openai.AsyncOpenAI(base_url=f"{live.url}/v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        await rogue.chat.completions.create(**chat_body(max_tokens=2))
    reply = await live.openai().chat.completions.create(**chat_body(max_tokens=2))
    assert reply.choices[0].finish_reason in ("stop", "length")


async def test_a_batch_failure_mid_stream_is_an_error_event_and_the_model_keeps_serving(
    neuron: InProcessNeuron, monkeypatch: pytest.MonkeyPatch
) -> None:
    from helexa.neuron.engine import worker
    from helexa.neuron.engine.batch import merge

    calls: list[int] = []

    def merge_fails_once(*args: Any) -> Any:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("merge broke")
        return merge(*args)

    monkeypatch.setattr(worker, "merge", merge_fails_once)
    long = chat_body(stream=True, max_tokens=400, min_tokens=400, ignore_eos=True)
    frames: list[str] = []
    async with neuron.http() as client:
        async with client.stream("POST", "/v1/chat/completions", json=long) as streaming:
            lines = streaming.aiter_lines()
            # Running alone once a token came (the first frame, the role, comes before any
            # token): the next request is merged in.
            async for line in lines:
                if line.startswith("data: {") and '"content":""' not in line:
                    break
            joining = await client.post("/v1/chat/completions", json=chat_body(max_tokens=4))
            frames = [line async for line in lines if line.startswith("data: ")]
        after = await client.post("/v1/chat/completions", json=chat_body(max_tokens=4))
        health = await client.get("/health")

    assert joining.status_code == 500
    assert _envelope(joining.json())["code"] == "generation_failed"
    assert '"code":"generation_failed"' in frames[-1] and "merge broke" in frames[-1]
    assert (after.status_code, health.status_code) == (200, 200)
