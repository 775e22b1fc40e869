"""Fixtures for config tests: write TOML files and pick apart the errors they raise."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from helexa.errors import ConfigError


@pytest.fixture
def repo_root() -> Path:
    return Path(__file__).resolve().parents[2]


@pytest.fixture
def fixtures_dir() -> Path:
    return Path(__file__).resolve().parent / "fixtures"


@pytest.fixture
def write_toml(tmp_path: Path) -> Callable[[str, str], Path]:
    """write_toml(name, text) -> path; `text` is dedented so tests can indent it."""

    def write(name: str, text: str) -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        return path

    return write


@pytest.fixture
def error_at() -> Callable[[list[ConfigError], int, str], ConfigError]:
    """error_at(errors, line, key): that error; fails listing what was reported instead."""

    def find(errors: list[ConfigError], line: int, key: str) -> ConfigError:
        for error in errors:
            if error.line == line and error.key == key:
                return error
        reported = "\n".join(str(e) for e in errors)
        raise AssertionError(f"no error at line {line} for {key!r}; got:\n{reported}")

    return find
