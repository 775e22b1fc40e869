"""`helexa serve` and `helexa neuron` as real child processes (optionally inside a network
namespace via a command prefix), waited for by polling /health, stopped by pid."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

START_TIMEOUT_S = 90.0


def answers(url: str) -> bool:
    with contextlib.suppress(httpx.HTTPError):
        return httpx.get(f"{url}/health", timeout=1.0).status_code == 200
    return False


def wait_healthy(
    url: str,
    process: subprocess.Popen[bytes],
    within_s: float,
    log: Path,
    probe: Callable[[str], bool] = answers,
) -> None:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"exited with {process.returncode}: {log.read_text()[-2000:]}")
        if probe(url):
            return
        time.sleep(0.05)
    raise TimeoutError(f"{url}/health did not answer in {within_s:g}s: {log.read_text()[-2000:]}")


@dataclass
class HelexaProcess:
    """One `helexa ...` child: `args` after `python -m helexa`, run under `prefix`."""

    args: list[str]
    url: str
    log: Path
    prefix: list[str] = field(default_factory=list)
    probe: Callable[[str], bool] = answers  # is /health answering (from where it can be seen)
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> HelexaProcess:
        self.spawn()
        self.wait()
        return self

    def spawn(self) -> None:
        """Start without waiting (several at once start faster on few cores)."""
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
        command = [*self.prefix, sys.executable, "-m", "helexa", *self.args]
        with open(self.log, "ab") as out:
            self.process = subprocess.Popen(
                command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )

    def wait(self) -> None:
        assert self.process is not None
        wait_healthy(self.url, self.process, START_TIMEOUT_S, self.log, self.probe)

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.kill()

    def __enter__(self) -> HelexaProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
