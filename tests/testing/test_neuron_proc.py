"""NeuronProcess: a real `helexa neuron` child process from a neuron.toml, sync and async."""

from __future__ import annotations

import signal
from pathlib import Path

import httpx
import pytest

from helexa.testing.neuron_proc import TINY_MODEL_ID, NeuronProcess


def _write_config(tmp_path: Path, model_dir: Path, token: str | None = None) -> Path:
    lines = ["[neuron]", 'name = "proc-test"', "max_in_flight = 2"]
    if token:
        (tmp_path / "token").write_text(token + "\n")
        lines.append('token_file = "token"')  # relative to the config file
    lines += [
        "[devices]",
        "reserve_mb = 0",
        "[[preload]]",
        f'model = "{TINY_MODEL_ID}"',
        f'path = "{model_dir}"',
    ]
    path = tmp_path / "neuron.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


async def test_async_neuron_process_serves_and_preloads(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    config = _write_config(tmp_path, tiny_model_dir, token="tok")
    async with NeuronProcess(config, token="tok", log_path=tmp_path / "neuron.log") as proc:
        async with httpx.AsyncClient(base_url=proc.url, headers=proc.headers) as http:
            assert (await http.get("/health")).json()["status"] == "ok"
            found = (await http.get("/discovery")).json()
            assert found["name"] == "proc-test"
            loaded = await http.post(
                "/models/load", json={"model": TINY_MODEL_ID, "path": str(tiny_model_dir)}
            )  # joins or repeats the preload: either way it answers loaded
            assert loaded.json()["state"] == "loaded"
            assert (
                await http.get("/models", headers={"Authorization": "Bearer x"})
            ).status_code == 401
        process = proc.process
    assert process is not None
    # uvicorn re-raises the SIGTERM it handled, after a graceful shutdown that unloads.
    assert process.returncode in (0, -signal.SIGTERM)
    assert f"unloaded {TINY_MODEL_ID}" in (tmp_path / "neuron.log").read_text()


def test_sync_neuron_process_and_bad_config(tmp_path: Path, tiny_model_dir: Path) -> None:
    with NeuronProcess(_write_config(tmp_path, tiny_model_dir)) as proc:
        assert httpx.get(f"{proc.url}/health").status_code == 200
    bad = tmp_path / "bad.toml"
    bad.write_text("[neuron]\nmax_inflight = 2\n")
    with pytest.raises(RuntimeError, match="exited with 1"), NeuronProcess(bad):
        pass
