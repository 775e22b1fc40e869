"""One child server process: started on a loopback port, watched, measured, stopped.

Blocking code (Popen, /proc reads, urllib health polls) run by the registry's
loader thread; two daemon threads per process keep its last log lines and
notice its exit, so a crash is reported without anyone polling.
"""

from __future__ import annotations

import collections
import json
import os
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

LOG_LINES = 40  # kept per process, shown when it fails


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on now (the server binds it a moment later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


class ServerProcess:
    """A server process owned by the neuron, in its own session (so TERM reaches it alone)."""

    def __init__(self, argv: Sequence[str], name: str, env: dict[str, str] | None = None) -> None:
        self.argv = list(argv)
        self.name = name
        self._lines: collections.deque[str] = collections.deque(maxlen=LOG_LINES)
        self._stopping = threading.Event()
        self._on_exit: list[Callable[[str], None]] = []
        self._lock = threading.Lock()
        self.returncode: int | None = None
        self.proc = subprocess.Popen(
            self.argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            start_new_session=True,
        )
        self._reader = threading.Thread(target=self._read_log, name=f"{name}-log", daemon=True)
        self._reader.start()
        self._exited = threading.Event()
        threading.Thread(target=self._wait, name=f"{name}-wait", daemon=True).start()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _read_log(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            self._lines.append(raw.decode("utf-8", "replace").rstrip())

    def _wait(self) -> None:
        self.returncode = self.proc.wait()
        # Its last lines are what says why it died: let the reader reach the pipe's end
        # (bounded: a grandchild may still hold the pipe open).
        self._reader.join(timeout=2.0)
        self._exited.set()
        if self._stopping.is_set():
            return
        reason = f"{self.name} exited with code {self.returncode}: {self.last_lines(8)}"
        with self._lock:
            callbacks = list(self._on_exit)
        for callback in callbacks:
            callback(reason)

    def on_unexpected_exit(self, callback: Callable[[str], None]) -> None:
        """`callback(reason)` runs (in a watcher thread) if the process dies unasked."""
        with self._lock:
            self._on_exit.append(callback)
        if self._exited.is_set() and not self._stopping.is_set():
            callback(f"{self.name} exited with code {self.returncode}: {self.last_lines(8)}")

    @property
    def running(self) -> bool:
        return not self._exited.is_set()

    def last_lines(self, count: int = LOG_LINES) -> str:
        lines = list(self._lines)[-count:]
        return " | ".join(line for line in lines if line) or "(no output)"

    def wait_ready(self, ready: Callable[[], bool], timeout: float) -> None:
        """Poll `ready()` until true. Raises RuntimeError with the server's last lines
        if it exits first or `timeout` passes (it is stopped then)."""
        deadline = time.monotonic() + timeout
        delay = 0.02
        while True:
            if not self.running:
                raise RuntimeError(
                    f"{self.name} exited with code {self.returncode} before it was ready: "
                    f"{self.last_lines(8)}"
                )
            if ready():
                return
            if time.monotonic() > deadline:
                self.stop(grace=2.0)
                raise RuntimeError(
                    f"{self.name} was not ready after {timeout:.0f}s: {self.last_lines(8)}"
                )
            # No readiness event to await from another process: poll, backing off to 0.25 s.
            self._exited.wait(delay)
            delay = min(0.25, delay * 2)

    def rss_mb(self) -> int:
        """Resident memory of the process and its descendants, from /proc (Linux)."""
        total_kb = 0
        for pid in [self.pid, *descendants(self.pid)]:
            total_kb += _vm_rss_kb(pid)
        return total_kb // 1024

    def stop(self, grace: float = 10.0) -> None:
        """TERM, then KILL after `grace` seconds; waits for the exit."""
        self._stopping.set()
        if not self.running:
            return
        with _suppress_gone():
            os.killpg(self.pid, signal.SIGTERM)
        if not self._exited.wait(grace):
            with _suppress_gone():
                os.killpg(self.pid, signal.SIGKILL)
            self._exited.wait()


class _suppress_gone:
    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, *_: Any) -> bool:
        return kind is not None and issubclass(kind, ProcessLookupError)


def get_status(url: str, timeout: float = 2.0) -> int | None:
    """The HTTP status of GET `url`, or None when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            status: int = response.status
            return status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (OSError, ValueError):
        return None


def serves_models(base_url: str) -> bool:
    """GET /v1/models answers 200 with at least one model."""
    try:
        listing = get_json(base_url + "/v1/models", timeout=2.0)
    except (OSError, ValueError):
        return False
    return isinstance(listing, dict) and bool(listing.get("data"))


def get_json(url: str, timeout: float = 5.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.loads(response.read())


def descendants(pid: int) -> list[int]:
    """Child pids, recursively, from /proc/<pid>/task/*/children."""
    out: list[int] = []
    stack = [pid]
    while stack:
        current = stack.pop()
        for task in Path(f"/proc/{current}/task").glob("*/children"):
            try:
                children = [int(c) for c in task.read_text().split()]
            except OSError:
                continue
            out += children
            stack += children
    return out


def _vm_rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0
