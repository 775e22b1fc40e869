"""Load progress: the weight-file pages a load has read, from /proc/self/smaps, in /models."""

from __future__ import annotations

import asyncio
import mmap
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from helexa.neuron.config import NeuronConfig
from helexa.neuron.load_progress import WeightReadProbe, resident_bytes, weight_files
from helexa.neuron.registry import ServingModel
from helexa.protocol.neuron import LoadRequest
from helexa.testing.neuron_proc import TINY_MODEL_ID as TINY
from helexa.testing.neuron_proc import InProcessNeuron

StartNeuron = Callable[..., Awaitable[InProcessNeuron]]
PAGE = mmap.PAGESIZE
MIB = 1024 * 1024
# A fault maps the whole cached folio around the page (up to 2 MiB, aligned in the
# file), plus up to 16 cached neighbouring pages ("fault-around").
FOLIO, FAULT_AROUND = 2 * MIB, 16 * PAGE


def mapped_at_most(nbytes: int) -> int:
    """The most Linux maps for a read of the first `nbytes` of a cached file."""
    return -(-nbytes // FOLIO) * FOLIO + FAULT_AROUND


@contextmanager
def touched(path: Path, nbytes: int) -> Iterator[mmap.mmap]:
    """`path` mapped, its first `nbytes` read page by page (as a loader reads its weights)."""
    with path.open("rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
        for offset in range(0, nbytes, PAGE):
            mapped[offset]
        yield mapped


def test_resident_bytes_sums_the_rss_of_each_wanted_files_mappings() -> None:
    smaps = "\n".join(
        [
            "7f00-7f10 r--s 00000000 08:01 42   /m/model-00001.safetensors",
            "Size:                 64 kB",
            "Rss:                  16 kB",
            "7f10-7f20 r--s 00010000 08:01 42   /m/model-00001.safetensors",
            "Rss:                   8 kB",
            "7f20-7f30 r--p 00000000 08:01 43   /usr/lib/libc.so.6",
            "Rss:                 100 kB",
            "7f30-7f40 rw-p 00000000 00:00 0 ",
            "Rss:                  50 kB",
        ]
    )
    wanted = ["/m/model-00001.safetensors", "/m/model-00002.safetensors"]
    assert resident_bytes(smaps, wanted) == {"/m/model-00001.safetensors": 24 * 1024}


def test_probe_counts_what_was_read_and_never_goes_back(tmp_path: Path) -> None:
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(bytes(16 * MIB))
    probe = WeightReadProbe([weights])
    assert probe.progress().bytes_done == 0
    with touched(weights, 4 * MIB):
        quarter = probe.progress()
        assert quarter.bytes_total == 16 * MIB and quarter.shards_total == 1
        assert 4 * MIB <= quarter.bytes_done <= mapped_at_most(4 * MIB)
        assert quarter.shards_done == 0 and quarter.percent in (25, 26)
    with touched(weights, 16 * MIB):
        full = probe.progress()
    assert full.bytes_done == 16 * MIB and full.shards_done == 1 and full.percent == 100
    assert probe.progress() == full  # the map is gone; what was read stays read


def test_maps_made_before_the_load_are_not_its_reading(tmp_path: Path) -> None:
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(bytes(64 * PAGE))
    with touched(weights, 64 * PAGE):  # e.g. a loaded model sharing the weights file
        probe = WeightReadProbe([weights])
        assert probe.progress().bytes_done == 0
        with touched(weights, 64 * PAGE):
            assert probe.progress().bytes_done == 64 * PAGE


def test_weight_files_are_the_shards_or_the_gguf_file(tmp_path: Path) -> None:
    config = NeuronConfig.model_validate({})
    for name in ("model-00002.safetensors", "model-00001.safetensors", "config.json"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "m.Q4_1.gguf").write_bytes(b"x")
    shards = weight_files(LoadRequest(model="m", path=str(tmp_path)), config)
    assert [p.name for p in shards] == ["model-00001.safetensors", "model-00002.safetensors"]
    gguf = LoadRequest(model="m", path=str(tmp_path / "m.Q4_1.gguf"))
    assert weight_files(gguf, config) == [tmp_path / "m.Q4_1.gguf"]
    # a server engine reads the weights in its own process: nothing to measure here
    served = LoadRequest(model="m", path=str(tmp_path), engine="llama.cpp")
    assert weight_files(served, config) == []


async def test_models_shows_progress_while_a_load_reads_its_weights(
    start_neuron: StartNeuron, tiny_model_dir: Path
) -> None:
    live = await start_neuron()
    real = live.loader.inner
    weights = tiny_model_dir / "model.safetensors"
    size = weights.stat().st_size
    quarter_read, gate = threading.Event(), threading.Event()

    def quarter_then_gated(request: LoadRequest) -> ServingModel:
        # Reads a quarter of the weights as the engine does (through a map), then waits.
        with touched(weights, size // 4):
            quarter_read.set()
            gate.wait(30)
            return real(request)

    live.loader.inner = quarter_then_gated
    load = asyncio.create_task(live.load(TINY, tiny_model_dir))
    try:
        assert await asyncio.to_thread(quarter_read.wait, 30)
        async with live.http() as http:
            (info,) = (await http.get("/models")).json()["models"]
        assert info["state"] == "loading"
        progress = info["progress"]
        assert progress["bytes_total"] == size and progress["shards_total"] == 1
        assert size // 4 <= progress["bytes_done"] <= mapped_at_most(size // 4)
        assert progress["shards_done"] == 0
    finally:
        gate.set()
    loaded = await load
    assert loaded["state"] == "loaded" and loaded.get("progress") is None
