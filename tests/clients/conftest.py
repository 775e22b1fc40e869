"""Fixtures for the real-client tests: the Claude Code CLI, installed by the test setup.

scripts/system-deps.sh (run by `make test`) installs a pinned
@anthropic-ai/claude-code into .cache/npm. A missing binary fails the tests
(it never skips them): they are the proof that Claude Code works.
"""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CLAUDE_BIN = REPO / ".cache" / "npm" / "node_modules" / ".bin" / "claude"


@pytest.fixture(scope="session")
def claude_bin() -> Path:
    if not CLAUDE_BIN.exists():
        pytest.fail(f"{CLAUDE_BIN} is missing: run scripts/system-deps.sh (make test does)")
    return CLAUDE_BIN
