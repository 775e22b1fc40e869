"""Faults that need no network: loads that fail, and a bad config saved while serving.

- A load from a missing path or of corrupt weights: a clear error, the neuron stays
  healthy, accounts no memory for it and still loads a good model afterwards.
- `helexa serve` with the reconcile daemon: a models.toml saved with an error changes
  nothing (the pinned model stays loaded and serving) and the error, with its file,
  shows in /admin/fleet.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from helexa.neuron.config import NeuronConfig
from helexa.testing.neuron_proc import (
    TINY_MODEL_ID,
    InProcessNeuron,
    chat_body,
    eventually,
    free_port,
)
from tests.gateway.harness import run_gateway, write_configs
from tests.reliability.figures import record
from tests.reliability.procs import HelexaProcess


async def test_failed_loads_leave_the_neuron_healthy(tiny_model_dir: Path, tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt"
    shutil.copytree(tiny_model_dir, corrupt)
    for weights in corrupt.glob("*.safetensors"):
        weights.write_bytes(b"\x00garbage, not safetensors" * 64)
    config = NeuronConfig.model_validate(
        {"neuron": {"name": "a", "offline": True}, "devices": {"reserve_mb": 0}}
    )
    async with InProcessNeuron.start(config) as neuron, neuron.http() as http:
        cases = {"missing": tmp_path / "does-not-exist", "corrupt": corrupt}
        for name, path in cases.items():
            response = await http.post("/models/load", json={"model": name, "path": str(path)})
            assert response.status_code in (404, 500), response.text  # model_not_found, load_failed
            error = response.json()["error"]
            assert error["message"] and error["code"] in ("model_not_found", "load_failed")
            assert (await http.get("/health")).status_code == 200
        accounted = neuron.state.registry.memory_by_device()
        assert not any(accounted.values()), f"memory still accounted to failed loads: {accounted}"
        held = (await http.get("/models")).json()["models"]
        assert all(m["state"] == "failed" and m["memory_mb"] == 0 for m in held), held
        await neuron.load(TINY_MODEL_ID, tiny_model_dir)
        response = await http.post("/v1/chat/completions", json=chat_body(max_tokens=2))
        assert response.status_code == 200
    record("load_faults", failed_loads=len(cases))


@pytest.fixture
def serving(tiny_model_dir: Path, tmp_path: Path) -> Iterator[tuple[HelexaProcess, Path]]:
    neuron_port, gateway_port, metrics_port = free_port(), free_port(), free_port()
    (tmp_path / "neuron.toml").write_text(
        '[neuron]\nname = "a"\noffline = true\n[devices]\nreserve_mb = 0\n'
    )
    (tmp_path / "fleet.toml").write_text(
        textwrap.dedent(
            f"""
            [gateway]
            listen = "127.0.0.1:{gateway_port}"
            metrics_listen = "127.0.0.1:{metrics_port}"
            poll_interval = "0.5s"
            [reconcile]
            watch = true
            interval = "2s"
            auto_apply = "models"
            [[neurons]]
            name = "a"
            endpoint = "http://127.0.0.1:{neuron_port}"
            """
        )
    )
    models = tmp_path / "models.toml"
    models.write_text(
        f'[[models]]\nid = "{TINY_MODEL_ID}"\npath = "{tiny_model_dir}"\nvram_mb = 64\npin = true\n'
    )
    neuron = HelexaProcess(
        [
            "neuron",
            "--config",
            str(tmp_path / "neuron.toml"),
            "--listen",
            f"127.0.0.1:{neuron_port}",
        ],
        f"http://127.0.0.1:{neuron_port}",
        tmp_path / "neuron.log",
    )
    gateway = HelexaProcess(
        ["serve", "--fleet", str(tmp_path / "fleet.toml"), "--models", str(models)],
        f"http://127.0.0.1:{gateway_port}",
        tmp_path / "gateway.log",
    )
    with neuron, gateway:
        yield gateway, models


def wait_for(check: Callable[[], bool], within_s: float) -> None:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"condition not met within {within_s:g}s")


def test_bad_config_saved_while_serving_changes_nothing(
    serving: tuple[HelexaProcess, Path],
) -> None:
    gateway, models = serving

    def fleet() -> dict[str, Any]:
        data: dict[str, Any] = httpx.get(f"{gateway.url}/admin/fleet", timeout=5).json()
        return data

    def loaded() -> bool:
        return any(
            m["id"] == TINY_MODEL_ID and any(loc["state"] == "loaded" for loc in m["locations"])
            for m in fleet()["models"]
        )

    wait_for(loaded, 60)  # the reconcile daemon loads the pinned model
    models.write_text(models.read_text() + "\nunknown_key = 1\n[[models]]\nid = 5\n")
    wait_for(lambda: bool(fleet()["config"]["error"]), 30)
    assert "models.toml" in fleet()["config"]["error"]
    rounds = fleet()["reconcile"]["rounds"]
    wait_for(lambda: fleet()["reconcile"]["rounds"] >= rounds + 2, 30)  # two full resyncs later
    assert loaded(), "a bad save unloaded the pinned model"
    response = httpx.post(
        f"{gateway.url}/v1/chat/completions", json=chat_body(max_tokens=2), timeout=30
    )
    assert response.status_code == 200
    record("config_fault", bad_saves=1, unloaded=0)


TYPO_KEY = "typo-secret-0b7e5a"


def test_a_typod_key_saved_while_serving_is_never_echoed(
    serving: tuple[HelexaProcess, Path],
) -> None:
    """`api_keys = "KEY"` (a string, not a list): the error names the key, not its value."""
    gateway, models = serving
    fleet_toml = models.parent / "fleet.toml"

    def fleet() -> dict[str, Any]:
        data: dict[str, Any] = httpx.get(f"{gateway.url}/admin/fleet", timeout=5).json()
        return data

    wait_for(lambda: fleet()["reconcile"]["rounds"] >= 1, 60)
    text = fleet_toml.read_text().replace("[gateway]\n", f'[gateway]\napi_keys = "{TYPO_KEY}"\n')
    fleet_toml.write_text(text)
    wait_for(lambda: bool(fleet()["config"]["error"]), 30)
    shown = json.dumps(fleet())
    assert "api_keys" in fleet()["config"]["error"]
    assert TYPO_KEY not in shown
    assert TYPO_KEY not in gateway.log.read_text()
    record("config_fault", secret_echoed=0)


def test_config_check_never_echoes_a_bad_key_from_the_environment(tmp_path: Path) -> None:
    (tmp_path / "fleet.toml").write_text("")
    (tmp_path / "models.toml").write_text("")
    env = os.environ | {"HELEXA_GATEWAY__API_KEYS": TYPO_KEY}
    files = ["--fleet", str(tmp_path / "fleet.toml"), "--models", str(tmp_path / "models.toml")]
    done = subprocess.run(
        [sys.executable, "-m", "helexa", "config", "check", *files],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0
    assert "HELEXA_GATEWAY__API_KEYS" in done.stdout + done.stderr
    assert TYPO_KEY not in done.stdout + done.stderr


async def test_failed_loads_expire_from_the_neuron_and_the_gateway(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    """Any client may name any model: a failed one is shown, then forgotten everywhere."""
    config = NeuronConfig.model_validate(
        {
            "neuron": {"name": "a", "offline": True, "failed_load_ttl": "2s"},
            "devices": {"reserve_mb": 0},
        }
    )
    hostile_name = "../../etc/passwd"
    async with InProcessNeuron.start(config) as neuron, neuron.http() as http:
        gateway_config = write_configs(
            tmp_path,
            f'[[neurons]]\nname = "a"\nendpoint = "{neuron.url}"\n',
            f'[[models]]\nid = "{TINY_MODEL_ID}"\npath = "{tiny_model_dir}"\n',
        )
        async with run_gateway(gateway_config) as gateway:
            missing = str(tmp_path / "missing")
            response = await http.post(
                "/models/load", json={"model": hostile_name, "path": missing}
            )
            assert response.status_code == 404

            def in_metrics() -> bool:
                return hostile_name in gateway.gateway.metrics.render().decode()

            def listed() -> bool:
                state = gateway.gateway.fleet.neurons["a"]
                return hostile_name in state.models

            await eventually(lambda: listed() and in_metrics(), within_s=10)
            await eventually(lambda: not listed() and not in_metrics(), within_s=20)
            assert (await http.get("/models")).json()["models"] == []
