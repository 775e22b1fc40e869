"""The weights' size of a model with a local path: what placement uses before a measurement."""

from __future__ import annotations

from pathlib import Path

from helexa.config import ModelSpec
from helexa.fleet.weights import local_weights_bytes, weights_by_id


def test_size_is_the_sum_of_the_safetensors_files(tmp_path: Path) -> None:
    (tmp_path / "a.safetensors").write_bytes(b"x" * 10)
    (tmp_path / "b.safetensors").write_bytes(b"x" * 5)
    (tmp_path / "config.json").write_text("{}")
    spec = ModelSpec(id="m", path=tmp_path)
    assert local_weights_bytes(spec) == 15
    assert weights_by_id([spec, ModelSpec(id="hub/model")]) == {"m": 15}


def test_unknown_without_a_path_or_weights(tmp_path: Path) -> None:
    assert local_weights_bytes(ModelSpec(id="hub/model")) is None
    assert local_weights_bytes(ModelSpec(id="m", path=tmp_path)) is None
    assert local_weights_bytes(ModelSpec(id="m", path=tmp_path / "gone")) is None
