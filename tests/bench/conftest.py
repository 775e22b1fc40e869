"""The bench stub served in the test's own event loop, on an ephemeral loopback port."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bench.upstream import serve_stub


@pytest.fixture
async def stub_url() -> AsyncIterator[str]:
    """The stub's base URL (no trailing /); every connection is closed when the test ends."""
    server = await serve_stub("127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.close()
        await server.wait_closed()
