"""The usage log: appended in batches, rotated by size, read back oldest first."""

from __future__ import annotations

import asyncio
from pathlib import Path

from helexa.gateway.usage import UsageRecord
from helexa.gateway.usage_log import UsageLog, read_records, rotated


def record(n: int) -> UsageRecord:
    return UsageRecord(1000.0 + n, "ann", "m", "a", "openai", "200", n, 1, 0, 0.5)


def test_lines_rotate_past_the_size_and_the_oldest_file_is_dropped(tmp_path: Path) -> None:
    path = tmp_path / "usage.jsonl"
    usage_log = UsageLog(path, max_bytes=400, keep=2)
    for n in range(12):
        usage_log.append(record(n))
        usage_log.flush()  # one line per write: each file holds what fits in 400 bytes
    assert path.stat().st_size <= 400 and rotated(path, 1).exists() and rotated(path, 2).exists()
    assert not rotated(path, 3).exists()
    kept = [r.input_tokens for r in read_records(path, keep=2)]
    assert kept == list(range(12 - len(kept), 12))  # the newest lines, in order
    assert 3 < len(kept) < 12


def test_bad_lines_are_skipped(tmp_path: Path) -> None:
    path = tmp_path / "usage.jsonl"
    usage_log = UsageLog(path, max_bytes=10_000, keep=1)
    usage_log.append(record(1))
    usage_log.flush()
    with path.open("a") as out:
        out.write('{"time": 1, "key": "cut sho\nnot json\n')
    usage_log.append(record(2))
    usage_log.flush()
    assert [r.input_tokens for r in read_records(path, keep=1)] == [1, 2]


async def test_the_writer_task_flushes_when_it_stops(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "usage.jsonl"
    usage_log = UsageLog(path, max_bytes=10_000, keep=1)
    task = asyncio.create_task(usage_log.run())
    await asyncio.sleep(0)  # one loop turn: the task is now waiting for its first flush
    usage_log.append(record(7))
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert [r.input_tokens for r in read_records(path, keep=1)] == [7]
