"""Per-key usage: Prometheus counters, a rolling window for /admin/usage, a JSON-lines log.

One `UsageRecord` per request that carried a key, made when its answer
ends. It feeds:

- `cortex_key_requests_total{key,model,status}`,
  `cortex_key_errors_total{key,model,status}` (status not 200) and
  `cortex_key_tokens_total{key,model,kind}` (kind = input, output, cached),
  labelled by the key's *name*, never the key;
- per-minute totals per (key, model) kept for a day, summed over any window
  by `GET /admin/usage` and `helexa usage`;
- the usage log (`UsageLog`), when `[gateway] usage_log` is set.

Updates are dict operations on the event loop (no locks, no I/O): the log
only appends to a buffer that a background task writes out.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from typing import Any

from prometheus_client.metrics_core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

DAY_S = 24 * 3600
# requests, errors, input, output, cached tokens, duration seconds
FIELDS = ("requests", "errors", "input_tokens", "output_tokens", "cached_tokens", "duration_s")


@dataclass(slots=True)
class UsageRecord:
    """One request of one key (a line of the usage log)."""

    time: float  # UNIX time the answer ended
    key: str
    model: str
    neuron: str
    dialect: str
    status: str
    input_tokens: int
    output_tokens: int
    cached_tokens: int
    duration_s: float

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["time"] = round(self.time, 3)
        out["duration_s"] = round(self.duration_s, 4)
        return out


class KeyModelStats:
    """Lifetime counters of one (key, model), exported to Prometheus at scrape time."""

    __slots__ = ("cached", "input", "output", "statuses")

    def __init__(self) -> None:
        self.statuses: dict[str, int] = {}
        self.input = 0
        self.output = 0
        self.cached = 0


class UsageBook:
    """The per-key counters and the rolling per-minute window of one gateway.

    One request costs two dict lookups and a few additions (it runs on the hot
    path); `UsageCollector` builds the Prometheus families when scraped.
    """

    def __init__(self, keep_s: float = DAY_S) -> None:
        self.keep_s = keep_s
        self.stats: dict[tuple[str, str], KeyModelStats] = {}
        # minute (UNIX time // 60) -> (key, model) -> totals in FIELDS order
        self.minutes: dict[int, dict[tuple[str, str], list[float]]] = {}
        self._minute = -1
        self._current: dict[tuple[str, str], list[float]] = {}
        # Called with each UsageRecord (the usage log); records are built only for them.
        self.listeners: list[Callable[[UsageRecord], None]] = []

    def record(self, rec: UsageRecord) -> None:
        self.count(
            rec.time,
            rec.key,
            rec.model,
            rec.status,
            rec.input_tokens,
            rec.output_tokens,
            rec.cached_tokens,
            rec.duration_s,
        )
        for listener in self.listeners:
            listener(rec)

    def count(
        self,
        when: float,
        key: str,
        model: str,
        status: str,
        input_tokens: int,
        output_tokens: int,
        cached_tokens: int,
        duration_s: float,
    ) -> None:
        """One finished request (`record` without building a UsageRecord).

        On the hot path: the window update of `_add` is inlined for the common case
        (same minute as the previous request).
        """
        where = (key, model)
        stats = self.stats.get(where)
        if stats is None:
            stats = self.stats[where] = KeyModelStats()
        statuses = stats.statuses
        statuses[status] = statuses.get(status, 0) + 1
        stats.input += input_tokens
        stats.output += output_tokens
        stats.cached += cached_tokens
        failed = status != "200"
        if int(when // 60) != self._minute:
            self._add(when, where, failed, input_tokens, output_tokens, cached_tokens, duration_s)
            return
        totals = self._current.get(where)
        if totals is None:
            totals = self._current[where] = [0.0] * len(FIELDS)
        totals[0] += 1
        totals[1] += failed
        totals[2] += input_tokens
        totals[3] += output_tokens
        totals[4] += cached_tokens
        totals[5] += duration_s

    def _add(
        self,
        when: float,
        where: tuple[str, str],
        failed: bool,
        input_tokens: int,
        output_tokens: int,
        cached_tokens: int,
        duration_s: float,
    ) -> None:
        minute = int(when // 60)
        if minute == self._minute:
            per_minute = self._current
        else:
            per_minute = self.minutes.get(minute) or self.minutes.setdefault(minute, {})
            if minute > self._minute:
                self._minute, self._current = minute, per_minute
                self._prune(minute)
        totals = per_minute.get(where)
        if totals is None:
            totals = per_minute[where] = [0.0] * len(FIELDS)
        totals[0] += 1
        totals[1] += failed
        totals[2] += input_tokens
        totals[3] += output_tokens
        totals[4] += cached_tokens
        totals[5] += duration_s

    def replay(self, records: Iterable[UsageRecord], now: float) -> int:
        """Fill the window from the usage log (a restart keeps the last day); returns count.

        Only the window: the Prometheus counters start again from zero, as counters do.
        """
        count = 0
        for rec in records:
            if now - rec.time <= self.keep_s:
                self._add(
                    rec.time,
                    (rec.key, rec.model),
                    rec.status != "200",
                    rec.input_tokens,
                    rec.output_tokens,
                    rec.cached_tokens,
                    rec.duration_s,
                )
                count += 1
        return count

    def _prune(self, minute: int) -> None:
        oldest = minute - int(self.keep_s // 60)
        for old in [m for m in self.minutes if m < oldest]:
            del self.minutes[old]

    def summary(
        self, window_s: float, now: float | None = None, key: str | None = None
    ) -> dict[str, Any]:
        """Totals per key and per (key, model) over the last `window_s` seconds."""
        now = time.time() if now is None else now
        since = int((now - window_s) // 60)
        keys: dict[str, dict[str, Any]] = {}
        for minute, per_minute in self.minutes.items():
            if minute < since:
                continue
            for (name, model), totals in per_minute.items():
                if key is not None and name != key:
                    continue
                entry = keys.setdefault(name, {"key": name, **_zero(), "models": {}})
                per_model = entry["models"].setdefault(model, {"model": model, **_zero()})
                for target in (entry, per_model):
                    for field, value in zip(FIELDS, totals, strict=True):
                        target[field] += value
        rows = []
        for entry in sorted(keys.values(), key=lambda e: e["key"]):
            entry["models"] = sorted(entry["models"].values(), key=lambda m: m["model"])
            rows.append(_rounded(entry))
        return {"window_s": window_s, "since": round(now - window_s, 3), "keys": rows}


class UsageCollector(Collector):
    """`cortex_key_requests_total`, `cortex_key_errors_total`, `cortex_key_tokens_total`."""

    def __init__(self, book: UsageBook) -> None:
        self.book = book

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "cortex_key_requests",
            "Requests per API key (by name), by status",
            labels=("key", "model", "status"),
        )
        errors = CounterMetricFamily(
            "cortex_key_errors",
            "Requests per API key answered with an error (status not 200)",
            labels=("key", "model", "status"),
        )
        tokens = CounterMetricFamily(
            "cortex_key_tokens",
            "Tokens per API key: kind = input, output or cached (part of input)",
            labels=("key", "model", "kind"),
        )
        for (key, model), stats in list(self.book.stats.items()):
            for status, count in stats.statuses.items():
                requests.add_metric((key, model, status), count)
                if status != "200":
                    errors.add_metric((key, model, status), count)
            for kind, value in (
                ("input", stats.input),
                ("output", stats.output),
                ("cached", stats.cached),
            ):
                if value:
                    tokens.add_metric((key, model, kind), value)
        yield from (requests, errors, tokens)


def _zero() -> dict[str, float]:
    return dict.fromkeys(FIELDS, 0)


def _rounded(entry: dict[str, Any]) -> dict[str, Any]:
    for field in FIELDS[:-1]:
        entry[field] = int(entry[field])
    entry["duration_s"] = round(entry["duration_s"], 3)
    if "models" in entry:
        entry["models"] = [_rounded(m) for m in entry["models"]]
    return entry
