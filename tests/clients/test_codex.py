"""OpenAI's Codex CLI (`codex exec`) through the gateway's /v1/responses, set up as
docs/clients.md says.

The model is the scripted tool-calling upstream (kind = "openai"): it calls
Codex's `exec_command`, Codex really runs the command, its output comes back
through the gateway as a `function_call_output`, and the upstream's final
answer (built from that output) is what Codex prints. Codex always streams
/v1/responses; the non-streamed path for the same request shape is covered in
tests/gateway/test_app_responses.py. Against the tiny model, Codex's own
prompt (about 10k tokens) is too long, and the error must say so.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from helexa.testing.neuron_proc import InProcessNeuron
from tests.clients.cli import RequestLog, run_logged_gateway
from tests.clients.codex_cli import API_KEY_ENV, codex_config, codex_home, run_codex
from tests.gateway.harness import neuron_config, write_configs
from tests.gateway.tool_upstream import (
    FOLLOW_UP_PREFIX,
    ToolCallScript,
    ToolScript,
    ToolUpstream,
    fleet_toml,
)

MODEL = "vendor/agent"
TINY = "helexa/tiny"
API_KEY = "codex-test-key"
REASONING = "Run the command, then report its output."
DOCS = Path(__file__).resolve().parents[2] / "docs" / "clients.md"


@dataclass(frozen=True)
class LoggedGateway:
    url: str
    log: RequestLog

    def responses_requests(self) -> list[tuple[int, dict[str, Any]]]:
        """(status, body) of every /v1/responses request Codex made."""
        return [
            (e.status, json.loads(e.body))
            for e in self.log.exchanges
            if e.method == "POST" and e.path == "/v1/responses"
        ]

    def assert_only_responses(self) -> None:
        """Codex's every request went to /v1/responses with the key (nothing else)."""
        assert self.log.exchanges, "Codex sent nothing to the gateway"
        assert {(e.method, e.path) for e in self.log.exchanges} == {("POST", "/v1/responses")}
        assert all(
            e.headers.get("authorization") == f"Bearer {API_KEY}" for e in self.log.exchanges
        )


@pytest.fixture
async def upstream() -> AsyncIterator[ToolUpstream]:
    server = await ToolUpstream([MODEL]).start()
    yield server
    await server.stop()


@pytest.fixture
async def agent(tmp_path: Path, upstream: ToolUpstream) -> AsyncIterator[LoggedGateway]:
    fleet = f'[gateway]\napi_keys = ["{API_KEY}"]\n\n' + fleet_toml(upstream)
    async with run_logged_gateway(write_configs(tmp_path, fleet, "")) as (url, log):
        yield LoggedGateway(url, log)


def codex_env(tmp_path: Path, gateway: LoggedGateway, model: str) -> dict[str, str]:
    (tmp_path / "work").mkdir(exist_ok=True)
    return codex_home(tmp_path / "home", gateway.url, model) | {API_KEY_ENV: API_KEY}


async def test_runs_exec_command_and_prints_the_answer_built_from_its_output(
    codex_bin: Path, agent: LoggedGateway, upstream: ToolUpstream, tmp_path: Path
) -> None:
    proof = tmp_path / "work" / "proof.txt"
    command = f"echo from-helexa > {proof} && echo wrote-proof"
    upstream.script = ToolScript(
        calls=[ToolCallScript("exec_command", {"cmd": command})], reasoning=REASONING
    )
    env = codex_env(tmp_path, agent, MODEL)
    # Codex's default sandbox is read-only; the proof file needs writing.
    result = await run_codex(
        codex_bin, "write the proof file", env, tmp_path / "work", "-s", "danger-full-access"
    )
    assert result.returncode == 0, result.stderr + result.stdout
    assert proof.read_text() == "from-helexa\n"  # Codex really ran the command
    (tool_message,) = upstream.tool_messages()
    assert tool_message["tool_call_id"] == "call_0" and "wrote-proof" in tool_message["content"]
    assert result.stdout.strip() == (FOLLOW_UP_PREFIX + tool_message["content"]).strip()
    agent.assert_only_responses()
    (first_status, first), (second_status, second) = agent.responses_requests()
    assert (first_status, second_status) == (200, 200)
    assert first["stream"] is True and first["prompt_cache_key"] == second["prompt_cache_key"]
    assert {"web_search", "namespace"} <= {tool["type"] for tool in first["tools"]}
    # The second turn sent back the reasoning item (with helexa's encrypted_content), the
    # call and its output, and the model got them as one assistant turn and a tool message.
    sent_back = [item for item in second["input"] if item.get("type") != "message"]
    assert [item["type"] for item in sent_back] == [
        "reasoning",
        "function_call",
        "function_call_output",
    ]
    assert sent_back[0]["encrypted_content"].startswith("helexa-reasoning:")
    assistant = upstream.requests[1]["messages"][-2]
    assert assistant["reasoning_content"] == REASONING
    assert assistant["tool_calls"][0]["function"]["name"] == "exec_command"


