"""One writer at a time: `helexa apply` and the daemon take the same lock file.

The lock is an flock(2) on a file next to models.toml, so the kernel drops it
when its holder dies, and the file records who holds it (pid, host, operation,
start time) for the refusal message.  A record left behind by a holder that
died without releasing is reported as stale when the next writer takes over.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from types import TracebackType
from typing import IO

from helexa.errors import ReconcileError

LOCK_NAME = ".helexa-reconcile.lock"


@dataclass(frozen=True)
class LockHolder:
    pid: int
    host: str
    operation: str  # "apply", "daemon"
    started_at: float  # unix seconds

    def describe(self, now: float | None = None) -> str:
        age = (now if now is not None else time.time()) - self.started_at
        started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(self.started_at))
        return (
            f"{self.operation} (pid {self.pid} on {self.host}, started {started}, "
            f"{max(0, int(age))}s ago)"
        )


class LockHeld(ReconcileError):
    """Another writer holds the reconcile lock."""

    def __init__(self, path: Path, holder: LockHolder | None) -> None:
        self.path = path
        self.holder = holder
        who = holder.describe() if holder else "an unknown holder"
        super().__init__(f"another writer holds {path}: {who}")


def lock_path_for(models_path: Path) -> Path:
    return models_path.parent / LOCK_NAME


def read_holder(path: Path) -> LockHolder | None:
    """The holder recorded in `path` (None when empty, missing or unreadable)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8") or "null")
        return LockHolder(
            pid=int(data["pid"]),
            host=str(data["host"]),
            operation=str(data["operation"]),
            started_at=float(data["started_at"]),
        )
    except (OSError, ValueError, TypeError, KeyError):
        return None


class WriterLock:
    """`with WriterLock(path, "apply"):` ... raises LockHeld when someone else writes."""

    def __init__(self, path: Path, operation: str) -> None:
        self.path = path
        self.operation = operation
        self.stale: LockHolder | None = None  # a dead holder's record we took over
        self._file: IO[str] | None = None

    @property
    def held(self) -> bool:
        return self._file is not None

    def acquire(self) -> WriterLock:
        handle = open(self.path, "a+", encoding="utf-8")  # noqa: SIM115 (held until release)
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise LockHeld(self.path, read_holder(self.path)) from None
        # We hold it: whatever record is left belongs to a writer that died holding it.
        self.stale = read_holder(self.path)
        me = LockHolder(os.getpid(), socket.gethostname(), self.operation, time.time())
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps(asdict(me)))
        handle.flush()
        self._file = handle
        return self

    def release(self) -> None:
        handle, self._file = self._file, None
        if handle is None:
            return
        handle.seek(0)
        handle.truncate()  # an empty record = released cleanly
        handle.flush()
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
        handle.close()

    def __enter__(self) -> WriterLock:
        return self.acquire()

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()
