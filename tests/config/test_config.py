"""load_config: lookup order, env overrides over files, cross-file checks, fingerprint."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from helexa.config.config import config_fingerprint, find_config_file, load_config
from helexa.errors import ConfigError, ConfigErrors

WriteToml = Callable[[str, str], Path]
ErrorAt = Callable[[list[ConfigError], int, str], ConfigError]

FLEET = """
[gateway]
listen = "127.0.0.1:31313"

[eviction]
keep_alive = "30m"

[[neurons]]
name = "local"
endpoint = "http://127.0.0.1:13131"
local = true

[[neurons]]
name = "big"
kind = "openai"
endpoint = "http://127.0.0.1:8000/v1"
models = ["llama-70b"]
"""

MODELS = """
[[models]]
id = "tiny"
keep_alive = "forever"

[[models]]
id = "other"
neurons = ["local"]

[aliases]
"gpt-*" = "llama-70b"
"""


@pytest.fixture(autouse=True)
def _no_ambient_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("HELEXA_FLEET", "HELEXA_MODELS", "HELEXA_GATEWAY__LISTEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


def test_loads_both_files_checked_against_each_other(write_toml: WriteToml) -> None:
    config = load_config(write_toml("fleet.toml", FLEET), write_toml("models.toml", MODELS))
    assert config.fleet.neuron("big") is not None
    assert config.models.alias_target("gpt-4o") == "llama-70b"  # a foreign model: valid
    assert config.fleet_path.is_absolute() and config.fleet_origin == "--fleet"
    tiny, other = config.models.get("tiny"), config.models.get("other")
    assert tiny is not None and other is not None
    assert config.keep_alive(tiny) == float("inf")
    assert config.keep_alive(other) == 1800.0  # the fleet's default


def test_errors_of_both_files_come_together(write_toml: WriteToml, error_at: ErrorAt) -> None:
    fleet = write_toml("fleet.toml", FLEET + "bogus = 1\n")
    models = write_toml("models.toml", '[[models]]\nid = "m"\nneurons = ["ghost"]\n')
    with pytest.raises(ConfigErrors) as caught:
        load_config(fleet, models)
    errors = caught.value.errors
    assert error_at(errors, 17, "neurons[1].bogus").file == fleet
    assert error_at(errors, 3, "models[0].neurons").file == models


def test_lookup_order_flag_then_env_then_cwd_then_system(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cwd, system, elsewhere = tmp_path / "cwd", tmp_path / "etc", tmp_path / "env"
    for directory in (cwd, system, elsewhere):
        directory.mkdir()
        (directory / "fleet.toml").write_text("")
    dirs = [cwd, system]
    monkeypatch.chdir(cwd)
    assert find_config_file(None, "fleet.toml", "HELEXA_FLEET", dirs).path == cwd / "fleet.toml"
    (cwd / "fleet.toml").unlink()
    found = find_config_file(None, "fleet.toml", "HELEXA_FLEET", dirs)
    assert (found.path, found.origin) == (system / "fleet.toml", str(system))
    monkeypatch.setenv("HELEXA_FLEET", str(elsewhere / "fleet.toml"))
    found = find_config_file(None, "fleet.toml", "HELEXA_FLEET", dirs)
    assert (found.path, found.origin) == (elsewhere / "fleet.toml", "$HELEXA_FLEET")
    explicit = tmp_path / "mine.toml"
    assert find_config_file(explicit, "fleet.toml", "HELEXA_FLEET", dirs).path == explicit


def test_nothing_found_says_where_it_looked(tmp_path: Path) -> None:
    with pytest.raises(ConfigErrors, match=r"^fleet\.toml: not found \(looked in: .*cwd.*--fleet"):
        find_config_file(None, "fleet.toml", "HELEXA_FLEET", [tmp_path / "cwd"])


def test_files_from_the_current_directory(write_toml: WriteToml) -> None:
    write_toml("fleet.toml", FLEET)
    write_toml("models.toml", MODELS)
    config = load_config()
    assert config.fleet_origin == config.models_origin == "current directory"


def test_env_overrides_win_over_the_file(
    write_toml: WriteToml, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HELEXA_GATEWAY__LISTEN", "0.0.0.0:4000")
    monkeypatch.setenv("HELEXA_EVICTION__KEEP_ALIVE", "5m")
    config = load_config(write_toml("fleet.toml", FLEET), write_toml("models.toml", MODELS))
    assert config.fleet.gateway.listen == "0.0.0.0:4000"
    assert config.fleet.eviction.keep_alive == 300.0
    assert {"HELEXA_GATEWAY__LISTEN", "HELEXA_EVICTION__KEEP_ALIVE"} <= set(config.env_overrides)


def test_a_bad_override_names_the_variable(
    write_toml: WriteToml, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HELEXA_EVICTION__STRATEGY", "fifo")
    with pytest.raises(ConfigErrors) as caught:
        load_config(write_toml("fleet.toml", FLEET), write_toml("models.toml", MODELS))
    (error,) = caught.value.errors
    assert error.key == "HELEXA_EVICTION__STRATEGY" and "lru" in error.message


def test_fingerprint_follows_meaning_not_formatting(write_toml: WriteToml) -> None:
    models = write_toml("models.toml", MODELS)
    first = config_fingerprint(load_config(write_toml("fleet.toml", FLEET), models))
    respelled = FLEET.replace('keep_alive = "30m"', "keep_alive = 1800  # same, in seconds")
    same = config_fingerprint(load_config(write_toml("fleet.toml", respelled), models))
    changed = FLEET.replace('"30m"', '"31m"')
    other = config_fingerprint(load_config(write_toml("fleet.toml", changed), models))
    assert first == same != other
    assert len(first) == 64


def test_the_shipped_files_load(repo_root: Path) -> None:
    config = load_config(repo_root / "fleet.toml", repo_root / "models.toml")
    (local,) = config.fleet.neurons
    assert local.local and local.endpoint == "http://127.0.0.1:13131"
    assert config.fleet.gateway.listen == "127.0.0.1:31313"
    assert config.fleet.gateway.metrics_listen == "127.0.0.1:31314"
    real = config.models.get("SmolLM2-135M-Instruct")
    assert real is not None and real.pin and real.replicas == 1
    gguf = repo_root / ".cache" / "models" / "smollm2" / "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert real.path == gguf
    assert config.models.resolve("claude-sonnet-4-5") is real
    assert config.models.resolve("smollm2") is real
    tiny = config.models.get("helexa/tiny")
    assert tiny is not None and not tiny.pin
    assert tiny.path == repo_root / ".cache" / "models" / "helexa-tiny"
    assert config.models.resolve("tiny") is tiny
