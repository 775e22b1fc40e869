"""HELEXA_* variables: read with pydantic-settings `__` nesting, decoded as TOML values."""

from __future__ import annotations

import pytest

from helexa.config.env import fleet_env_overrides


def test_no_variables_no_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HELEXA_GATEWAY__LISTEN", raising=False)
    assert not any(name.startswith("HELEXA_GATEWAY") for name in _names())


def test_nested_variables_become_located_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HELEXA_GATEWAY__LISTEN", "0.0.0.0:31313")
    monkeypatch.setenv("HELEXA_GATEWAY__API_KEYS", '["k1", "k2"]')
    monkeypatch.setenv("HELEXA_EVICTION__KEEP_ALIVE", "5m")
    monkeypatch.setenv("HELEXA_EVICTION__DEFRAG_AFTER_CYCLES", "7")
    monkeypatch.setenv("HELEXA_RECONCILE__WATCH", "false")
    overrides = fleet_env_overrides()
    values = {loc: o.value for loc, o in overrides.items()}
    assert values[("gateway", "listen")] == "0.0.0.0:31313"  # not TOML: kept as text
    assert values[("gateway", "api_keys")] == ["k1", "k2"]
    assert values[("eviction", "keep_alive")] == "5m"
    assert values[("eviction", "defrag_after_cycles")] == 7
    assert values[("reconcile", "watch")] is False
    assert overrides[("eviction", "keep_alive")].name == "HELEXA_EVICTION__KEEP_ALIVE"


def test_path_variables_are_not_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HELEXA_FLEET", "/tmp/fleet.toml")
    monkeypatch.setenv("HELEXA_MODELS", "/tmp/models.toml")
    assert not {"HELEXA_FLEET", "HELEXA_MODELS"} & set(_names())


def _names() -> list[str]:
    return [o.name for o in fleet_env_overrides().values()]
