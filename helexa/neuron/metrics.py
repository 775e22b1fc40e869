"""neuron_* Prometheus metrics (docs/neuron.md, metrics).

Counters and histograms are updated on the request path; per-model gauges
(memory, in-flight, queue, state) are read from the registry at scrape time
so they can never drift from what /models reports. One CollectorRegistry per
app, so several neurons in one test process do not collide.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from helexa.protocol.neuron import ModelInfo

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_TOKS_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000)
_SECONDS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
_STATES = ("loading", "loaded", "unloading", "failed")


@dataclass(frozen=True)
class ModelSnapshot:
    models: list[ModelInfo]
    cycles: int
    # Per loaded model with a prefix cache: entries it evicted for room (since its load).
    prefix_cache_evictions: dict[str, int] = field(default_factory=dict)


class _RegistryCollector(Collector):
    def __init__(self, snapshot: Callable[[], ModelSnapshot]) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterable[GaugeMetricFamily | CounterMetricFamily]:
        snap = self._snapshot()
        memory = GaugeMetricFamily(
            "neuron_model_memory_bytes", "Measured memory held by a loaded model", labels=["model"]
        )
        in_flight = GaugeMetricFamily(
            "neuron_in_flight", "Requests generating now", labels=["model"]
        )
        queued = GaugeMetricFamily(
            "neuron_queued", "Requests waiting for an admission slot", labels=["model"]
        )
        state = GaugeMetricFamily(
            "neuron_model_state", "1 for the model's current state", labels=["model", "state"]
        )
        cache_bytes = GaugeMetricFamily(
            "neuron_prefix_cache_bytes",
            "Bytes of KV the model's prefix cache holds (within neuron_model_memory_bytes)",
            labels=["model"],
        )
        evictions = CounterMetricFamily(
            "neuron_prefix_cache_evictions",
            "Prefix cache entries evicted for room, since the model's load",
            labels=["model"],
        )
        for model_id, count in snap.prefix_cache_evictions.items():
            evictions.add_metric([model_id], count)
        for m in snap.models:
            memory.add_metric([m.id], m.memory_mb * 1024 * 1024)
            if m.prefix_cache_mb:
                cache_bytes.add_metric([m.id], m.prefix_cache_bytes)
            in_flight.add_metric([m.id], m.in_flight)
            queued.add_metric([m.id], m.queued)
            for s in _STATES:
                state.add_metric([m.id, s], 1.0 if m.state == s else 0.0)
        cycles = GaugeMetricFamily("neuron_load_cycles", "Completed load/unload cycles since start")
        cycles.add_metric([], snap.cycles)
        yield from (memory, in_flight, queued, state, cycles, cache_bytes, evictions)


class NeuronMetrics:
    def __init__(self, snapshot: Callable[[], ModelSnapshot]) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "neuron_requests",
            "Inference requests by outcome",
            ["model", "route", "status"],
            registry=r,
        )
        self.prompt_tokens = Counter(
            "neuron_prompt_tokens", "Prompt tokens processed", ["model"], registry=r
        )
        self.generated_tokens = Counter(
            "neuron_generated_tokens", "Tokens generated", ["model"], registry=r
        )
        self.prefix_cache_queried = Counter(
            "neuron_prefix_cache_queried_tokens",
            "Prompt tokens looked up in the model's prefix cache",
            ["model"],
            registry=r,
        )
        self.prefix_cache_hits = Counter(
            "neuron_prefix_cache_hit_tokens",
            "Prompt tokens taken from the prefix cache instead of prefilled",
            ["model"],
            registry=r,
        )
        self.decode_rate = Histogram(
            "neuron_decode_tokens_per_second",
            "Per-request decode speed after the first token",
            ["model"],
            buckets=_TOKS_BUCKETS,
            registry=r,
        )
        self.ttft = Histogram(
            "neuron_time_to_first_token_seconds",
            "Admission to first generated token",
            ["model"],
            buckets=_SECONDS_BUCKETS,
            registry=r,
        )
        self.queue_wait = Histogram(
            "neuron_queue_wait_seconds",
            "Time spent waiting for an admission slot",
            ["model"],
            buckets=_SECONDS_BUCKETS,
            registry=r,
        )
        self.rejections = Counter(
            "neuron_rejections",
            "Requests refused by admission or state",
            ["model", "reason"],
            registry=r,
        )
        self.loads = Counter("neuron_model_loads", "Model loads by result", ["result"], registry=r)
        self.load_seconds = Histogram(
            "neuron_model_load_seconds",
            "Wall time of successful loads",
            buckets=_SECONDS_BUCKETS,
            registry=r,
        )
        r.register(_RegistryCollector(snapshot))

    def render(self) -> bytes:
        return generate_latest(self.registry)

    def reject_hook(self, model: str) -> Callable[[str], None]:
        def hook(reason: str) -> None:
            self.rejections.labels(model, reason).inc()

        return hook


def metric_names(metrics: NeuronMetrics) -> Iterator[str]:
    """Every family name the registry exposes (used by tests and docs)."""
    for family in metrics.registry.collect():
        yield family.name
