"""DesiredState from real config files: generation, pinned order, weights sizes."""

from __future__ import annotations

from pathlib import Path

from helexa.config import config_fingerprint, load_config
from helexa.reconcile.desired import load_desired
from tests.reconcile.live import fleet_toml, model_toml, write_config


def test_generation_is_the_config_fingerprint_and_pinned_go_by_priority(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    files = write_config(
        tmp_path,
        fleet_toml({"a": "http://127.0.0.1:1"}),
        [
            model_toml("z/low", tiny_model_dir),
            model_toml("a/high", tiny_model_dir, priority=10),
            model_toml("m/unpinned", tiny_model_dir, pin=False),
        ],
    )
    config = load_config(files.fleet, files.models)
    desired = load_desired(config)
    assert desired.generation == config_fingerprint(config)
    assert [s.id for s in desired.pinned] == ["a/high", "z/low"]
    assert set(desired.neurons) == {"a"}
    safetensors = sum(f.stat().st_size for f in tiny_model_dir.glob("*.safetensors"))
    assert desired.weights_bytes == {"a/high": safetensors, "z/low": safetensors}


def test_a_comment_does_not_change_the_generation(tmp_path: Path, tiny_model_dir: Path) -> None:
    files = write_config(
        tmp_path, fleet_toml({"a": "http://127.0.0.1:1"}), [model_toml("m", tiny_model_dir)]
    )
    first = load_desired(load_config(files.fleet, files.models)).generation
    files.models.write_text("# a comment\n" + files.models.read_text())
    assert load_desired(load_config(files.fleet, files.models)).generation == first
    files.models.write_text(files.models.read_text().replace("vram_mb = 64", "vram_mb = 65"))
    assert load_desired(load_config(files.fleet, files.models)).generation != first
