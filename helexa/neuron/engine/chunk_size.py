"""How many prompt tokens one prefill chunk takes, sized by measured time.

A chunk runs between two decode steps of the running batch, so the running
streams' gap between tokens is about one step plus one chunk. Sizing each
chunk so that it costs about CHUNK_BUDGET decode steps keeps that gap under
(1 + CHUNK_BUDGET) steps on any hardware: a fast GPU gets chunks of hundreds
of tokens, a 2-core CPU a few dozen.

The owner thread measures both costs as it goes: the duration of a decode
step (the median of the last STEP_WINDOW steps: one step stalled by the OS or
the garbage collector, measured at 168 ms among 1 ms steps on a 2-core CPU,
would otherwise inflate a moving average, and with it the next chunks, for
dozens of steps), and the seconds per token of each prefill chunk
(exponentially weighted: an outlier there only makes the next chunks smaller).
A chunk's cost is about a + b x tokens (a fixed per-pass overhead, then each
token's share, which grows with the prefix the chunk attends to). Sizing the
next chunk as budget / (last seconds per token) converges on a chunk that
costs the budget: for n tokens costing a + b.n, the next size is
n.budget / (a + b.n), whose fixed point (budget - a) / b attracts since
a < budget. Re-measuring every chunk also follows b as the prefix grows.

With nothing running there is nothing to protect: the prompt goes in as one
pass (the caller caps it by its one-prefill limit), so its time to first
token is not spent on chunk overheads.
"""

from __future__ import annotations

import statistics
from collections import deque
from dataclasses import dataclass, field

CHUNK_BUDGET = 0.8  # a chunk costs about this many decode steps (gap ~ 1.8x steady)
CHUNK_FLOOR = 16  # tokens: a long prompt always advances, however slow a chunk is
CHUNK_CAP = 2048  # tokens: bounds a chunk's attention scratch memory
STEP_WINDOW = 15  # decode steps whose median is the step's cost
TOKEN_WEIGHT = 0.5  # of the newest chunk's seconds per token: the prefix grows, follow it


def chunk_tokens(
    step_seconds: float | None,
    token_seconds: float | None,
    *,
    running: bool,
    budget: float = CHUNK_BUDGET,
    floor: int = CHUNK_FLOOR,
    cap: int = CHUNK_CAP,
) -> int | None:
    """Prompt tokens the next chunk may take; None = no limit (no stream is running).

    Before both costs are measured the chunk is the floor: small, and its own
    measurement sizes the next one."""
    if not running:
        return None
    if step_seconds is None or token_seconds is None or token_seconds <= 0:
        return floor
    return max(floor, min(cap, int(budget * step_seconds / token_seconds)))


@dataclass
class ChunkTimer:
    """Moving averages of the owner thread's measured costs; touched by that thread only."""

    token_seconds: float | None = None  # one prompt token of a prefill chunk
    _steps: deque[float] = field(default_factory=lambda: deque(maxlen=STEP_WINDOW))

    @property
    def step_seconds(self) -> float | None:
        """One decode step of the running batch: the median of the last few."""
        return statistics.median(self._steps) if self._steps else None

    def record_step(self, seconds: float) -> None:
        self._steps.append(seconds)

    def record_chunk(self, seconds: float, tokens: int) -> None:
        if tokens > 0:
            self.token_seconds = _average(self.token_seconds, seconds / tokens, TOKEN_WEIGHT)

    def tokens(self, *, running: bool) -> int | None:
        return chunk_tokens(self.step_seconds, self.token_seconds, running=running)


def _average(old: float | None, new: float, weight: float) -> float:
    return new if old is None else old + weight * (new - old)
