"""`helexa apply` against real neurons on loopback: converge, idempotence, stale plans, lock."""

from __future__ import annotations

import asyncio
import io
import os
import sys
from pathlib import Path

import pytest

from helexa.cli import main
from helexa.reconcile.lock import lock_path_for, read_holder
from helexa.testing.neuron_proc import eventually
from tests.reconcile.live import (
    ConfigFiles,
    fleet_toml,
    in_process_neurons,
    loaded,
    model_toml,
    write_config,
)


@pytest.fixture(autouse=True)
def _no_ambient_config(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("HELEXA_"):
            monkeypatch.delenv(name)


async def cli(*argv: str) -> int:
    return await asyncio.to_thread(main, list(argv))


def two_models(tmp_path: Path, tiny: Path, url: str) -> ConfigFiles:
    return write_config(
        tmp_path,
        fleet_toml({"a": url}),
        [model_toml("tiny/one", tiny), model_toml("tiny/two", tiny)],
    )


async def test_plan_apply_plan_apply_converges_once(
    tmp_path: Path, tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with in_process_neurons("a") as neurons:
        files = two_models(tmp_path, tiny_model_dir, neurons["a"].url)
        assert await cli("plan", *files.flags) == 2
        capsys.readouterr()

        assert await cli("apply", "--yes", *files.flags) == 0
        out = capsys.readouterr().out
        assert "Plan: 2 to load, 0 to unload, 0 to change." in out
        assert "a1 + load tiny/one on a: done in" in out
        assert "Apply complete: 2 done, 0 already in place." in out
        assert loaded(neurons["a"]) == {"tiny/one", "tiny/two"}

        assert await cli("plan", *files.flags) == 0
        assert await cli("apply", "--yes", *files.flags) == 0
        out = capsys.readouterr().out
        assert out.count("No changes. The fleet matches models.toml.") == 2
        assert "Apply complete" not in out
        assert neurons["a"].loader.calls == ["tiny/one", "tiny/two"]  # loaded once each


async def test_a_removed_model_is_unloaded_by_apply(
    tmp_path: Path, tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with in_process_neurons("a") as neurons:
        files = two_models(tmp_path, tiny_model_dir, neurons["a"].url)
        assert await cli("apply", "--yes", *files.flags) == 0
        files.models.write_text(model_toml("tiny/one", tiny_model_dir))
        assert await cli("apply", "--yes", *files.flags) == 0
        out = capsys.readouterr().out
        assert "- unload tiny/two from a (destructive)" in out
        assert loaded(neurons["a"]) == {"tiny/one"}


async def test_a_saved_plan_is_refused_once_the_files_or_the_fleet_moved(
    tmp_path: Path, tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with in_process_neurons("a") as neurons:
        files = write_config(
            tmp_path, fleet_toml({"a": neurons["a"].url}), [model_toml("tiny/one", tiny_model_dir)]
        )
        saved = tmp_path / "plan.json"
        assert await cli("plan", *files.flags, "--out", str(saved)) == 2

        # The fleet moved: someone loaded a model by hand.
        await neurons["a"].load("tiny/other", tiny_model_dir)
        assert await cli("apply", str(saved), "--yes", *files.flags) == 1
        assert "Refusing the saved plan: the fleet changed since it was made" in (
            capsys.readouterr().err
        )

        # A fresh plan, then models.toml changes.
        assert await cli("plan", *files.flags, "--out", str(saved)) == 2
        files.models.write_text(model_toml("tiny/one", tiny_model_dir, replicas=1, priority=5))
        assert await cli("apply", str(saved), "--yes", *files.flags) == 1
        assert "fleet.toml or models.toml changed since it was made" in capsys.readouterr().err
        assert loaded(neurons["a"]) == {"tiny/other"}  # nothing applied

        # Unchanged since: applied as saved (the hand-loaded model is not in models.toml).
        assert await cli("plan", *files.flags, "--out", str(saved)) == 2
        assert await cli("apply", str(saved), "--yes", *files.flags) == 0
        assert loaded(neurons["a"]) == {"tiny/one"}


async def test_apply_asks_and_only_yes_applies(
    tmp_path: Path,
    tiny_model_dir: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with in_process_neurons("a") as neurons:
        files = write_config(
            tmp_path, fleet_toml({"a": neurons["a"].url}), [model_toml("tiny/one", tiny_model_dir)]
        )
        monkeypatch.setattr(sys, "stdin", io.StringIO("y\n"))
        assert await cli("apply", *files.flags) == 1
        assert "Apply cancelled." in capsys.readouterr().out
        assert loaded(neurons["a"]) == set()

        monkeypatch.setattr(sys, "stdin", io.StringIO("yes\n"))
        assert await cli("apply", *files.flags) == 0
        assert loaded(neurons["a"]) == {"tiny/one"}


async def test_two_concurrent_applies_one_refuses_naming_the_holder(
    tmp_path: Path,
    tiny_model_dir: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with in_process_neurons("a") as neurons:
        files = write_config(
            tmp_path, fleet_toml({"a": neurons["a"].url}), [model_toml("tiny/one", tiny_model_dir)]
        )
        # The first apply holds the lock while it waits at its prompt for our answer.
        read_end, write_end = os.pipe()
        stdin = os.fdopen(read_end, encoding="utf-8")
        monkeypatch.setattr(sys, "stdin", stdin)
        first = asyncio.create_task(cli("apply", *files.flags))
        lock = lock_path_for(files.models)
        await eventually(lambda: read_holder(lock) is not None, within_s=30)

        assert await cli("apply", "--yes", *files.flags) == 1
        err = capsys.readouterr().err
        assert f"Refusing to apply: another writer holds {lock}: apply (pid {os.getpid()}" in err
        assert loaded(neurons["a"]) == set()

        os.write(write_end, b"yes\n")
        os.close(write_end)
        assert await first == 0
        stdin.close()
        assert loaded(neurons["a"]) == {"tiny/one"}
        assert read_holder(lock) is None  # released


async def test_a_dtype_change_is_applied_as_a_reload(
    tmp_path: Path, tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with in_process_neurons("a") as neurons:
        files = write_config(
            tmp_path, fleet_toml({"a": neurons["a"].url}), [model_toml("tiny/one", tiny_model_dir)]
        )
        assert await cli("apply", "--yes", *files.flags) == 0
        files.models.write_text(
            model_toml("tiny/one", tiny_model_dir).replace('"float32"', '"bfloat16"')
        )
        capsys.readouterr()
        assert await cli("apply", "--yes", *files.flags) == 0
        out = capsys.readouterr().out
        assert "~ reload tiny/one on a" in out
        assert "dtype float32 -> bfloat16 in models.toml" in out
        assert "Plan: 0 to load, 0 to unload, 1 to change." in out
        [info] = neurons["a"].state.registry.infos()
        assert (info.state, info.dtype) == ("loaded", "bfloat16")
        assert await cli("plan", *files.flags) == 0


async def test_a_path_change_is_applied_as_a_reload(
    tmp_path: Path, tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    elsewhere = tmp_path / "tiny-copy"
    elsewhere.symlink_to(tiny_model_dir, target_is_directory=True)
    async with in_process_neurons("a") as neurons:
        files = write_config(
            tmp_path, fleet_toml({"a": neurons["a"].url}), [model_toml("tiny/one", tiny_model_dir)]
        )
        assert await cli("apply", "--yes", *files.flags) == 0
        files.models.write_text(model_toml("tiny/one", elsewhere))
        capsys.readouterr()
        assert await cli("apply", "--yes", *files.flags) == 0
        out = capsys.readouterr().out
        assert "~ reload tiny/one on a" in out
        assert f"path {tiny_model_dir} -> {elsewhere} in models.toml" in out
        [info] = neurons["a"].state.registry.infos()
        assert (info.state, info.path, info.revision) == ("loaded", str(elsewhere), "main")
        assert await cli("plan", *files.flags) == 0
