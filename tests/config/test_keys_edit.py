"""keys.toml edits: comments kept, hashes only, an owner-only new file, revocation."""

from __future__ import annotations

from pathlib import Path

import pytest

from helexa.config.keys import KeysConfig, hash_key
from helexa.config.keys_edit import add_key, revoke_key
from helexa.config.loader import load_toml
from helexa.errors import ConfigErrors


def test_a_new_file_is_created_for_its_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "keys.toml"
    add_key(path, {"name": "a", "sha256": hash_key("secret-a"), "models": ["qwen/*"]})
    assert path.stat().st_mode & 0o777 == 0o600
    config = load_toml(path, KeysConfig)
    assert [(k.name, k.models) for k in config.keys] == [("a", ["qwen/*"])]
    assert "secret-a" not in path.read_text()


def test_add_and_revoke_keep_the_rest_of_the_file(tmp_path: Path) -> None:
    path = tmp_path / "keys.toml"
    original = (
        "# who may call the fleet\n\n"
        f'[[keys]]\nname = "a"  # the A team\nsha256 = "{hash_key("x")}"\n'
        "requests_per_minute = 10\n"
    )
    path.write_text(original)
    path.chmod(0o640)
    add_key(path, {"name": "b", "sha256": hash_key("y"), "role": "admin"})
    text = path.read_text()
    assert text.startswith(original) and 'name = "b"' in text and 'role = "admin"' in text
    assert path.stat().st_mode & 0o777 == 0o640
    revoke_key(path, "b")
    assert path.read_text() == original + "\n" or path.read_text() == original


def test_a_taken_name_or_an_unknown_one_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "keys.toml"
    add_key(path, {"name": "a", "sha256": hash_key("x")})
    before = path.read_text()
    with pytest.raises(ConfigErrors, match="a key named 'a' already exists"):
        add_key(path, {"name": "a", "sha256": hash_key("y")})
    with pytest.raises(ConfigErrors, match="no key named 'zed'"):
        revoke_key(path, "zed")
    with pytest.raises(ConfigErrors, match="requests_per_minute"):
        add_key(path, {"name": "b", "sha256": hash_key("y"), "requests_per_minute": 0})
    assert path.read_text() == before
