"""Per-key limits: requests and tokens per minute (token buckets) and a concurrency cap.

Pure and cheap, since every request of a limited key passes here: a bucket is
two floats refilled from the monotonic clock when read, never by a timer.

- `requests_per_minute`: a bucket of that many requests, refilled evenly over
  a minute; a request takes one. A refused request takes nothing.
- `tokens_per_minute` (input + output): before a request starts, the bucket
  must hold its prompt estimate, which is reserved; when the answer ends the
  reservation is replaced by the real usage. The bucket may go below zero
  then, so one long answer overshoots by at most its own size and the key
  waits until the bucket refills.
- `max_concurrent`: requests of the key in flight at once.

A refusal says how long to wait (`RateLimited.retry_after`, sent as
Retry-After): the time until the bucket holds enough again, or 1 s for the
concurrency cap (a slot frees when any answer ends).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from helexa.errors import RateLimited

MINUTE = 60.0


class TokenBucket:
    """`capacity` units refilled at `capacity` per minute; the level may go negative."""

    __slots__ = ("capacity", "level", "rate", "stamp")

    def __init__(self, per_minute: float, now: float) -> None:
        self.capacity = float(per_minute)
        self.rate = self.capacity / MINUTE
        self.level = self.capacity
        self.stamp = now

    def refill(self, now: float) -> float:
        if now > self.stamp:
            level = self.level + (now - self.stamp) * self.rate
            self.level = level if level < self.capacity else self.capacity
            self.stamp = now
        return self.level

    def wait_for(self, amount: float) -> float:
        """Seconds until the (refilled) level reaches `amount`; 0 when it already does."""
        missing = amount - self.level
        return 0.0 if missing <= 0 else missing / self.rate

    def resize(self, per_minute: float, now: float) -> None:
        """A new limit (a reload): the level keeps what was used, capped to the new size."""
        self.refill(now)
        used = self.capacity - self.level
        self.capacity = float(per_minute)
        self.rate = self.capacity / MINUTE
        self.level = self.capacity - used


@dataclass(frozen=True)
class Limits:
    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None
    max_concurrent: int | None = None

    @property
    def any(self) -> bool:
        return bool(self.requests_per_minute or self.tokens_per_minute or self.max_concurrent)


class KeyQuota:
    """The live limit state of one key; kept across reloads while the key's name stays."""

    __slots__ = ("in_flight", "limited", "limits", "requests", "tokens")

    def __init__(self, limits: Limits, now: float) -> None:
        self.limits = limits
        self.in_flight = 0
        self.limited = False
        self.requests: TokenBucket | None = None
        self.tokens: TokenBucket | None = None
        self.set_limits(limits, now)

    def set_limits(self, limits: Limits, now: float) -> None:
        self.limits = limits
        self.limited = limits.any  # no limit at all: only in_flight is counted
        self.requests = _bucket(self.requests, limits.requests_per_minute, now)
        self.tokens = _bucket(self.tokens, limits.tokens_per_minute, now)

    def take(self, prompt_estimate: int, now: float) -> int:
        """Admit one request or raise RateLimited; returns the tokens reserved."""
        cap = self.limits.max_concurrent
        if cap is not None and self.in_flight >= cap:
            raise RateLimited(f"this key already has {cap} requests in flight", retry_after=1.0)
        requests, tokens = self.requests, self.tokens
        if requests is not None and requests.refill(now) < 1.0:
            raise RateLimited(
                f"this key's limit of {self.limits.requests_per_minute} requests per minute "
                "is reached",
                retry_after=_seconds(requests.wait_for(1.0)),
            )
        reserved = 0
        if tokens is not None:
            # A prompt larger than the whole bucket waits for a full bucket, not forever.
            reserved = min(prompt_estimate, int(tokens.capacity))
            if tokens.refill(now) < max(reserved, 1):
                raise RateLimited(
                    f"this key's limit of {self.limits.tokens_per_minute} tokens per minute "
                    "is reached",
                    retry_after=_seconds(tokens.wait_for(max(reserved, 1))),
                )
            tokens.level -= reserved
        if requests is not None:
            requests.level -= 1.0
        self.in_flight += 1
        return reserved

    def settle(self, reserved: int, used_tokens: int, clock: Callable[[], float]) -> None:
        """The request ended: free its slot and charge its real tokens for the reservation."""
        self.in_flight -= 1
        tokens = self.tokens
        if tokens is not None:  # the clock is read only when a bucket needs it
            tokens.refill(clock())
            tokens.level += reserved - used_tokens


def estimate_prompt_tokens(body_bytes: int) -> int:
    """A cheap upper-side guess of a prompt's tokens from its body size (about 4 bytes each)."""
    return body_bytes // 4


def _bucket(current: TokenBucket | None, per_minute: int | None, now: float) -> TokenBucket | None:
    if per_minute is None:
        return None
    if current is None:
        return TokenBucket(per_minute, now)
    current.resize(per_minute, now)
    return current


def _seconds(wait: float) -> float:
    # Whole seconds for Retry-After; the epsilon keeps 20.000000004 (float noise) at 20.
    return float(max(1, math.ceil(wait - 1e-6)))
