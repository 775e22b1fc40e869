"""The base of every config model: strict types, unknown keys rejected, cross-entry checks."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict

# A path into a TOML document, as pydantic reports it: ("neurons", 1, "endpoint").
Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class Problem:
    """A rule broken across entries (duplicates, dangling aliases), located by its key."""

    loc: Loc
    message: str


class StrictModel(BaseModel):
    """Strict config: TOML has real types, so "2" is not an int and "yes" is not a bool."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    @classmethod
    def cross_check(cls, data: Mapping[str, Any], context: Mapping[str, Any]) -> list[Problem]:
        """Rules spanning entries, checked on the raw document.

        `context` is the validation context (e.g. facts from the other config file).

        They run on the raw data (not the validated model) so that a file with both a
        typo and a duplicate name reports both at once.
        """
        return []


def table_entries(data: Mapping[str, Any], table: str) -> list[tuple[int, Mapping[str, Any]]]:
    """The well-formed entries of an array of tables in raw data, with their indexes."""
    value = data.get(table)
    if not isinstance(value, list):
        return []
    return [(i, entry) for i, entry in enumerate(value) if isinstance(entry, Mapping)]
