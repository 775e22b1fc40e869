"""`helexa config check`, `helexa pin`, `helexa unpin`, in-process and as a real command."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from helexa.cli import main
from helexa.config.loader import load_toml
from helexa.config.models import ModelsConfig

REPO = Path(__file__).resolve().parents[2]
HELEXA = Path(sys.executable).parent / "helexa"

# An unknown key on line 7.
BAD_FLEET = """\
[gateway]
listen = "127.0.0.1:31313"
metrics_listen = "127.0.0.1:31314"

[eviction]
strategy = "lru"
keep_alve = "30m"
"""


@pytest.fixture(autouse=True)
def _no_ambient_config(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("HELEXA_"):
            monkeypatch.delenv(name)


@pytest.fixture
def bad_fleet(tmp_path: Path) -> Path:
    path = tmp_path / "fleet.toml"
    path.write_text(BAD_FLEET)
    return path


@pytest.fixture
def models_copy(tmp_path: Path) -> Path:
    return Path(shutil.copy(REPO / "models.toml", tmp_path / "models.toml"))


def _shipped() -> list[str]:
    return ["--fleet", str(REPO / "fleet.toml"), "--models", str(REPO / "models.toml")]


def test_check_accepts_the_shipped_files(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "check", *_shipped()]) == 0
    out = capsys.readouterr().out
    assert "1 neuron (1 local, 0 openai)" in out
    assert "2 models (1 pinned), 3 aliases" in out
    assert f"{REPO / 'fleet.toml'} (--fleet)" in out
    assert out.rstrip().endswith("ok")


def test_check_names_line_and_key_of_an_unknown_key(
    bad_fleet: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        ["config", "check", "--fleet", str(bad_fleet), "--models", str(REPO / "models.toml")]
    )
    assert code == 1
    err = capsys.readouterr().err.splitlines()
    assert err == [
        f"{bad_fleet}:7: eviction.keep_alve: unknown key 'keep_alve' (did you mean 'keep_alive'?)"
    ]


def test_check_shows_env_overrides_and_warns_when_open(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("HELEXA_GATEWAY__LISTEN", "0.0.0.0:31313")
    assert main(["config", "check", *_shipped()]) == 0
    out = capsys.readouterr().out
    assert "environment overrides: HELEXA_GATEWAY__LISTEN" in out
    assert "warning: gateway listens on 0.0.0.0:31313 with no api_keys" in out


def test_config_without_subcommand_prints_usage(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config"]) == 2
    assert "check" in capsys.readouterr().out


def test_pin_and_unpin(models_copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fleet = ["--fleet", str(REPO / "fleet.toml")]
    assert main(["unpin", "smollm2", "--models", str(models_copy), *fleet]) == 0
    assert "unpinned SmolLM2-135M-Instruct" in capsys.readouterr().out
    assert main(["pin", "smollm2", "--replicas", "2", "--models", str(models_copy)]) == 0
    assert "pinned SmolLM2-135M-Instruct (replicas = 2)" in capsys.readouterr().out
    spec = load_toml(models_copy, ModelsConfig).get("SmolLM2-135M-Instruct")
    assert spec is not None and spec.pin and spec.replicas == 2


def test_pin_rejects_zero_replicas_without_writing(
    models_copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = models_copy.read_bytes()
    assert main(["pin", "helexa/tiny", "--replicas", "0", "--models", str(models_copy)]) == 1
    assert "--replicas" in capsys.readouterr().err
    assert models_copy.read_bytes() == before


def test_unpin_unknown_model_fails(models_copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["unpin", "ghost", "--models", str(models_copy)]) == 1
    assert "no model 'ghost'" in capsys.readouterr().err


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HELEXA_")}
    return subprocess.run(
        [str(HELEXA), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60
    )


def test_real_command_accepts_the_shipped_files_from_the_repo_root() -> None:
    result = _run("config", "check", cwd=REPO)
    assert result.returncode == 0, result.stderr
    assert "(current directory)" in result.stdout


def test_real_command_rejects_an_unknown_key_on_line_7(bad_fleet: Path) -> None:
    result = _run(
        "config",
        "check",
        "--fleet",
        str(bad_fleet),
        "--models",
        str(REPO / "models.toml"),
        cwd=bad_fleet.parent,
    )
    assert result.returncode == 1
    assert f"{bad_fleet}:7: eviction.keep_alve: unknown key" in result.stderr
    assert "did you mean 'keep_alive'" in result.stderr
