"""A real OpenSSH sshd on a free loopback port, for deploy tests.

It has its own host key and accepts one generated client key for the current user
(root here), so tests exercise real key auth, known_hosts checks and SFTP.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from helexa.deploy.ssh import SSHTarget
from helexa.testing.neuron_proc import free_port

START_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Sshd:
    port: int
    root: Path
    client_key: Path
    host_key: Path

    @property
    def known_hosts(self) -> Path:
        return self.root / "known_hosts"

    def target(self, **options: object) -> SSHTarget:
        values: dict[str, object] = {
            "host": "127.0.0.1",
            "port": self.port,
            "user": "root",
            "identity": self.client_key,
            "known_hosts": self.known_hosts,
            "connect_timeout_s": 5.0,
            "command_timeout_s": 30.0,
        }
        return SSHTarget(**{**values, **options})  # type: ignore[arg-type]


def keygen(path: Path) -> Path:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "helexa-test", "-f", str(path)],
        check=True,
    )
    return path


def _wait_for_port(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"sshd exited {process.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.02)
    raise RuntimeError("sshd did not listen in time")


@contextlib.contextmanager
def run_sshd(root: Path, host_key: Path | None = None, extra_config: str = "") -> Iterator[Sshd]:
    """sshd -D on 127.0.0.1:<free port>; `host_key` lets a test reuse or swap keys;
    `extra_config` adds sshd_config lines (e.g. `SetEnv PATH=...` to put tools in the way)."""
    root.mkdir(parents=True, exist_ok=True)
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # privilege separation dir
    host_key = host_key or keygen(root / "host_ed25519")
    client_key = root / "client_ed25519"
    if not client_key.exists():
        keygen(client_key)
    authorized = root / "authorized_keys"
    authorized.write_text(client_key.with_suffix(".pub").read_text())
    port = free_port()
    config = root / "sshd_config"
    config.write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {host_key}\n"
        f"AuthorizedKeysFile {authorized}\nPidFile {root}/sshd.pid\n"
        "PubkeyAuthentication yes\nPasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\n"
        "StrictModes no\nUsePAM no\nLogLevel ERROR\nSubsystem sftp internal-sftp\n" + extra_config
    )
    with open(root / "sshd.log", "ab") as log:  # the child keeps its own copy
        sshd = subprocess.Popen(
            ["/usr/sbin/sshd", "-D", "-e", "-f", str(config)],
            stderr=log,
            env={"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/bin")},
        )
    try:
        _wait_for_port(port, sshd)
        yield Sshd(port=port, root=root, client_key=client_key, host_key=host_key)
    finally:
        sshd.terminate()
        try:
            sshd.wait(5)
        except subprocess.TimeoutExpired:
            sshd.kill()
            sshd.wait()
