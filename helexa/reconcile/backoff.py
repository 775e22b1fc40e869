"""Exponential backoff per failing action, so one broken model does not hammer a neuron."""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Backoff:
    base_s: float = 1.0
    max_s: float = 300.0
    _failures: dict[Hashable, tuple[int, float]] = field(default_factory=dict)  # n, retry_at

    def failed(self, key: Hashable, now: float) -> float:
        """Record a failure; returns the delay before the next attempt."""
        count = self._failures.get(key, (0, 0.0))[0] + 1
        delay: float = min(self.max_s, self.base_s * 2.0 ** (count - 1))
        self._failures[key] = (count, now + delay)
        return delay

    def succeeded(self, key: Hashable) -> None:
        self._failures.pop(key, None)

    def wait_left(self, key: Hashable, now: float) -> float:
        """Seconds until `key` may be tried again (0 = now)."""
        entry = self._failures.get(key)
        return max(0.0, entry[1] - now) if entry else 0.0

    def to_json(self, now: float) -> list[dict[str, Any]]:
        return [
            {
                "action": list(key) if isinstance(key, tuple) else key,
                "failures": n,
                "retry_in_s": round(max(0.0, at - now), 3),
            }
            for key, (n, at) in self._failures.items()
        ]
