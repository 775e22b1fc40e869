"""Reliability fixtures: one keyed gateway + neuron stack per module (loading is the cost)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from tests.reliability.stack import Stack, keyed_stack


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def stack(
    tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Stack]:
    async with keyed_stack(tmp_path_factory.mktemp("stack"), tiny_model_dir) as running:
        yield running
