"""`helexa serve` as one coroutine: the gateway's and the metrics' listeners (each a
uvicorn server), the local neurons, the reconcile daemon.

Signals belong to the caller (the CLI sets `stop` on SIGINT/SIGTERM), so
uvicorn's own signal capture is turned off. Shutdown runs in reverse order:
stop accepting requests, stop the background work (poller, reconcile daemon),
stop the local neurons (SIGTERM, then SIGKILL after a grace).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import uvicorn

from helexa.config import Config, parse_listen
from helexa.gateway.app import build_app
from helexa.gateway.auth import open_access_warning
from helexa.gateway.core import Gateway
from helexa.gateway.limits import gateway_protocol
from helexa.gateway.metrics import metrics_app
from helexa.reconcile.hosts import HostAccess
from helexa.serve.local_neurons import LocalNeurons
from helexa.serve.reconcile import start_reconcile
from helexa.serve.supervisor import Supervisor

log = logging.getLogger("helexa.serve")
# How long start-up waits for the local neurons' first answer before the banner (a
# neuron importing torch on a busy machine takes seconds; a broken one never answers).
LOCAL_START_WAIT_S = 120.0
STARTUP_POLL_S = 0.1


class _Server(uvicorn.Server):
    """uvicorn without its signal handlers: `helexa serve` owns SIGINT/SIGTERM."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@dataclass
class Running:
    """What a running `serve` exposes (tests and the banner read it)."""

    gateway: Gateway
    url: str
    metrics_url: str
    supervisors: dict[str, Supervisor] = field(default_factory=dict)


def bind(listen: str) -> socket.socket:
    host, port = parse_listen(listen)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(1024)
    sock.setblocking(False)
    return sock


def open_warning(config: Config) -> str | None:
    warning = open_access_warning(config.fleet.gateway) if not config.keys.keys else None
    return f"WARNING: {warning}" if warning else None


def banner(running: Running) -> str:
    first = next(iter(running.gateway.config.models.models), None)
    model = first.id if first else "MODEL"
    return "\n".join(
        [
            f"helexa gateway on {running.url}  (metrics: {running.metrics_url}/metrics)",
            f"  curl {running.url}/v1/chat/completions -H 'Content-Type: application/json' \\",
            f'    -d \'{{"model": "{model}", "messages": [{{"role": "user", "content": "Hi"}}]}}\'',
            f"  export OPENAI_BASE_URL={running.url}/v1",
            f"  export ANTHROPIC_BASE_URL={running.url}",
        ]
    )


async def serve(
    config: Config,
    stop: asyncio.Event,
    *,
    ready: asyncio.Future[Running] | None = None,
    runtime_dir: Path | None = None,
    hosts: HostAccess | None = None,
) -> None:
    """Run everything `helexa serve` runs until `stop` is set."""
    warning = open_warning(config)
    if warning:
        log.warning(warning)
    gateway = Gateway(config)
    with contextlib.ExitStack() as stack:
        if runtime_dir is None:
            runtime_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="helexa-")))
        local = LocalNeurons(runtime_dir)
        local.start_all(config)
        # fleet.toml saved with a local neuron added or removed: start or stop it now.
        gateway.config_listeners.append(local.sync_soon)
        try:
            await _serve_http(config, gateway, local.supervisors, stop, ready, hosts)
        finally:
            await local.stop_all()


async def _wait_for_local_neurons(gateway: Gateway, within: float) -> None:
    """Until every local neuron answered its first poll: the banner means "ready".

    Requests that arrive meanwhile are held by the cold loader (not answered 503).
    A neuron that does not answer in time is logged, and requests stop being held.
    """
    answered = gateway.local_neurons_answered
    try:
        async with asyncio.timeout(within):
            while not answered.is_set():
                # Poll the starting ones often: the regular round may be seconds away.
                neurons = gateway.fleet.neurons.values()
                starting = [n.name for n in neurons if n.local and n.starting]
                await asyncio.gather(*(gateway.poller.poll_neuron(name) for name in starting))
                if not answered.is_set():
                    await asyncio.sleep(STARTUP_POLL_S)
    except TimeoutError:
        waiting = {
            n.name: n.last_error or "no answer"
            for n in gateway.fleet.neurons.values()
            if n.local and n.starting
        }
        log.warning("local neurons not answering after %.0fs: %s", within, waiting)
        answered.set()


async def _serve_http(
    config: Config,
    gateway: Gateway,
    supervisors: dict[str, Supervisor],
    stop: asyncio.Event,
    ready: asyncio.Future[Running] | None,
    hosts: HostAccess | None,
) -> None:
    gw = config.fleet.gateway
    api_socket = bind(gw.listen)
    metrics_server = _Server(
        uvicorn.Config(
            metrics_app(gateway.metrics), log_level="warning", lifespan="off", access_log=False
        )
    )
    metrics_task = asyncio.create_task(
        metrics_server.serve(sockets=[bind(gw.metrics_listen)]), name="metrics http"
    )
    server = _Server(
        uvicorn.Config(
            build_app(gateway),
            log_level="warning",
            lifespan="on",
            access_log=False,
            # No X-Forwarded-* rewriting: one middleware less per request on the hot path.
            proxy_headers=False,
            http=gateway_protocol(config),
        )
    )
    api_task = asyncio.create_task(server.serve(sockets=[api_socket]), name="gateway http")
    try:
        while not server.started:
            if api_task.done():
                api_task.result()
                raise RuntimeError("the gateway server stopped while starting")
            await asyncio.sleep(0.02)
        await _wait_for_local_neurons(gateway, min(gw.load_timeout, LOCAL_START_WAIT_S))
        # The reconciler keeps pinned models loaded, unloads idle ones, restarts for defrag.
        start_reconcile(gateway, hosts, supervisors)
        running = Running(
            gateway, f"http://{gw.listen}", f"http://{gw.metrics_listen}", supervisors
        )
        print(banner(running), flush=True)
        if ready is not None:
            ready.set_result(running)
        await stop.wait()
    finally:
        server.should_exit = True
        metrics_server.should_exit = True
        await asyncio.gather(api_task, metrics_task, return_exceptions=True)
