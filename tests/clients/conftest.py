"""Fixtures for the real-client tests: the Claude Code and Codex CLIs, installed by the
test setup.

scripts/system-deps.sh (run by `make test`) installs a pinned
@anthropic-ai/claude-code and @openai/codex into .cache/npm. A missing binary
fails the tests (it never skips them): they are the proof that the clients work.
"""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
NPM_BIN = REPO / ".cache" / "npm" / "node_modules" / ".bin"
CLAUDE_BIN = NPM_BIN / "claude"
CODEX_BIN = NPM_BIN / "codex"


def _installed(binary: Path) -> Path:
    if not binary.exists():
        pytest.fail(f"{binary} is missing: run scripts/system-deps.sh (make test does)")
    return binary


@pytest.fixture(scope="session")
def claude_bin() -> Path:
    return _installed(CLAUDE_BIN)


@pytest.fixture(scope="session")
def codex_bin() -> Path:
    return _installed(CODEX_BIN)
