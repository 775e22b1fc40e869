"""A `local = true` neuron added to or removed from fleet.toml while `helexa serve` runs is
started or stopped without a restart."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import psutil

from helexa.testing.neuron_proc import free_port
from tests.cli.serve_harness import READY_TIMEOUT_S, Serve, running_serve, tiny_entry


def neuron_row(serve: Serve, name: str) -> dict[str, Any] | None:
    neurons = httpx.get(f"{serve.url}/admin/fleet", timeout=30).json()["neurons"]
    return next((n for n in neurons if n["name"] == name), None)


def listening(port: int) -> bool:
    """Whether a child of this test's serve listens on `port` (the neuron's process)."""
    return any(
        c.status == psutil.CONN_LISTEN and c.laddr.port == port
        for c in psutil.net_connections("tcp")
    )


def wait_until(condition: Any, what: str) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def test_local_neuron_added_and_removed_without_restart(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    with running_serve(tmp_path, tiny_entry("helexa/tiny", tiny_model_dir)) as serve:
        serve.wait_loaded(["helexa/tiny"])
        original = serve.fleet.read_text()
        before = {p.pid for p in psutil.Process(serve.process.pid).children(recursive=True)}
        port = free_port()
        serve.fleet.write_text(
            original + f'\n[[neurons]]\nname = "two"\nendpoint = "http://127.0.0.1:{port}"\n'
            "local = true\n"
        )
        wait_until(lambda: (neuron_row(serve, "two") or {}).get("healthy"), "two never came up")
        children = psutil.Process(serve.process.pid).children(recursive=True)
        assert {p.pid for p in children} - before, "no new child process for neuron two"
        assert listening(port)

        serve.fleet.write_text(original)
        wait_until(lambda: neuron_row(serve, "two") is None, "two is still in the fleet")
        wait_until(lambda: not listening(port), "neuron two's process still listens")
        assert serve.process.poll() is None  # serve itself never restarted
        assert "local neuron two in fleet.toml: starting it" in serve.output()
        assert "local neuron two removed from fleet.toml: stopping it" in serve.output()
