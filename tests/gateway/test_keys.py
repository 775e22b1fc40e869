"""The key ring: lookup by hash, old api_keys as admin keys, live limits kept on reload."""

from __future__ import annotations

from pathlib import Path

from helexa.config import Config, FleetConfig, GatewayConfig, ModelsConfig
from helexa.config.keys import KeyEntry, KeysConfig, hash_key
from helexa.gateway.keys import KeyRing, Ticket
from helexa.gateway.usage import UsageBook


def config(api_keys: list[str], *entries: dict[str, object]) -> Config:
    return Config(
        fleet=FleetConfig(gateway=GatewayConfig(api_keys=api_keys)),
        models=ModelsConfig(),
        fleet_path=Path("fleet.toml"),
        models_path=Path("models.toml"),
        keys=KeysConfig(keys=[KeyEntry.model_validate(e) for e in entries]),
    )


def test_keys_are_found_by_hash_and_old_api_keys_are_unnamed_admins() -> None:
    ring = KeyRing.build(config(["old"], {"name": "a", "sha256": hash_key("ka")}))
    a, old = ring.lookup("ka"), ring.lookup("old")
    assert a is not None and a.name == "a" and not a.admin
    assert old is not None and old.name == "api_keys[0]" and old.admin
    assert ring.lookup("nope") is None and not ring.empty
    assert KeyRing.build(config([])).empty


def test_model_globs() -> None:
    ring = KeyRing.build(
        config([], {"name": "a", "sha256": hash_key("k"), "models": ["qwen/*", "x"]})
    )
    a = ring.lookup("k")
    assert a is not None
    assert a.may_use("qwen/Qwen3-8B") and a.may_use("x")
    assert not a.may_use("xy") and not a.may_use("meta/llama")


def test_a_reload_keeps_the_live_limits_of_a_key_kept_by_name() -> None:
    entry = {"name": "a", "sha256": hash_key("k"), "requests_per_minute": 5}
    first = KeyRing.build(config([], entry))
    a = first.lookup("k")
    assert a is not None
    ticket = Ticket(a, UsageBook(), lambda: 0.0, "openai")
    ticket.admit("m", 0)
    second = KeyRing.build(config([], {**entry, "requests_per_minute": 10}), first)
    again = second.lookup("k")
    assert again is not None and again.quota is a.quota
    assert again.quota.in_flight == 1 and again.quota.limits.requests_per_minute == 10
    ticket.finish("n", 200, None)
    assert again.quota.in_flight == 0
    renamed = KeyRing.build(config([], {**entry, "name": "b"}), second)
    fresh = renamed.lookup("k")
    assert fresh is not None and fresh.quota is not a.quota
