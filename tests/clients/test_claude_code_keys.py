"""Claude Code with named keys: a key for its model works and is counted; another gets 403."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from helexa.config.keys import hash_key
from tests.clients.claude_cli import cli_env, run_claude
from tests.clients.cli import RequestLog, run_logged_gateway
from tests.gateway.harness import write_configs
from tests.gateway.tool_upstream import ToolScript, ToolUpstream, fleet_toml

MODEL = "vendor/agent"
AGENT_KEY = "k-agent"
ELSEWHERE_KEY = "k-elsewhere"


@pytest.fixture
async def upstream() -> AsyncIterator[ToolUpstream]:
    server = await ToolUpstream([MODEL]).start()
    yield server
    await server.stop()


@pytest.fixture
async def gateway(tmp_path: Path, upstream: ToolUpstream) -> AsyncIterator[tuple[str, RequestLog]]:
    (tmp_path / "keys.toml").write_text(
        f'[[keys]]\nname = "agent"\nsha256 = "{hash_key(AGENT_KEY)}"\nmodels = ["vendor/*"]\n'
        f'[[keys]]\nname = "elsewhere"\nsha256 = "{hash_key(ELSEWHERE_KEY)}"\n'
        'models = ["qwen/*"]\n'
        f'[[keys]]\nname = "ops"\nsha256 = "{hash_key("k-ops")}"\nrole = "admin"\n'
    )
    models = f'[aliases]\n"claude-*" = "{MODEL}"\n'
    async with run_logged_gateway(write_configs(tmp_path, fleet_toml(upstream), models)) as run:
        yield run


async def test_a_key_for_the_model_works_and_another_gets_a_permission_error(
    claude_bin: Path, gateway: tuple[str, RequestLog], upstream: ToolUpstream, tmp_path: Path
) -> None:
    url, log = gateway
    (tmp_path / "home").mkdir()
    (tmp_path / "work").mkdir()
    upstream.script = ToolScript(text="answered for agent")
    env = cli_env(url, AGENT_KEY, tmp_path / "home")
    result = await run_claude(claude_bin, "say hello", env, tmp_path / "work")
    assert result.returncode == 0, result.stderr + result.stdout
    assert result.stdout.strip() == "answered for agent"
    served = len(upstream.requests)

    env = cli_env(url, ELSEWHERE_KEY, tmp_path / "home")
    refused = await run_claude(claude_bin, "say hello", env, tmp_path / "work")
    assert refused.returncode != 0
    assert "403" in refused.stdout + refused.stderr
    assert len(upstream.requests) == served  # nothing reached the model
    messages = [e for e in log.exchanges if e.path.startswith("/v1/messages")]
    assert {e.status for e in messages if e.headers.get("x-api-key") == ELSEWHERE_KEY} == {403}

    async with httpx.AsyncClient(base_url=url) as http:
        usage = (await http.get("/admin/usage", headers={"x-api-key": "k-ops"})).json()
    by_key = {row["key"]: row for row in usage["keys"]}
    assert by_key["agent"]["requests"] >= 1 and by_key["agent"]["errors"] == 0
    assert by_key["agent"]["output_tokens"] > 0
    assert by_key["elsewhere"]["requests"] == by_key["elsewhere"]["errors"] >= 1
