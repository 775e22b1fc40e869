"""Cold loads are placed with the weights' size when nothing better is known (helexa serve)."""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx

from tests.cli.serve_harness import running_serve, tiny_entry

HUGE_BYTES = 1 << 42  # 4 TiB: more than any test machine's free memory


def huge_model_dir(tmp_path: Path, tiny_dir: Path) -> Path:
    """The tiny model's files with a sparse 4 TiB safetensors file: huge by its size alone."""
    directory = tmp_path / "huge"
    shutil.copytree(tiny_dir, directory)
    with (directory / "model.safetensors").open("r+b") as weights:
        weights.truncate(HUGE_BYTES)
    return directory


def test_a_model_larger_than_free_memory_is_never_cold_loaded(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    huge = huge_model_dir(tmp_path, tiny_model_dir)
    models = (
        tiny_entry("t/plain", tiny_model_dir)
        + f"""
[[models]]
id = "t/huge"
path = "{huge}"
dtype = "float32"
"""
    )
    with running_serve(tmp_path, models) as serve:
        serve.wait_loaded(["t/plain"])
        reply = httpx.post(
            f"{serve.url}/v1/chat/completions",
            json={"model": "t/huge", "messages": [{"role": "user", "content": "hi"}]},
            timeout=60,
        )
        assert reply.status_code == 503, reply.text
        error = reply.json()["error"]
        assert error["code"] == "no_feasible_neuron"
        expected_mb = (HUGE_BYTES + 4096) * 1.2 // 2**20  # weights x 1.2 (the other files aside)
        assert " MB from weights" in error["message"], error["message"]
        assert int(error["message"].split("(")[1].split(" MB")[0]) >= expected_mb * 0.99
        # The neuron was never asked: no load, no failed row.
        held = httpx.get(f"http://127.0.0.1:{serve.neuron_port}/models").json()["models"]
        assert [m["id"] for m in held] == ["t/plain"]
