"""Upkeep as reconcile actions against a real neuron: idle unloads, pinned models loaded,
defrag restarts where this process can do them and a warning where it cannot."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from helexa.fleet.poller import FleetPoller
from helexa.fleet.state import FleetState
from helexa.reconcile.daemon import ReconcileDaemon
from helexa.reconcile.desired import desired_from_config
from helexa.testing.neuron_proc import InProcessNeuron
from tests.gateway.harness import RunningGateway, neuron_config, run_gateway, write_configs

HOUR = 3600.0


@pytest.fixture
async def neuron_a() -> AsyncIterator[InProcessNeuron]:
    async with InProcessNeuron.start(neuron_config("a")) as neuron:
        yield neuron


@pytest.fixture
async def gateway(
    tmp_path: Path, tiny_model_dir: Path, neuron_a: InProcessNeuron
) -> AsyncIterator[RunningGateway]:
    fleet = f"""
        [eviction]
        keep_alive = "30m"
        defrag_after_cycles = 1
        [reconcile]
        watch = false
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


def daemon_of(gw: RunningGateway) -> ReconcileDaemon:
    g = gw.gateway
    return ReconcileDaemon(
        g.config.fleet_path,
        g.config.models_path,
        g.fleet,
        g.poller,
        g.client,
        config=g.config,
        neuron_locks=g.action_locks,
    )


async def test_pinned_loaded_then_idle_ones_unloaded_and_defrag_reported(
    gateway: RunningGateway, neuron_a: InProcessNeuron, tiny_model_dir: Path
) -> None:
    daemon = daemon_of(gateway)
    await daemon.reconcile_once()
    assert held(gateway) == {"m/pinned"}
    await daemon.reconcile_once()  # already there: no second load
    assert neuron_a.loader.calls == ["m/pinned"]

    for model in ("m/casual", "m/forever"):
        await neuron_a.load(model, tiny_model_dir)
    await gateway.gateway.poller.poll_neuron("a")
    plan = await daemon.reconcile_once()  # nothing idle for 30 minutes yet
    assert plan is not None and plan.actions == ()
    assert held(gateway) == {"m/pinned", "m/casual", "m/forever"}

    daemon.clock = lambda: time.time() + HOUR
    plan = await daemon.reconcile_once()
    assert plan is not None
    (unload,) = plan.actions
    assert (unload.kind, unload.model, unload.cause) == ("unload", "m/casual", "keep_alive")
    assert unload.reason.startswith("idle ") and "keep_alive 30m" in unload.reason
    assert held(gateway) == {"m/pinned", "m/forever"}
    assert gateway.decisions("keep_alive") == ["m/casual"]
    (logged,) = [d for d in gateway.gateway.fleet.decisions if d.kind == "keep_alive"]
    assert logged.reason == f"reconcile: {unload.reason}"

    # One unload = one cycle >= defrag_after_cycles; "a" is not this process's child and
    # not SSH-managed: the plan says so, and nothing is restarted.
    plan = await daemon.reconcile_once()
    assert plan is not None and plan.actions == ()
    assert plan.warnings == (
        "neuron a: 1 load/unload cycles >= defrag_after_cycles 1, idle; "
        "restart it to defragment (not local)",
    )
    assert held(gateway) == {"m/pinned", "m/forever"}


class Restarts:
    """Restarts neuron "a" the way a supervisor does: the process goes, a fresh one answers."""

    def __init__(self, neuron: InProcessNeuron) -> None:
        self.neuron = neuron
        self.restarted: list[str] = []

    def can_restart(self, name: str) -> bool:
        return name == "a"

    async def restart(self, name: str) -> None:
        self.restarted.append(name)
        async with self.neuron.http() as client:
            for model in [m.id for m in self.neuron.state.registry.infos()]:
                response = await client.post("/models/unload", json={"model": model})
                assert response.status_code == 200, response.text
        self.neuron.state.registry.cycles = 0  # a fresh process has done no cycles


async def test_a_local_neuron_due_a_defrag_is_restarted_by_a_plan_action(
    gateway: RunningGateway, neuron_a: InProcessNeuron, tiny_model_dir: Path
) -> None:
    g = gateway.gateway
    restarts = Restarts(neuron_a)
    daemon = ReconcileDaemon(
        g.config.fleet_path, g.config.models_path, g.fleet, g.poller, g.client,
        config=g.config, neuron_locks=g.action_locks, restarts=restarts,
    )  # fmt: skip
    await neuron_a.load("m/casual", tiny_model_dir)
    async with neuron_a.http() as client:  # one load/unload cycle
        assert (await client.post("/models/unload", json={"model": "m/casual"})).is_success
    await g.poller.poll_neuron("a")
    plan = await daemon.reconcile_once()
    assert plan is not None
    # The pinned load is planned first; a neuron the plan changes is not restarted now.
    assert [(a.kind, a.cause) for a in plan.actions] == [("load", "pinned")]
    plan = await daemon.reconcile_once()
    assert plan is not None
    (restart,) = plan.actions
    assert (restart.kind, restart.neuron, restart.model, restart.cause) == (
        "restart", "a", "*", "defrag",
    )  # fmt: skip
    assert restarts.restarted == ["a"]
    assert daemon.last_report is not None and daemon.last_report.ok
    assert gateway.decisions("defrag") == ["*"]


def test_an_ssh_managed_neuron_due_a_defrag_is_restarted_by_its_host_plan(
    tmp_path: Path,
) -> None:
    fleet = """
        [eviction]
        defrag_after_cycles = 3
        [[neurons]]
        name = "far"
        endpoint = "http://127.0.0.1:9"
        ssh = "root@127.0.0.1"
        [[neurons]]
        name = "near"
        endpoint = "http://127.0.0.1:8"
    """
    config = write_configs(tmp_path, fleet, "")
    state = FleetState()
    poller = FleetPoller(state, config.fleet.neurons)
    for neuron in state.neurons.values():  # both up, idle, due
        neuron.record_success(0.0)
        neuron.cycles = 3
    daemon = ReconcileDaemon(
        config.fleet_path, config.models_path, state, poller, None,  # type: ignore[arg-type]
        config=config,
    )  # fmt: skip
    by_host = daemon._defrag_by_host(desired_from_config(config), [])
    assert by_host == {"far": "defrag: 3 load/unload cycles >= defrag_after_cycles 3, idle"}
