"""The reconcile daemon wired into the gateway: metrics and config errors by its callbacks."""

from __future__ import annotations

import asyncio
from pathlib import Path

from helexa.protocol.neuron import ModelsList
from helexa.reconcile.daemon import ReconcileDaemon
from helexa.serve.reconcile import LocalRestarts, start_reconcile
from helexa.serve.supervisor import Supervisor
from tests.gateway.harness import run_gateway, write_configs
from tests.serve.test_supervisor import FAST, sleeper

# No file watcher: the test runs each round itself.
FLEET = '[reconcile]\nwatch = false\n[[neurons]]\nname = "a"\nendpoint = "http://127.0.0.1:9"\n'


async def rounds_done(daemon: ReconcileDaemon, count: int) -> None:
    async with asyncio.timeout(30):
        while daemon.rounds < count:
            await daemon.round_done.wait()


async def test_every_round_is_metered_and_config_errors_reach_the_gateway(
    tmp_path: Path,
) -> None:
    async with run_gateway(write_configs(tmp_path, FLEET, "")) as gw:
        daemon = start_reconcile(gw.gateway)
        metrics = gw.gateway.metrics
        await rounds_done(daemon, 1)
        # Rounds back to back: each one is counted, none lost between two waits.
        for _ in range(5):
            await daemon.reconcile_once()
        assert metrics.reconcile_runs.labels("ok")._value.get() == daemon.rounds
        assert metrics.reconcile_pending._value.get() == 0

        models = tmp_path / "models.toml"
        models.write_text('[[models]]\nid = "m"\nrepicas = 2\n')
        await daemon.reconcile_once()
        assert gw.gateway.config_error is not None
        assert f"{models}:3" in gw.gateway.config_error
        assert metrics.reconcile_runs.labels("config_error")._value.get() == 1

        models.write_text("")
        await daemon.reconcile_once()
        assert gw.gateway.config_error is None


async def test_local_restarts_replace_the_child_and_forget_what_it_held(tmp_path: Path) -> None:
    async with run_gateway(write_configs(tmp_path, FLEET, "")) as gw:
        gateway = gw.gateway
        neuron = gateway.fleet.neurons["a"]
        neuron.apply_models(ModelsList.model_validate({"models": [{"id": "m", "state": "loaded"}]}))
        neuron.record_success(0.0)
        supervisor = Supervisor(sleeper(), backoff=FAST)
        running = asyncio.create_task(supervisor.run())
        try:
            await supervisor.wait_started()
            first = supervisor.pid
            restarts = LocalRestarts(gateway, {"a": supervisor})
            assert restarts.can_restart("a") and not restarts.can_restart("b")
            await restarts.restart("a")
            await supervisor.wait_started(2)
            assert supervisor.pid not in (None, first)
        finally:
            await supervisor.stop()
            await running
        # Down and empty until it answers again: no request is routed to the new process.
        assert (neuron.healthy, neuron.starting, neuron.models) == (False, True, {})
        evicted = gateway.metrics.evictions.labels("m", "a", "defrag")._value.get()
        assert evicted == 1
