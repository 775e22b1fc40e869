"""Fixtures for the host-level reconcile tests: a real sshd on loopback, a wheel."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.deploy.hosts import build_wheel
from tests.deploy.sshd import Sshd, run_sshd


@pytest.fixture
def sshd(tmp_path: Path) -> Iterator[Sshd]:
    with run_sshd(tmp_path / "sshd") as server:
        yield server


@pytest.fixture(scope="session")
def helexa_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_wheel(tmp_path_factory.mktemp("wheel"))
