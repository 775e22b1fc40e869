"""Plain inputs of the engine: what to load and how to sample."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from helexa.neuron.engine.constraint import Grammar

DtypeName = Literal["auto", "bfloat16", "float16", "float32"]
# Prompt tokens prefilled per engine iteration while streams run: a count (0 = whole
# prompts) or "auto", sized so a chunk costs about one decode step (chunk_size.py).
PrefillChunk = int | Literal["auto"]


@dataclass(frozen=True)
class SamplingParams:
    """How one sequence is decoded; resolved by the caller from request, config and model."""

    max_new_tokens: int
    temperature: float = 1.0  # 0 = greedy
    top_p: float = 1.0
    top_k: int = 0  # 0 = off
    seed: int | None = None
    min_new_tokens: int = 0
    min_p: float = 0.0  # drop tokens below min_p x the top probability; 0 = off
    repetition_penalty: float = 1.0  # HF's rule over prompt + generated ids; 1 = off
    stop_token_ids: frozenset[int] = frozenset()  # eos ids; a hit ends the sequence
    grammar: Grammar | None = None  # constrained decoding (constraint.py); None = free

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0.0


@dataclass
class StreamStats:
    """What a stream reports besides its tokens, filled in as they arrive."""

    cached_tokens: int = 0  # prompt tokens taken from the prefix cache, not prefilled


@dataclass(frozen=True)
class LoadSpec:
    """One model to load: a local directory (`path`) or a Hugging Face repo id (`model_id`)."""

    model_id: str
    path: Path | None = None
    revision: str | None = None
    dtype: DtypeName = "auto"
    devices: int = 1
    cache_dir: Path | None = None
    offline: bool = False
    context_length: int | None = None  # cap; None = the model's own maximum
    prefix_cache_mb: int = 0  # the prefix cache's budget; 0 = off
    prefill_chunk_tokens: PrefillChunk = "auto"

    @property
    def source(self) -> str:
        """What from_pretrained is given: the local path when there is one, else the repo id."""
        return str(self.path) if self.path is not None else self.model_id
