"""keys.toml: named API keys (principals) with model access, a role and limits.

Only a key's SHA-256 is stored; the key itself is printed once by
`helexa keys add` and never written. The file sits next to fleet.toml
(`[gateway] keys_file` names another place) and is optional: without it only
fleet.toml's `api_keys` (unnamed admin keys) apply. See docs/keys.md.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping
from datetime import UTC, date, datetime, time
from typing import Any, Literal

from pydantic import Field

from helexa.config.base import Problem, StrictModel, table_entries

KEYS_FILE = "keys.toml"
KEY_PREFIX = "hx-"
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._@-]*$"
Role = Literal["user", "admin"]


def hash_key(key: str) -> str:
    """The hex SHA-256 a key is stored and looked up by."""
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> str:
    """A fresh random key: 256 bits, URL-safe, recognisable by its prefix."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


class KeyEntry(StrictModel):
    """One `[[keys]]` entry."""

    name: str = Field(pattern=NAME_PATTERN)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    # Globs (fnmatch) over the model id that serves the request (after aliases).
    models: list[str] = Field(default_factory=lambda: ["*"])
    role: Role = "user"
    requests_per_minute: int | None = Field(default=None, ge=1)
    tokens_per_minute: int | None = Field(default=None, ge=1)  # input + output
    max_concurrent: int | None = Field(default=None, ge=1)
    priority: int = 0
    expires: datetime | date | None = None  # a date means its midnight UTC

    @property
    def expires_at(self) -> float | None:
        """Expiry as a UNIX time (naive times are UTC), None when it never expires."""
        if self.expires is None:
            return None
        when = self.expires
        if not isinstance(when, datetime):
            when = datetime.combine(when, time(0, 0))
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return when.timestamp()


class KeysConfig(StrictModel):
    keys: list[KeyEntry] = Field(default_factory=list)

    def get(self, name: str) -> KeyEntry | None:
        return next((k for k in self.keys if k.name == name), None)

    @classmethod
    def cross_check(cls, data: Mapping[str, Any], context: Mapping[str, Any]) -> list[Problem]:
        problems: list[Problem] = []
        for field in ("name", "sha256"):
            first: dict[str, int] = {}
            for index, entry in table_entries(data, "keys"):
                value = entry.get(field)
                if not isinstance(value, str):
                    continue
                if value in first:
                    problems.append(
                        Problem(
                            ("keys", index, field),
                            f"duplicate key {field} {value!r} (first at keys[{first[value]}])",
                        )
                    )
                else:
                    first[value] = index
        return problems
