"""The Claude Code CLI (`claude -p`) through the gateway, as docs/clients.md sets it up.

The model is the scripted tool-calling upstream (kind = "openai") behind a
`claude-*` alias, so answers are fixed: a text answer for the plain prompt,
and a Bash tool call that Claude Code really runs, whose tool_result must
come back through the gateway to the upstream.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.clients.claude_cli import cli_env, run_claude
from tests.clients.cli import RequestLog, run_logged_gateway
from tests.gateway.harness import write_configs
from tests.gateway.tool_upstream import (
    FOLLOW_UP_PREFIX,
    ToolCallScript,
    ToolScript,
    ToolUpstream,
    fleet_toml,
)

MODEL = "vendor/agent"
API_KEY = "cli-test-key"


@pytest.fixture
async def upstream() -> AsyncIterator[ToolUpstream]:
    server = await ToolUpstream([MODEL]).start()
    yield server
    await server.stop()


@dataclass(frozen=True)
class LoggedGateway:
    url: str
    log: RequestLog

    def assert_all_answered(self) -> None:
        """Claude Code's every API request (whatever it sends) was served, none refused.
        (It also sends a keyless `HEAD /` to warm the connection; any answer will do.)"""
        api = [e for e in self.log.exchanges if e.path.startswith("/v1/")]
        assert api, "Claude Code sent no API request to the gateway"
        assert [e for e in api if e.status >= 400] == []
        assert all(e.headers.get("x-api-key") == API_KEY for e in api)


@pytest.fixture
async def gateway(tmp_path: Path, upstream: ToolUpstream) -> AsyncIterator[LoggedGateway]:
    fleet = f'[gateway]\napi_keys = ["{API_KEY}"]\n\n' + fleet_toml(upstream)
    models = f'[aliases]\n"claude-*" = "{MODEL}"\n'
    async with run_logged_gateway(write_configs(tmp_path, fleet, models)) as (url, log):
        yield LoggedGateway(url, log)


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    (tmp_path / "home").mkdir()
    (tmp_path / "work").mkdir()
    return tmp_path


async def test_print_mode_prints_the_models_text(
    claude_bin: Path, gateway: LoggedGateway, upstream: ToolUpstream, workdir: Path
) -> None:
    upstream.script = ToolScript(text="helexa answers from the fleet")
    env = cli_env(gateway.url, API_KEY, workdir / "home")
    result = await run_claude(claude_bin, "say hello", env, workdir / "work")
    assert result.returncode == 0, result.stderr + result.stdout
    assert result.stdout.strip() == "helexa answers from the fleet"
    # Claude Code's real request reached the model through the claude-* alias.
    prompts = [str(m.get("content")) for body in upstream.requests for m in body["messages"]]
    assert any("say hello" in p for p in prompts)
    assert all(body["model"] == MODEL for body in upstream.requests)
    gateway.assert_all_answered()


async def test_runs_the_requested_tool_and_sends_the_result_back(
    claude_bin: Path, gateway: LoggedGateway, upstream: ToolUpstream, workdir: Path
) -> None:
    proof = workdir / "work" / "proof.txt"
    command = f"echo from-helexa > {proof} && echo wrote-proof"
    upstream.script = ToolScript(
        calls=[ToolCallScript("Bash", {"command": command, "description": "Write the proof"})]
    )
    env = cli_env(gateway.url, API_KEY, workdir / "home")
    result = await run_claude(
        claude_bin, "write the proof file", env, workdir / "work", "--allowedTools", "Bash"
    )
    assert result.returncode == 0, result.stderr + result.stdout
    assert proof.read_text() == "from-helexa\n"  # Claude Code really ran the tool
    (tool_message,) = upstream.tool_messages()
    assert tool_message["tool_call_id"] == "call_0"
    assert "wrote-proof" in tool_message["content"]
    assert result.stdout.strip() == FOLLOW_UP_PREFIX + tool_message["content"]
    gateway.assert_all_answered()
