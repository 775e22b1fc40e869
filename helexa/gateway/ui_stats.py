"""A small JSON summary of the cortex_* metrics for the /ui page (`GET /admin/stats`).

Per model: requests, errors, prompt/completion/cached tokens and the prefix
cache hit rate (cached / prompt tokens, since the gateway started).

Pure: `totals(families)` reads prometheus_client metric families (what
`registry.collect()` yields), `RateWindow` turns successive totals into
per-second rates over the last minute, and `ttft_percentiles` estimates
quantiles from histogram buckets the way PromQL's histogram_quantile does
(linear inside the bucket). Prometheus stays the place for real history.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.metrics_core import Metric

RATE_WINDOW_S = 60.0
PERCENTILES = (0.5, 0.9, 0.99)


@dataclass(frozen=True)
class ModelTotals:
    """Cumulative counts for one model since the gateway started."""

    requests: float = 0.0
    errors: float = 0.0  # answered with anything but a 2xx
    prompt_tokens: float = 0.0
    completion_tokens: float = 0.0
    cached_tokens: float = 0.0  # part of prompt_tokens, reused from a prefix cache
    # TTFT histogram summed over neurons and dialects: upper bound -> cumulative count.
    ttft_buckets: tuple[tuple[float, float], ...] = ()


@dataclass
class _Accumulator:
    requests: float = 0.0
    errors: float = 0.0
    prompt_tokens: float = 0.0
    completion_tokens: float = 0.0
    cached_tokens: float = 0.0
    ttft: dict[float, float] = field(default_factory=dict)

    def freeze(self) -> ModelTotals:
        return ModelTotals(
            self.requests,
            self.errors,
            self.prompt_tokens,
            self.completion_tokens,
            self.cached_tokens,
            tuple(sorted(self.ttft.items())),
        )


def totals(families: Iterable[Metric]) -> dict[str, ModelTotals]:
    """Per-model totals from the gateway's registry (labels other than model summed away)."""
    acc: dict[str, _Accumulator] = {}
    for family in families:
        for sample in family.samples:
            model = sample.labels.get("model")
            if not model:
                continue
            entry = acc.setdefault(model, _Accumulator())
            if sample.name == "cortex_requests_total":
                entry.requests += sample.value
                if not sample.labels.get("status", "200").startswith("2"):
                    entry.errors += sample.value
            elif sample.name == "cortex_prompt_tokens_total":
                entry.prompt_tokens += sample.value
            elif sample.name == "cortex_completion_tokens_total":
                entry.completion_tokens += sample.value
            elif sample.name == "cortex_prompt_cached_tokens_total":
                entry.cached_tokens += sample.value
            elif sample.name == "cortex_time_to_first_token_seconds_bucket":
                bound = float(sample.labels["le"])
                entry.ttft[bound] = entry.ttft.get(bound, 0.0) + sample.value
    return {model: entry.freeze() for model, entry in sorted(acc.items())}


def histogram_quantile(q: float, buckets: tuple[tuple[float, float], ...]) -> float | None:
    """The q-quantile from cumulative (upper bound, count) buckets; None without observations."""
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if math.isinf(bound):
                return lower_bound  # past the last finite bucket: its bound is all we know
            if count == lower_count:
                return bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / (
                count - lower_count
            )
        lower_bound, lower_count = bound, count
    return lower_bound


def ttft_percentiles(model: ModelTotals) -> dict[str, float | None]:
    return {f"p{round(q * 100)}": histogram_quantile(q, model.ttft_buckets) for q in PERCENTILES}


@dataclass
class RateWindow:
    """Successive (time, totals) samples; rates are taken across the last `window_s`."""

    window_s: float = RATE_WINDOW_S
    samples: deque[tuple[float, Mapping[str, ModelTotals]]] = field(default_factory=deque)

    def add(self, now: float, current: Mapping[str, ModelTotals]) -> None:
        self.samples.append((now, current))
        # Keep one sample at or before the window's start so the rate spans the whole window.
        while len(self.samples) > 2 and self.samples[1][0] <= now - self.window_s:
            self.samples.popleft()

    def rates(self, model: str) -> dict[str, float | None]:
        """requests/s and completion tokens/s; None until two samples exist."""
        if len(self.samples) < 2:
            return {"requests_per_s": None, "tokens_per_s": None}
        (t0, first), (t1, last) = self.samples[0], self.samples[-1]
        span = t1 - t0
        before, after = first.get(model, ModelTotals()), last.get(model, ModelTotals())
        if span <= 0:
            return {"requests_per_s": None, "tokens_per_s": None}
        return {
            "requests_per_s": (after.requests - before.requests) / span,
            "tokens_per_s": (after.completion_tokens - before.completion_tokens) / span,
        }


def summary(window: RateWindow, current: Mapping[str, ModelTotals], now: float) -> dict[str, Any]:
    """The /admin/stats body: per-model totals, rates over the window, TTFT percentiles."""
    window.add(now, current)
    span = now - window.samples[0][0]
    return {
        "at": now,
        "window_s": round(span, 3),
        "models": [
            {
                "model": model,
                "requests": t.requests,
                "errors": t.errors,
                "prompt_tokens": t.prompt_tokens,
                "completion_tokens": t.completion_tokens,
                "cached_tokens": t.cached_tokens,
                # the share of prompt tokens the neurons' prefix caches served
                "prefix_cache_hit_rate": (
                    round(t.cached_tokens / t.prompt_tokens, 4) if t.prompt_tokens else None
                ),
                **window.rates(model),
                "ttft_s": ttft_percentiles(t),
            }
            for model, t in current.items()
        ],
    }
