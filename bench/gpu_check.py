"""One command for the first GPU machine: does helexa's CUDA path work there?

    python -m bench.gpu_check [--device cuda|cpu] [--model PATH] [--out FILE]

Runs a real neuron in this process (uvicorn on loopback, the real engine
loader) and prints one markdown table, a row per check: NVML discovery, the
NVML-vs-torch device map by UUID (also under CUDA_VISIBLE_DEVICES set to one
GPU and set empty), the comparison engines present, a ~290M-parameter model
built like the tiny test model loaded in bf16 (footprint vs
torch.cuda.memory_allocated), a streamed generation, single and 8-stream
tok/s against raw `generate`, 8 unequal concurrent streams with cancellations
then a new request, a forced 2-GPU split (when there are 2 GPUs), event-loop
lag during a long prefill, forced out-of-memory at load, prefill and decode
(torch.cuda.set_per_process_memory_fraction) with the neuron still serving,
three load/unload cycles back to baseline memory, two concurrent loads, a
sliding-window model under concurrency and, with --model, a real model
(any path POST /models/load accepts).

`--device cpu` hides the GPUs and runs the same checks with the tiny model
(the CUDA-only ones say "skip"); `make test` runs it that way
(tests/bench/test_gpu_check.py). Exit status 1 when any check fails.
Timings are one run each: read them as a smoke test, not a benchmark.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

REPO = Path(__file__).resolve().parent.parent
CHECK_TIMEOUT_S = 150.0
Status = Literal["ok", "FAIL", "skip", "info"]


@dataclass
class Row:
    check: str
    status: Status
    detail: str
    seconds: float | None = None


@dataclass
class Report:
    device: str
    rows: list[Row] = field(default_factory=list)

    def add(self, check: str, status: Status, detail: str, seconds: float | None = None) -> None:
        self.rows.append(Row(check, status, detail, seconds))
        print(f"[{status}] {check}: {detail}", file=sys.stderr, flush=True)

    @property
    def failed(self) -> bool:
        return any(row.status == "FAIL" for row in self.rows)

    def markdown(self, seconds: float) -> str:
        lines = [
            f"## GPU check ({self.device}, {seconds:.0f} s)",
            "",
            "| check | result | s | detail |",
            "|---|---|---|---|",
        ]
        for row in self.rows:
            detail = row.detail.replace("|", "\\|").replace("\n", " ")
            took = "" if row.seconds is None else f"{row.seconds:.1f}"
            lines.append(f"| {row.check} | {row.status} | {took} | {detail} |")
        return "\n".join(lines) + "\n"

    async def run(self, check: str, body: Callable[[], Awaitable[tuple[Status, str]]]) -> None:
        """Run one check; an exception or a timeout is that check's FAIL, never the end."""
        started = time.monotonic()
        try:
            async with asyncio.timeout(CHECK_TIMEOUT_S):
                status, detail = await body()
        except Exception as exc:  # reported in the table: the other checks still run
            status, detail = "FAIL", f"{type(exc).__name__}: {exc}"
        self.add(check, status, detail, time.monotonic() - started)


# --- checks that need no model -------------------------------------------


def probe_devices() -> dict[str, Any]:
    """NVML's devices (as discovery numbers them) and torch's, by UUID; printed as JSON by
    `--probe-devices` in a child process with its own CUDA_VISIBLE_DEVICES."""
    import torch

    from helexa.neuron.engine import placement
    from helexa.neuron.hardware import discover

    report = discover()
    gpus = [(d.index, d.uuid) for d in report.devices if d.kind == "cuda"]
    uuids = placement.torch_uuids() if torch.cuda.is_available() else []
    return {
        "nvml": gpus,
        "torch": uuids,
        "nvml_absent": report.engine.nvml,
        "cuda_problem": report.engine.cuda_problem,
    }


