"""The SmolLM2 fetch: the file in place is the pinned one, and a second fetch does nothing."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from helexa.testing.smollm2 import FILENAME, GGUF_BYTES, GGUF_SHA256, fetch, main, sha256_of


def test_the_fetched_file_is_the_pinned_one(smollm2_gguf: Path) -> None:
    assert smollm2_gguf.name == FILENAME
    assert smollm2_gguf.stat().st_size == GGUF_BYTES
    assert sha256_of(smollm2_gguf) == GGUF_SHA256


def test_a_second_fetch_finds_the_file_and_downloads_nothing(
    smollm2_gguf: Path, tmp_path: Path
) -> None:
    try:
        os.link(smollm2_gguf, tmp_path / FILENAME)  # same bytes, no copy
    except OSError:  # another filesystem
        shutil.copyfile(smollm2_gguf, tmp_path / FILENAME)
    before = sorted(tmp_path.iterdir())

    assert fetch(tmp_path) == tmp_path / FILENAME
    assert main([str(tmp_path)]) == 0
    assert sorted(tmp_path.iterdir()) == before  # no scratch folder, no wheel left behind
