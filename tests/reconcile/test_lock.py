"""The single-writer lock: refusal names the holder; a dead holder's record is stale."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from helexa.reconcile.lock import LockHeld, WriterLock, read_holder


def test_a_second_writer_is_refused_with_the_holder_named(tmp_path: Path) -> None:
    path = tmp_path / "lock"
    with WriterLock(path, "apply"):
        with pytest.raises(LockHeld) as refused:
            WriterLock(path, "daemon").acquire()
        holder = refused.value.holder
        assert holder is not None
        assert (holder.pid, holder.operation) == (os.getpid(), "apply")
        assert f"apply (pid {os.getpid()} on " in str(refused.value)
    # Released: the next writer gets it, and nothing is stale.
    with WriterLock(path, "daemon") as lock:
        assert lock.stale is None
        assert read_holder(path) is not None
    assert read_holder(path) is None


def test_a_holder_that_died_leaves_a_stale_record_and_no_lock(tmp_path: Path) -> None:
    path = tmp_path / "lock"
    script = (
        "import os, sys\n"
        "from pathlib import Path\n"
        "from helexa.reconcile.lock import WriterLock\n"
        f"WriterLock(Path({str(path)!r}), 'apply').acquire()\n"
        "os._exit(0)  # dies holding it, no release\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True)
    dead = json.loads(path.read_text())
    with WriterLock(path, "apply") as lock:
        assert lock.stale is not None
        assert lock.stale.pid == dead["pid"] != os.getpid()
