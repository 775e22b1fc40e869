"""A live two-neuron fleet for the operator views (`helexa status`, `/ui`).

Neuron "box" is a real in-process neuron holding the tiny model (loaded by the
reconcile daemon because models.toml pins it); neuron "gone" points at a port
nobody listens on, so it is down. A second, unpinned model ("m/spare") is in
models.toml but loaded nowhere, so a test can cold-load it through the API.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

from helexa.serve.reconcile import start_reconcile
from helexa.testing.neuron_proc import InProcessNeuron, eventually, free_port
from tests.gateway.harness import RunningGateway, neuron_config, run_gateway, write_configs

PINNED_MODEL = "m/tiny"
SPARE_MODEL = "m/spare"
SETTLE_S = 60.0


@contextlib.asynccontextmanager
async def two_neuron_fleet(
    directory: Path, model_dir: Path, api_keys: Sequence[str] = ()
) -> AsyncIterator[RunningGateway]:
    """The fleet above, settled: the pinned model loaded, both neurons polled."""
    keys = ", ".join(f'"{k}"' for k in api_keys)
    async with InProcessNeuron.start(neuron_config("box", max_memory_mb=4096)) as box:
        config = write_configs(
            directory,
            f"""
            [gateway]
            api_keys = [{keys}]
            [reconcile]
            watch = false
            [[neurons]]
            name = "box"
            endpoint = "{box.url}"
            [[neurons]]
            name = "gone"
            endpoint = "http://127.0.0.1:{free_port()}"
            """,
            f"""
            [[models]]
            id = "{PINNED_MODEL}"
            path = "{model_dir}"
            pin = true
            [[models]]
            id = "{SPARE_MODEL}"
            path = "{model_dir}"
            """,
        )
        async with run_gateway(config) as running:
            start_reconcile(running.gateway)
            fleet = running.gateway.fleet
            await eventually(
                lambda: (
                    "gone" in fleet.neurons
                    and fleet.neurons["gone"].consecutive_failures >= 2
                    and PINNED_MODEL in fleet.neurons["box"].models
                    and fleet.neurons["box"].models[PINNED_MODEL].state == "loaded"
                ),
                within_s=SETTLE_S,
                poll_s=0.05,
            )
            yield running
