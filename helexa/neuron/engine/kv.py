"""A KV cache layer that grows in place.

transformers' DynamicLayer appends each step's keys/values with torch.cat,
copying the whole cache of every layer on every token: a cost that grows with
batch size times length (about an eighth of a batched decode step on CPU).
GrowingLayer keeps the states in a buffer with spare room on the sequence axis
and writes each step into it; `keys`/`values` are views of the filled part.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer

MIN_SPARE = 64  # positions of room added at each (re)allocation, at least
SPARE_FRACTION = 4  # and at least length / 4, so reallocations stay rare as it grows


class GrowingLayer(DynamicLayer):  # type: ignore[no-untyped-call]  # (untyped base hook)
    """A full-attention cache layer whose appends write in place."""

    _key_buffer: torch.Tensor | None = None  # (B, H, capacity, D); None until first update
    _value_buffer: torch.Tensor | None = None

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if self.keys is None or self.values is None or not self.is_initialized:
            self.set_states(key_states, value_states)
            return self._views()
        start = self.keys.shape[-2]
        end = start + key_states.shape[-2]
        if self._key_buffer is None or end > self._key_buffer.shape[-2]:
            self.set_states(self.keys, self.values, room_for=end)
        assert self._key_buffer is not None and self._value_buffer is not None
        self._key_buffer[:, :, start:end, :] = key_states
        self._value_buffer[:, :, start:end, :] = value_states
        self.keys = self._key_buffer[:, :, :end, :]
        self.values = self._value_buffer[:, :, :end, :]
        return self._views()

    def set_states(
        self, keys: torch.Tensor, values: torch.Tensor, room_for: int | None = None
    ) -> None:
        """Replace the states (a merge, dropped rows), copied into a buffer with spare room."""
        length = keys.shape[-2]
        needed = max(length, room_for or 0)
        capacity = needed + max(MIN_SPARE, needed // SPARE_FRACTION)
        self._key_buffer = _buffer(keys, capacity)
        self._value_buffer = _buffer(values, capacity)
        self.keys = self._key_buffer[:, :, :length, :]
        self.values = self._value_buffer[:, :, :length, :]
        self.device = keys.device
        self.dtype = keys.dtype
        self.is_initialized = True

    def _views(self) -> tuple[torch.Tensor, torch.Tensor]:
        assert self.keys is not None and self.values is not None
        return self.keys, self.values


def growing_cache(config: Any) -> DynamicCache:
    """A DynamicCache for `config` whose full-attention layers grow in place."""
    cache = DynamicCache(config=config)
    cache.layers = [
        GrowingLayer() if type(layer) is DynamicLayer else layer for layer in cache.layers
    ]
    return cache


def _buffer(states: torch.Tensor, capacity: int) -> torch.Tensor:
    batch, heads, length, dim = states.shape
    buffer = states.new_empty((batch, heads, capacity, dim))
    buffer[:, :, :length, :] = states
    return buffer


def batchable(config: Any) -> bool:
    """Whether every cache layer of `config` is full attention (can be padded and merged)."""
    return all(isinstance(layer, GrowingLayer) for layer in growing_cache(config).layers)


def cache_with_states(config: Any, states: list[torch.Tensor], room_for: int) -> DynamicCache:
    """A growing cache for `config` holding copies of `states` (keys then values of each
    layer, as `batch.map_states` visits them), with room for `room_for` positions."""
    cache = growing_cache(config)
    layers = [layer for layer in cache.layers if isinstance(layer, GrowingLayer)]
    if len(layers) != len(cache.layers) or 2 * len(layers) != len(states):
        raise TypeError("cached states need a cache of full-attention layers only")
    for i, layer in enumerate(layers):
        layer.set_states(states[2 * i], states[2 * i + 1], room_for=room_for)
    return cache
