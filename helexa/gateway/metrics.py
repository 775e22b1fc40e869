"""cortex_* metrics (docs/gateway.md, metrics), on a per-gateway registry.

Each gateway owns its own `CollectorRegistry` so several gateways can run in
one process (tests, bench). Counters and histograms are fed by the request
path (`RequestMeter`, once per response); the fleet gauges are rewritten from
the observed state after each poll.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, make_asgi_app
from prometheus_client.exposition import generate_latest
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from helexa.gateway.keys import Ticket
from helexa.gateway.proxy import ResponseStats
from helexa.gateway.series import CounterSeries, HistogramSeries, SeriesCollector

# Buckets span a 3060 running an 8B model (slow) to a 5090 (fast) and CPU test models.
REQUEST_SECONDS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 40, 80, 160, 320, 640)
TTFT_SECONDS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120)
TOKENS_PER_SECOND = (1, 2, 5, 10, 20, 35, 50, 75, 100, 150, 200, 300, 500, 1000, 2000)
LOAD_SECONDS = (0.5, 1, 2.5, 5, 10, 20, 40, 80, 160, 320, 640)
QUEUE_SECONDS = (0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


@dataclass(frozen=True)
class NeuronSample:
    """One neuron's gauges, as the poller last saw it."""

    neuron: str
    up: bool
    devices: tuple[tuple[int, int, int], ...] = ()  # (index, used_bytes, total_bytes)


@dataclass(frozen=True)
class ModelSample:
    """One model location's gauges."""

    model: str
    neuron: str
    loaded: bool
    in_flight: int


