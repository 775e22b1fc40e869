"""Lock-free series: the same exposition as prometheus_client's Counter and Histogram."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import generate_latest

from helexa.gateway.series import CounterSeries, HistogramSeries, SeriesCollector

BUCKETS = (0.1, 1, 2.5)
VALUES = (0.05, 0.1, 0.5, 1, 2, 3, 100)


def exposition(registry: CollectorRegistry) -> list[str]:
    """The text format without `_created` samples (prometheus_client's own addition)."""
    lines = generate_latest(registry).decode().splitlines()
    return sorted(line for line in lines if "_created" not in line)


def test_the_exposition_matches_prometheus_client() -> None:
    theirs, ours = CollectorRegistry(), CollectorRegistry()
    counter = Counter("c", "a counter", ["model", "status"], registry=theirs)
    histogram = Histogram("h", "a histogram", ["model"], buckets=BUCKETS, registry=theirs)
    our_counter = CounterSeries("c", "a counter", ["model", "status"])
    our_histogram = HistogramSeries("h", "a histogram", ["model"], BUCKETS)
    ours.register(SeriesCollector(our_counter, our_histogram))
    for value in VALUES:
        counter.labels("m", "200").inc()
        histogram.labels("m").observe(value)
        our_counter.inc(("m", "200"))
        our_histogram.observe(("m",), value)
    counter.labels("n", "503").inc(2)
    our_counter.labels("n", "503").inc(2)
    histogram.labels("n").observe(0.1)
    our_histogram.labels("n").observe(0.1)
    assert exposition(ours) == exposition(theirs)


def test_a_bound_is_inclusive() -> None:
    series = HistogramSeries("h", "doc", [], BUCKETS)
    series.observe((), 1.0)  # lands in le="1.0", as Prometheus' `le` says
    buckets = {s.labels["le"]: s.value for s in series.collect().samples if s.name == "h_bucket"}
    assert buckets == {"0.1": 0, "1.0": 1, "2.5": 1, "+Inf": 1}


def test_labels_must_match_the_label_names() -> None:
    with pytest.raises(ValueError, match="takes labels"):
        CounterSeries("c", "doc", ["a", "b"]).labels("only-one")
    with pytest.raises(ValueError, match="takes labels"):
        HistogramSeries("h", "doc", ["a"], BUCKETS).labels("x", "y")
