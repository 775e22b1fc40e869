"""Named keys end to end: real openai/anthropic SDKs -> gateway -> real neuron (tiny model).

The keys' limits run on a clock the test moves by hand (`Gateway(clock=...)`),
so "the next minute" needs no waiting.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import anthropic
import openai
import pytest
from anthropic.types import MessageParam
from openai.types.chat import ChatCompletionMessageParam
from prometheus_client.exposition import generate_latest

from helexa.config.keys import hash_key
from helexa.testing.neuron_proc import InProcessNeuron
from tests.gateway.harness import (
    RunningGateway,
    anthropic_prompt_tokens,
    run_gateway,
    write_configs,
)

TINY = "helexa/tiny"
OTHER = "helexa/other"
HI: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hi"}]
HI_ANTHROPIC: list[MessageParam] = [{"role": "user", "content": "hi"}]


class ManualClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


KEYS = {
    "tiny-only": ("k-tiny-only", 'models = ["helexa/tin*"]'),
    "tight": ("k-tight", "requests_per_minute = 2"),
    "capped": ("k-capped", "max_concurrent = 3"),
    "tokens": ("k-tokens", "tokens_per_minute = 40"),
    "ops": ("k-ops", 'role = "admin"'),
    "plain": ("k-plain", ""),
    "old": ("k-old", "expires = 2001-01-01"),
}


def keys_toml(names: list[str] | None = None) -> str:
    out = "# the team's keys\n"
    for name, (key, extra) in KEYS.items():
        if names is None or name in names:
            out += f'\n[[keys]]\nname = "{name}"\nsha256 = "{hash_key(key)}"\n{extra}\n'
    return out


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def served(
    tmp_path: Path, tiny_model_dir: Path, neuron_a: InProcessNeuron, clock: ManualClock
) -> AsyncIterator[RunningGateway]:
    await neuron_a.load(TINY, tiny_model_dir)
    fleet = '[gateway]\napi_keys = ["legacy"]\n\n'
    fleet += f'[[neurons]]\nname = "a"\nendpoint = "{neuron_a.url}"\n'
    models = "".join(
        f'[[models]]\nid = "{name}"\npath = "{tiny_model_dir}"\n' for name in (TINY, OTHER)
    )
    models += f'[aliases]\n"claude-*" = "{TINY}"\n'
    (tmp_path / "keys.toml").write_text(keys_toml())
    async with run_gateway(write_configs(tmp_path, fleet, models), clock=clock) as gw:
        yield gw


def oa(gw: RunningGateway, key: str) -> openai.AsyncOpenAI:
    return gw.openai(api_key=key)


def an(gw: RunningGateway, key: str) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=gw.url, api_key=key, max_retries=0, timeout=60)


async def chat(
    gw: RunningGateway, key: str, model: str = TINY, max_tokens: int = 4, forced: bool = False
) -> int:
    """One OpenAI chat completion (`forced`: exactly max_tokens); returns its total tokens."""
    done = await oa(gw, key).chat.completions.create(
        model=model,
        messages=HI,
        max_tokens=max_tokens,
        extra_body={"min_tokens": max_tokens} if forced else None,
    )
    assert done.usage is not None
    return done.usage.prompt_tokens + done.usage.completion_tokens


async def test_a_key_limited_to_one_model_gets_403_in_each_dialect(served: RunningGateway) -> None:
    key = "k-tiny-only"
    assert await chat(served, key) > 0
    with pytest.raises(openai.PermissionDeniedError) as oa_err:
        await oa(served, key).chat.completions.create(model=OTHER, messages=HI, max_tokens=4)
    assert oa_err.value.status_code == 403
    body = oa_err.value.body
    assert isinstance(body, dict) and body["type"] == "permission_error"
    assert OTHER in body["message"] and "tiny-only" in body["message"]
    with pytest.raises(anthropic.PermissionDeniedError) as an_err:
        await an(served, key).messages.create(model=OTHER, max_tokens=4, messages=HI_ANTHROPIC)
    assert an_err.value.status_code == 403
    assert an_err.value.body == {
        "type": "error",
        "error": {"type": "permission_error", "message": body["message"]},
    }
    # An alias is judged by the model that serves it: claude-* -> helexa/tiny is allowed.
    message = await an(served, key).messages.create(
        model="claude-3-5-haiku-latest",
        max_tokens=4,
        messages=HI_ANTHROPIC,
    )
    assert message.usage.output_tokens > 0
    with pytest.raises(openai.PermissionDeniedError):
        await oa(served, key).responses.create(model=OTHER, input="hi", max_output_tokens=4)
    with pytest.raises(anthropic.PermissionDeniedError):
        await an(served, key).messages.count_tokens(model=OTHER, messages=HI_ANTHROPIC)


async def test_a_tight_rpm_gets_429_with_retry_after_and_the_next_window_succeeds(
    served: RunningGateway, clock: ManualClock
) -> None:
    key = "k-tight"
    await chat(served, key)
    await an(served, key).messages.create(model=TINY, max_tokens=4, messages=HI_ANTHROPIC)
    with pytest.raises(openai.RateLimitError) as oa_err:
        await chat(served, key)
    assert oa_err.value.response.headers["retry-after"] == "30"  # 2 per minute: one per 30 s
    assert isinstance(oa_err.value.body, dict)
    assert oa_err.value.body["type"] == "rate_limit_error"
    with pytest.raises(anthropic.RateLimitError) as an_err:
        await an(served, key).messages.create(model=TINY, max_tokens=4, messages=HI_ANTHROPIC)
    assert an_err.value.response.headers["retry-after"] == "30"
    assert isinstance(an_err.value.body, dict)
    assert an_err.value.body["error"]["type"] == "rate_limit_error"
    # Another key is not limited by this one.
    await chat(served, "k-plain")
    clock.now += 30
    await chat(served, key)
    with pytest.raises(openai.RateLimitError):
        await chat(served, key)  # one request came back in 30 s, not two
    clock.now += 60
    await chat(served, key)
    await chat(served, key)


async def test_tokens_per_minute_count_the_real_usage(
    served: RunningGateway, clock: ManualClock
) -> None:
    key = "k-tokens"  # 40 tokens per minute
    # One answer may overshoot by its own size: 32 forced tokens + the prompt.
    used = await chat(served, key, max_tokens=32, forced=True)
    assert used > 40
    with pytest.raises(openai.RateLimitError) as err:
        await chat(served, key)
    wait = int(err.value.response.headers["retry-after"])
    # Below zero by (used - 40), one token back every 1.5 s: the next prompt waits longer.
    assert wait >= used - 40
    clock.now += wait
    await chat(served, key)


async def test_the_concurrency_cap_holds_under_32_concurrent_clients(
    served: RunningGateway,
) -> None:
    key = "k-capped"  # max_concurrent = 3
    principal = served.gateway.keyring.lookup(key)
    assert principal is not None
    seen: list[int] = []

    async def one() -> str:
        try:
            stream = await oa(served, key).chat.completions.create(
                model=TINY,
                messages=HI,
                max_tokens=24,
                stream=True,
                extra_body={"min_tokens": 24},
            )
            async for _ in stream:
                seen.append(principal.quota.in_flight)
        except openai.RateLimitError as exc:
            assert exc.response.headers["retry-after"] == "1"
            return "429"
        return "ok"

    results = await asyncio.gather(*(one() for _ in range(32)))
    assert max(seen) == 3  # the cap was reached and never passed
    assert results.count("ok") >= 3 and results.count("429") > 0
    assert principal.quota.in_flight == 0  # every slot came back


async def test_usage_counters_equal_the_sum_of_the_responses_usage(
    served: RunningGateway,
) -> None:
    key = "k-plain"
    prompt = completion = 0
    for max_tokens in (3, 5):
        done = await oa(served, key).chat.completions.create(
            model=TINY, messages=HI, max_tokens=max_tokens
        )
        assert done.usage is not None
        prompt += done.usage.prompt_tokens
        completion += done.usage.completion_tokens
    stream = await oa(served, key).chat.completions.create(
        model=TINY,
        messages=HI,
        max_tokens=6,
        stream=True,
        stream_options={"include_usage": True},
    )
    async for chunk in stream:
        if chunk.usage is not None:
            prompt += chunk.usage.prompt_tokens
            completion += chunk.usage.completion_tokens
    async with an(served, key).messages.stream(
        model=TINY,
        max_tokens=4,
        messages=HI_ANTHROPIC,
    ) as events:
        final = await events.get_final_message()
    prompt += anthropic_prompt_tokens(final.usage)
    completion += final.usage.output_tokens
    with pytest.raises(openai.NotFoundError):
        await oa(served, key).chat.completions.create(model="nope", messages=HI, max_tokens=4)

    metrics = generate_latest(served.gateway.metrics.registry).decode().splitlines()

    tokens = f'cortex_key_tokens_total{{key="plain",kind="KIND",model="{TINY}"}}'
    assert f"{tokens.replace('KIND', 'input')} {prompt}.0" in metrics
    assert f"{tokens.replace('KIND', 'output')} {completion}.0" in metrics
    assert f'cortex_key_requests_total{{key="plain",model="{TINY}",status="200"}} 4.0' in metrics
    assert 'cortex_key_errors_total{key="plain",model="",status="404"} 1.0' in metrics
    # Labelled by the key's name: the key itself appears nowhere.
    assert not [line for line in metrics if "k-plain" in line]


async def test_unknown_and_expired_keys_get_401_in_each_dialect(served: RunningGateway) -> None:
    with pytest.raises(openai.AuthenticationError):
        await chat(served, "k-nobody")
    with pytest.raises(anthropic.AuthenticationError) as err:
        await an(served, "k-old").messages.create(model=TINY, max_tokens=4, messages=HI_ANTHROPIC)
    assert isinstance(err.value.body, dict)
    assert err.value.body["error"] == {
        "type": "authentication_error",
        "message": "API key 'old' has expired",
    }
    assert await chat(served, "legacy") > 0  # the old api_keys list still works


async def test_only_admin_keys_reach_admin_writes(served: RunningGateway) -> None:
    body = {"model": OTHER}
    async with served.http() as http:
        refused = await http.post(
            "/admin/models/unload", json=body, headers={"x-api-key": "k-plain"}
        )
        assert refused.status_code == 403
        assert refused.json()["error"]["type"] == "permission_error"
        # Reads stay open to every key.
        fleet = await http.get("/admin/fleet", headers={"x-api-key": "k-plain"})
        assert fleet.status_code == 200
        for admin in ("k-ops", "legacy"):
            allowed = await http.post(
                "/admin/models/unload", json=body, headers={"x-api-key": admin}
            )
            assert allowed.status_code == 404  # past the check: OTHER is loaded nowhere
