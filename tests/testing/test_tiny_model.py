"""The tiny model builds offline, deterministically, and loads like a real Qwen3 checkpoint."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerBase

from helexa.testing.tiny_model import SPECIAL_TOKENS, TAG_TOKENS, build, main

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]
TOOL_CONVERSATION: list[dict[str, Any]] = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Weather in Paris?"},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": {"city": "Paris"}},
            }
        ],
    },
    {"role": "tool", "tool_call_id": "call_1", "content": "sunny, 20C"},
]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build(tmp_path_factory.mktemp("tiny") / "helexa-tiny", size="tiny")


@pytest.fixture(scope="module")
def tokenizer(built: Path) -> PreTrainedTokenizerBase:
    return AutoTokenizer.from_pretrained(built)


def render(tokenizer: PreTrainedTokenizerBase, messages: list[dict[str, Any]], **kw: Any) -> str:
    text = tokenizer.apply_chat_template(messages, tokenize=False, **kw)
    assert isinstance(text, str)
    return text


def test_rebuild_is_byte_identical(built: Path, tmp_path: Path) -> None:
    again = tmp_path / "again"
    main([str(again), "--size", "tiny"])  # through the CLI entry point
    names = sorted(p.name for p in built.iterdir())
    assert names == sorted(p.name for p in again.iterdir())
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= set(names)
    for name in names:
        assert (built / name).read_bytes() == (again / name).read_bytes(), name


def test_rebuild_replaces_the_directory_and_leaves_the_rng_alone(tmp_path: Path) -> None:
    out = tmp_path / "model"
    out.mkdir()
    (out / "stale.txt").write_text("old")
    rng_before = torch.random.get_rng_state()
    build(out)
    assert torch.equal(torch.random.get_rng_state(), rng_before)  # caller's RNG untouched
    assert not (out / "stale.txt").exists()
    assert (out / "config.json").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["model"]  # no staging left behind


def test_unknown_size_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="huge"):
        build(tmp_path / "m", size="huge")


def test_loads_and_generates(built: Path, tokenizer: PreTrainedTokenizerBase) -> None:
    model = AutoModelForCausalLM.from_pretrained(built)
    params = sum(p.numel() for p in model.parameters())
    assert 500_000 < params < 3_000_000
    assert model.config.model_type == "qwen3"
    assert model.config.max_position_embeddings == 4096
    assert model.config.vocab_size >= len(tokenizer)
    prompt = tokenizer("hello world", return_tensors="pt")["input_ids"]
    out = model.generate(prompt, max_new_tokens=5, min_new_tokens=5, do_sample=False)
    assert out.shape == (1, prompt.shape[1] + 5)
    assert torch.equal(out[0, : prompt.shape[1]], prompt[0])


def test_special_and_tag_tokens_are_single_tokens(tokenizer: PreTrainedTokenizerBase) -> None:
    for token in (*SPECIAL_TOKENS, *TAG_TOKENS):
        ids = tokenizer.encode(token, add_special_tokens=False)
        assert len(ids) == 1, token
    assert tokenizer.eos_token == "<|im_end|>"
    assert tokenizer.pad_token == "<|endoftext|>"
    assert tokenizer.bos_token is None
    # Control tokens vanish with skip_special_tokens; the tags stay for the output parser.
    ids = tokenizer.encode("<|im_start|><think>a</think><tool_call>b</tool_call><|im_end|>")
    assert tokenizer.decode(ids, skip_special_tokens=True) == (
        "<think>a</think><tool_call>b</tool_call>"
    )


def test_text_round_trips_through_the_byte_level_bpe(tokenizer: PreTrainedTokenizerBase) -> None:
    text = 'héllo 世界 🙂\n{"name": "x", "arguments": {"n": 12}}\n\tdef f(): return 3'
    ids = tokenizer.encode(text, add_special_tokens=False)
    assert tokenizer.decode(ids) == text
    assert len(ids) < len(text.encode())  # merges were learned, not just bytes


def test_generation_config(built: Path, tokenizer: PreTrainedTokenizerBase) -> None:
    generation = json.loads((built / "generation_config.json").read_text())
    stop = tokenizer.convert_tokens_to_ids(["<|im_end|>", "<|endoftext|>"])
    assert generation["eos_token_id"] == stop
    assert generation["do_sample"] is True
    assert (generation["temperature"], generation["top_p"]) == (0.7, 0.8)


def test_chat_template_renders_tools_calls_and_results(tokenizer: PreTrainedTokenizerBase) -> None:
    text = render(tokenizer, TOOL_CONVERSATION, tools=TOOLS, add_generation_prompt=True)
    tool_json = json.dumps(TOOLS[0], ensure_ascii=False)
    assert text.startswith("<|im_start|>system\nBe brief.\n\n# Tools\n")
    assert f"<tools>\n{tool_json}\n</tools>" in text
    assert (
        "<|im_start|>assistant\n<tool_call>\n"
        '{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call><|im_end|>\n'
    ) in text
    assert (
        "<|im_start|>user\n<tool_response>\nsunny, 20C\n</tool_response><|im_end|>\n"
        "<|im_start|>assistant\n"
    ) in text
    assert text.endswith("<|im_start|>assistant\n")


def test_chat_template_enable_thinking(tokenizer: PreTrainedTokenizerBase) -> None:
    messages = [{"role": "user", "content": "Hi"}]
    thinking = render(tokenizer, messages, add_generation_prompt=True, enable_thinking=True)
    direct = render(tokenizer, messages, add_generation_prompt=True, enable_thinking=False)
    assert thinking == "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    assert direct == thinking + "<think>\n\n</think>\n\n"
    assert render(tokenizer, messages) == "<|im_start|>user\nHi<|im_end|>\n"


def test_chat_template_text_parts_and_reasoning(tokenizer: PreTrainedTokenizerBase) -> None:
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": [{"type": "text", "text": "Sys."}]},
        {"role": "user", "content": [{"type": "text", "text": "A"}, {"type": "text", "text": "B"}]},
        {"role": "assistant", "content": "Done.", "reasoning_content": "Because."},
    ]
    assert render(tokenizer, messages) == (
        "<|im_start|>system\nSys.<|im_end|>\n<|im_start|>user\nAB<|im_end|>\n"
        "<|im_start|>assistant\n<think>\nBecause.\n</think>\n\nDone.<|im_end|>\n"
    )
