"""The text stages on the tiny model's real tokenizer: tags, tool calls, stops, chunking."""

from __future__ import annotations

import json
from typing import Any

from helexa.neuron.textpipe import Piece, TextPipeline

OUTPUT = (
    "<think>weigh it</think>Sure.<tool_call>"
    '{"name": "lookup", "arguments": {"word": "hex"}}</tool_call>'
)


def _run(pipe: TextPipeline, ids: list[int]) -> list[Piece]:
    pieces = [pipe.push(i) for i in ids]
    pieces.append(pipe.finish())
    return [p for p in pieces if p]


def test_reasoning_content_and_tool_calls_come_apart(tiny_tokenizer: Any) -> None:
    prompt = tiny_tokenizer("q")["input_ids"]
    ids = tiny_tokenizer(OUTPUT, add_special_tokens=False)["input_ids"]
    pipe = TextPipeline(tiny_tokenizer, prompt, stops=[], parse_output=True)
    pieces = _run(pipe, ids)
    assert "".join(p.reasoning for p in pieces) == "weigh it"
    assert "".join(p.content for p in pieces) == "Sure."
    calls = [c for p in pieces for c in p.tool_calls]
    assert [(c.index, c.name, json.loads(c.arguments)) for c in calls] == [
        (0, "lookup", {"word": "hex"})
    ]
    assert pipe.saw_tool_call
    (delta,) = next(p for p in pieces if p.tool_calls).tool_call_deltas()
    assert delta.function is not None and delta.function.name == "lookup"
    assert delta.id == calls[0].id


def test_completions_pass_tags_through(tiny_tokenizer: Any) -> None:
    ids = tiny_tokenizer(OUTPUT, add_special_tokens=False)["input_ids"]
    pipe = TextPipeline(tiny_tokenizer, [], stops=[], parse_output=False)
    assert "".join(p.content for p in _run(pipe, ids)) == OUTPUT
    assert not pipe.saw_tool_call


def test_stop_cuts_across_tokens_and_ends_the_pipeline(tiny_tokenizer: Any) -> None:
    text = "alpha beta gamma delta"
    ids = tiny_tokenizer(text, add_special_tokens=False)["input_ids"]
    pipe = TextPipeline(tiny_tokenizer, [], stops=["a gam"], parse_output=False)
    out = "".join(p.content for p in _run(pipe, ids))
    assert out == "alpha bet"
    assert pipe.stopped


def test_prompt_ending_inside_think_starts_as_reasoning(tiny_tokenizer: Any) -> None:
    prompt = tiny_tokenizer("<|im_start|>assistant\n<think>\n")["input_ids"]
    ids = tiny_tokenizer("pondering</think>done", add_special_tokens=False)["input_ids"]
    pieces = _run(TextPipeline(tiny_tokenizer, prompt, stops=[], parse_output=True), ids)
    assert "".join(p.reasoning for p in pieces) == "pondering"
    assert "".join(p.content for p in pieces) == "done"
