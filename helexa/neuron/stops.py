"""Stop strings for streamed text, held back across chunk borders (pure).

A stream must never show a client part of a stop string, yet it cannot wait
for the whole output either. `StopMatcher` emits text as soon as it can no
longer be the start of a stop string and cuts exactly where the
non-streaming rule would: at the earliest occurrence of any stop string
(`min(text.find(s))`), whatever the chunking.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple


class StopResult(NamedTuple):
    text: str  # safe to emit now
    matched: bool  # a stop string was hit; nothing more will be emitted


class StopMatcher:
    """Feed decoded text pieces; get back what may be emitted and whether to stop."""

    def __init__(self, stops: Iterable[str]) -> None:
        # Shortest first: of stop strings starting at the same place, the shortest
        # completes first and is the one reported.
        self.stops = sorted({s for s in stops if s}, key=lambda s: (len(s), s))
        self.matched_stop: str | None = None
        self._held = ""
        self._longest = max((len(s) for s in self.stops), default=0)

    @property
    def stopped(self) -> bool:
        return self.matched_stop is not None

    def feed(self, text: str) -> StopResult:
        if self.stopped:
            return StopResult("", True)
        if not self.stops:
            return StopResult(text, False)
        buffer = self._held + text
        found = find_stop(buffer, self.stops)
        pending = self._earliest_partial(buffer)
        if found is not None and (pending is None or found[0] <= pending):
            self._held = ""
            self.matched_stop = found[1]
            return StopResult(buffer[: found[0]], True)
        # Keep everything from the earliest place a stop string could still start:
        # a longer stop beginning there would cut earlier than one found after it.
        cut = len(buffer) if pending is None else pending
        self._held = buffer[cut:]
        return StopResult(buffer[:cut], False)

    def flush(self) -> str:
        """The held-back text at the end of the stream (cut if it holds a stop string)."""
        if self.stopped:
            return ""
        buffer, self._held = self._held, ""
        found = find_stop(buffer, self.stops)
        if found is None:
            return buffer
        self.matched_stop = found[1]
        return buffer[: found[0]]

    def _earliest_partial(self, buffer: str) -> int | None:
        """Where the longest suffix of `buffer` that is a proper prefix of a stop begins."""
        for start in range(max(0, len(buffer) - self._longest + 1), len(buffer)):
            tail = buffer[start:]
            if any(len(stop) > len(tail) and stop.startswith(tail) for stop in self.stops):
                return start
        return None


def find_stop(text: str, stops: Iterable[str]) -> tuple[int, str] | None:
    """The earliest stop string in `text` and where it starts (shortest wins a tie)."""
    best: tuple[int, str] | None = None
    for stop in stops:
        index = text.find(stop) if stop else -1
        if index >= 0 and (best is None or (index, len(stop)) < (best[0], len(best[1]))):
            best = (index, stop)
    return best
