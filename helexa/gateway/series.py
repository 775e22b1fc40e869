"""Lock-free labelled counters and histograms for the request path, exported to Prometheus.

prometheus_client's `Counter` and `Histogram` validate and take a lock on
every update, and a histogram walks its buckets in Python: one request's
six updates cost about 15 us, as much as a tenth of the gateway's whole
per-request work. The gateway updates these series only from its event
loop, so plain dicts suffice; `SeriesCollector` turns them into the usual
families (`<name>_total`; `<name>_bucket`/`_sum`/`_count`) when the
registry is collected (a scrape, the UI's stats).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator, Sequence

from prometheus_client.metrics_core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

Labels = tuple[str, ...]


class CounterSeries:
    """A counter per label set."""

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str]) -> None:
        self.name = name
        self.documentation = documentation
        self.labelnames = tuple(labelnames)
        self.values: dict[Labels, float] = {}

    def inc(self, labels: Labels, amount: float = 1.0) -> None:
        self.values[labels] = self.values.get(labels, 0.0) + amount

    def labels(self, *values: str) -> CounterChild:
        """prometheus_client's spelling, for callers off the hot path."""
        return CounterChild(self, _checked(self.name, self.labelnames, values))

    def collect(self) -> Metric:
        family = CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for labels, value in self.values.items():
            family.add_metric(labels, value)
        return family


class HistogramSeries:
    """A histogram per label set; `buckets` are the finite upper bounds, ascending."""

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str],
        buckets: Sequence[float],
    ) -> None:
        self.name = name
        self.documentation = documentation
        self.labelnames = tuple(labelnames)
        self.bounds = (*buckets, float("inf"))
        # prometheus_client's spelling of `le`: "0.05", "1.0", "+Inf".
        self.le = (*(repr(float(b)) for b in buckets), "+Inf")
        # Per label set: counts per bucket (not cumulative; summed at collection), then the sum.
        self.counts: dict[Labels, list[int]] = {}
        self.sums: dict[Labels, float] = {}

    def observe(self, labels: Labels, value: float) -> None:
        counts = self.counts.get(labels)
        if counts is None:
            counts = self.counts[labels] = [0] * len(self.bounds)
            self.sums[labels] = 0.0
        counts[bisect_left(self.bounds, value)] += 1  # `le` bounds: value <= bound
        self.sums[labels] += value

    def labels(self, *values: str) -> HistogramChild:
        return HistogramChild(self, _checked(self.name, self.labelnames, values))

    def collect(self) -> Metric:
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for labels, counts in self.counts.items():
            cumulative = 0
            buckets: list[tuple[str, float]] = []
            for le, count in zip(self.le, counts, strict=True):
                cumulative += count
                buckets.append((le, cumulative))
            family.add_metric(labels, buckets, self.sums[labels])
        return family


def _checked(name: str, labelnames: Labels, values: Labels) -> Labels:
    if len(values) != len(labelnames):
        raise ValueError(f"{name} takes labels {labelnames}, got {values}")
    return values


class CounterChild:
    def __init__(self, series: CounterSeries, labels: Labels) -> None:
        self.series = series
        self.key = labels

    def inc(self, amount: float = 1.0) -> None:
        self.series.inc(self.key, amount)


class HistogramChild:
    def __init__(self, series: HistogramSeries, labels: Labels) -> None:
        self.series = series
        self.key = labels

    def observe(self, value: float) -> None:
        self.series.observe(self.key, value)


class SeriesCollector(Collector):
    """Registers the series with a `CollectorRegistry`."""

    def __init__(self, *series: CounterSeries | HistogramSeries) -> None:
        self.series = series

    def collect(self) -> Iterator[Metric]:
        for one in self.series:
            yield one.collect()
