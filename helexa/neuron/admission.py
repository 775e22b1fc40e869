"""Per-model admission: `max_in_flight` running, a bounded queue, then 503.

A finished request hands its slot straight to the waiter with the highest
priority, the oldest first among equals (FIFO when nobody sets one), so the
counters never overshoot and a freed slot cannot be stolen by a newcomer.
The priority is the calling key's (the gateway sends it as
`X-Helexa-Priority`; docs/keys.md).
Cancellation at any point (client gone, queue timeout) leaves the counters
exact: that is the property the tests pin down.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from helexa.errors import Overloaded

RejectHook = Callable[[str], None]  # called with the reason: "queue_full" | "queue_timeout"


def priority_of(value: str | None) -> int:
    """The priority a request's header asks for; absent or malformed means 0."""
    if not value:
        return 0
    try:
        return int(value)
    except ValueError:
        return 0


class Admission:
    def __init__(
        self,
        max_in_flight: int,
        max_queue: int,
        queue_timeout: float,
        on_reject: RejectHook | None = None,
    ) -> None:
        if max_in_flight < 1:
            raise ValueError("max_in_flight must be >= 1")
        self.max_in_flight = max_in_flight
        self.max_queue = max_queue
        self.queue_timeout = queue_timeout
        self._on_reject = on_reject
        self._running = 0
        # (-priority, arrival, future): a heap, so the first is the next to run.
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._arrivals = itertools.count()
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def in_flight(self) -> int:
        return self._running

    @property
    def queued(self) -> int:
        return len(self._waiters)

    async def wait_idle(self) -> None:
        """Return once nothing runs and nothing waits."""
        await self._idle.wait()

    @asynccontextmanager
    async def slot(self, priority: int = 0) -> AsyncIterator[None]:
        await self.acquire(priority)
        try:
            yield
        finally:
            self.release()

    async def acquire(self, priority: int = 0) -> None:
        if self._running < self.max_in_flight and not self._waiters:
            self._take()
            return
        if len(self._waiters) >= self.max_queue:
            self._reject("queue_full", f"model busy: {self._running} running, queue full")
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (-priority, next(self._arrivals), waiter))
        self._idle.clear()
        try:
            async with asyncio.timeout(self.queue_timeout):
                await waiter
        except TimeoutError:
            self._abandon(waiter)
            self._reject("queue_timeout", f"waited {self.queue_timeout:g}s in the queue")
        except BaseException:
            self._abandon(waiter)
            raise

    def release(self) -> None:
        while self._waiters:
            _, _, waiter = heapq.heappop(self._waiters)
            if not waiter.done():
                waiter.set_result(None)  # the slot passes on; _running is unchanged
                return
        self._running -= 1
        if self._running == 0:
            self._idle.set()

    def _take(self) -> None:
        self._running += 1
        self._idle.clear()

    def _abandon(self, waiter: asyncio.Future[None]) -> None:
        """A waiter leaves: if it had already been handed a slot, pass that on."""
        if waiter.done() and not waiter.cancelled():
            self.release()
            return
        waiter.cancel()
        kept = [entry for entry in self._waiters if entry[2] is not waiter]
        if len(kept) != len(self._waiters):
            self._waiters[:] = kept
            heapq.heapify(self._waiters)
        if self._running == 0 and not self._waiters:
            self._idle.set()

    def _reject(self, reason: str, message: str) -> None:
        if self._on_reject is not None:
            self._on_reject(reason)
        raise Overloaded(message, retry_after=max(1.0, min(self.queue_timeout, 5.0)))
