"""Start-up of `helexa serve`: requests are held until the local neuron answers, not refused."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import httpx

from tests.cli.serve_harness import READY_TIMEOUT_S, running_serve, tiny_entry

BANNER = "export OPENAI_BASE_URL="


def wait_for_port(port: int) -> None:
    """Until the gateway's socket accepts: its first moment, before the neuron answered."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.01)
    raise AssertionError("the gateway never listened")


def test_requests_at_start_up_are_held_not_refused(tmp_path: Path, tiny_model_dir: Path) -> None:
    with running_serve(tmp_path, tiny_entry("helexa/tiny", tiny_model_dir)) as serve:
        wait_for_port(serve.port)
        neurons = httpx.get(f"{serve.url}/admin/fleet", timeout=30).json()["neurons"]
        # Not "down" while its process comes up: up already, or starting.
        assert neurons[0]["healthy"] or neurons[0]["starting"] is True, neurons
        reply = httpx.post(
            f"{serve.url}/v1/chat/completions",
            json={
                "model": "helexa/tiny",
                "messages": [{"role": "user", "content": "hi"}],
                "max_tokens": 3,
            },
            timeout=READY_TIMEOUT_S,
        )
        assert reply.status_code == 200, reply.text
        serve.wait_for_line(BANNER)
        output = serve.output()
        # The banner comes after the local neuron's first answer.
        assert output.index("neuron local is up") < output.index(BANNER)
