"""The running batch: a shared KV cache with left padding, grown and shrunk per step.

Rows are sequences. Every row's cache is right-aligned: a row shorter than
the batch is padded on the left, masked out by `mask`, and keeps its own
`positions`. When nothing is padded `mask` is None and a step is exactly a
plain single-model forward, which keeps the one-sequence case as fast as
`model.generate`.

New sequences are prefilled as their own small batch (prefill.py) and then
merged in; finished rows are dropped with index_select and fully padded
leading columns are trimmed away.

A model split over GPUs keeps each layer's cache on that layer's GPU, the
mask and positions on the input device and the sampled tokens on the output
device: every index or mask applied to a tensor is first put on that
tensor's device (`PerDevice`), once per device and operation.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from transformers import DynamicCache

from helexa.neuron.engine.kv import GrowingLayer


@dataclass
class DecodeBatch:
    """Cache and per-row state of sequences that decode together."""

    cache: DynamicCache
    mask: torch.Tensor | None  # (B, L) bool, False = padding; None when no row is padded
    positions: torch.Tensor  # (B,) position id of each row's next token
    last_tokens: torch.Tensor  # (B, 1) the tokens the next step feeds

    @property
    def size(self) -> int:
        return int(self.positions.shape[0])

    @property
    def length(self) -> int:
        return self.cache.get_seq_length()


def decode_step(model: Any, batch: DecodeBatch) -> torch.Tensor:
    """One forward pass for every row; returns last-position logits (B, V)."""
    if batch.mask is None:
        out = model(input_ids=batch.last_tokens, cache=batch.cache, use_cache=True)
    else:
        batch.mask = torch.cat([batch.mask, batch.mask.new_ones((batch.size, 1))], dim=-1)
        out = model(
            input_ids=batch.last_tokens,
            attention_mask=_step_mask(model, batch.mask),
            position_ids=batch.positions[:, None],
            cache=batch.cache,
            use_cache=True,
        )
    batch.positions = batch.positions + 1
    logits: torch.Tensor = out.logits[:, -1, :]
    return logits


def _step_mask(model: Any, mask: torch.Tensor) -> torch.Tensor:
    """The attention mask of a one-token step over padded rows.

    For sdpa, transformers would rebuild exactly this 4D bool view from the 2D mask on
    every step (the one new query may see every unpadded column: causality holds
    trivially); handing it over prepared skips that work (about 0.4 ms of a 30 ms
    8-row step on CPU). Other attention implementations want their own format, so
    they get the 2D mask.
    """
    if model.config._attn_implementation == "sdpa":
        return mask[:, None, None, :]
    return mask.long()


def merge(running: DecodeBatch, joining: DecodeBatch) -> DecodeBatch:
    """One batch holding the rows of `running` then `joining`, caches right-aligned."""
    length = max(running.length, joining.length)
    mask: torch.Tensor | None = None
    if running.mask is not None or joining.mask is not None or running.length != joining.length:
        mask = torch.cat([_full_mask(running, length), _full_mask(joining, length)])
    theirs = iter(_states(joining.cache))
    map_states(  # after the masks: this changes running.length
        running.cache,
        lambda mine: torch.cat([_left_pad(mine, length), _left_pad(next(theirs), length)]),
    )
    return DecodeBatch(
        cache=running.cache,
        mask=mask,
        positions=torch.cat([running.positions, joining.positions]),
        last_tokens=torch.cat([running.last_tokens, joining.last_tokens]),
    )


def keep_rows(batch: DecodeBatch, rows: list[int]) -> DecodeBatch:
    """The batch restricted to `rows` (in that order), leading all-padding columns trimmed."""
    index = PerDevice(torch.tensor(rows, dtype=torch.long, device=batch.positions.device))
    mask = batch.mask.index_select(0, index.on(batch.mask)) if batch.mask is not None else None
    start = 0
    if mask is not None:
        start = int(mask.any(dim=0).long().argmax())
        mask = mask[:, start:]
        if bool(mask.all()):
            mask = None
    map_states(
        batch.cache, lambda states: states.index_select(0, index.on(states))[:, :, start:, :]
    )
    return DecodeBatch(
        cache=batch.cache,
        mask=mask,
        positions=batch.positions.index_select(0, index.on(batch.positions)),
        last_tokens=batch.last_tokens.index_select(0, index.on(batch.last_tokens)),
    )


class PerDevice:
    """One index or mask, copied to each device that asks for it (once per device)."""

    def __init__(self, tensor: torch.Tensor) -> None:
        self._copies = {tensor.device: tensor}

    def on(self, target: torch.Tensor) -> torch.Tensor:
        """The tensor on `target`'s device."""
        copy = self._copies.get(target.device)
        if copy is None:
            copy = self._copies[target.device] = next(iter(self._copies.values())).to(target.device)
        return copy


def attention_layers(cache: DynamicCache, require_states: bool = True) -> list[GrowingLayer]:
    """The cache's layers, refusing kinds (sliding window, linear attention) whose states
    are not plain (B, H, L, D) tensors that can be padded, merged and sliced."""
    layers = []
    for layer in cache.layers:
        if not isinstance(layer, GrowingLayer) or (
            require_states and (layer.keys is None or layer.values is None)
        ):
            raise TypeError(f"batched decoding needs full-attention layers, not {layer!r}")
        layers.append(layer)
    return layers


def map_states(cache: DynamicCache, change: Callable[[torch.Tensor], torch.Tensor]) -> None:
    """Replace every layer's keys and values by `change` of them (keys first)."""
    for layer in attention_layers(cache):
        assert layer.keys is not None and layer.values is not None
        keys = change(layer.keys)  # keys before values: merge pairs them in this order
        layer.set_states(keys, change(layer.values))


def _left_pad(states: torch.Tensor, length: int) -> torch.Tensor:
    missing = length - states.shape[-2]
    if missing == 0:
        return states
    return torch.nn.functional.pad(states, (0, 0, missing, 0))


def _full_mask(batch: DecodeBatch, length: int) -> torch.Tensor:
    mask = batch.mask
    if mask is None:
        mask = torch.ones(
            (batch.size, batch.length), dtype=torch.bool, device=batch.positions.device
        )
    return torch.nn.functional.pad(mask, (length - mask.shape[-1], 0), value=False)


def row_states(batch: DecodeBatch, row: int, count: int) -> list[torch.Tensor]:
    """Copies of the last `count` positions of `row` (its own, right-aligned), keys then
    values of each layer, each (1, H, count, D)."""
    length = batch.length
    return [s[row : row + 1, :, length - count :, :].clone() for s in _states(batch.cache)]


def _states(cache: DynamicCache) -> list[torch.Tensor]:
    """Keys then values of each layer, in the order `map_states` visits them."""
    states = []
    for layer in attention_layers(cache):
        assert layer.keys is not None and layer.values is not None
        states += [layer.keys, layer.values]
    return states
