"""`helexa keys add/list/revoke`: the key printed once, only its hash on disk."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

from helexa.cli import main
from helexa.config.keys import KeysConfig, hash_key
from helexa.config.loader import load_toml

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def fleet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in list(os.environ):
        if name.startswith("HELEXA_"):
            monkeypatch.delenv(name)
    shutil.copy(REPO / "models.toml", tmp_path / "models.toml")
    return Path(shutil.copy(REPO / "fleet.toml", tmp_path / "fleet.toml"))


def test_add_prints_the_key_once_and_stores_only_its_hash(
    fleet: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["keys", "add", "alice", "--fleet", str(fleet), "--models", "qwen/*", "helexa/*"]
    assert main([*argv, "--rpm", "30", "--tpm", "5000", "--expires", "2027-01-01"]) == 0
    out = capsys.readouterr()
    key = out.out.strip()
    assert re.fullmatch(r"hx-[A-Za-z0-9_-]{43}", key)
    assert "only its hash is stored" in out.err
    path = fleet.parent / "keys.toml"
    text = path.read_text()
    assert key not in text and hash_key(key) in text
    entry = load_toml(path, KeysConfig).keys[0]
    assert (entry.name, entry.models, entry.requests_per_minute) == (
        "alice",
        ["qwen/*", "helexa/*"],
        30,
    )
    assert entry.tokens_per_minute == 5000 and str(entry.expires) == "2027-01-01"

    assert main(["keys", "add", "ops", "--role", "admin", "--fleet", str(fleet)]) == 0
    capsys.readouterr()
    assert main(["keys", "list", "--fleet", str(fleet)]) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines()]
    assert rows[0][:4] == ["NAME", "ROLE", "MODELS", "RPM"]
    assert rows[1][:5] == ["alice", "user", "qwen/*,helexa/*", "30", "5000"]
    assert rows[2][:4] == ["ops", "admin", "*", "-"]

    assert (
        main(
            [
                "config",
                "check",
                "--fleet",
                str(fleet),
                "--models",
                str(fleet.parent / "models.toml"),
            ]
        )
        == 0
    )
    assert f"{path}: 2 named keys (1 admin)" in capsys.readouterr().out


def test_revoke_and_the_errors(fleet: Path, capsys: pytest.CaptureFixture[str]) -> None:
    keys = str(fleet.parent / "elsewhere.toml")
    assert main(["keys", "add", "bob", "--keys", keys]) == 0
    assert main(["keys", "add", "bob", "--keys", keys]) == 1
    assert "a key named 'bob' already exists" in capsys.readouterr().err
    assert main(["keys", "revoke", "bob", "--keys", keys]) == 0
    assert main(["keys", "revoke", "bob", "--keys", keys]) == 1
    assert "no key named 'bob'" in capsys.readouterr().err
    assert main(["keys", "list", "--keys", keys]) == 0
    assert "no keys in" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["keys", "add", "x", "--keys", keys, "--expires", "soon"])
