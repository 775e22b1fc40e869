"""`helexa status` against a real gateway in front of a real neuron (tiny model)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from helexa.cli import main
from helexa.config import load_config
from helexa.gateway.app import Gateway, build_app
from helexa.gateway.poller import PollSettings
from helexa.neuron.config import NeuronConfig
from helexa.testing.neuron_proc import InProcessNeuron, free_port, serve_in_process


async def test_status_shows_neurons_models_and_decisions(
    tmp_path: Path, tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    neuron_config = NeuronConfig.model_validate(
        {"neuron": {"name": "box", "offline": True}, "devices": {"reserve_mb": 0}}
    )
    async with InProcessNeuron.start(neuron_config) as neuron:
        (tmp_path / "fleet.toml").write_text(
            f'[[neurons]]\nname = "box"\nendpoint = "{neuron.url}"\n'
        )
        (tmp_path / "models.toml").write_text(
            f'[[models]]\nid = "m/tiny"\npath = "{tiny_model_dir}"\npin = true\n'
        )
        config = load_config(tmp_path / "fleet.toml", tmp_path / "models.toml")
        gateway = Gateway(config, poll=PollSettings(interval=0.2))
        async with serve_in_process(build_app(gateway)) as url:
            await gateway.loader.load(config.models.models[0])
            assert await asyncio.to_thread(main, ["status", "--gateway", url]) == 0
            table = capsys.readouterr().out
            assert await asyncio.to_thread(main, ["status", "--gateway", url, "--json"]) == 0
            as_json = json.loads(capsys.readouterr().out)
    assert "box" in table and "up" in table
    assert "m/tiny" in table and "box (loaded, 0)" in table and "yes" in table
    assert "load" in table and "recent decisions" in table
    assert as_json["models"][0]["id"] == "m/tiny"
    assert [d["kind"] for d in as_json["decisions"]] == ["load"]


def test_unreachable_gateway_is_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["status", "--gateway", f"http://127.0.0.1:{free_port()}"]) == 1
    assert "cannot read" in capsys.readouterr().err
