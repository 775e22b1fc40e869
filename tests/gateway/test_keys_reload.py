"""keys.toml saved while `helexa serve` runs: the reconcile daemon hands over the new keys."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from helexa.config.keys import hash_key
from helexa.config.keys_edit import add_key, revoke_key
from helexa.reconcile.daemon import ReconcileDaemon
from helexa.serve.reconcile import start_reconcile
from helexa.testing.neuron_proc import InProcessNeuron
from tests.gateway.harness import RunningGateway, run_gateway, write_configs

TINY = "helexa/tiny"
HI: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hi"}]


@pytest.fixture
async def served(
    tmp_path: Path, tiny_model_dir: Path, neuron_a: InProcessNeuron
) -> AsyncIterator[tuple[RunningGateway, ReconcileDaemon]]:
    await neuron_a.load(TINY, tiny_model_dir)
    fleet = f'[[neurons]]\nname = "a"\nendpoint = "{neuron_a.url}"\n'
    models = f'[[models]]\nid = "{TINY}"\npath = "{tiny_model_dir}"\n'
    (tmp_path / "keys.toml").write_text(
        f'# keys\n[[keys]]\nname = "alice"\nsha256 = "{hash_key("k-alice")}"\n'
    )
    async with run_gateway(write_configs(tmp_path, fleet, models)) as gw:
        daemon = start_reconcile(gw.gateway)
        await until(daemon, lambda: daemon.rounds > 0)
        yield gw, daemon


async def until(daemon: ReconcileDaemon, condition: Callable[[], bool]) -> None:
    """Wait, round by round, until `condition` holds (the daemon runs one per save)."""
    async with asyncio.timeout(30):
        while not condition():
            await daemon.round_done.wait()


async def ok(gw: RunningGateway, key: str) -> bool:
    try:
        await gw.openai(api_key=key).chat.completions.create(model=TINY, messages=HI, max_tokens=2)
    except openai.AuthenticationError:
        return False
    return True


async def test_saved_changes_apply_without_a_restart(
    served: tuple[RunningGateway, ReconcileDaemon], tmp_path: Path
) -> None:
    gw, daemon = served
    keys = tmp_path / "keys.toml"
    assert await ok(gw, "k-alice")
    assert not await ok(gw, "k-bob")

    add_key(keys, {"name": "bob", "sha256": hash_key("k-bob"), "requests_per_minute": 1})
    await until(daemon, lambda: gw.gateway.keyring.lookup("k-bob") is not None)
    assert await ok(gw, "k-bob")

    revoke_key(keys, "alice")
    await until(daemon, lambda: gw.gateway.keyring.lookup("k-alice") is None)
    assert not await ok(gw, "k-alice")
    assert "k-alice" not in keys.read_text() and "k-bob" not in keys.read_text()


async def test_a_broken_file_keeps_the_last_good_keys_and_says_where(
    served: tuple[RunningGateway, ReconcileDaemon], tmp_path: Path
) -> None:
    gw, daemon = served
    keys = tmp_path / "keys.toml"
    keys.write_text(keys.read_text() + "requests_per_minut = 5\n")
    await until(daemon, lambda: daemon.config_error is not None)
    assert gw.gateway.keyring.lookup("k-alice") is not None
    assert await ok(gw, "k-alice")
    error = str(daemon.config_error)
    assert f"{keys}:5: keys[0].requests_per_minut" in error and "requests_per_minut" in error
