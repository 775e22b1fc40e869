"""Three neurons and a gateway, each in its own network namespace (helexa.testing.netns).

Every HTTP call a test makes runs on a thread inside the gateway's namespace
(`NetFleet.call`), so the test reaches the fleet exactly as a client on that
network would; the processes are real `helexa neuron` / `helexa serve`.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import textwrap
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx

from helexa.testing.netns import NetnsFleet
from helexa.testing.neuron_proc import TINY_MODEL_ID
from tests.reliability.procs import HelexaProcess

T = TypeVar("T")
NEURONS = ("n1", "n2", "n3")
NEURON_PORT = 13131
GATEWAY_PORT = 31313
POLL_INTERVAL_S = 0.5
UNHEALTHY_AFTER = 2
CONNECT_TIMEOUT_S = 1.0
RESYNC_S = 2


@dataclass
class NetFleet:
    net: NetnsFleet
    neurons: dict[str, HelexaProcess]
    gateway: HelexaProcess
    client_threads: ThreadPoolExecutor
    model_dir: Path
    directory: Path

    async def call(self, fn: Callable[[], T]) -> T:
        """Run blocking client code on a thread inside the gateway's namespace."""
        return await asyncio.get_running_loop().run_in_executor(self.client_threads, fn)

    def neuron_url(self, name: str) -> str:
        return self.net.host(name).url(NEURON_PORT)

    def load(self, name: str) -> dict[str, Any]:
        body = {"model": TINY_MODEL_ID, "path": str(self.model_dir)}
        response = httpx.post(
            f"{self.neuron_url(name)}/models/load", json=body, headers=self.auth(), timeout=120
        )
        response.raise_for_status()
        loaded: dict[str, Any] = response.json()
        return loaded

    def neuron_models(self, name: str) -> dict[str, dict[str, Any]]:
        response = httpx.get(f"{self.neuron_url(name)}/models", headers=self.auth(), timeout=5)
        return {m["id"]: m for m in response.json()["models"]}

    def fleet(self) -> dict[str, Any]:
        data: dict[str, Any] = httpx.get(f"{self.gateway.url}/admin/fleet", timeout=5).json()
        return data

    def healthy(self) -> dict[str, bool]:
        return {n["name"]: n["healthy"] for n in self.fleet()["neurons"]}

    def holders(self) -> set[str]:
        """Neurons the gateway sees holding the tiny model, loaded and healthy."""
        fleet = self.fleet()
        up = {n["name"] for n in fleet["neurons"] if n["healthy"]}
        return {
            loc["neuron"]
            for m in fleet["models"]
            if m["id"] == TINY_MODEL_ID
            for loc in m["locations"]
            if loc["state"] == "loaded" and loc["neuron"] in up
        }

    def restart_neuron(self, name: str) -> None:
        self.neurons[name].stop()
        self.neurons[name] = self._neuron(name).start()

    def restart_gateway(self) -> None:
        self.gateway.stop()
        self.gateway = self._gateway().start()

    def _probe(self, url: str) -> bool:
        def check() -> bool:
            with contextlib.suppress(httpx.HTTPError):
                return httpx.get(f"{url}/health", timeout=1.0).status_code == 200
            return False

        return self.client_threads.submit(check).result()

    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token_file().read_text().strip()}"}

    def token_file(self) -> Path:
        path = self.directory / "fleet.token"
        if not path.exists():
            path.write_text(secrets.token_hex(16) + "\n")
        return path

    def _neuron(self, name: str) -> HelexaProcess:
        host = self.net.host(name)
        config = self.directory / f"{name}.toml"
        # Off loopback a neuron needs a token (it refuses to start without one).
        config.write_text(
            f'[neuron]\nname = "{name}"\noffline = true\nmax_in_flight = 4\n'
            f'token_file = "{self.token_file()}"\n'
            "[devices]\nreserve_mb = 0\n"
        )
        listen = f"{host.address}:{NEURON_PORT}"
        return HelexaProcess(
            ["neuron", "--config", str(config), "--listen", listen],
            host.url(NEURON_PORT),
            self.directory / f"{name}.log",
            prefix=host.prefix,
            probe=self._probe,
        )

    def _gateway(self) -> HelexaProcess:
        host = self.net.host("gw")
        neurons = "".join(
            f'[[neurons]]\nname = "{n}"\nendpoint = "{self.neuron_url(n)}"\n'
            f'token_file = "{self.token_file()}"\n'
            for n in NEURONS
        )
        (self.directory / "fleet.toml").write_text(
            textwrap.dedent(
                f"""
                [gateway]
                listen = "{host.address}:{GATEWAY_PORT}"
                metrics_listen = "{host.address}:{GATEWAY_PORT + 1}"
                api_keys = []
                poll_interval = "{POLL_INTERVAL_S}s"
                unhealthy_after = {UNHEALTHY_AFTER}
                connect_timeout = "{CONNECT_TIMEOUT_S}s"
                request_timeout = "30s"
                load_timeout = "60s"
                [reconcile]
                watch = false
                interval = "{RESYNC_S}s"
                auto_apply = "models"
                """
            )
            + neurons
        )
        (self.directory / "models.toml").write_text(
            f'[[models]]\nid = "{TINY_MODEL_ID}"\npath = "{self.model_dir}"\nvram_mb = 64\n'
            # Pinned on n1 and n2: the reconcile daemon keeps (and restores) both copies.
            'pin = true\nreplicas = 2\nneurons = ["n1", "n2"]\n'
        )
        return HelexaProcess(
            [
                "serve",
                "--fleet",
                str(self.directory / "fleet.toml"),
                "--models",
                str(self.directory / "models.toml"),
            ],
            host.url(GATEWAY_PORT),
            self.directory / "gateway.log",
            prefix=host.prefix,
            probe=self._probe,
        )


@contextlib.contextmanager
def net_fleet(directory: Path, model_dir: Path) -> Iterator[NetFleet]:
    """The fleet with the tiny model pinned and loaded on n1 and n2 (n3 holds nothing)."""
    with NetnsFleet.create(list(NEURONS), gateway="gw") as net:
        threads = net.host("gw").executor(workers=8)
        fleet = NetFleet(
            net, {}, HelexaProcess([], "", directory / "unused.log"), threads, model_dir, directory
        )
        try:
            fleet.neurons = {name: fleet._neuron(name) for name in NEURONS}
            for neuron in fleet.neurons.values():
                neuron.spawn()
            for neuron in fleet.neurons.values():
                neuron.wait()
            for name in ("n1", "n2"):
                threads.submit(fleet.load, name).result()
            fleet.gateway = fleet._gateway().start()
            yield fleet
        finally:
            fleet.gateway.stop()
            for neuron in fleet.neurons.values():
                neuron.stop()
            threads.shutdown(wait=False, cancel_futures=True)
