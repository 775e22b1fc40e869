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
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import Any

from helexa.gateway.series import CounterSeries

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


class UsageBook:
    """The per-key counters and the rolling per-minute window of one gateway."""

    def __init__(self, keep_s: float = DAY_S) -> None:
        self.keep_s = keep_s
        self.requests = CounterSeries(
            "cortex_key_requests",
            "Requests per API key (by name), by status",
            ["key", "model", "status"],
        )
        self.errors = CounterSeries(
            "cortex_key_errors",
            "Requests per API key answered with an error",
            ["key", "model", "status"],
        )
        self.tokens = CounterSeries(
            "cortex_key_tokens",
            "Tokens per API key: kind = input, output or cached (part of input)",
            ["key", "model", "kind"],
        )
        # minute (UNIX time // 60) -> (key, model) -> totals in FIELDS order
        self.minutes: dict[int, dict[tuple[str, str], list[float]]] = {}
        self.listeners: list[Callable[[UsageRecord], None]] = []  # e.g. the usage log

    def record(self, rec: UsageRecord) -> None:
        labels = (rec.key, rec.model)
        status = rec.status
        self.requests.inc((*labels, status))
        failed = status != "200"
        if failed:
            self.errors.inc((*labels, status))
        if rec.input_tokens:
            self.tokens.inc((*labels, "input"), rec.input_tokens)
        if rec.output_tokens:
            self.tokens.inc((*labels, "output"), rec.output_tokens)
        if rec.cached_tokens:
            self.tokens.inc((*labels, "cached"), rec.cached_tokens)
        self.add(rec, failed)
        for listener in self.listeners:
            listener(rec)

    def add(self, rec: UsageRecord, failed: bool) -> None:
        """Count `rec` in its minute of the window (also used to replay the log at start)."""
        minute = int(rec.time // 60)
        per_minute = self.minutes.get(minute)
        if per_minute is None:
            per_minute = self.minutes[minute] = {}
            self._prune(minute)
        totals = per_minute.get((rec.key, rec.model))
        if totals is None:
            totals = per_minute[(rec.key, rec.model)] = [0.0] * len(FIELDS)
        totals[0] += 1
        totals[1] += failed
        totals[2] += rec.input_tokens
        totals[3] += rec.output_tokens
        totals[4] += rec.cached_tokens
        totals[5] += rec.duration_s

    def replay(self, records: Iterable[UsageRecord], now: float) -> int:
        """Fill the window from the usage log (a restart keeps the last day); returns count."""
        count = 0
        for rec in records:
            if now - rec.time <= self.keep_s:
                self.add(rec, rec.status != "200")
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


def _zero() -> dict[str, float]:
    return dict.fromkeys(FIELDS, 0)


def _rounded(entry: dict[str, Any]) -> dict[str, Any]:
    for field in FIELDS[:-1]:
        entry[field] = int(entry[field])
    entry["duration_s"] = round(entry["duration_s"], 3)
    if "models" in entry:
        entry["models"] = [_rounded(m) for m in entry["models"]]
    return entry
