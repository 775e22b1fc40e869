"""Prefill: packed and padded prompts start the same batch; the prepared step mask is exact."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import AutoModelForCausalLM

from helexa.neuron.engine import prefill as prefill_module
from helexa.neuron.engine.batch import DecodeBatch, attention_layers, decode_step
from helexa.neuron.engine.prefill import prefill

CPU = torch.device("cpu")
PROMPTS = [[11, 12, 13], [21, 22, 23, 24, 25, 26, 27, 28], [31, 32, 33, 34, 35]]


def states(batch: DecodeBatch) -> list[torch.Tensor]:
    found = []
    for layer in attention_layers(batch.cache):
        assert layer.keys is not None and layer.values is not None
        found += [layer.keys, layer.values]
    return found


def test_packed_prefill_lays_out_the_batch_as_padding_does(model: Any) -> None:
    with torch.inference_mode():
        result = prefill_module._prefill_packed(model, PROMPTS, CPU)
        padded, padded_logits = prefill_module._prefill_padded(model, PROMPTS, CPU)

    assert result is not None
    packed, packed_logits = result
    assert packed.mask is not None and padded.mask is not None
    assert torch.equal(packed.mask, padded.mask)
    assert packed.positions.tolist() == padded.positions.tolist() == [3, 8, 5]
    torch.testing.assert_close(packed_logits, padded_logits)
    for ours, theirs in zip(states(packed), states(padded), strict=True):
        assert ours.shape == theirs.shape
        torch.testing.assert_close(ours, theirs)  # the padding columns are zero in both


def test_prefill_packs_only_prompts_of_different_lengths_within_the_limit(
    model: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    packed: list[int] = []
    original = prefill_module._prefill_packed

    def spy(model: Any, prompts: list[list[int]], device: torch.device) -> Any:
        packed.append(len(prompts))
        return original(model, prompts, device)

    monkeypatch.setattr(prefill_module, "_prefill_packed", spy)
    with torch.inference_mode():
        prefill(model, PROMPTS, CPU)  # mixed lengths: packed
        prefill(model, [[1, 2, 3], [4, 5, 6]], CPU)  # no padding to save
        prefill(model, PROMPTS[:1], CPU)
        monkeypatch.setattr(prefill_module, "PACK_MAX_TOKENS", 15)  # the prompts hold 16
        prefill(model, PROMPTS, CPU)

    assert packed == [3]


def test_prefill_pads_when_the_model_takes_no_4d_mask(
    model: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As with flash attention, whose mask function returns no 4D tensor.
    monkeypatch.setattr(prefill_module, "create_causal_mask", lambda **_: None)
    with torch.inference_mode():
        batch, logits = prefill(model, PROMPTS, CPU)
        _, padded_logits = prefill_module._prefill_padded(model, PROMPTS, CPU)

    assert batch.mask is not None and batch.mask.shape == (3, 8)
    assert torch.equal(logits, padded_logits)


def test_the_prepared_step_mask_gives_exactly_transformers_own_logits(model: Any) -> None:
    with torch.inference_mode():
        batch, _ = prefill(model, PROMPTS, CPU)
        batch.last_tokens = torch.tensor([[7], [8], [9]])
        assert batch.mask is not None
        mask = torch.cat([batch.mask, batch.mask.new_ones((3, 1))], dim=-1)
        positions = batch.positions[:, None]
        logits = decode_step(model, batch)  # appends to the cache: rebuild it for transformers
        fresh, _ = prefill(model, PROMPTS, CPU)
        theirs = model(
            input_ids=torch.tensor([[7], [8], [9]]),
            attention_mask=mask.long(),
            position_ids=positions,
            cache=fresh.cache,
            use_cache=True,
        ).logits[:, -1, :]

    assert torch.equal(logits, theirs)


def test_eager_attention_packs_with_its_own_mask_format_and_decodes_with_the_2d_mask(
    tiny_model_dir: Path,
) -> None:
    eager: Any = AutoModelForCausalLM.from_pretrained(
        tiny_model_dir, local_files_only=True, attn_implementation="eager"
    )
    eager.eval()
    with torch.inference_mode():
        assert prefill_module._prefill_packed(eager, PROMPTS, CPU) is not None  # a float mask
        batch, _ = prefill(eager, PROMPTS, CPU)
        batch.last_tokens = torch.tensor([[7], [8], [9]])
        logits = decode_step(eager, batch)
        for row, prompt in enumerate(PROMPTS):
            alone = eager(input_ids=torch.tensor([[*prompt, 7 + row]])).logits[0, -1]
            torch.testing.assert_close(logits[row], alone)


def cache_on(model: Any, device: str, shape: tuple[int, ...]) -> Any:
    """A cache whose layers sit on `device` (meta stands in for a second GPU)."""
    from helexa.neuron.engine.kv import growing_cache

    cache = growing_cache(model.config)
    for layer in cache.layers:
        layer.set_states(torch.zeros(shape, device=device), torch.zeros(shape, device=device))
    return cache


def test_padding_is_cleared_on_each_layers_own_device(model: Any) -> None:
    cache = cache_on(model, "meta", (2, 2, 5, 32))
    mask = torch.tensor([[False, False, True, True, True], [True] * 5])

    prefill_module._zero_padding(cache, mask)  # the mask on the CPU, the layers elsewhere

    assert {s.device.type for s in states(DecodeBatch(cache, mask, mask.sum(-1), mask))} == {"meta"}


def test_packed_states_are_unpacked_on_each_layers_own_device(model: Any) -> None:
    cache = cache_on(model, "meta", (1, 2, 5, 32))

    batch = prefill_module._unpack(cache, [2, 3], CPU)

    assert [tuple(s.shape) for s in states(batch)] == [(2, 2, 3, 32)] * 4
    assert {s.device.type for s in states(batch)} == {"meta"}
