"""Admission: slots, FIFO queue, rejections, and counters exact under cancellation."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from helexa.errors import Overloaded
from helexa.neuron.admission import Admission, priority_of


async def _wait_for(predicate: Callable[[], bool]) -> None:
    """Let other tasks run until `predicate` holds (bounded: fails rather than hangs)."""
    for _ in range(10_000):
        if predicate():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition never held")


async def test_slots_then_queue_then_reject() -> None:
    reasons: list[str] = []
    adm = Admission(max_in_flight=2, max_queue=1, queue_timeout=5, on_reject=reasons.append)
    await adm.acquire()
    await adm.acquire()
    queued = asyncio.create_task(adm.acquire())
    await _wait_for(lambda: adm.queued == 1)
    with pytest.raises(Overloaded) as info:
        await adm.acquire()
    assert info.value.status == 503
    assert info.value.headers()["Retry-After"] == "5"
    assert reasons == ["queue_full"]
    adm.release()  # hands the slot to the queued waiter
    await queued
    assert (adm.in_flight, adm.queued) == (2, 0)
    adm.release()
    adm.release()
    assert (adm.in_flight, adm.queued) == (0, 0)


async def test_queue_is_fifo() -> None:
    adm = Admission(max_in_flight=1, max_queue=3, queue_timeout=5)
    order: list[int] = []
    await adm.acquire()

    async def worker(n: int) -> None:
        async with adm.slot():
            order.append(n)

    tasks = []
    for n in range(3):
        tasks.append(asyncio.create_task(worker(n)))
        await _wait_for(lambda: adm.queued == len(tasks))
    adm.release()
    await asyncio.gather(*tasks)
    assert order == [0, 1, 2]
    assert (adm.in_flight, adm.queued) == (0, 0)


async def test_higher_priority_waiters_go_first_fifo_among_equals() -> None:
    adm = Admission(max_in_flight=1, max_queue=5, queue_timeout=5)
    order: list[str] = []
    await adm.acquire()

    async def worker(name: str, priority: int) -> None:
        async with adm.slot(priority):
            order.append(name)

    tasks = []
    for name, priority in (("a0", 0), ("b5", 5), ("c0", 0), ("d9", 9), ("e5", 5)):
        tasks.append(asyncio.create_task(worker(name, priority)))
        await _wait_for(lambda: adm.queued == len(tasks))
    tasks[2].cancel()  # a waiter that leaves is taken out of the order
    await _wait_for(lambda: adm.queued == 4)
    adm.release()
    await asyncio.gather(*tasks, return_exceptions=True)
    assert order == ["d9", "b5", "e5", "a0"]
    assert (adm.in_flight, adm.queued) == (0, 0)


def test_priority_header_values() -> None:
    assert [priority_of(v) for v in (None, "", "7", "-2", "high")] == [0, 0, 7, -2, 0]


async def test_queue_timeout_rejects_and_leaves_counters_exact() -> None:
    reasons: list[str] = []
    adm = Admission(max_in_flight=1, max_queue=4, queue_timeout=0.05, on_reject=reasons.append)
    await adm.acquire()
    with pytest.raises(Overloaded):
        await adm.acquire()
    assert reasons == ["queue_timeout"]
    assert (adm.in_flight, adm.queued) == (1, 0)
    adm.release()
    assert adm.in_flight == 0


async def test_cancelled_waiters_and_holders_return_counters_to_zero() -> None:
    adm = Admission(max_in_flight=2, max_queue=8, queue_timeout=30)
    hold = asyncio.Event()

    async def user() -> None:
        async with adm.slot():
            await hold.wait()

    tasks = [asyncio.create_task(user()) for _ in range(8)]
    await _wait_for(lambda: adm.in_flight == 2 and adm.queued == 6)
    for task in tasks[::2]:  # cancel holders and waiters alike
        task.cancel()
    await _wait_for(lambda: adm.in_flight == 2 and adm.queued == 2)
    hold.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    assert (adm.in_flight, adm.queued) == (0, 0)
    await asyncio.wait_for(adm.wait_idle(), 1)


async def test_waiter_cancelled_after_being_handed_a_slot_passes_it_on() -> None:
    adm = Admission(max_in_flight=1, max_queue=2, queue_timeout=30)
    await adm.acquire()
    first = asyncio.create_task(adm.acquire())
    second = asyncio.create_task(adm.acquire())
    await _wait_for(lambda: adm.queued == 2)
    adm.release()  # resolves first's future ...
    first.cancel()  # ... but first is cancelled before it runs
    await asyncio.gather(first, return_exceptions=True)
    await asyncio.wait_for(second, 1)  # the slot went on to second
    assert (adm.in_flight, adm.queued) == (1, 0)
    adm.release()
    assert adm.in_flight == 0
