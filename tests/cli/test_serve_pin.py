"""`helexa pin` against a running `helexa serve`: a typo changes nothing, and a model removed
from models.toml disappears from every view (its failed load included)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from tests.cli.serve_harness import READY_TIMEOUT_S, Serve, running_serve, tiny_entry

MISSING = "example/not-on-this-machine"  # a hub id; the test runs offline, so its load fails


def helexa(serve: Serve, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "helexa", *args, "--models", str(serve.models)],
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        timeout=60,
    )


def rows(serve: Serve, model_id: str) -> list[Any]:
    """Every place /admin/fleet shows `model_id`: its model row and neuron entries."""
    fleet = httpx.get(f"{serve.url}/admin/fleet", timeout=30).json()
    found: list[Any] = [m for m in fleet["models"] if m["id"] == model_id]
    for neuron in fleet["neurons"]:
        found += [m for m in neuron["models"] if m.get("model") == model_id]
    return found


def wait_until(condition: Any, what: str) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def test_pin_typo_changes_nothing_and_removed_models_leave_every_view(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    with running_serve(tmp_path, tiny_entry("helexa/tiny", tiny_model_dir)) as serve:
        serve.wait_loaded(["helexa/tiny"])
        original = serve.models.read_text()

        typo = helexa(serve, "pin", "helexa/tinny")
        assert typo.returncode == 1
        assert "did you mean 'helexa/tiny'?" in typo.stderr and "--add" in typo.stderr
        assert serve.models.read_text() == original

        added = helexa(serve, "pin", MISSING, "--add")
        assert added.returncode == 0, added.stderr
        wait_until(
            lambda: any(
                loc["state"] == "failed"
                for row in rows(serve, MISSING)
                for loc in row.get("locations", [])
            ),
            "the added hub model did not fail to load",
        )

        serve.models.write_text(original)  # the operator takes it out again
        wait_until(lambda: not rows(serve, MISSING), f"{MISSING} is still shown")
        status = subprocess.run(
            [sys.executable, "-m", "helexa", "status", "--gateway", serve.url],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        assert MISSING not in status.stdout
