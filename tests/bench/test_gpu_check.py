"""The GPU check runs end to end on the CPU (the tiny model), every row in its table.

On a GPU machine the same command checks the CUDA path; here it proves the
script still runs and that its CUDA-only rows say so instead of passing.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from bench.gpu_check import compare_device_maps

REPO = Path(__file__).resolve().parents[2]

ROWS = [
    "discovery (NVML)",
    "NVML vs torch by UUID",
    "CUDA_VISIBLE_DEVICES=''",
    "engines | info |",
    "neither vLLM nor a CUDA llama.cpp is present",
    "load helexa-tiny (auto dtype) |",
    "streamed generation | ok",
    "tok/s vs raw generate | info",
    "8 unequal streams, cancels, new request | ok",
    "forced 2-GPU split | skip",
    "event loop during long prefill | info",
    "forced OOM at load (507) | skip",
    "forced OOM at prefill (503) | skip",
    "forced OOM at decode (503) | skip",
    "3 load/unload cycles | info",
    "2 concurrent loads | ok",
    "sliding-window model, 3 concurrent | ok",
    "real model (--model) | skip",
]


def test_the_cpu_run_prints_every_row_and_fails_nothing(tmp_path: Path) -> None:
    out = tmp_path / "gpu-check.md"
    done = subprocess.run(
        [sys.executable, "-m", "bench.gpu_check", "--device", "cpu", "--out", str(out)],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=300,
    )

    table = out.read_text()
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    assert table.startswith("## GPU check (cpu, ")
    assert "| FAIL |" not in table
    for row in ROWS:
        assert row in table, f"{row!r} missing from\n{table}"
    assert table in done.stdout


def test_device_maps_agree_only_when_every_index_is_torchs_ordinal_for_its_uuid() -> None:
    agreeing = {
        "nvml": [[0, "GPU-aaaa"], [1, "GPU-bbbb"]],
        "torch": ["aaaa", "BBBB"],
        "nvml_absent": None,
        "cuda_problem": None,
    }
    swapped = {**agreeing, "torch": ["bbbb", "aaaa"]}
    torch_blind = {**agreeing, "torch": [], "cuda_problem": "torch is built without CUDA"}

    assert compare_device_maps(agreeing)[0] == "ok"
    assert compare_device_maps(swapped) == (
        "FAIL",
        "NVML 2 vs torch 2: ['index 0 is torch ordinal 1', 'index 1 is torch ordinal 0'] ",
    )
    assert compare_device_maps(torch_blind)[0] == "FAIL"
