"""A real `helexa serve` as a child process, for end-to-end tests of what an operator sees.

The fleet has one `local = true` neuron (supervised by serve) on free ports;
the caller gives the models.toml text and, optionally, extra [gateway] lines.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from helexa.testing.neuron_proc import free_port

READY_TIMEOUT_S = 120.0
EXIT_TIMEOUT_S = 30.0


@dataclass
class Serve:
    process: subprocess.Popen[bytes]
    port: int
    neuron_port: int
    fleet: Path
    models: Path
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_loaded(self, model_ids: Iterable[str], headers: dict[str, str] | None = None) -> None:
        """Poll /v1/models/<id> until every model reads loaded (the banner comes first)."""
        pending = set(model_ids)
        deadline = time.monotonic() + READY_TIMEOUT_S
        with httpx.Client(base_url=self.url, timeout=30, headers=headers) as client:
            while pending and time.monotonic() < deadline:
                assert self.process.poll() is None, f"helexa serve exited:\n{self.output()}"
                for model_id in sorted(pending):
                    try:
                        if client.get(f"/v1/models/{model_id}").json().get("loaded"):
                            pending.discard(model_id)
                    except (httpx.HTTPError, ValueError):
                        pass
                if pending:
                    time.sleep(0.2)
        if pending:
            pytest.fail(f"not loaded in time: {sorted(pending)}\n{self.output()[-4000:]}")

    def wait_for_line(self, needle: str, timeout_s: float = READY_TIMEOUT_S) -> None:
        """Until the serve log holds `needle` (the log is the only signal some events give)."""
        deadline = time.monotonic() + timeout_s
        while needle not in self.output():
            assert self.process.poll() is None, f"helexa serve exited:\n{self.output()}"
            if time.monotonic() > deadline:
                pytest.fail(f"{needle!r} not logged in time:\n{self.output()[-4000:]}")
            time.sleep(0.05)


def fleet_text(port: int, metrics_port: int, neuron_port: int, gateway_extra: str = "") -> str:
    return f"""[gateway]
listen = "127.0.0.1:{port}"
metrics_listen = "127.0.0.1:{metrics_port}"
poll_interval = "200ms"
{gateway_extra}

[reconcile]
interval = "1h"

[[neurons]]
name = "local"
endpoint = "http://127.0.0.1:{neuron_port}"
local = true
"""


@contextmanager
def running_serve(
    workdir: Path,
    models_toml: str,
    gateway_extra: str = "",
    env: dict[str, str] | None = None,
    log_name: str = "serve.log",
    extra_args: tuple[str, ...] = (),
) -> Iterator[Serve]:
    """`helexa serve` on free ports, its output in workdir/log_name; SIGINT at the end."""
    port, metrics_port, neuron_port = free_port(), free_port(), free_port()
    fleet = workdir / "fleet.toml"
    models = workdir / "models.toml"
    fleet.write_text(fleet_text(port, metrics_port, neuron_port, gateway_extra))
    models.write_text(models_toml)
    log_path = workdir / log_name
    with log_path.open("wb") as log:
        argv = ["serve", "--fleet", str(fleet), "--models", str(models), *extra_args]
        process = subprocess.Popen(
            [sys.executable, "-m", "helexa", *argv],
            env={**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=workdir,
        )
        try:
            yield Serve(process, port, neuron_port, fleet, models, log_path)
            process.send_signal(signal.SIGINT)
            process.wait(EXIT_TIMEOUT_S)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()


def tiny_entry(model_id: str, tiny_dir: Path, extra: str = "", pin: bool = True) -> str:
    """One [[models]] entry serving the tiny model under `model_id`."""
    return f"""[[models]]
id = "{model_id}"
path = "{tiny_dir}"
dtype = "float32"
vram_mb = 64
pin = {"true" if pin else "false"}
context_length = 2048
{extra}
"""
