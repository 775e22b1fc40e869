"""keys.toml: strict schema, hashes only, found next to fleet.toml, errors with file:line."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from helexa.config import load_config
from helexa.config.keys import KEY_PREFIX, KeyEntry, KeysConfig, hash_key, new_key
from helexa.config.loader import load_toml
from helexa.errors import ConfigErrors

SHA = hash_key("k")


def write(directory: Path, fleet: str = "", keys: str | None = None) -> Path:
    (directory / "fleet.toml").write_text(fleet)
    (directory / "models.toml").write_text("")
    if keys is not None:
        (directory / "keys.toml").write_text(keys)
    return directory / "fleet.toml"


def test_new_keys_are_random_and_only_their_hash_is_kept() -> None:
    first, second = new_key(), new_key()
    assert first != second and first.startswith(KEY_PREFIX) and len(first) > 40
    assert hash_key("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_defaults_allow_every_model_as_a_user_without_limits() -> None:
    entry = KeyEntry.model_validate({"name": "a", "sha256": SHA})
    assert entry.models == ["*"] and entry.role == "user" and entry.priority == 0
    assert entry.requests_per_minute is None and entry.expires_at is None


def test_expiry_dates_and_naive_times_are_utc() -> None:
    day = KeyEntry.model_validate(
        {"name": "a", "sha256": SHA, "expires": datetime(2030, 1, 2).date()}
    )
    assert day.expires_at == datetime(2030, 1, 2, tzinfo=UTC).timestamp()
    naive = KeyEntry.model_validate(
        {"name": "a", "sha256": SHA, "expires": datetime(2030, 1, 2, 3)}
    )
    assert naive.expires_at == datetime(2030, 1, 2, 3, tzinfo=UTC).timestamp()


def test_keys_toml_next_to_fleet_toml_is_read(tmp_path: Path) -> None:
    fleet = write(tmp_path, keys=f'[[keys]]\nname = "team-a"\nsha256 = "{SHA}"\nrole = "admin"\n')
    config = load_config(fleet, tmp_path / "models.toml")
    assert config.keys_path == tmp_path / "keys.toml"
    assert [(k.name, k.role) for k in config.keys.keys] == [("team-a", "admin")]


def test_no_keys_file_means_no_named_keys(tmp_path: Path) -> None:
    config = load_config(write(tmp_path), tmp_path / "models.toml")
    assert config.keys == KeysConfig() and config.keys_path == tmp_path / "keys.toml"


def test_keys_file_named_in_fleet_toml_must_exist(tmp_path: Path) -> None:
    fleet = write(tmp_path, '[gateway]\nkeys_file = "secret/keys.toml"\n')
    with pytest.raises(ConfigErrors) as err:
        load_config(fleet, tmp_path / "models.toml")
    assert f"{tmp_path}/secret/keys.toml" in str(err.value) and "cannot read" in str(err.value)


def test_every_problem_is_located_by_line(tmp_path: Path) -> None:
    keys = (
        "# team keys\n"
        f'[[keys]]\nname = "a"\nsha256 = "{SHA}"\n'  # lines 2-4
        f'\n[[keys]]\nname = "a"\nsha256 = "{SHA}"\nrpm = 5\n'  # lines 6-9
        '\n[[keys]]\nname = "c"\nsha256 = "not-a-hash"\nrole = "root"\n'  # lines 11-14
    )
    (tmp_path / "keys.toml").write_text(keys)
    with pytest.raises(ConfigErrors) as err:
        load_toml(tmp_path / "keys.toml", KeysConfig)
    lines = {(e.line, e.key) for e in err.value.errors}
    assert (7, "keys[1].name") in lines  # duplicate name
    assert (8, "keys[1].sha256") in lines  # duplicate hash
    assert (9, "keys[1].rpm") in lines  # unknown key
    assert (13, "keys[2].sha256") in lines
    assert (14, "keys[2].role") in lines
