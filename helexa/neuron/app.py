"""The neuron's starlette app: routes, error envelope, auth, background preloads."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.middleware import Middleware

from helexa.errors import APIError
from helexa.neuron.admission import Admission
from helexa.neuron.config import NeuronConfig, PreloadEntry
from helexa.neuron.http import EXCEPTION_HANDLERS, BearerAuth, BrowserGuard
from helexa.neuron.limits import body_limits, neuron_body_limits
from helexa.neuron.load_progress import weight_read_source
from helexa.neuron.loading import TokenizerCache, engine_loader
from helexa.neuron.metrics import ModelSnapshot, NeuronMetrics
from helexa.neuron.openapi import ROUTES as OPENAPI_ROUTES
from helexa.neuron.registry import Loader, Registry
from helexa.neuron.routes_control import ROUTES as CONTROL_ROUTES
from helexa.neuron.routes_openai import ROUTES as OPENAI_ROUTES
from helexa.neuron.state import NeuronState
from helexa.protocol.neuron import LoadRequest

log = logging.getLogger("helexa.neuron")

PUBLIC_PATHS = frozenset({"/health"})
PRELOAD_BACKOFF_S = (1.0, 2.0, 5.0, 15.0, 60.0)  # then every 60 s


def build_state(config: NeuronConfig, loader: Loader | None = None) -> NeuronState:
    metrics_ref: list[NeuronMetrics] = []

    def admission(model_id: str) -> Admission:
        return Admission(
            config.neuron.max_in_flight,
            config.neuron.max_queue,
            config.neuron.queue_timeout,
            on_reject=metrics_ref[0].reject_hook(model_id),
        )

    def on_load(result: str, seconds: float | None) -> None:
        metrics_ref[0].loads.labels(result).inc()
        if seconds is not None:
            metrics_ref[0].load_seconds.observe(seconds)

    def used_mb() -> dict[int, int]:
        return registry.memory_by_device()

    registry = Registry(
        loader or engine_loader(config, used_mb),
        admission,
        config.neuron.drain_timeout,
        on_load,
        failed_ttl=config.neuron.failed_load_ttl,
        progress_source=weight_read_source(config),
    )
    metrics = NeuronMetrics(
        lambda: ModelSnapshot(registry.infos(), registry.cycles, registry.prefix_cache_evictions())
    )
    metrics_ref.append(metrics)
    return NeuronState(config, registry, metrics, TokenizerCache(config))


def build_app(
    config: NeuronConfig, loader: Loader | None = None, token: str | None = None
) -> Starlette:
    """The app for `config`; `loader` replaces the engine loader (e.g. to count loads)."""
    state = build_state(config, loader)

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        preloads = [asyncio.create_task(preload(state, p)) for p in config.preload]
        try:
            yield
        finally:
            for task in preloads:
                task.cancel()
            await asyncio.gather(*preloads, return_exceptions=True)
            await state.registry.close()

    app = Starlette(
        routes=[*CONTROL_ROUTES, *OPENAI_ROUTES, *OPENAPI_ROUTES],
        exception_handlers=EXCEPTION_HANDLERS,
        middleware=[
            Middleware(BearerAuth, token=token, public=PUBLIC_PATHS),
            Middleware(BrowserGuard, open_to_loopback=token is None),
            Middleware(neuron_body_limits, limits=lambda: body_limits(config)),
        ],
        lifespan=lifespan,
    )
    app.state.neuron = state
    return app


async def preload(state: NeuronState, entry: PreloadEntry) -> None:
    """Load in the background, retrying with backoff; failures show as state "failed"."""
    request = LoadRequest(
        model=entry.model,
        path=str(entry.path) if entry.path else None,
        revision=entry.revision,
        dtype=entry.dtype,
        devices=entry.devices,
        context_length=entry.context_length,
        sampling=entry.sampling,
        engine=entry.engine,
        command=entry.command,
        prefix_cache_mb=entry.prefix_cache_mb,
    )
    attempt = 0
    while True:
        try:
            await state.registry.load(request)
            return
        except APIError as exc:
            delay = PRELOAD_BACKOFF_S[min(attempt, len(PRELOAD_BACKOFF_S) - 1)]
            log.warning("preload of %s failed (%s); retrying in %.0fs", entry.model, exc, delay)
            attempt += 1
            await asyncio.sleep(delay)
