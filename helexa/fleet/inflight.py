"""Requests this gateway has in flight, by (neuron, model): counted where polls cannot reach.

The poller replaces a neuron's locations wholesale on every poll, so a count
kept on a `ModelLocation` would be lost (or, worse, decremented on an object
no longer in the fleet). The ledger outlives the locations; a location reads
it (see `ModelLocation.active`) to say how busy its copy is between polls.
"""

from __future__ import annotations


class InFlightLedger:
    """Counts per (neuron, model); `start` before sending a request, `finish` after it."""

    __slots__ = ("_counts",)

    def __init__(self) -> None:
        self._counts: dict[tuple[str, str], int] = {}

    def start(self, neuron: str, model: str) -> None:
        key = (neuron, model)
        self._counts[key] = self._counts.get(key, 0) + 1

    def finish(self, neuron: str, model: str) -> None:
        key = (neuron, model)
        left = self._counts.get(key, 0) - 1
        if left > 0:
            self._counts[key] = left
        else:
            self._counts.pop(key, None)

    def count(self, neuron: str, model: str) -> int:
        return self._counts.get((neuron, model), 0)

    def total(self) -> int:
        return sum(self._counts.values())
