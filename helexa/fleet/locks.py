"""One lock per neuron, taken by whoever changes what it holds (load, unload, restart).

The cold loader, the reconcile daemon and the admin routes all take it, and
none of them owns it: whoever wires them (`Gateway`, `helexa serve`) makes one
`NeuronActionLocks` and hands it to each. Under it, an evict+load counts a
neuron's free memory once: two loads never both spend the same room.
"""

from __future__ import annotations

import asyncio


class NeuronActionLocks:
    """`locks(name)` is neuron `name`'s lock (made on first use)."""

    __slots__ = ("_locks",)

    def __init__(self) -> None:
        self._locks: dict[str, asyncio.Lock] = {}

    def __call__(self, neuron: str) -> asyncio.Lock:
        lock = self._locks.get(neuron)
        if lock is None:
            lock = self._locks[neuron] = asyncio.Lock()
        return lock
