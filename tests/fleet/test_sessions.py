"""LazySession: made on first use, reused, made anew after close."""

from __future__ import annotations

import aiohttp

from helexa.fleet.sessions import LazySession


async def test_one_session_until_closed_then_a_new_one() -> None:
    made: list[aiohttp.ClientSession] = []

    def factory() -> aiohttp.ClientSession:
        made.append(aiohttp.ClientSession())
        return made[-1]

    lazy = LazySession(factory)
    assert made == []  # nothing until asked for
    first = lazy.get()
    assert lazy.get() is first and len(made) == 1
    await lazy.close()
    assert first.closed
    second = lazy.get()
    assert second is not first and len(made) == 2
    await second.close()  # closed behind its back (e.g. by a test's teardown)
    third = lazy.get()
    assert third is not second and not third.closed
    await lazy.close()
    await lazy.close()  # closing twice is harmless
    assert third.closed
