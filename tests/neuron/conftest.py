"""Neuron fixtures: the tiny tokenizer, and real neurons served by uvicorn on loopback."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from helexa.neuron.config import NeuronConfig
from helexa.testing.neuron_proc import TINY_MODEL_ID, InProcessNeuron

StartNeuron = Callable[..., Awaitable[InProcessNeuron]]


@pytest.fixture(scope="module")
def model(tiny_model_dir: Path) -> Iterator[Any]:
    """The tiny model in eval mode, straight from transformers (the engine tests' subject)."""
    from transformers import AutoModelForCausalLM

    loaded: Any = AutoModelForCausalLM.from_pretrained(tiny_model_dir, local_files_only=True)
    yield loaded.eval()


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_model_dir: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir, local_files_only=True)


@pytest.fixture
async def start_neuron() -> AsyncIterator[StartNeuron]:
    """Factory: `await start_neuron({...neuron.toml as a dict...}, token=...)`."""
    async with contextlib.AsyncExitStack() as stack:

        async def start(
            settings: dict[str, Any] | None = None, token: str | None = None
        ) -> InProcessNeuron:
            settings = settings or {}
            settings.setdefault("devices", {}).setdefault("reserve_mb", 0)
            config = NeuronConfig.model_validate(settings)
            return await stack.enter_async_context(InProcessNeuron.start(config, token))

        yield start


@pytest.fixture
async def neuron(start_neuron: StartNeuron, tiny_model_dir: Path) -> InProcessNeuron:
    """An open neuron with room for 8 concurrent streams and the tiny model loaded."""
    live = await start_neuron({"neuron": {"max_in_flight": 8, "max_queue": 4}})
    await live.load(TINY_MODEL_ID, tiny_model_dir)
    return live
