"""Fixtures for the server engines: the llama.cpp server binary, the GGUF, a neuron
template that runs helexa's own neuron as a `command` engine."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
LLAMA_SERVER = REPO / ".cache" / "llama.cpp" / "bin" / "llama-server"
SMOLLM2_GGUF = REPO / ".cache" / "models" / "smollm2" / "SmolLM2-135M-Instruct.Q4_1.gguf"


def _required(path: Path, how: str) -> Path:
    """`make test` provides it; its absence fails the test (never a skip)."""
    if not path.exists():
        pytest.fail(f"{path} is missing: {how}")
    return path


@pytest.fixture(scope="session")
def llama_server() -> Path:
    return _required(LLAMA_SERVER, "run scripts/build-llama-server.sh (make test does)")


@pytest.fixture(scope="session")
def smollm2_gguf() -> Path:
    return _required(SMOLLM2_GGUF, "fetch SmolLM2-135M-Instruct.Q4_1.gguf (make test does)")


def neuron_template(tmp_path: Path, model: str, model_dir: Path) -> str:
    """A `command` template starting a child `helexa neuron` that preloads `model_dir`."""
    child = tmp_path / "child-neuron.toml"
    child.write_text(
        f'[neuron]\noffline = true\nmax_in_flight = 2\n\n[[preload]]\nmodel = "{model}"\n'
        f'path = "{model_dir}"\n'
    )
    return f"{sys.executable} -m helexa neuron --listen {{host}}:{{port}} --config {child}"


def rss_mb(pid: int) -> int:
    """VmRSS of `pid` and its children, read here independently of the engine's own code."""
    total = 0
    pids = [pid]
    while pids:
        current = pids.pop()
        status = Path(f"/proc/{current}/status").read_text()
        total += int(next(x for x in status.splitlines() if x.startswith("VmRSS:")).split()[1])
        for children in Path(f"/proc/{current}/task").glob("*/children"):
            pids += [int(c) for c in children.read_text().split()]
    return total // 1024


async def until(check: Callable[[], Awaitable[bool]], within: float = 30.0) -> None:
    """Poll `check` with a deadline (another process's state offers nothing to await)."""
    deadline = time.monotonic() + within
    while not await check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


def gone(pid: int) -> bool:
    """The process is stopped and reaped (no /proc entry left)."""
    return not Path(f"/proc/{pid}").exists()