def compare_device_maps(probe: dict[str, Any]) -> tuple[Status, str]:
    """ok when every GPU discovery reports has, as index, torch's ordinal for its UUID."""
    from helexa.neuron.hardware import normalized_uuid

    torch_order = [normalized_uuid(u) for u in probe["torch"]]
    nvml = probe["nvml"]
    if not nvml and not torch_order:
        return "ok", f"no GPUs on either side (NVML: {probe['nvml_absent']})"
    wrong = []
    for index, uuid in nvml:
        key = normalized_uuid(uuid)
        ordinal = torch_order.index(key) if key in torch_order else None
        if ordinal != index:
            wrong.append(f"index {index} is torch ordinal {ordinal}")
    if wrong or len(nvml) != len(torch_order) or probe["cuda_problem"]:
        problem = probe["cuda_problem"] or ""
        return "FAIL", f"NVML {len(nvml)} vs torch {len(torch_order)}: {wrong} {problem}"
    return "ok", f"{len(nvml)} GPU(s), every index equals torch's ordinal for its UUID"


def probe_in_child(visible: str) -> dict[str, Any]:
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": visible, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-m", "bench.gpu_check", "--probe-devices"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    probe: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return probe


async def check_device_maps(report: Report) -> None:
    await report.run(
        "NVML vs torch by UUID", _in_thread(lambda: compare_device_maps(probe_devices()))
    )
    gpus = len(probe_devices()["nvml"])
    variants = [(str(gpus - 1), "the last GPU only")] if gpus else []
    for visible, label in [*variants, ("", "empty")]:

        def child(visible: str = visible) -> tuple[Status, str]:
            return compare_device_maps(probe_in_child(visible))

        await report.run(f"… with CUDA_VISIBLE_DEVICES={visible!r} ({label})", _in_thread(child))


def engines_present() -> tuple[Status, str]:
    """Which comparison engines exist here (vLLM, llama.cpp built with CUDA)."""
    found = []
    if importlib.util.find_spec("vllm") is not None:
        found.append("vLLM (python package)")
    for binary in ("llama-server", "llama-cli"):
        path = shutil.which(binary)
        if path and _links_cuda(path):
            found.append(f"llama.cpp with CUDA ({path})")
            break
    if importlib.util.find_spec("llama_cpp") is not None:
        import llama_cpp

        if getattr(llama_cpp, "llama_supports_gpu_offload", lambda: False)():
            found.append("llama-cpp-python with GPU offload")
    if not found:
        return "info", "neither vLLM nor a CUDA llama.cpp is present: no engine to compare with"
    return "info", "present: " + ", ".join(found)


def _links_cuda(path: str) -> bool:
    try:
        linked = subprocess.run(["ldd", path], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return False
    return "cuda" in linked.lower()


def _in_thread(
    work: Callable[[], tuple[Status, str]],
) -> Callable[[], Awaitable[tuple[Status, str]]]:
    async def run() -> tuple[Status, str]:
        return await asyncio.to_thread(work)

    return run


# --- the whole run ---------------------------------------------------------


async def run_checks(device: str, model: Path | None) -> Report:
    from bench import gpu_serving

    report = Report(device)
    await report.run("discovery (NVML)", _in_thread(gpu_serving.discovery_row))
    await check_device_maps(report)
    report.add("engines", *engines_present())
    await gpu_serving.run_serving_checks(report, device, model)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--device", choices=["cuda", "cpu"], default=None)
    parser.add_argument("--model", type=Path, default=None, help="a real model to load too")
    parser.add_argument("--out", type=Path, default=None, help="also write the table here")
    parser.add_argument("--probe-devices", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.device == "cpu":  # before torch loads: CUDA and discovery both see no GPU
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from helexa.neuron.engine import threads  # noqa: F401  # OpenMP/CUDA settings, before torch

    if args.probe_devices:
        print(json.dumps(probe_devices()))
        return 0
    import torch

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    started = time.monotonic()
    report = asyncio.run(run_checks(device, args.model))
    table = report.markdown(time.monotonic() - started)
    print(table)
    if args.out is not None:
        args.out.write_text(table)
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
