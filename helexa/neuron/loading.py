"""The bridge from an API load request to the engine: budget, spec, tokenizer-only loads.

Both functions block (disk, torch); callers run them with asyncio.to_thread.

Loads run one at a time per process: each reads the free memory, checks the
weights fit and allocates them; two at once would pass the check on the same
reading and both allocate, and one's measured footprint would include the
other's weights.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from helexa.errors import ModelNotFound
from helexa.neuron.config import NeuronConfig
from helexa.neuron.engine.spec import LoadSpec
from helexa.neuron.hardware import discover, memory_budget
from helexa.neuron.registry import Loader, ServingModel
from helexa.protocol.neuron import LoadRequest

log = logging.getLogger("helexa.neuron.loading")
_one_load_at_a_time = threading.Lock()


def load_spec(request: LoadRequest, config: NeuronConfig) -> LoadSpec:
    return LoadSpec(
        model_id=request.model,
        path=Path(request.path) if request.path else None,
        revision=request.revision,
        dtype=request.dtype or "auto",
        devices=request.devices or 1,
        cache_dir=config.neuron.cache_dir,
        offline=config.neuron.offline,
        context_length=request.context_length,
        prefix_cache_mb=(
            config.neuron.prefix_cache_mb
            if request.prefix_cache_mb is None
            else request.prefix_cache_mb
        ),
        prefill_chunk_tokens=config.neuron.prefill_chunk_tokens,
    )


def engine_loader(
    config: NeuronConfig, used_mb: Callable[[], dict[int, int]] | None = None
) -> Loader:
    """A blocking loader that reads the device budget fresh for every load.

    `used_mb` reports what already-loaded models hold per device, so a
    `max_memory_mb` cap is shared by all of them.
    """

    def load_model(request: LoadRequest) -> ServingModel:
        # torch is imported at the first load
        from helexa.neuron.engine import loader, placement

        with _one_load_at_a_time:
            report = discover(
                config.devices.max_memory_mb,
                used_mb() if used_mb else None,
                reclaimable_mb=placement.reclaimable_mb(),
                gpus_when_nvml_fails=placement.torch_devices,
            )
            budget = memory_budget(report.devices, config.devices.reserve_mb)
            if request.engine in ("llama.cpp", "command"):
                from helexa.neuron.engines.start import start_server

                served: ServingModel = start_server(request, config, budget)
                return served
            model: ServingModel = loader.load(load_spec(request, config), budget)
            return model

    return load_model


class TokenizerCache:
    """Tokenizers by source (path or repo id), for /v1/tokenize on models not loaded here."""

    def __init__(self, config: NeuronConfig, capacity: int = 16) -> None:
        self._config = config
        self._capacity = capacity
        self._cache: OrderedDict[tuple[str, str | None], Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, model: str, path: str | None, revision: str | None = None) -> Any:
        """Blocking: loads tokenizer files only (no weights). Unknown -> ModelNotFound."""
        source = path or model
        key = (source, revision)
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        tokenizer = self._load(source, revision)
        with self._lock:
            self._cache[key] = tokenizer
            while len(self._cache) > self._capacity:
                self._cache.popitem(last=False)
        return tokenizer

    def _load(self, source: str, revision: str | None) -> Any:
        from transformers import AutoTokenizer

        path = Path(source)
        gguf_file: dict[str, str] = {}
        if path.suffix.lower() == ".gguf" and path.is_file():
            # A GGUF file carries its tokenizer; transformers rebuilds it from the header.
            source, gguf_file = str(path.parent), {"gguf_file": path.name}
        elif path.is_absolute() and not path.is_dir():
            raise ModelNotFound("no model directory at the given path", param="path")
        try:
            return AutoTokenizer.from_pretrained(
                source,
                **gguf_file,
                revision=revision,
                cache_dir=self._config.neuron.cache_dir,
                local_files_only=self._config.neuron.offline,
            )
        except (OSError, ValueError) as exc:
            # The exception text may quote the host's files: the log has it, not the client.
            log.info("no tokenizer for %r: %s", source, exc)
            raise ModelNotFound("no tokenizer for the requested model", param="model") from exc
