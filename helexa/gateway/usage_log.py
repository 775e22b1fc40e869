"""The usage log: one JSON line per keyed request, appended, rotated by size, kept across restarts.

Lines are buffered in memory and written by a background task once a second
(and at shutdown) in a worker thread, so a request never waits on the disk.
When the file would pass `max_bytes` it is rotated like logrotate does:
`usage.jsonl` -> `usage.jsonl.1` -> ... -> `usage.jsonl.<keep>` (dropped).
At start the gateway replays the last day from these files into the
/admin/usage window (`read_records`).

A line: {"time", "key", "model", "neuron", "dialect", "status", "input_tokens",
"output_tokens", "cached_tokens", "duration_s"} (time in UNIX seconds).
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Iterator
from pathlib import Path

from helexa.gateway.usage import UsageRecord

log = logging.getLogger("helexa.gateway.usage")

FLUSH_INTERVAL_S = 1.0


class UsageLog:
    def __init__(self, path: Path, max_bytes: int, keep: int) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.keep = keep
        self._pending: list[str] = []
        self._write_lock = threading.Lock()  # flushes from the task and from stop()

    def append(self, record: UsageRecord) -> None:
        """Queue one line (a UsageBook listener: called on the event loop, no I/O)."""
        self._pending.append(json.dumps(record.to_json(), separators=(",", ":")))

    async def run(self) -> None:
        """Write the queued lines every second until cancelled (then once more)."""
        try:
            while True:
                await asyncio.sleep(FLUSH_INTERVAL_S)
                await asyncio.to_thread(self.flush)
        finally:
            self.flush()

    def flush(self) -> None:
        lines, self._pending = self._pending, []
        if not lines:
            return
        data = ("\n".join(lines) + "\n").encode()
        with self._write_lock:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                size = self.path.stat().st_size if self.path.exists() else 0
                if size and size + len(data) > self.max_bytes:
                    self._rotate()
                with self.path.open("ab") as out:
                    out.write(data)
            except OSError as exc:
                log.error("usage log %s: cannot write %d lines: %s", self.path, len(lines), exc)

    def _rotate(self) -> None:
        oldest = rotated(self.path, self.keep)
        oldest.unlink(missing_ok=True)
        for index in range(self.keep - 1, 0, -1):
            older = rotated(self.path, index)
            if older.exists():
                older.rename(rotated(self.path, index + 1))
        if self.keep > 0:
            self.path.rename(rotated(self.path, 1))
        else:
            self.path.unlink()


def rotated(path: Path, index: int) -> Path:
    return path.with_name(f"{path.name}.{index}")


def read_records(path: Path, keep: int) -> Iterator[UsageRecord]:
    """Every readable line of the log and its rotations, oldest first; bad lines are skipped."""
    for file in [rotated(path, i) for i in range(keep, 0, -1)] + [path]:
        try:
            text = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        for line in text.splitlines():
            record = _parse(line)
            if record is not None:
                yield record


def _parse(line: str) -> UsageRecord | None:
    try:
        data = json.loads(line)
        return UsageRecord(
            time=float(data["time"]),
            key=str(data["key"]),
            model=str(data["model"]),
            neuron=str(data["neuron"]),
            dialect=str(data["dialect"]),
            status=str(data["status"]),
            input_tokens=int(data["input_tokens"]),
            output_tokens=int(data["output_tokens"]),
            cached_tokens=int(data["cached_tokens"]),
            duration_s=float(data["duration_s"]),
        )
    except (ValueError, KeyError, TypeError):
        return None  # a line cut short by a crash, or written by hand
