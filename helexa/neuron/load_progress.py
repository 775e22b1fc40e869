"""How far a load has read its weights, measured from outside the loader.

Both transformers (safetensors) and the gguf package read weights through
memory maps of the files. Linux counts, per mapping, the pages this process
has touched (`Rss` in /proc/self/smaps), whether they came from disk or the
page cache: that is the number of weight bytes the loader has read so far.
Nothing in the loader changes; a probe only reads /proc when /models asks.

The figure is what was read, not what was placed: converting and moving
tensors to the GPU follows the reading closely but ends a little later, so
100% means "all weights read", and the state turns `loaded` when placed.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Protocol

from helexa.neuron.config import NeuronConfig
from helexa.protocol.neuron import LoadProgress, LoadRequest

log = logging.getLogger("helexa.neuron.load_progress")
SMAPS = Path("/proc/self/smaps")


class ProgressProbe(Protocol):
    def progress(self) -> LoadProgress: ...


# Called in the loader's thread as a load starts; None = this load cannot be measured.
ProgressSource = Callable[[LoadRequest], ProgressProbe | None]


def file_mappings(smaps: str, files: Iterable[str]) -> dict[str, tuple[str, int]]:
    """Each mapping of one of `files`, by address range: (file, bytes touched)."""
    wanted = set(files)
    out: dict[str, tuple[str, int]] = {}
    current: str | None = None
    for line in smaps.splitlines():
        fields = line.split(maxsplit=5)
        if len(fields) >= 5 and "-" in fields[0] and ":" in fields[3]:
            # a mapping's header: address perms offset dev inode [path]
            path = fields[5] if len(fields) == 6 else ""
            current = fields[0] if path in wanted else None
            if current is not None:
                out[current] = (path, 0)
        elif current is not None and fields[:1] == ["Rss:"] and len(fields) >= 2:
            out[current] = (out[current][0], int(fields[1]) * 1024)
    return out


def resident_bytes(smaps: str, files: Iterable[str], ignore: Iterable[str] = ()) -> dict[str, int]:
    """Bytes of each file mapped and touched by this process, leaving out the mappings
    at the `ignore` address ranges."""
    skipped = set(ignore)
    out: dict[str, int] = {}
    for address, (path, rss) in file_mappings(smaps, files).items():
        if address not in skipped:
            out[path] = out.get(path, 0) + rss
    return out


class WeightReadProbe:
    """Bytes and shards of a model's weight files read so far (never goes back)."""

    def __init__(self, files: Sequence[Path], smaps: Callable[[], str] | None = None) -> None:
        self._sizes = {str(f.resolve()): f.stat().st_size for f in files}
        self._read = dict.fromkeys(self._sizes, 0)
        self._smaps = smaps or SMAPS.read_text
        self._lock = threading.Lock()
        # Maps of these files made before this load (a loaded model sharing its weights
        # file keeps one) are not this load's reading.
        self._earlier = set(file_mappings(self._smaps(), self._sizes))

    def progress(self) -> LoadProgress:
        resident = resident_bytes(self._smaps(), self._sizes, self._earlier)
        with self._lock:
            # A map released mid-load (the gguf reader's) keeps what it had read.
            for path, size in self._sizes.items():
                self._read[path] = max(self._read[path], min(resident.get(path, 0), size))
            done = [path for path, size in self._sizes.items() if self._read[path] >= size]
            return LoadProgress(
                bytes_done=sum(self._read.values()),
                bytes_total=sum(self._sizes.values()),
                shards_done=len(done),
                shards_total=len(self._sizes),
            )


def weight_files(request: LoadRequest, config: NeuronConfig) -> list[Path]:
    """The files a transformers-engine load will read: a GGUF file or the safetensors shards."""
    if request.engine not in (None, "transformers"):
        return []  # a server engine reads them in its own process
    root = Path(request.path) if request.path else _cached_snapshot(request, config)
    if root is None:
        return []
    if root.is_file():
        return [root] if root.suffix.lower() == ".gguf" else []
    if root.is_dir():
        return sorted(root.glob("*.safetensors"))
    return []


def _cached_snapshot(request: LoadRequest, config: NeuronConfig) -> Path | None:
    """A repo id's folder in the local Hugging Face cache; None when not there (yet)."""
    from huggingface_hub import snapshot_download

    try:
        folder = snapshot_download(
            request.model,
            revision=request.revision,
            cache_dir=config.neuron.cache_dir,
            local_files_only=True,
        )
    except Exception as exc:  # not cached, or not a repo id: the load says why, not us
        log.debug("no cached snapshot for %s: %s", request.model, exc)
        return None
    return Path(folder)


def weight_read_source(config: NeuronConfig) -> ProgressSource:
    """The neuron's progress source: a WeightReadProbe where Linux's smaps exist."""

    def probe(request: LoadRequest) -> ProgressProbe | None:
        if not SMAPS.exists():
            return None
        files = weight_files(request, config)
        return WeightReadProbe(files) if files else None

    return probe
