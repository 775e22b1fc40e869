"""Repository housekeeping: files helexa writes are ignored, and the build metadata is current."""

from __future__ import annotations

import tomllib
from pathlib import Path

from helexa.reconcile.lock import LOCK_NAME

REPO = Path(__file__).resolve().parent.parent


def test_the_reconcile_lock_is_git_ignored() -> None:
    # `make run` writes it next to the repository's fleet.toml and models.toml.
    patterns = (REPO / ".gitignore").read_text().splitlines()
    assert LOCK_NAME in patterns


def test_license_is_an_spdx_expression() -> None:
    # setuptools >= 77 warns at every install about the `{ text = ... }` table form.
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert pyproject["project"]["license"] == "Apache-2.0"
    assert "setuptools>=77" in pyproject["build-system"]["requires"]
