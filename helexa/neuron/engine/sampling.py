"""Choosing the next token of every row of a batch.

Each sampled row draws from its own torch.Generator, seeded from the
request's `seed`, so a seeded request yields the same tokens whether it runs
alone or among others. Greedy rows take the argmax.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from helexa.neuron.engine.spec import SamplingParams


@dataclass
class RowSampler:
    """The sampling state of one sequence: its params, generator and progress."""

    params: SamplingParams
    generator: torch.Generator | None
    generated: int = 0

    @classmethod
    def create(cls, params: SamplingParams, device: torch.device) -> RowSampler:
        if params.greedy:
            return cls(params, None)
        generator = torch.Generator(device=device)
        if params.seed is None:
            generator.seed()
        else:
            generator.manual_seed(params.seed)
        return cls(params, generator)

    @property
    def suppress_stop(self) -> bool:
        """Stop ids are masked out until `min_new_tokens` tokens exist."""
        return self.generated < self.params.min_new_tokens and bool(self.params.stop_token_ids)


def next_tokens(logits: torch.Tensor, rows: Sequence[RowSampler]) -> torch.Tensor:
    """Token ids (B,) for last-position `logits` (B, V), one row per sampler."""
    suppressed = [i for i, row in enumerate(rows) if row.suppress_stop]
    if suppressed:
        logits = logits.clone()
        for i in suppressed:
            logits[i, list(rows[i].params.stop_token_ids)] = float("-inf")
    chosen = logits.argmax(dim=-1)
    for i, row in enumerate(rows):
        if row.generator is not None:
            chosen[i] = _sample_row(logits[i], row.params, row.generator)
    return chosen


def _sample_row(
    logits: torch.Tensor, params: SamplingParams, generator: torch.Generator
) -> torch.Tensor:
    scores = logits.float() / params.temperature
    if 0 < params.top_k < scores.shape[-1]:
        kth = torch.topk(scores, params.top_k).values[-1]
        scores = scores.masked_fill(scores < kth, float("-inf"))
    if params.top_p < 1.0:
        sorted_scores, order = torch.sort(scores, descending=True)
        cumulative = sorted_scores.softmax(dim=-1).cumsum(dim=-1)
        # Drop a token once the mass before it already reaches top_p; the first always stays.
        drop_sorted = (cumulative - sorted_scores.softmax(dim=-1)) >= params.top_p
        drop = torch.zeros_like(drop_sorted).scatter(0, order, drop_sorted)
        scores = scores.masked_fill(drop, float("-inf"))
    probs = scores.softmax(dim=-1)
    return torch.multinomial(probs, 1, generator=generator)[0]
