"""Running `codex exec` against a gateway on loopback, isolated from the machine's setup:
its own HOME and CODEX_HOME with the config.toml docs/clients.md gives."""

from __future__ import annotations

import os
from pathlib import Path

from tests.clients.cli import CliResult, run_cli

API_KEY_ENV = "HELEXA_API_KEY"


def codex_config(gateway_url: str, model: str) -> str:
    """docs/clients.md's config.toml (a test asserts the two agree), for one gateway."""
    return f'''model = "{model}"
model_provider = "helexa"
check_for_update_on_startup = false

[analytics]
enabled = false

[model_providers.helexa]
name = "helexa"
base_url = "{gateway_url}/v1"
wire_api = "responses"
env_key = "{API_KEY_ENV}"
request_max_retries = 0
stream_max_retries = 0
'''


def codex_home(home: Path, gateway_url: str, model: str) -> dict[str, str]:
    """Write HOME/.codex/config.toml; the environment to run Codex in: no OPENAI_* /
    CODEX_* from the outer environment, the key in the variable the config names."""
    codex_dir = home / ".codex"
    codex_dir.mkdir(parents=True, exist_ok=True)
    (codex_dir / "config.toml").write_text(codex_config(gateway_url, model))
    base = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "CODEX_"))}
    return base | {"HOME": str(home), "CODEX_HOME": str(codex_dir)}


async def run_codex(
    binary: Path, prompt: str, env: dict[str, str], cwd: Path, *args: str
) -> CliResult:
    """`codex exec ARGS... PROMPT`: stdout is the model's last message only."""
    return await run_cli([str(binary), "exec", "--skip-git-repo-check", *args, prompt], env, cwd)
