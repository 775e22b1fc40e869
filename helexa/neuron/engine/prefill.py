"""Prefilling newcomers: their prompts run as one forward pass that starts a DecodeBatch.

Prompts of different lengths run either left-padded (every row as long as the
longest) or packed (concatenated into one row, each prompt attending only to
itself, with its own positions). Packing skips the padding's wasted rows in
every matmul: for the bench's 8 prompts, 169 rows instead of 224, and 11-15%
less prefill time (small model, 2 CPU threads). Its mask is dense (tokens x
tokens), so packing is used only up to PACK_MAX_TOKENS and when the attention
implementation takes a prepared 4D mask; otherwise the prompts are padded. The
packed cache is then laid out as a padded prefill leaves it (left-padded rows,
zeroed padding), so the rest of the engine works on one layout.

On a model split over GPUs each layer's cache lives on its layer's GPU and the
last hidden states on the last one: the indexes and masks applied to them are
put on their device (batch.PerDevice), and the packed prompts' logits index is
given on the CPU, which indexes a tensor on any device.
"""

from __future__ import annotations

import itertools
from typing import Any

import torch
from transformers import DynamicCache
from transformers.masking_utils import create_causal_mask

from helexa.neuron.engine.batch import DecodeBatch, PerDevice, attention_layers, map_states
from helexa.neuron.engine.kv import growing_cache

PACK_MAX_TOKENS = 2048  # the packed mask is tokens^2 elements: 4 Mi bools at this size


def prefill(
    model: Any, prompts: list[list[int]], device: torch.device
) -> tuple[DecodeBatch, torch.Tensor]:
    """Run the prompts as one batch; returns it and last-position logits (B, V).

    `last_tokens` is left empty: the caller samples from the logits and sets it.
    """
    lengths = [len(p) for p in prompts]
    longest = max(lengths)
    total = sum(lengths)
    if total < longest * len(prompts) and total <= PACK_MAX_TOKENS:
        packed = _prefill_packed(model, prompts, device)
        if packed is not None:
            return packed
    return _prefill_padded(model, prompts, device)


def extend(model: Any, batch: DecodeBatch, tokens: list[int], start: int) -> torch.Tensor:
    """Prefill `tokens` at positions start.. onto a one-row batch whose cache holds
    positions 0..start-1 (a cached prefix, earlier chunks, or nothing); returns the
    last position's logits (1, V). No padding: the model's own causal mask over
    cache plus new tokens is exact."""
    device = batch.positions.device
    ids = torch.tensor([tokens], dtype=torch.long, device=device)
    positions = torch.arange(start, start + len(tokens), device=device)[None, :]
    out = model(
        input_ids=ids, position_ids=positions, cache=batch.cache, use_cache=True, logits_to_keep=1
    )
    batch.positions = batch.positions + len(tokens)
    logits: torch.Tensor = out.logits[:, -1, :]
    return logits


def _prefill_padded(
    model: Any, prompts: list[list[int]], device: torch.device
) -> tuple[DecodeBatch, torch.Tensor]:
    longest = max(len(p) for p in prompts)
    ids = torch.zeros((len(prompts), longest), dtype=torch.long)
    mask = torch.zeros((len(prompts), longest), dtype=torch.bool)
    for row, prompt in enumerate(prompts):
        ids[row, longest - len(prompt) :] = torch.tensor(prompt, dtype=torch.long)
        mask[row, longest - len(prompt) :] = True
    ids, mask = ids.to(device), mask.to(device)
    padded = any(len(p) != longest for p in prompts)
    cache = growing_cache(model.config)
    kwargs: dict[str, Any] = {}
    if padded:
        kwargs["attention_mask"] = mask.long()
        kwargs["position_ids"] = (mask.cumsum(dim=-1) - 1).clamp(min=0)
    out = model(input_ids=ids, cache=cache, use_cache=True, logits_to_keep=1, **kwargs)
    if padded:
        _zero_padding(cache, mask)
    positions = mask.sum(dim=-1)
    last = torch.zeros_like(positions[:, None])
    batch = DecodeBatch(cache, mask if padded else None, positions, last)
    return batch, out.logits[:, -1, :]


