"""Starting, watching and stopping the bench's contestant processes.

Every contestant is a real process on loopback (ephemeral ports), started
by the bench itself; `Contestant` names one and where to send requests.
`ProcessUsage` reads a process tree's CPU time and RSS so the soak can
report CPU per request and memory growth.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import psutil

from bench.upstream import MODEL
from helexa.testing.neuron_proc import free_port

Popen = subprocess.Popen[bytes]


@dataclass(frozen=True)
class Contestant:
    """One side of a comparison: its name, base URL (no trailing /) and process."""

    name: str
    base_url: str
    process: Popen | None


@dataclass(frozen=True)
class ProcessUsage:
    cpu_seconds: float  # user + system, the process and its children
    rss_bytes: int

    @staticmethod
    def of(process: Popen) -> ProcessUsage:
        root = psutil.Process(process.pid)
        tree = [root, *root.children(recursive=True)]
        cpu = 0.0
        rss = 0
        for proc in tree:
            try:
                times = proc.cpu_times()
                cpu += times.user + times.system
                rss += proc.memory_info().rss
            except psutil.NoSuchProcess:
                continue
        return ProcessUsage(cpu, rss)


def spawn(args: list[str], log: Path, env: dict[str, str] | None = None) -> Popen:
    out = log.open("wb")
    merged = {**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})}
    return subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=merged)


def stop(process: Popen) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


async def wait_http(url: str, process: Popen, within: float = 60.0, ok: int = 200) -> None:
    """Poll `url` until it answers `ok` (the processes offer nothing to await).

    Fails early when `process` exits, or after `within` seconds.
    """
    deadline = time.monotonic() + within
    async with aiohttp.ClientSession() as session:
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"{process.args!r} exited with {process.returncode}")
            try:
                async with session.get(url) as resp:
                    if resp.status == ok:
                        return
            except aiohttp.ClientError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"{url} did not answer within {within:.0f}s")
            await asyncio.sleep(0.1)


def python_module(*args: str) -> list[str]:
    return [sys.executable, "-m", *args]


async def start_stub(work: Path) -> Contestant:
    port = free_port()
    process = spawn(python_module("bench.upstream", "stub", str(port)), work / "stub.log")
    base = f"http://127.0.0.1:{port}"
    await wait_http(f"{base}/v1/models", process)
    return Contestant("direct", base, process)


async def start_minimal(work: Path, stub: Contestant) -> Contestant:
    port = free_port()
    upstream = f"{stub.base_url}/v1/chat/completions"
    args = python_module("bench.upstream", "minimal", str(port), upstream)
    process = spawn(args, work / "minimal.log")
    base = f"http://127.0.0.1:{port}"
    await wait_http(f"{base}/v1/models", process)
    return Contestant("minimal proxy", base, process)


def gateway_fleet_toml(api_port: int, metrics_port: int, stub: Contestant) -> str:
    """A fleet with the stub as a foreign (`kind = "openai"`) neuron."""
    return (
        f'[gateway]\nlisten = "127.0.0.1:{api_port}"\n'
        f'metrics_listen = "127.0.0.1:{metrics_port}"\n'
        f'[[neurons]]\nname = "stub"\nkind = "openai"\n'
        f'endpoint = "{stub.base_url}/v1"\nmodels = ["{MODEL}"]\n'
    )


async def start_gateway(work: Path, stub: Contestant) -> Contestant:
    """A real `helexa serve` in front of the stub."""
    api_port, metrics_port = free_port(), free_port()
    fleet, models = work / "fleet.toml", work / "models.toml"
    fleet.write_text(gateway_fleet_toml(api_port, metrics_port, stub))
    models.write_text("")
    args = python_module(
        "helexa", "serve", "--fleet", str(fleet), "--models", str(models), "--log-level", "WARNING"
    )
    process = spawn(args, work / "gateway.log")
    base = f"http://127.0.0.1:{api_port}"
    await wait_http(f"{base}/v1/models/{MODEL}", process)
    return Contestant("helexa", base, process)
