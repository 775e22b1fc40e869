"""The no-systemd supervisor, started and stopped with the same commands bootstrap uses."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path, PurePosixPath

from helexa.deploy.hostapply import start_supervisor_command, stop_supervisor_command
from helexa.deploy.layout import HostLayout
from helexa.deploy.render import ServiceParams, render_supervisor
from tests.deploy.hosts import temp_layout


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill -0; it is gone for our purposes.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except FileNotFoundError:
        return False


def _wait(condition: object, timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return True
        time.sleep(0.05)
    return False


def _install_supervisor(layout: HostLayout, binary: Path) -> None:
    params = ServiceParams(
        helexa_bin=PurePosixPath(binary),
        config_path=layout.neuron_toml,
        config_dir=layout.config_dir,
        state_dir=layout.state_dir,
        user="root",
    )
    script = Path(layout.supervisor_script)
    script.parent.mkdir(parents=True, exist_ok=True)
    script.write_text(render_supervisor(params, run_as_root=True))
    script.chmod(0o755)


def test_supervisor_starts_detached_and_stops_with_its_child(tmp_path: Path) -> None:
    layout = temp_layout(tmp_path)
    marker = tmp_path / "child.pid"
    fake = tmp_path / "fake-helexa"
    fake.write_text(f"#!/bin/sh\necho $$ > {marker}\nexec sleep 120\n")
    fake.chmod(0o755)
    _install_supervisor(layout, fake)
    try:
        subprocess.run(["sh", "-c", start_supervisor_command(layout)], check=True, timeout=10)
        assert _wait(marker.exists)
        supervisor = int(Path(layout.pidfile).read_text())
        child = int(marker.read_text())
        assert os.getpgid(supervisor) == supervisor  # its own session and group
        assert os.getpgid(child) == supervisor
        assert _alive(supervisor) and _alive(child)
    finally:
        subprocess.run(["sh", "-c", stop_supervisor_command(layout)], check=True, timeout=90)
    assert _wait(lambda: not _alive(child) and not _alive(supervisor))
    assert not Path(layout.pidfile).exists()
    # Stopping again (nothing running) is a no-op, not an error.
    subprocess.run(["sh", "-c", stop_supervisor_command(layout)], check=True, timeout=10)


def test_supervisor_restarts_a_crashed_neuron(tmp_path: Path) -> None:
    layout = temp_layout(tmp_path)
    starts = tmp_path / "starts"
    fake = tmp_path / "fake-helexa"
    # First start crashes at once; the second stays up.
    fake.write_text(
        f"#!/bin/sh\necho x >> {starts}\n"
        f'[ "$(wc -l < {starts})" -ge 2 ] && exec sleep 120\nexit 3\n'
    )
    fake.chmod(0o755)
    _install_supervisor(layout, fake)
    try:
        subprocess.run(["sh", "-c", start_supervisor_command(layout)], check=True, timeout=10)
        assert _wait(lambda: starts.exists() and len(starts.read_text().split()) == 2, 15)
    finally:
        subprocess.run(["sh", "-c", stop_supervisor_command(layout)], check=True, timeout=90)
