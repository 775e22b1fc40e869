"""The bridge from an API load request to the engine: budget, spec, tokenizer-only loads.

Both functions block (disk, torch); callers run them with asyncio.to_thread.
"""

from __future__ import annotations

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
    )


def engine_loader(
    config: NeuronConfig, used_mb: Callable[[], dict[int, int]] | None = None
) -> Loader:
    """A blocking loader that reads the device budget fresh for every load.

    `used_mb` reports what already-loaded models hold per device, so a
    `max_memory_mb` cap is shared by all of them.
    """

    def load_model(request: LoadRequest) -> ServingModel:
        from helexa.neuron.engine.loader import load  # torch imported at the first load

        report = discover(config.devices.max_memory_mb, used_mb() if used_mb else None)
        budget = memory_budget(report.devices, config.devices.reserve_mb)
        if request.engine in ("llama.cpp", "command"):
            from helexa.neuron.engines.start import start_server

            served: ServingModel = start_server(request, config, budget)
            return served
        model: ServingModel = load(load_spec(request, config), budget)
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

        if Path(source).is_absolute() and not Path(source).is_dir():
            raise ModelNotFound(f"no model directory at {source}", param="path")
        try:
            return AutoTokenizer.from_pretrained(
                source,
                revision=revision,
                cache_dir=self._config.neuron.cache_dir,
                local_files_only=self._config.neuron.offline,
            )
        except (OSError, ValueError) as exc:
            raise ModelNotFound(f"no tokenizer for {source!r}: {exc}", param="model") from exc
