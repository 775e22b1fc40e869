"""The gateway object: fleet state, poller, proxy, cold loader, keys and metrics in one place.

`Gateway` is the I/O shell around the pure core (router, placement,
catalogue); the routes reach it with `gateway_of(request)`. Background work
(polling, the usage log) runs between `start()` and `stop()`. The app that
serves it is built in app.py; `helexa serve` (helexa.serve) and tests wire both.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

from starlette.requests import Request

from helexa.config import Config, NeuronEntry
from helexa.fleet.locks import NeuronActionLocks
from helexa.fleet.neuron_client import NeuronClient
from helexa.fleet.poller import FleetPoller, PollSettings
from helexa.fleet.sessions import SessionFactory
from helexa.fleet.state import FleetState, ModelLocation, ObservedNeuron
from helexa.gateway.auth import open_access_warning
from helexa.gateway.coldload import ColdLoader
from helexa.gateway.keys import KeyRing
from helexa.gateway.limits import body_limits
from helexa.gateway.metrics import GatewayMetrics, ModelSample, NeuronSample
from helexa.gateway.proxy import Proxy, ProxyTimeouts, Target, default_session_factory
from helexa.gateway.usage import UsageBook, UsageCollector
from helexa.gateway.usage_log import UsageLog, read_records
from helexa.limits import BodyLimits

log = logging.getLogger("helexa.gateway")

MB = 1024 * 1024


class ReconcileView(Protocol):
    """What /admin/fleet shows of the reconcile daemon (helexa.reconcile.daemon fits)."""

    def to_json(self) -> dict[str, Any]: ...


class Gateway:
    """Everything one gateway knows and does; routes reach it via `request.app.state`."""

    def __init__(
        self,
        config: Config,
        *,
        session_factory: SessionFactory = default_session_factory,
        poll: PollSettings | None = None,
        keep_alive_interval: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        gw = config.fleet.gateway
        self.config = config
        self.config_error: str | None = None  # the last config reload that failed, shown as is
        self.reconcile: ReconcileView | None = None  # set when the daemon runs in this process
        self.keep_alive_interval = keep_alive_interval
        self.fleet = FleetState()
        self.metrics = GatewayMetrics()
        # Keys and their limits (monotonic `clock`: injectable so tests can pass a minute).
        self.clock = clock
        self.keyring = KeyRing.build(config, None, clock())
        self.usage = UsageBook()
        self.metrics.registry.register(UsageCollector(self.usage))
        self.poller = FleetPoller(
            self.fleet,
            config.fleet.neurons,
            poll or PollSettings(interval=gw.poll_interval, failure_threshold=gw.unhealthy_after),
            session_factory=session_factory,
        )
        self.poller.listeners.append(self._observe)
        self.proxy = Proxy(
            session_factory,
            ProxyTimeouts(connect=gw.connect_timeout, read=gw.request_timeout),
        )
        self.client = NeuronClient(
            session_factory, connect_timeout=gw.connect_timeout, load_timeout=gw.load_timeout
        )
        # Set once every local neuron has answered a poll (at once when there are none):
        # until then requests that need a placement are held, not answered "unhealthy".
        self.local_neurons_answered = asyncio.Event()
        self._note_answered()
        # One evict/load/unload at a time per neuron, whoever asks (cold loads, admin
        # routes, the reconciler when `helexa serve` runs one).
        self.action_locks = NeuronActionLocks()
        self.loader = ColdLoader(
            self.fleet,
            self.poller,
            self.client,
            self.current,
            self.metrics,
            self.action_locks,
            started=self.local_neurons_answered,
        )
        self.started_at = time.time()
        # Called with every new config set_config takes (e.g. serve's local neurons).
        self.config_listeners: list[Callable[[Config], None]] = []
        self._tasks: list[asyncio.Task[None]] = []
        # Per-request lookups that only a new config changes (see `set_config`).
        self._limits = body_limits(config)
        self._targets: dict[tuple[str, str], Target] = {}

    def current(self) -> Config:
        return self.config

    def set_config(self, config: Config) -> None:
        """A new desired state (reconcile daemon): poll the neurons it names from now on."""
        self.config = config
        self.config_error = None
        # A saved keys.toml takes effect here; keys kept by name keep their live limits.
        self.keyring = KeyRing.build(config, self.keyring, self.clock())
        self._limits = body_limits(config)
        self._targets.clear()
        self.poller.set_entries(config.fleet.neurons)
        for listener in self.config_listeners:
            listener(config)

    def body_limits(self) -> BodyLimits:
        return self._limits

    def neuron_entry(self, name: str) -> NeuronEntry | None:
        return self.config.fleet.neuron(name)

    def targets(self, locations: list[ModelLocation], path: str) -> list[Target]:
        """Upstream URLs for `path` ("/chat/completions") on each location's neuron."""
        out: list[Target] = []
        for loc in locations:
            target = self._targets.get((loc.neuron, path))
            if target is None:
                target = self._target(loc.neuron, path)
                if target is None:
                    continue
            out.append(target)
        return out

    def _target(self, neuron: str, path: str) -> Target | None:
        entry = self.neuron_entry(neuron)
        if entry is None:
            return None
        # A helexa neuron serves OpenAI under /v1; a foreign endpoint already ends in it.
        base = entry.endpoint.rstrip("/")
        url = f"{base}{path}" if entry.kind == "openai" else f"{base}/v1{path}"
        target = Target(neuron, url, self.client.tokens.headers(entry))
        if entry.token_file is None:
            # Kept until the next config; a token file is re-read (if changed) per request.
            self._targets[(neuron, path)] = target
        return target

    async def start(self) -> None:
        """Start polling, the usage log (and anything else added to `background`)."""
        await self.start_usage_log()
        await self.poller.poll_once()
        self.background(self.poller.run(), "poller")

    async def start_usage_log(self) -> None:
        """Replay the last day of `[gateway] usage_log` into the usage window, then append."""
        gw = self.config.fleet.gateway
        if gw.usage_log is None:
            return
        usage_log = UsageLog(gw.usage_log, gw.usage_log_max_mb * MB, gw.usage_log_keep)
        records = await asyncio.to_thread(
            lambda: list(read_records(usage_log.path, gw.usage_log_keep))
        )
        self.usage.replay(records, time.time())
        self.usage.listeners.append(usage_log.append)
        self.background(usage_log.run(), "usage log")

    def background(self, coro: Any, name: str) -> None:
        task: asyncio.Task[None] = asyncio.create_task(coro, name=name)
        task.add_done_callback(_log_crash)
        self._tasks.append(task)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        await self.proxy.close()
        await self.client.close()
        await self.poller.close()

    def health(self) -> dict[str, Any]:
        total = len(self.fleet.neurons)
        healthy = len(self.fleet.healthy_neurons())
        status = "ok" if total and healthy == total else "degraded" if healthy else "down"
        warning = open_access_warning(self.config.fleet.gateway) if self.keyring.empty else None
        return {
            "status": status,
            "neurons": {"healthy": healthy, "total": total},
            "warnings": [warning] if warning else [],
        }

    def _note_answered(self) -> None:
        if self.local_neurons_answered.is_set():
            return
        local = [n for n in self.fleet.neurons.values() if n.local]
        if all(n.healthy or not n.starting for n in local):
            self.local_neurons_answered.set()

    def _observe(self, _: ObservedNeuron) -> None:
        """After each poll: note first answers, rewrite the fleet gauges."""
        self._note_answered()
        neurons = [
            NeuronSample(
                n.name,
                n.healthy,
                tuple(
                    (
                        d.index,
                        (d.memory_total_mb - d.memory_free_mb) * MB,
                        d.memory_total_mb * MB,
                    )
                    for d in n.devices
                ),
            )
            for n in self.fleet.neurons.values()
        ]
        models = [
            ModelSample(loc.model_id, n.name, loc.servable, loc.active)
            for n in self.fleet.neurons.values()
            for loc in n.models.values()
        ]
        self.metrics.observe_fleet(neurons, models)


def gateway_of(request: Request) -> Gateway:
    """The gateway a starlette route runs in (set on `app.state` by build_app)."""
    gw: Gateway = request.app.state.gateway
    return gw


def _log_crash(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("background task %s crashed", task.get_name(), exc_info=task.exception())