class GatewayMetrics:
    """All cortex_* series of one gateway."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        req = ["model", "neuron", "dialect"]
        # The six series each request updates: lock-free (helexa.gateway.series).
        self.requests = CounterSeries(
            "cortex_requests", "Requests answered, by HTTP status", [*req, "status"]
        )
        self.request_duration = HistogramSeries(
            "cortex_request_duration_seconds",
            "Request time until the last byte (end of stream)",
            req,
            REQUEST_SECONDS,
        )
        self.ttft = HistogramSeries(
            "cortex_time_to_first_token_seconds",
            "Time until the first content token (not the role chunk)",
            req,
            TTFT_SECONDS,
        )
        self.tokens_per_second = HistogramSeries(
            "cortex_tokens_per_second",
            "Completion tokens per second after the first token",
            ["model", "neuron"],
            TOKENS_PER_SECOND,
        )
        self.prompt_tokens = CounterSeries(
            "cortex_prompt_tokens", "Prompt tokens reported by neurons", ["model", "neuron"]
        )
        self.completion_tokens = CounterSeries(
            "cortex_completion_tokens",
            "Completion tokens reported by neurons",
            ["model", "neuron"],
        )
        self.prompt_cached_tokens = CounterSeries(
            "cortex_prompt_cached_tokens",
            "Prompt tokens the neuron reused from its prefix cache (part of cortex_prompt_tokens)",
            ["model", "neuron"],
        )
        r.register(
            SeriesCollector(
                self.requests,
                self.request_duration,
                self.ttft,
                self.tokens_per_second,
                self.prompt_tokens,
                self.completion_tokens,
                self.prompt_cached_tokens,
            )
        )
        self.cold_loads = Counter(
            "cortex_cold_loads",
            "Cold loads started by requests",
            ["model", "neuron", "result"],
            registry=r,
        )
        self.model_load_seconds = Histogram(
            "cortex_model_load_seconds",
            "Time for a neuron to load a model",
            ["model", "neuron"],
            buckets=LOAD_SECONDS,
            registry=r,
        )
        self.evictions = Counter(
            "cortex_evictions",
            "Models unloaded by the gateway",
            ["model", "neuron", "reason"],
            registry=r,
        )
        self.queue_wait = Histogram(
            "cortex_queue_wait_seconds",
            "Time a request waited for its model (cold load, load in progress)",
            ["model"],
            buckets=QUEUE_SECONDS,
            registry=r,
        )
        self.neuron_up = Gauge(
            "cortex_neuron_up", "1 when the neuron is healthy", ["neuron"], registry=r
        )
        self.device_used = Gauge(
            "cortex_device_memory_used_bytes",
            "Device memory in use",
            ["neuron", "device"],
            registry=r,
        )
        self.device_total = Gauge(
            "cortex_device_memory_total_bytes",
            "Device memory size",
            ["neuron", "device"],
            registry=r,
        )
        self.model_loaded = Gauge(
            "cortex_model_loaded",
            "1 when the model is loaded there",
            ["model", "neuron"],
            registry=r,
        )
        self.model_in_flight = Gauge(
            "cortex_model_in_flight",
            "Requests in flight on the neuron",
            ["model", "neuron"],
            registry=r,
        )
        self.reconcile_runs = Counter(
            "cortex_reconcile_runs", "Reconcile passes", ["result"], registry=r
        )
        self.reconcile_pending = Gauge(
            "cortex_reconcile_pending_actions", "Actions the last plan left to do", registry=r
        )

    def observe_fleet(self, neurons: Iterable[NeuronSample], models: Iterable[ModelSample]) -> None:
        """Rewrite the fleet gauges; series of neurons/models that went away disappear."""
        for gauge in (self.neuron_up, self.device_used, self.device_total):
            gauge.clear()
        for gauge in (self.model_loaded, self.model_in_flight):
            gauge.clear()
        for n in neurons:
            self.neuron_up.labels(n.neuron).set(1 if n.up else 0)
            for index, used, total in n.devices:
                self.device_used.labels(n.neuron, str(index)).set(used)
                self.device_total.labels(n.neuron, str(index)).set(total)
        for m in models:
            self.model_loaded.labels(m.model, m.neuron).set(1 if m.loaded else 0)
            self.model_in_flight.labels(m.model, m.neuron).set(m.in_flight)

    def prefix_cache(self) -> list[dict[str, object]]:
        """Per model: prompt tokens, cached prompt tokens and their ratio (the hit rate),
        summed over neurons since the gateway started (/admin/fleet, `helexa status`)."""
        return prefix_cache_rows(self.prompt_tokens.values, self.prompt_cached_tokens.values)

    def render(self) -> bytes:
        return generate_latest(self.registry)


def prefix_cache_rows(
    prompt: Mapping[tuple[str, ...], float], cached: Mapping[tuple[str, ...], float]
) -> list[dict[str, object]]:
    """[{model, prompt_tokens, cached_tokens, hit_rate}] from (model, neuron) counters;
    hit_rate is None for a model with no prompt tokens counted yet."""
    totals: dict[str, list[float]] = {}
    for (model, *_), value in prompt.items():
        totals.setdefault(model, [0.0, 0.0])[0] += value
    for (model, *_), value in cached.items():
        totals.setdefault(model, [0.0, 0.0])[1] += value
    return [
        {
            "model": model,
            "prompt_tokens": int(p),
            "cached_tokens": int(c),
            "hit_rate": round(c / p, 4) if p else None,
        }
        for model, (p, c) in sorted(totals.items())
    ]


def metrics_app(metrics: GatewayMetrics) -> ASGIApp:
    """The :31314 listener: prometheus_client's own ASGI app, on /metrics only.

    Always the text format `render()` gives (an `Accept` asking for OpenMetrics is
    not passed on: the exposition, and so the dashboards, stay one format), never
    compressed. `helexa serve` runs it with uvicorn next to the gateway.
    """
    exposition = make_asgi_app(metrics.registry, disable_compression=True)
    not_found = PlainTextResponse("Not Found", status_code=404)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        if scope["type"] != "http" or scope["path"] != "/metrics":
            await not_found(scope, receive, send)
            return
        headers = [(k, v) for k, v in scope["headers"] if k.lower() != b"accept"]
        await exposition({**scope, "headers": headers}, receive, send)

    return app


@dataclass
class RequestMeter:
    """Feeds the per-request metrics once, when the response has ended."""

    metrics: GatewayMetrics
    model: str
    dialect: str
    stats: ResponseStats = field(default_factory=ResponseStats)
    done: bool = False
    ticket: Ticket | None = None  # the calling key's, when keys are configured

    def finish(self, neuron: str | None, status: int | str) -> None:
        if self.done:
            return
        self.done = True
        u = self.stats
        end = u.finished_at or time.monotonic()
        labels = (self.model, neuron or "", self.dialect)
        m = self.metrics
        m.requests.inc((*labels, str(status)))
        m.request_duration.observe(labels, end - u.started)
        if self.ticket is not None:
            self.ticket.finish(neuron, status, u, end - u.started)
        if u.first_token_at is not None:
            m.ttft.observe(labels, u.first_token_at - u.started)
        if neuron is None:
            return
        where = (self.model, neuron)
        if u.prompt_tokens:
            m.prompt_tokens.inc(where, u.prompt_tokens)
            if u.cached_tokens:
                m.prompt_cached_tokens.inc(where, u.cached_tokens)
        if u.completion_tokens:
            m.completion_tokens.inc(where, u.completion_tokens)
            decoding = end - (u.first_token_at or u.started)
            if u.completion_tokens > 1 and decoding > 0:
                m.tokens_per_second.observe(where, (u.completion_tokens - 1) / decoding)
