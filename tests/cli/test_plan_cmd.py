"""`helexa plan` against real neurons on loopback: exit codes, text, JSON, --out."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest

from helexa.cli import main
from helexa.testing.neuron_proc import free_port
from tests.reconcile.live import fleet_toml, in_process_neurons, model_toml, write_config


@pytest.fixture(autouse=True)
def _no_ambient_config(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("HELEXA_"):
            monkeypatch.delenv(name)


async def plan(*argv: str) -> int:
    return await asyncio.to_thread(main, ["plan", *argv])


async def test_plan_exits_2_with_changes_then_0_once_converged(
    tmp_path: Path, tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with in_process_neurons("a") as neurons:
        files = write_config(
            tmp_path,
            fleet_toml({"a": neurons["a"].url}),
            [model_toml("tiny/one", tiny_model_dir)],
        )
        assert await plan(*files.flags) == 2
        out = capsys.readouterr().out
        assert "Legend: + load/create   - unload/remove   ~ change   ↻ restart" in out
        assert "+ load tiny/one on a" in out
        assert "pinned, replica 1 of 1: fits in free memory on a" in out
        assert out.rstrip().endswith("Plan: 1 to load, 0 to unload, 0 to change.")

        await neurons["a"].load("tiny/one", tiny_model_dir, dtype="float32")
        assert await plan(*files.flags) == 0
        assert (
            capsys.readouterr().out.rstrip().endswith("No changes. The fleet matches models.toml.")
        )


async def test_json_and_out_save_the_same_plan(
    tmp_path: Path, tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with in_process_neurons("a") as neurons:
        files = write_config(
            tmp_path, fleet_toml({"a": neurons["a"].url}), [model_toml("tiny/one", tiny_model_dir)]
        )
        saved = tmp_path / "plan.json"
        assert await plan(*files.flags, "--json", "--out", str(saved)) == 2
        captured = capsys.readouterr()
        printed = json.loads(captured.out)
        assert printed == json.loads(saved.read_text())
        assert printed["summary"] == {
            "load": 1, "unload": 0, "change": 0, "restart": 0, "host": 0, "errors": 0,
        }  # fmt: skip
        assert [(a["kind"], a["neuron"], a["model"]) for a in printed["actions"]] == [
            ("load", "a", "tiny/one")
        ]
        assert f"Saved the plan to {saved}" in captured.err


async def test_an_impossible_placement_exits_1(
    tmp_path: Path, tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with in_process_neurons("a") as neurons:
        huge = model_toml("tiny/huge", tiny_model_dir).replace("vram_mb = 64", "vram_mb = 99999999")
        files = write_config(tmp_path, fleet_toml({"a": neurons["a"].url}), [huge])
        assert await plan(*files.flags) == 1
        out = capsys.readouterr().out
        assert "✗ tiny/huge: replica 1 of 1: no place for tiny/huge" in out
        assert "nothing will be applied" in out


async def test_an_unreachable_neuron_is_a_warning(
    tmp_path: Path, tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with in_process_neurons("a") as neurons:
        endpoints = {"a": neurons["a"].url, "gone": "http://127.0.0.1:9"}
        files = write_config(
            tmp_path, fleet_toml(endpoints), [model_toml("tiny/one", tiny_model_dir)]
        )
        assert await plan(*files.flags) == 2
        out = capsys.readouterr().out
        assert "! neuron gone is unreachable" in out
        assert "+ load tiny/one on a" in out


def test_a_broken_models_toml_exits_1_naming_the_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    files = write_config(
        tmp_path, fleet_toml({}), ['[[models]]\nid = "x"\npin = true\nreplicas = "two"\n']
    )
    assert main(["plan", *files.flags]) == 1
    assert f"{files.models}:4" in capsys.readouterr().err


def test_an_unreachable_ssh_host_is_a_plan_error_unless_hosts_are_skipped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    port = free_port()  # nothing listens: SSH and the neuron are both refused
    fleet = fleet_toml({}) + (
        f'[[neurons]]\nname = "beast"\nendpoint = "http://127.0.0.1:{port}"\n'
        f'ssh = "root@127.0.0.1:{port}"\ninstall = "pip"\n'
    )
    files = write_config(tmp_path, fleet, [])
    known_hosts = ["--known-hosts", str(tmp_path / "known_hosts")]
    assert main(["plan", *files.flags, *known_hosts]) == 1
    out = capsys.readouterr().out
    assert f"✗ host beast: root@127.0.0.1:{port}: connect: " in out
    assert main(["plan", *files.flags, *known_hosts, "--skip-hosts"]) == 0
    assert "✗ host beast" not in capsys.readouterr().out
