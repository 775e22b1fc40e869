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
    """The sampling state of one sequence: its params, generator and progress.

    `create` touches no device: the stop-id tensor and the generator are made by
    `prepare`, which `next_tokens` calls on the owner thread, on the logits'
    device (the last GPU of a split model, not the input's). Made on the event
    loop, the stop ids' host-to-GPU copy would wait for the step in flight and
    stall every stream and /health behind it.
    """

    params: SamplingParams
    generator: torch.Generator | None = None
    stop_index: torch.Tensor | None = None  # the stop ids on the logits' device, for masking
    generated: int = 0
    prepared: bool = False
    seen: set[int] | None = None  # prompt + generated ids, kept only for a repetition penalty

    @classmethod
    def create(cls, params: SamplingParams, prompt_ids: Sequence[int] = ()) -> RowSampler:
        seen = set(prompt_ids) if params.repetition_penalty != 1.0 else None
        return cls(params, seen=seen)

    def prepare(self, device: torch.device) -> None:
        """Build the device-side state (once, on the thread that runs the model)."""
        if self.prepared:
            return
        self.prepared = True
        if self.params.stop_token_ids:  # built once: indexing with a list copies it every step
            ids = sorted(self.params.stop_token_ids)
            self.stop_index = torch.tensor(ids, device=device)
        if self.params.greedy:
            return
        self.generator = torch.Generator(device=device)
        if self.params.seed is None:
            self.generator.seed()
        else:
            self.generator.manual_seed(self.params.seed)

    @property
    def suppress_stop(self) -> bool:
        """Stop ids are masked out until `min_new_tokens` tokens exist."""
        return self.generated < self.params.min_new_tokens and self.stop_index is not None


def next_tokens(logits: torch.Tensor, rows: Sequence[RowSampler]) -> tuple[torch.Tensor, list[int]]:
    """The next token of each row for last-position `logits` (B, V), one row per sampler.

    Returned twice: as a (B,) tensor on the logits' device (the next step's input) and
    as ints (for delivery), read back from the device once per step.
    """
    for row in rows:
        row.prepare(logits.device)
    chosen = logits.argmax(dim=-1)
    for i, row in enumerate(rows):
        if row.generator is not None:
            chosen[i] = _sample_row(_allowed(logits[i], row), row.params, row.generator)
        elif row.seen is not None:
            chosen[i] = _allowed(logits[i], row).argmax()
    ids: list[int] = chosen.tolist()
    for row, token in zip(rows, ids, strict=True):
        if row.seen is not None:
            row.seen.add(token)
    # A greedy row whose argmax is a stop id it may not emit yet takes the best other id.
    # Checked after the argmax instead of masking every row first: when the argmax is not
    # a stop id it is also the masked argmax (ties go to the lowest index either way), so
    # the full-vocabulary copy and mask are paid only in the rare step that needs them.
    for i, row in enumerate(rows):
        if row.generator is None and row.suppress_stop and ids[i] in row.params.stop_token_ids:
            best = _allowed(logits[i], row).argmax()
            chosen[i] = best
            ids[i] = int(best)
    return chosen, ids


def _allowed(logits: torch.Tensor, row: RowSampler) -> torch.Tensor:
    """One row's logits (V,): repetition-penalized, stop ids at -inf while suppressed."""
    if row.seen:
        logits = _penalized(logits, row.seen, row.params.repetition_penalty)
    if not row.suppress_stop:
        return logits
    assert row.stop_index is not None  # suppress_stop implies it
    return logits.index_fill(0, row.stop_index, float("-inf"))


def _penalized(logits: torch.Tensor, seen: set[int], penalty: float) -> torch.Tensor:
    """transformers' RepetitionPenaltyLogitsProcessor: seen ids' scores pushed toward -inf."""
    index = torch.tensor(sorted(seen), device=logits.device)
    scores = logits.float().index_select(0, index)
    scores = torch.where(scores < 0, scores * penalty, scores / penalty)
    return logits.float().index_copy(0, index, scores)


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
    if params.min_p > 0.0:
        probs = probs.masked_fill(probs < params.min_p * probs.max(), 0.0)
    return torch.multinomial(probs, 1, generator=generator)[0]
