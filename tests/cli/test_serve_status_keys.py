"""`helexa status` against a `helexa serve` with API keys: the key from the environment or a
file (never only the command line, which `ps` shows), and a 401 that says how to give it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli.serve_harness import Serve, running_serve, tiny_entry

KEY = "sk-status-test"


def status(
    serve: Serve, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k != "HELEXA_API_KEY"}
    return subprocess.run(
        [sys.executable, "-m", "helexa", "status", "--gateway", serve.url, "--json", *args],
        capture_output=True,
        text=True,
        env={**base, **(env or {})},
        timeout=60,
    )


@pytest.fixture(scope="module")
def serve(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> object:
    workdir = tmp_path_factory.mktemp("keys")
    models = tiny_entry("helexa/tiny", tiny_model_dir)
    with running_serve(workdir, models, gateway_extra=f'api_keys = ["{KEY}"]') as running:
        running.wait_loaded(["helexa/tiny"], headers={"Authorization": f"Bearer {KEY}"})
        yield running


def test_no_key_says_which_variable_or_flag_gives_it(serve: Serve) -> None:
    result = status(serve)
    assert result.returncode == 1
    assert "needs an API key" in result.stderr
    assert "$HELEXA_API_KEY" in result.stderr and "--api-key-file" in result.stderr
    assert "mozilla" not in result.stderr.lower()


def test_key_from_the_environment(serve: Serve) -> None:
    result = status(serve, env={"HELEXA_API_KEY": KEY})
    assert result.returncode == 0, result.stderr
    assert '"neurons"' in result.stdout


def test_key_from_a_file(serve: Serve, tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text(KEY + "\n")
    result = status(serve, "--api-key-file", str(key_file))
    assert result.returncode == 0, result.stderr
    key_file.write_text("sk-wrong\n")
    result = status(serve, "--api-key-file", str(key_file))
    assert result.returncode == 1
    assert f"refused the API key from --api-key-file {key_file}" in result.stderr
    result = status(serve, "--api-key-file", str(tmp_path / "missing"))
    assert result.returncode == 2 and "cannot read --api-key-file" in result.stderr
