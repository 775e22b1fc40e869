"""Translation fixtures."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.translate.canned_anthropic import CannedServer, running_canned_server


@pytest.fixture
def canned_server() -> Iterator[CannedServer]:
    """A loopback HTTP server answering with canned bytes, for the real anthropic SDK."""
    with running_canned_server() as server:
        yield server
