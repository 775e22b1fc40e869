"""The batch KV cache: merged, stepped and shrunk rows keep their solo logits."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from helexa.neuron.engine import prefill as prefill_module
from helexa.neuron.engine.batch import DecodeBatch, decode_step, keep_rows, merge
from helexa.neuron.engine.prefill import prefill

CPU = torch.device("cpu")
PROMPTS = [[11, 12, 13], [21, 22, 23, 24, 25, 26, 27, 28], [31, 32, 33, 34, 35]]


def solo_logits(model: Any, prompt: list[int], fed: list[int]) -> torch.Tensor:
    """Last-position logits after the prompt and the `fed` tokens, one sequence alone."""
    with torch.inference_mode():
        logits: torch.Tensor = model(input_ids=torch.tensor([prompt + fed])).logits[0, -1]
    return logits


def start(model: Any, prompts: list[list[int]], first: int) -> DecodeBatch:
    batch, _ = prefill(model, prompts, CPU)
    batch.last_tokens = torch.full((len(prompts), 1), first)
    return batch


@pytest.mark.parametrize("way", ["packed", "padded"])
def test_prefill_matches_each_prompt_alone(model: Any, way: str) -> None:
    run = {"packed": prefill_module._prefill_packed, "padded": prefill_module._prefill_padded}
    with torch.inference_mode():
        result = run[way](model, PROMPTS, CPU)
    assert result is not None
    batch, logits = result

    assert batch.mask is not None and batch.mask.shape == (3, 8)
    assert batch.positions.tolist() == [3, 8, 5]
    for row, prompt in enumerate(PROMPTS):
        torch.testing.assert_close(logits[row], solo_logits(model, prompt, []))


def test_merged_rows_step_like_solo_sequences(model: Any) -> None:
    with torch.inference_mode():
        running = start(model, PROMPTS[:1], first=7)
        decode_step(model, running)  # row 0 has been fed 7 once
        running.last_tokens = torch.tensor([[9]])
        joined = merge(running, start(model, PROMPTS[1:], first=7))
        logits = decode_step(model, joined)

    torch.testing.assert_close(logits[0], solo_logits(model, PROMPTS[0], [7, 9]))
    torch.testing.assert_close(logits[1], solo_logits(model, PROMPTS[1], [7]))
    torch.testing.assert_close(logits[2], solo_logits(model, PROMPTS[2], [7]))


def test_keep_rows_drops_rows_and_trims_padding(model: Any) -> None:
    with torch.inference_mode():
        batch = start(model, PROMPTS, first=7)
        kept = keep_rows(batch, [2, 0])
        assert kept.mask is not None and kept.length == 5  # the 8-token row's padding is gone
        logits = decode_step(model, kept)
        alone = keep_rows(kept, [0])

    assert alone.mask is None  # one row left: no padding, the fast path
    assert alone.length == 6
    torch.testing.assert_close(logits[0], solo_logits(model, PROMPTS[2], [7]))
    torch.testing.assert_close(logits[1], solo_logits(model, PROMPTS[0], [7]))
