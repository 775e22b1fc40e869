"""GET /admin/usage and the usage log: real SDK traffic, a gateway restart, rotation."""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path

import anthropic
import openai
import pytest
from anthropic.types import MessageParam
from openai.types.chat import ChatCompletionMessageParam

from helexa.cli import usage_cmd
from helexa.config import Config
from helexa.config.keys import hash_key
from helexa.testing.neuron_proc import InProcessNeuron
from tests.gateway.harness import anthropic_prompt_tokens, run_gateway, write_configs

TINY = "helexa/tiny"
HI: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hi"}]
HI_ANTHROPIC: list[MessageParam] = [{"role": "user", "content": "hi"}]


@pytest.fixture
async def config(tmp_path: Path, tiny_model_dir: Path, neuron_a: InProcessNeuron) -> Config:
    await neuron_a.load(TINY, tiny_model_dir)
    fleet = '[gateway]\nusage_log = "logs/usage.jsonl"\n\n'
    fleet += f'[[neurons]]\nname = "a"\nendpoint = "{neuron_a.url}"\n'
    models = f'[[models]]\nid = "{TINY}"\npath = "{tiny_model_dir}"\n'
    keys = "".join(
        f'[[keys]]\nname = "{name}"\nsha256 = "{hash_key("k-" + name)}"\nrole = "{role}"\n\n'
        for name, role in (("ann", "user"), ("bo", "user"), ("ops", "admin"))
    )
    (tmp_path / "keys.toml").write_text(keys)
    return write_configs(tmp_path, fleet, models)


async def traffic(url: str) -> dict[str, list[int]]:
    """Some requests of ann and bo in both dialects; returns their [input, output] sums."""
    sums = {"ann": [0, 0], "bo": [0, 0]}
    for name in ("ann", "bo", "ann"):
        oa = openai.AsyncOpenAI(base_url=f"{url}/v1", api_key=f"k-{name}", max_retries=0)
        done = await oa.chat.completions.create(model=TINY, messages=HI, max_tokens=3)
        assert done.usage is not None
        sums[name][0] += done.usage.prompt_tokens
        sums[name][1] += done.usage.completion_tokens
    an = anthropic.AsyncAnthropic(base_url=url, api_key="k-bo", max_retries=0)
    message = await an.messages.create(model=TINY, max_tokens=5, messages=HI_ANTHROPIC)
    sums["bo"][0] += anthropic_prompt_tokens(message.usage)
    sums["bo"][1] += message.usage.output_tokens
    return sums


def totals(usage: dict[str, object]) -> dict[str, list[int]]:
    rows = usage["keys"]
    assert isinstance(rows, list)
    return {row["key"]: [row["input_tokens"], row["output_tokens"]] for row in rows}


async def test_usage_per_key_survives_a_restart_through_the_log(config: Config) -> None:
    async with run_gateway(config) as gw:
        sums = await traffic(gw.url)
        async with gw.http() as http:
            everyone = (await http.get("/admin/usage", headers={"x-api-key": "k-ops"})).json()
            own = (await http.get("/admin/usage?key=ops", headers={"x-api-key": "k-ann"})).json()
            bad = await http.get("/admin/usage?window=soon", headers={"x-api-key": "k-ops"})
    assert totals(everyone) == sums
    ann = next(row for row in everyone["keys"] if row["key"] == "ann")
    assert ann["requests"] == 2 and ann["models"][0]["model"] == TINY
    assert ann["limits"]["role"] == "user"
    assert totals(own) == {"ann": sums["ann"]}  # a user key sees itself only
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "window"

    log_path = config.fleet.gateway.usage_log
    assert log_path is not None
    lines = [json.loads(line) for line in log_path.read_text().splitlines()]
    assert len(lines) == 4
    assert {line["key"] for line in lines} == {"ann", "bo"}
    assert all(line["neuron"] == "a" and line["status"] == "200" for line in lines)
    assert sum(line["output_tokens"] for line in lines) == sums["ann"][1] + sums["bo"][1]
    assert "k-ann" not in log_path.read_text()

    async with run_gateway(config) as again:
        args = argparse.Namespace(
            gateway=again.url, api_key="k-ops", window="1h", key=None, json=True
        )
        usage = await asyncio.to_thread(usage_cmd.fetch_usage, again.url, "k-ops", "1h")
        assert totals(usage) == sums  # replayed from the log
        assert await asyncio.to_thread(usage_cmd.run, args) == 0


def test_render_usage() -> None:
    usage = {
        "keys": [
            {
                "key": "ann",
                "requests": 2,
                "errors": 1,
                "input_tokens": 30,
                "output_tokens": 6,
                "cached_tokens": 0,
                "models": [
                    {
                        "model": TINY,
                        "requests": 2,
                        "errors": 1,
                        "input_tokens": 30,
                        "output_tokens": 6,
                        "cached_tokens": 0,
                    }
                ],
            }
        ]
    }
    text = usage_cmd.render_usage(usage, "1h")
    assert text.splitlines()[1].split() == [
        "KEY",
        "MODEL",
        "REQUESTS",
        "ERRORS",
        "INPUT",
        "OUTPUT",
        "CACHED",
    ]
    assert text.splitlines()[2].split() == ["ann", "(all)", "2", "1", "30", "6", "0"]
    assert text.splitlines()[3].split() == [TINY, "2", "1", "30", "6", "0"]
    assert usage_cmd.render_usage({"keys": []}, "5m") == "no keyed requests in the last 5m"
