"""Housekeeping against a real neuron: idle unloads, pinned models loaded, defrag due."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from helexa.gateway.housekeeping import Housekeeping
from helexa.reconcile.daemon import ReconcileDaemon
from helexa.testing.neuron_proc import InProcessNeuron
from tests.gateway.harness import RunningGateway, run_gateway, write_configs

HOUR = 3600.0


@pytest.fixture
async def gateway(
    tmp_path: Path, tiny_model_dir: Path, neuron_a: InProcessNeuron
) -> AsyncIterator[RunningGateway]:
    fleet = f"""
        [eviction]
        keep_alive = "30m"
        defrag_after_cycles = 1
        [[neurons]]
        name = "a"
        endpoint = "{neuron_a.url}"
    """
    models = f"""
        [[models]]
        id = "m/pinned"
        path = "{tiny_model_dir}"
        pin = true
        [[models]]
        id = "m/casual"
        path = "{tiny_model_dir}"
        [[models]]
        id = "m/forever"
        path = "{tiny_model_dir}"
        keep_alive = "forever"
    """
    async with run_gateway(write_configs(tmp_path, fleet, models)) as gw:
        yield gw


def held(gw: RunningGateway) -> set[str]:
    return {m.model_id for m in gw.gateway.fleet.neurons["a"].models.values()}


async def test_pinned_loaded_then_idle_ones_unloaded_and_defrag_reported(
    gateway: RunningGateway, neuron_a: InProcessNeuron, tiny_model_dir: Path
) -> None:
    chores = Housekeeping(gateway.gateway, clock=time.time)
    await chores.ensure_pinned()
    assert held(gateway) == {"m/pinned"}
    await chores.ensure_pinned()  # already there: no second load
    assert neuron_a.loader.calls == ["m/pinned"]

    for model in ("m/casual", "m/forever"):
        await neuron_a.load(model, tiny_model_dir)
    await gateway.gateway.poller.poll_neuron("a")
    await chores.unload_idle()  # nothing idle for 30 minutes yet
    assert held(gateway) == {"m/pinned", "m/casual", "m/forever"}

    an_hour_later = Housekeeping(gateway.gateway, clock=lambda: time.time() + HOUR)
    await an_hour_later.unload_idle()
    assert held(gateway) == {"m/pinned", "m/forever"}
    assert gateway.decisions("keep_alive") == ["m/casual"]

    # One unload = one cycle >= defrag_after_cycles; "a" is not local: reported once.
    await an_hour_later.defrag()
    await an_hour_later.defrag()
    assert gateway.decisions("defrag") == ["*"]
    assert held(gateway) == {"m/pinned", "m/forever"}


async def test_defrag_of_an_ssh_managed_neuron_asks_the_reconciler_for_a_restart(
    tmp_path: Path, tiny_model_dir: Path, neuron_a: InProcessNeuron
) -> None:
    fleet = f"""
        [eviction]
        keep_alive = "30m"
        defrag_after_cycles = 1
        [[neurons]]
        name = "a"
        endpoint = "{neuron_a.url}"
        ssh = "root@127.0.0.1"
    """
    models = f"""
        [[models]]
        id = "m/casual"
        path = "{tiny_model_dir}"
    """
    async with run_gateway(write_configs(tmp_path, fleet, models)) as running:
        gw = running.gateway
        daemon = ReconcileDaemon(
            gw.config.fleet_path, gw.config.models_path, gw.fleet, gw.poller, gw.client,
            config=gw.config,
        )  # fmt: skip
        gw.reconcile = daemon
        chores = Housekeeping(gw, clock=lambda: time.time() + HOUR)
        await chores.defrag()
        assert daemon.requested_restarts == {}  # no cycles yet: nothing due

        await neuron_a.load("m/casual", tiny_model_dir)
        await gw.poller.poll_neuron("a")
        await chores.unload_idle()  # one load/unload cycle >= defrag_after_cycles 1
        await chores.defrag()
        await chores.defrag()
        assert daemon.requested_restarts == {
            "a": "defrag: 1 load/unload cycles >= defrag_after_cycles 1, idle"
        }
        assert running.decisions("defrag") == ["*"]  # said once
        (said,) = [d for d in gw.fleet.decisions if d.kind == "defrag"]
        assert said.reason.endswith("; restart planned by the reconciler")
