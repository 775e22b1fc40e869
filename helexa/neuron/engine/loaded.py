"""A loaded model: its tokenizer, its footprint, and streams of generated token ids."""

from __future__ import annotations

import asyncio
import gc
import itertools
from collections.abc import AsyncGenerator
from typing import Any

import torch

from helexa.errors import BadRequest, ContextLengthExceeded
from helexa.neuron.engine.generation import EndOfSequence, Generation
from helexa.neuron.engine.prefix_cache import PrefixCache
from helexa.neuron.engine.sampling import RowSampler
from helexa.neuron.engine.spec import PrefillChunk, SamplingParams, StreamStats
from helexa.neuron.engine.worker import DEFAULT_PREFILL_CHUNK_TOKENS, EngineWorker

_seq_ids = itertools.count(1)
MB = 1024 * 1024


class LoadedModel:
    """One model in memory, owning one thread that runs all its forward passes."""

    def __init__(
        self,
        *,
        model_id: str,
        model: Any,
        tokenizer: Any,
        dtype: str,
        devices: list[int],
        device: torch.device,
        memory_mb: int,
        context_length: int,
        max_positions: int,
        eos_token_ids: frozenset[int],
        load_seconds: float,
        max_batch_size: int = 32,
        weights_format: str = "safetensors",
        quantization: str | None = None,
        prefix_cache_mb: int = 0,
        prefill_chunk_tokens: PrefillChunk = DEFAULT_PREFILL_CHUNK_TOKENS,
    ) -> None:
        self.model_id = model_id
        self.model = model
        self.tokenizer = tokenizer
        self.dtype = dtype
        self.devices = devices
        self.device = device
        self.weights_mb = memory_mb  # measured at load: weights, buffers, load-time growth
        self.context_length = context_length  # the cap the app enforces on prompt + output
        self.max_positions = max_positions  # the model's limit, enforced here
        self.eos_token_ids = eos_token_ids  # from generation_config / tokenizer, for the caller
        self.load_seconds = load_seconds
        self.weights_format = weights_format  # what was read from disk: safetensors | gguf
        self.quantization = quantization  # the GGUF file's type (e.g. Q4_1); None = not quantized
        self.vocab_size = int(model.get_input_embeddings().num_embeddings)
        self._worker = EngineWorker(
            model,
            device,
            max_positions,
            name=model_id,
            max_batch_size=max_batch_size,
            prefix_cache_bytes=prefix_cache_mb * MB,
            prefill_chunk_tokens=prefill_chunk_tokens,
        )
        # The budget as configured; 0 when off or when the model cannot use it (sliding window).
        self.prefix_cache_mb = prefix_cache_mb if self.prefix_cache is not None else 0

    @property
    def memory_mb(self) -> int:
        """The footprint: what the load measured plus what the prefix cache holds now."""
        return self.weights_mb + -(-self.prefix_cache_bytes // MB)

    @property
    def prefix_cache_bytes(self) -> int:
        cache = self._worker.prefix_cache
        return cache.bytes_held if cache is not None else 0

    @property
    def prefix_cache(self) -> PrefixCache | None:
        """The model's prefix cache; None when disabled."""
        return self._worker.prefix_cache

    @property
    def active_sequences(self) -> int:
        """Sequences admitted to the owner thread and not yet finished or dropped."""
        return self._worker.active

    async def stream(
        self, prompt_ids: list[int], params: SamplingParams, stats: StreamStats | None = None
    ) -> AsyncGenerator[int, None]:
        """Generated token ids as they are decoded (stop ids end it and are not yielded).

        Closing the iterator (`aclosing`, or cancelling the consuming task) drops the
        generation at the owner thread's next step. An invalid prompt raises on the first
        iteration, before anything reaches the owner thread.
        """
        check_prompt(prompt_ids, self.vocab_size, self.max_positions)
        if params.max_new_tokens <= 0:
            return
        generation = Generation(
            seq_id=next(_seq_ids),
            prompt_ids=list(prompt_ids),
            sampler=RowSampler.create(params, prompt_ids),
            loop=asyncio.get_running_loop(),
        )
        self._worker.submit(generation)
        ended = False
        try:
            while True:
                item = await generation.outbox.get()
                if stats is not None:  # final once anything came: the thread set it before
                    stats.cached_tokens = generation.cached_tokens
                if isinstance(item, EndOfSequence):
                    ended = True
                    return
                if isinstance(item, BaseException):
                    ended = True
                    raise item
                yield item
        finally:
            if not ended:
                self._worker.cancel(generation)

    def close(self) -> None:
        """Stop the owner thread (failing streams still open) and free the weights."""
        self._worker.stop()
        cuda = self.device.type == "cuda"
        self.model = None
        gc.collect()
        if cuda:
            torch.cuda.empty_cache()


def check_prompt(prompt_ids: list[int], vocab_size: int, max_positions: int) -> None:
    """Refuse prompts the model cannot run: empty, unknown ids, or no room to generate."""
    if not prompt_ids:
        raise BadRequest("the prompt is empty")
    if min(prompt_ids) < 0 or max(prompt_ids) >= vocab_size:
        raise BadRequest(f"prompt token ids must lie in [0, {vocab_size})")
    if len(prompt_ids) >= max_positions:
        raise ContextLengthExceeded(
            f"prompt of {len(prompt_ids)} tokens leaves no room in the model's "
            f"{max_positions} positions"
        )