def _prefill_packed(
    model: Any, prompts: list[list[int]], device: torch.device
) -> tuple[DecodeBatch, torch.Tensor] | None:
    """The prompts as one packed row; None when the model cannot take a packed mask."""
    cache = growing_cache(model.config)
    if not _full_attention_only(cache):
        return None  # a sliding window or linear layer would misread the dense mask
    # Index bookkeeping in Python: a handful of small lists, and no device syncs.
    lengths = [len(p) for p in prompts]
    ends = list(itertools.accumulate(lengths))  # one past each prompt's last token
    positions = torch.tensor([i for n in lengths for i in range(n)], device=device)[None, :]
    ids = torch.tensor(list(itertools.chain.from_iterable(prompts)), device=device)[None, :]
    # transformers' own packed-sequence mask (block-diagonal causal) in the format of the
    # model's attention implementation; built here since the model detects packing only
    # when it runs without a cache.
    mask = create_causal_mask(
        config=model.config,
        inputs_embeds=torch.empty((1, ends[-1], 0), dtype=model.dtype, device=device),
        attention_mask=None,
        cache=None,
        position_ids=positions,
    )
    if not isinstance(mask, torch.Tensor) or mask.dim() != 4:
        return None  # e.g. flash attention (no 4D mask) or flex attention (a BlockMask)
    out = model(
        input_ids=ids,
        attention_mask=mask,
        position_ids=positions,
        cache=cache,
        use_cache=True,
        logits_to_keep=torch.tensor([end - 1 for end in ends], device=_index_device(model, device)),
    )
    logits: torch.Tensor = out.logits[0]
    return _unpack(cache, lengths, device), logits


def _unpack(cache: DynamicCache, lengths: list[int], device: torch.device) -> DecodeBatch:
    """Re-lay the packed (1, H, total, D) states as left-padded (B, H, longest, D) rows."""
    longest = max(lengths)
    source: list[int] = []  # per row: its padding (any index, zeroed below), then its tokens
    for end, length in zip(itertools.accumulate(lengths), lengths, strict=True):
        source += [end - length] * (longest - length) + list(range(end - length, end))
    index = PerDevice(torch.tensor(source, device=device))
    mask = torch.tensor(
        [[i >= longest - n for i in range(longest)] for n in lengths], device=device
    )
    clear = PerDevice(~mask[:, None, :, None])

    def unpack(states: torch.Tensor) -> torch.Tensor:
        heads, dim = states.shape[1], states.shape[-1]
        rows = states[0].index_select(1, index.on(states)).view(heads, len(lengths), longest, dim)
        return rows.transpose(0, 1).masked_fill(clear.on(states), 0.0)

    map_states(cache, unpack)
    positions = torch.tensor(lengths, device=device)
    last = torch.zeros_like(positions[:, None])
    return DecodeBatch(cache, mask if min(lengths) < longest else None, positions, last)


def _full_attention_only(cache: DynamicCache) -> bool:
    try:
        attention_layers(cache, require_states=False)
    except TypeError:
        return False
    return True


def _zero_padding(cache: DynamicCache, mask: torch.Tensor) -> None:
    # Padded query rows can attend to nothing and leave NaN in their keys/values;
    # a NaN times a zero attention weight is still NaN, so clear them.
    padding = PerDevice(~mask[:, None, :, None])
    map_states(cache, lambda states: states.masked_fill(padding.on(states), 0.0))


def _index_device(model: Any, device: torch.device) -> torch.device:
    """Where the logits index goes: the input device, or the CPU when the layers are split
    (the last hidden states then sit on the last GPU, not the input's)."""
    placed = set(getattr(model, "hf_device_map", {}).values())
    return device if len(placed) <= 1 else torch.device("cpu")
