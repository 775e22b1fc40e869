"""Incremental detokenization against the tiny model's byte-level BPE tokenizer."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerBase

from helexa.neuron.detok import REPLACEMENT_CHAR, IncrementalDetokenizer, decoder_for

TEXTS = [
    "héllo 世界 🙂",
    "Plain ASCII with  double  spaces\nand lines\n\n",
    "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 math, emoji 👩‍👩‍👧 and Ω≈ç√∫",
    '<think>\nhmm\n</think>\n\n<tool_call>\n{"name": "f", "arguments": {}}\n</tool_call>',
    "<|im_start|>assistant\nspecial tokens vanish<|im_end|>",
]


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir: Path) -> PreTrainedTokenizerBase:
    return AutoTokenizer.from_pretrained(tiny_model_dir)


def reference(tokenizer: PreTrainedTokenizerBase, ids: Sequence[int]) -> str:
    text = tokenizer.decode(list(ids), skip_special_tokens=True)
    assert isinstance(text, str)
    return text


def detokenize(
    tokenizer: PreTrainedTokenizerBase, ids: Sequence[int], prompt_ids: Sequence[int] = ()
) -> list[str]:
    detok = IncrementalDetokenizer.for_tokenizer(tokenizer, prompt_ids)
    return [detok.push(i) for i in ids] + [detok.flush()]


@pytest.mark.parametrize("text", TEXTS)
def test_deltas_concatenate_to_the_full_decode(
    tokenizer: PreTrainedTokenizerBase, text: str
) -> None:
    ids = tokenizer.encode(text, add_special_tokens=False)
    deltas = detokenize(tokenizer, ids)
    assert "".join(deltas) == reference(tokenizer, ids)
    assert not any(REPLACEMENT_CHAR in d for d in deltas)


def test_split_characters_are_held_until_complete(tokenizer: PreTrainedTokenizerBase) -> None:
    ids = tokenizer.encode("𝔘𝔫𝔦", add_special_tokens=False)
    assert len(ids) > 3  # rare 4-byte characters span several byte tokens
    deltas = detokenize(tokenizer, ids)
    assert "" in deltas[:-1]  # something was held back...
    assert [d for d in deltas if d] == ["𝔘", "𝔫", "𝔦"]  # ...and came out whole


def test_prompt_context_is_not_repeated(tokenizer: PreTrainedTokenizerBase) -> None:
    prompt = tokenizer.encode("<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n")
    ids = tokenizer.encode("Hello there, wörld", add_special_tokens=False)
    assert "".join(detokenize(tokenizer, ids, prompt)) == "Hello there, wörld"


def test_an_unfinished_character_is_flushed_as_replacement(
    tokenizer: PreTrainedTokenizerBase,
) -> None:
    ids = tokenizer.encode("a🙂", add_special_tokens=False)
    partial = ids[:-1] if len(ids) > 2 else ids
    detok = IncrementalDetokenizer.for_tokenizer(tokenizer)
    pushed = "".join(detok.push(i) for i in partial)
    assert pushed + detok.flush() == reference(tokenizer, partial)


def test_work_per_token_is_bounded(tokenizer: PreTrainedTokenizerBase) -> None:
    windows: list[int] = []
    decode = decoder_for(tokenizer)

    def spying_decode(ids: Sequence[int]) -> str:
        windows.append(len(ids))
        return decode(ids)

    ids = tokenizer.encode("the model loads the queue " * 200, add_special_tokens=False)
    detok = IncrementalDetokenizer(spying_decode)
    text = "".join(detok.push(i) for i in ids) + detok.flush()
    assert text == reference(tokenizer, ids)
    assert len(ids) > 500
    assert max(windows) <= 8  # a small window, not the whole sequence


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=200)
@given(data=st.data())
def test_random_token_sequences(tokenizer: PreTrainedTokenizerBase, data: st.DataObject) -> None:
    # Random ids include lone UTF-8 lead/continuation bytes, special tokens and
    # ids past the tokenizer (a model's padded vocabulary) that decode to nothing.
    ids = data.draw(st.lists(st.integers(0, len(tokenizer) + 60), max_size=40))
    prompt = data.draw(st.lists(st.integers(0, len(tokenizer) - 1), max_size=8))
    assert "".join(detokenize(tokenizer, ids, prompt)) == reference(tokenizer, ids)


def test_tokens_sampled_from_the_tiny_model(
    tiny_model_dir: Path, tokenizer: PreTrainedTokenizerBase
) -> None:
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    prompt_ids = tokenizer.encode(
        "<|im_start|>user\nSay something<|im_end|>\n<|im_start|>assistant\n"
    )
    torch.manual_seed(0)
    out = model.generate(
        torch.tensor([prompt_ids]), max_new_tokens=64, min_new_tokens=64, do_sample=True
    )
    generated = out[0, len(prompt_ids) :].tolist()
    deltas = detokenize(tokenizer, generated, prompt_ids)
    assert "".join(deltas) == reference(tokenizer, generated)
    assert sum(1 for d in deltas if d) > 10


def test_fast_decoder_matches_the_tokenizer(tokenizer: PreTrainedTokenizerBase) -> None:
    ids = tokenizer.encode(" ".join(TEXTS))
    assert decoder_for(tokenizer)(ids) == reference(tokenizer, ids)
