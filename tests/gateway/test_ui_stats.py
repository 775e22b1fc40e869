"""The /admin/stats arithmetic: totals from a real registry, quantiles, rate windows."""

from __future__ import annotations

import pytest

from helexa.gateway import ui_stats
from helexa.gateway.metrics import GatewayMetrics
from helexa.gateway.ui_stats import ModelTotals, RateWindow, histogram_quantile


def test_totals_sum_labels_away_per_model() -> None:
    metrics = GatewayMetrics()
    metrics.requests.labels("m", "a", "openai", "200").inc(3)
    metrics.requests.labels("m", "b", "anthropic", "503").inc()
    metrics.completion_tokens.labels("m", "a").inc(40)
    metrics.prompt_tokens.labels("m", "a").inc(7)
    for seconds in (0.02, 0.04, 0.3):
        metrics.ttft.labels("m", "a", "openai").observe(seconds)
    totals = ui_stats.totals(metrics.registry.collect())
    m = totals["m"]
    assert (m.requests, m.errors, m.completion_tokens, m.prompt_tokens) == (4, 1, 40, 7)
    assert m.ttft_buckets[-1] == (float("inf"), 3)
    p50 = histogram_quantile(0.5, m.ttft_buckets)
    assert p50 is not None and 0.025 <= p50 <= 0.05


@pytest.mark.parametrize(
    ("q", "expected"),
    [(0.5, 1.0), (0.75, 1.5), (0.25, 0.5), (1.0, 2.0)],
)
def test_quantile_interpolates_inside_the_bucket(q: float, expected: float) -> None:
    buckets = ((1.0, 2.0), (2.0, 4.0), (float("inf"), 4.0))
    assert histogram_quantile(q, buckets) == pytest.approx(expected)


def test_quantile_edges() -> None:
    assert histogram_quantile(0.5, ()) is None
    assert histogram_quantile(0.5, ((1.0, 0.0), (float("inf"), 0.0))) is None
    # Everything past the last finite bound: that bound is the best estimate.
    assert histogram_quantile(0.99, ((1.0, 0.0), (float("inf"), 5.0))) == 1.0


def test_rates_span_the_window_and_forget_older_samples() -> None:
    window = RateWindow(window_s=60)
    assert window.rates("m") == {"requests_per_s": None, "tokens_per_s": None}
    window.add(0, {"m": ModelTotals(requests=0, completion_tokens=0)})
    window.add(10, {"m": ModelTotals(requests=20, completion_tokens=500)})
    assert window.rates("m") == {"requests_per_s": 2.0, "tokens_per_s": 50.0}
    window.add(100, {"m": ModelTotals(requests=20, completion_tokens=500)})
    window.add(130, {"m": ModelTotals(requests=50, completion_tokens=500)})
    assert window.samples[0][0] == 10  # the newest sample at or before 130 - 60 is kept
    rates = window.rates("m")
    assert rates["requests_per_s"] == pytest.approx(30 / 120)
    assert window.rates("unknown") == {"requests_per_s": 0.0, "tokens_per_s": 0.0}


def test_summary_shape() -> None:
    body = ui_stats.summary(RateWindow(), {"m": ModelTotals(requests=1)}, now=5.0)
    (model,) = body["models"]
    assert body["window_s"] == 0 and model["requests_per_s"] is None
    assert set(model["ttft_s"]) == {"p50", "p90", "p99"}
