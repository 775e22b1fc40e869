"""The engine loader: loads in one process run one at a time; what a load request asks
for becomes the engine's LoadSpec."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest

from helexa.neuron.config import NeuronConfig
from helexa.neuron.engine import loader
from helexa.neuron.loading import engine_loader, load_spec
from helexa.protocol.neuron import LoadRequest


async def test_concurrent_loads_run_one_at_a_time(
    tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inside: list[str] = []
    overlapped = threading.Event()
    real_load = loader.load

    def tracked(spec: Any, budget: Any) -> Any:
        inside.append(spec.model_id)
        if len(inside) > 1:
            overlapped.set()
        else:  # the first load waits to see whether the second gets in beside it
            overlapped.wait(timeout=1.0)
        try:
            return real_load(spec, budget)
        finally:
            inside.remove(spec.model_id)

    monkeypatch.setattr(loader, "load", tracked)
    load_model = engine_loader(NeuronConfig.model_validate({"devices": {"reserve_mb": 0}}))
    requests = [LoadRequest(model=name, path=str(tiny_model_dir)) for name in ("a", "b")]

    models = await asyncio.gather(*(asyncio.to_thread(load_model, r) for r in requests))

    try:
        assert not overlapped.is_set()
        assert sorted(m.model_id for m in models) == ["a", "b"]
    finally:
        for model in models:
            model.close()


def test_a_load_s_prefix_cache_budget_overrides_the_neuron_s() -> None:
    config = NeuronConfig.model_validate(
        {"neuron": {"prefix_cache_mb": 300, "prefill_chunk_tokens": 64}}
    )
    default = load_spec(LoadRequest(model="m"), config)
    chosen = load_spec(LoadRequest(model="m", prefix_cache_mb=0), config)

    assert (default.prefix_cache_mb, default.prefill_chunk_tokens) == (300, 64)
    assert chosen.prefix_cache_mb == 0
