"""The quick bench profile runs end to end and writes every section with its ratios.

This is what CI runs of the benchmarks: it proves `make bench` still works
(real processes on loopback, the tiny model), not how fast anything is.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from bench.__main__ import SECTIONS

REPO = Path(__file__).resolve().parents[2]

# What each section must show: its heading and the ratio/target rows it exists for.
EXPECTED = {
    "neuron": ["## neuron engine", "### single stream", "ratio", "### time to first token"],
    "realmodel": ["## real model (SmolLM2-135M-Instruct, GGUF)", "raw `model.generate`"],
    "structured": ["## constrained decoding", "constrained | free | ratio", "(4 constrained)"],
    "coldload": ["## cold load", "POST /models/load", "<= 1.2x ("],
    "gateway": [
        "## Gateway overhead",
        "helexa/direct req/s",
        "helexa/LiteLLM req/s",
        "req/s >= 0.8x minimal proxy",
        "added p50 <= 5 ms",
        "added TTFC p50 <= 7 ms",
        "CPU ms per request",
        "Anthropic Messages, streaming, 128 clients | helexa",
    ],
    "keys": ["## Named keys on the hot path"],
    "translation": ["## translation", "Anthropic Messages"],
    "reconcile": ["## reconcile"],
    "engines": ["## engines", "llama-server direct", "Through helexa / direct"],
    "prefix_routing": [
        "## prefix-aware routing",
        "| prefix_affinity | ",
        "| least_busy | ",
        "prefix affinity / least busy",
    ],
    "prefix_cache": [
        "## prefix cache and chunked prefill",
        "TTFT of turns 2+ (cache on vs off)",
        "| whole |",
        "cache on vs off",
    ],
}


def test_the_quick_profile_writes_every_section(tmp_path: Path) -> None:
    out = tmp_path / "bench.md"
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--out", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=420,  # the quick real-model section loads a 135M model
    )
    assert done.returncode == 0, done.stderr[-2000:]
    page = out.read_text()
    assert set(EXPECTED) == set(SECTIONS)
    missing = [text for texts in EXPECTED.values() for text in texts if text not in page]
    assert not missing, page
    assert "_Failed:_" not in page and "_Not run:" not in page, page
    assert "load average at start" in page
