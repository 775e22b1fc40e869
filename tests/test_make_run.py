"""`make run`: `helexa serve` with the shipped fleet.toml + models.toml, end to end.

The shipped files are copied with their ports moved to free ones (so a real
`make run` on this machine does not collide) and the model path made
absolute; everything else is as shipped.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from helexa.testing.neuron_proc import free_port

REPO = Path(__file__).resolve().parent.parent
READY_TIMEOUT_S = 300.0  # the real model loads in seconds; a busy test machine is slower
MODEL = "SmolLM2-135M-Instruct"  # what the shipped models.toml pins
EXIT_TIMEOUT_S = 30.0


def shipped_configs(tmp: Path, tiny_dir: Path, gguf: Path) -> tuple[Path, Path, int, int]:
    api, metrics, neuron = free_port(), free_port(), free_port()
    fleet = (REPO / "fleet.toml").read_text()
    fleet = fleet.replace(":31313", f":{api}").replace(":31314", f":{metrics}")
    fleet = fleet.replace(":13131", f":{neuron}")
    models = (REPO / "models.toml").read_text().replace(".cache/models/helexa-tiny", str(tiny_dir))
    models = models.replace(f".cache/models/smollm2/{gguf.name}", str(gguf))
    (tmp / "fleet.toml").write_text(fleet)
    (tmp / "models.toml").write_text(models)
    return tmp / "fleet.toml", tmp / "models.toml", api, metrics


def wait_for_model(client: httpx.Client, process: subprocess.Popen[bytes]) -> None:
    """Poll /v1/models until the pinned model is loaded (the serve banner comes first)."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        assert process.poll() is None, "helexa serve exited early"
        try:
            model = client.get(f"/v1/models/{MODEL}").json()
            if model.get("loaded"):
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    pytest.fail(f"{MODEL} was not loaded in time")


def test_serve_with_the_shipped_files_answers_the_readme_curl(
    tmp_path: Path, tiny_model_dir: Path, smollm2_gguf: Path
) -> None:
    fleet, models, port, metrics_port = shipped_configs(tmp_path, tiny_model_dir, smollm2_gguf)
    log = (tmp_path / "serve.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "helexa", "serve", "--fleet", str(fleet), "--models", str(models)],
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=300) as client:
            wait_for_model(client, process)
            children = psutil.Process(process.pid).children(recursive=True)
            assert children, "the local neuron is not a child of helexa serve"
            reply = client.post(
                "/v1/chat/completions",
                json=readme_curl_body(),
            )
            assert reply.status_code == 200, reply.text
            assert reply.json()["model"] == MODEL
            assert "Paris" in reply.json()["choices"][0]["message"]["content"]
            fleet_state = client.get("/admin/fleet").json()
            assert fleet_state["reconcile"]["rounds"] >= 1
            metrics = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics").text
            assert f'cortex_requests_total{{dialect="openai",model="{MODEL}"' in metrics
            assert "cortex_reconcile_runs_total" in metrics
        process.send_signal(signal.SIGINT)
        assert process.wait(EXIT_TIMEOUT_S) == 0
        _gone, alive = psutil.wait_procs(children, timeout=5)
        assert not alive, f"left behind: {alive}"
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        log.close()
    output = (tmp_path / "serve.log").read_text()
    assert f"export OPENAI_BASE_URL=http://127.0.0.1:{port}/v1" in output
    assert "curl " in output


def readme_curl_body() -> dict[str, Any]:
    """The JSON body of the README's curl example (the first `-d '...'` in it)."""
    readme = (REPO / "README.md").read_text()
    match = re.search(r"-d '(\{.*?\})'", readme, re.DOTALL)
    assert match, "the README has no curl -d '{...}' example"
    body: dict[str, Any] = json.loads(match.group(1))
    return body
