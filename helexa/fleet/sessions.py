"""The aiohttp session the poller, the neuron client and the proxy share the shape of.

A session must be created inside the running event loop, so clients take a
factory (tests inject their own) and make the session on first use, again
after it was closed.
"""

from __future__ import annotations

from collections.abc import Callable

import aiohttp

SessionFactory = Callable[[], aiohttp.ClientSession]


class LazySession:
    """One session from `factory`, made when first asked for."""

    def __init__(self, factory: SessionFactory) -> None:
        self._factory = factory
        self._session: aiohttp.ClientSession | None = None

    def get(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = self._factory()
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