@pytest.fixture
async def aliased(tmp_path: Path, upstream: ToolUpstream) -> AsyncIterator[LoggedGateway]:
    """The gateway with Codex's own model names mapped to the upstream's model."""
    fleet = f'[gateway]\napi_keys = ["{API_KEY}"]\n\n' + fleet_toml(upstream)
    models = f'[aliases]\n"gpt-5*" = "{MODEL}"\n'
    async with run_logged_gateway(write_configs(tmp_path, fleet, models)) as (url, log):
        yield LoggedGateway(url, log)


async def test_with_a_gpt5_alias_codex_applies_the_models_patch(
    codex_bin: Path, aliased: LoggedGateway, upstream: ToolUpstream, tmp_path: Path
) -> None:
    """Under a name Codex knows, it offers `apply_patch` as a custom (freeform) tool."""
    patch = "*** Begin Patch\n*** Add File: patched.txt\n+from-helexa\n*** End Patch\n"
    upstream.script = ToolScript(calls=[ToolCallScript("apply_patch", {"input": patch})])
    env = codex_env(tmp_path, aliased, "gpt-5.5-codex")
    result = await run_codex(
        codex_bin, "add the file", env, tmp_path / "work", "-s", "danger-full-access"
    )
    assert result.returncode == 0, result.stderr + result.stdout
    assert (tmp_path / "work" / "patched.txt").read_text() == "from-helexa\n"
    (tool_message,) = upstream.tool_messages()
    assert result.stdout.strip() == (FOLLOW_UP_PREFIX + tool_message["content"]).strip()
    aliased.assert_only_responses()
    (_, first), (_, second) = aliased.responses_requests()
    assert {"custom", "web_search"} <= {tool["type"] for tool in first["tools"]}
    sent_back = [item["type"] for item in second["input"] if item.get("type") != "message"]
    assert sent_back == ["custom_tool_call", "custom_tool_call_output"]
    assert all(body["model"] == MODEL for body in upstream.requests)


@pytest.fixture
async def tiny(tmp_path: Path, tiny_model_dir: Path) -> AsyncIterator[LoggedGateway]:
    async with InProcessNeuron.start(neuron_config("a")) as neuron:
        await neuron.load(TINY, tiny_model_dir)
        fleet = f'[gateway]\napi_keys = ["{API_KEY}"]\n\n[[neurons]]\nname = "a"\n'
        fleet += f'endpoint = "{neuron.url}"\n'
        models = f'[[models]]\nid = "{TINY}"\npath = "{tiny_model_dir}"\n'
        async with run_logged_gateway(write_configs(tmp_path, fleet, models)) as (url, log):
            yield LoggedGateway(url, log)


async def test_codex_prompt_too_long_for_the_tiny_model_says_so(
    codex_bin: Path, tiny: LoggedGateway, tmp_path: Path
) -> None:
    env = codex_env(tmp_path, tiny, TINY)
    result = await run_codex(codex_bin, "say hi", env, tmp_path / "work")
    assert result.returncode != 0
    # The model is loaded, so the 400 comes before any stream, in the OpenAI error shape
    # whose code Codex knows: it says what happened instead of retrying.
    ((status, body),) = tiny.responses_requests()
    assert status == 400 and body["model"] == TINY
    assert "ran out of room in the model's context window" in result.stderr, result.stderr


def test_docs_give_the_config_the_tests_use() -> None:
    """docs/clients.md's Codex config.toml is the one these tests run with."""
    config = codex_config("http://GATEWAY:31313", "helexa/medium")
    assert config in DOCS.read_text()
