"""Running `claude -p` against a gateway on loopback, isolated from the machine's setup."""

from __future__ import annotations

import os
from pathlib import Path

from tests.clients.cli import CliResult, run_cli


def cli_env(gateway_url: str, api_key: str, home: Path) -> dict[str, str]:
    """The environment docs/clients.md tells users to set, and nothing of ours: no
    ANTHROPIC_* / CLAUDE_* from the outer environment, a fresh HOME."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "CLAUDE_"))}
    return base | {
        "HOME": str(home),
        "ANTHROPIC_BASE_URL": gateway_url,
        "ANTHROPIC_API_KEY": api_key,
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    }


async def run_claude(
    binary: Path, prompt: str, env: dict[str, str], cwd: Path, *args: str
) -> CliResult:
    """`claude -p PROMPT ARGS...`."""
    return await run_cli([str(binary), "-p", prompt, *args], env, cwd)
