"""HELEXA_* environment overrides for fleet.toml (pydantic-settings, `__` nesting).

`HELEXA_GATEWAY__LISTEN=0.0.0.0:31313` sets `[gateway] listen`. Values are read as TOML
values when they parse as one (`50`, `true`, `["k1", "k2"]`) and as plain strings
otherwise (`30m`, `0.0.0.0:31313`), then validated with the same strict model as the
file, so a bad override is reported like a bad key, naming the variable.
"""

from __future__ import annotations

import tomllib
from typing import Any

from pydantic import Field
from pydantic_settings import BaseSettings, EnvSettingsSource, SettingsConfigDict

from helexa.config.base import Loc
from helexa.config.loader import Override

ENV_PREFIX = "HELEXA_"
ENV_NESTING = "__"


class _FleetEnvironment(BaseSettings):
    """The fleet.toml sections that may be overridden; `[[neurons]]` is file-only."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_nested_delimiter=ENV_NESTING)

    # Raw dicts: the strict FleetConfig validates the values after merging.
    gateway: dict[str, Any] = Field(default_factory=dict)
    eviction: dict[str, Any] = Field(default_factory=dict)
    reconcile: dict[str, Any] = Field(default_factory=dict)


def fleet_env_overrides() -> dict[Loc, Override]:
    """Every HELEXA_<SECTION>__<KEY> variable set now, by the location it overrides."""
    raw = EnvSettingsSource(_FleetEnvironment)()
    overrides: dict[Loc, Override] = {}
    for loc, value in _leaves(raw, ()):
        name = ENV_PREFIX + ENV_NESTING.join(str(part) for part in loc).upper()
        overrides[loc] = Override(name=name, value=_toml_value(value))
    return overrides


def _leaves(value: Any, loc: Loc) -> list[tuple[Loc, Any]]:
    if isinstance(value, dict):
        return [leaf for key, item in value.items() for leaf in _leaves(item, (*loc, key))]
    return [(loc, value)]


def _toml_value(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    try:
        return tomllib.loads(f"value = {value}")["value"]
    except tomllib.TOMLDecodeError:
        return value
