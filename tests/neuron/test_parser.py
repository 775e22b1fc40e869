"""The output parser: <think> -> reasoning, <tool_call> -> tool calls, for any chunking."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from helexa.neuron.parser import (
    ContentDelta,
    OutputParser,
    ParsedOutput,
    ParseEvent,
    ReasoningDelta,
    ToolCall,
    parse_output,
    prompt_opens_reasoning,
)


def counter_ids() -> Callable[[], str]:
    numbers = itertools.count()
    return lambda: f"call_{next(numbers)}"


def parser(**options: Any) -> OutputParser:
    return OutputParser(new_call_id=counter_ids(), **options)


def parse_chunks(chunks: list[str], **options: Any) -> tuple[ParsedOutput, list[ParseEvent]]:
    p = parser(**options)
    events = [e for chunk in chunks for e in p.feed(chunk)] + p.finish()
    return ParsedOutput.from_events(events), events


def parse(text: str, **options: Any) -> ParsedOutput:
    return parse_output(text, parser(**options))


def call_text(name: str, arguments: object) -> str:
    return f"<tool_call>\n{json.dumps({'name': name, 'arguments': arguments})}\n</tool_call>"


def test_plain_text_is_content() -> None:
    assert parse("Hello, world!") == ParsedOutput(content="Hello, world!")


def test_qwen3_thinking_output() -> None:
    result = parse("<think>\nLet me see.\nYes.\n</think>\n\nThe answer is 4.")
    assert result == ParsedOutput(content="The answer is 4.", reasoning="Let me see.\nYes.")


def test_prompt_opened_the_think_block() -> None:
    result = parse("Hmm.\n</think>\n\nDone.", starts_in_reasoning=True)
    assert result == ParsedOutput(content="Done.", reasoning="Hmm.")
    # Cut off mid-thought: everything so far is reasoning.
    assert parse("Still thinking", starts_in_reasoning=True).reasoning == "Still thinking"


def test_prompt_opens_reasoning() -> None:
    assert prompt_opens_reasoning("<|im_start|>assistant\n<think>\n")
    assert not prompt_opens_reasoning("<|im_start|>assistant\n<think>\n\n</think>\n\n")
    assert not prompt_opens_reasoning("<|im_start|>assistant\n")


def test_lone_close_tag_at_the_start_is_dropped() -> None:
    assert parse("\n</think>\n\nHi there") == ParsedOutput(content="Hi there")


def test_think_tags_after_content_are_literal() -> None:
    text = "Use <think> and </think> tags."
    assert parse(text) == ParsedOutput(content=text)


def test_tool_calls_become_events_in_order() -> None:
    text = (
        "I'll check.\n\n"
        + call_text("get_weather", {"city": "Paris"})
        + "\n"
        + call_text("get_time", {"tz": "Europe/Paris", "fmt": "ü"})
    )
    result = parse(text)
    assert result.content == "I'll check."
    assert result.reasoning == ""
    assert result.tool_calls == [
        ToolCall(0, "call_0", "get_weather", '{"city": "Paris"}'),
        ToolCall(1, "call_1", "get_time", '{"tz": "Europe/Paris", "fmt": "ü"}'),
    ]


def test_reasoning_then_tool_call() -> None:
    result = parse("<think>\nneed weather\n</think>\n\n" + call_text("w", {}))
    assert result == ParsedOutput(
        reasoning="need weather", tool_calls=[ToolCall(0, "call_0", "w", "{}")]
    )


def test_string_arguments_pass_through_and_missing_arguments_are_empty() -> None:
    text = '<tool_call>{"name": "a", "arguments": "{\\"x\\": 1}"}</tool_call>'
    text += '<tool_call>{"name": "b"}</tool_call>'
    calls = parse(text).tool_calls
    assert [(c.name, c.arguments) for c in calls] == [("a", '{"x": 1}'), ("b", "{}")]


def test_default_ids_are_random_call_ids() -> None:
    calls = parse_output(call_text("f", {}) + call_text("f", {})).tool_calls
    assert all(c.id.startswith("call_") and len(c.id) == 29 for c in calls)
    assert calls[0].id != calls[1].id


def test_malformed_tool_json_stays_content() -> None:
    bad = '<tool_call>\n{"name": "f", "arguments": {oops}\n</tool_call>'
    assert parse("Try: " + bad) == ParsedOutput(content="Try: " + bad)
    for body in ("[1, 2]", '{"arguments": {}}', '{"name": "", "arguments": {}}', "null"):
        text = f"<tool_call>{body}</tool_call>"
        assert parse(text) == ParsedOutput(content=text)


def test_unterminated_tool_call_stays_content() -> None:
    text = 'Calling <tool_call>\n{"name": "f", "arguments": {}}'
    assert parse(text) == ParsedOutput(content=text)


def test_tool_calls_can_be_switched_off() -> None:
    text = call_text("f", {"a": 1})
    assert parse(text, parse_tool_calls=False) == ParsedOutput(content=text)


def test_reasoning_can_be_switched_off() -> None:
    text = "<think>x</think>y"
    assert parse(text, parse_reasoning=False) == ParsedOutput(content=text)


def test_only_a_possible_tag_prefix_is_held_back() -> None:
    p = parser()
    assert p.feed("Hello <to") == [ContentDelta("Hello")]
    assert p.feed("ol") == []
    assert p.feed("box") == [ContentDelta(" <toolbox")]
    assert p.feed("<") == []
    assert p.feed("b>") == [ContentDelta("<b>")]
    assert p.finish() == []


def test_events_stream_as_text_arrives() -> None:
    p = parser()
    assert p.feed("<thi") == []
    assert p.feed("nk>\nStep") == [ReasoningDelta("Step")]
    assert p.feed(" one\n</th") == [ReasoningDelta(" one")]
    assert p.feed("ink>\n\nOK") == [ContentDelta("OK")]
    assert p.feed('<tool_call>{"name": "f", "arguments": {}}</tool_') == []
    assert p.feed("call>") == [ToolCall(0, "call_0", "f", "{}")]
    assert p.finish() == []


def test_arbitrary_text_never_raises() -> None:
    for text in ("<tool_call>", "</tool_call>", "<think><think></think></think>", "<<<>>>", ""):
        assert isinstance(parse(text), ParsedOutput)


# -- properties --------------------------------------------------------------

fragments = st.sampled_from(
    [
        "<think>",
        "</think>",
        "<tool_call>",
        "</tool_call>",
        "<thi",
        "</tool",
        "<",
        ">",
        "\n",
        " ",
        '{"name": "f", "arguments": {"a": [1, "x"]}}',
        '{"name": "g", "arguments": "{}"}',
        '{"name": "h", "arguments": {oops',
        '{"name": 3}',
        "hello",
        "wörld 🙂",
        "}",
    ]
)
texts = st.lists(fragments, max_size=14).map("".join)
cuts = st.lists(st.integers(min_value=0, max_value=400), max_size=20)


def chunk(text: str, positions: list[int]) -> list[str]:
    bounds = [0, *sorted(p for p in positions if 0 < p < len(text)), len(text)]
    return [text[a:b] for a, b in itertools.pairwise(bounds)]


@given(texts, cuts, st.booleans())
def test_any_chunking_gives_the_same_result(
    text: str, positions: list[int], starts_in_reasoning: bool
) -> None:
    whole = parse(text, starts_in_reasoning=starts_in_reasoning)
    chunked, _ = parse_chunks(chunk(text, positions), starts_in_reasoning=starts_in_reasoning)
    assert chunked == whole


@given(texts, st.booleans())
def test_one_character_at_a_time_gives_the_same_result(
    text: str, starts_in_reasoning: bool
) -> None:
    whole = parse(text, starts_in_reasoning=starts_in_reasoning)
    chunked, _ = parse_chunks(list(text), starts_in_reasoning=starts_in_reasoning)
    assert chunked == whole


@given(st.text(max_size=200), cuts)
def test_any_text_parses_without_raising(text: str, positions: list[int]) -> None:
    result, events = parse_chunks(chunk(text, positions))
    assert all(e.text for e in events if not isinstance(e, ToolCall))
    if "<" not in text:
        assert result == ParsedOutput(content=text.strip())


plain = st.text(alphabet=st.characters(blacklist_characters="<", blacklist_categories=["Cs"]))
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=6,
)
arguments = st.dictionaries(st.text(max_size=8), json_values, max_size=3)
calls = st.lists(st.tuples(st.text(min_size=1, max_size=8), arguments), max_size=3)


@given(plain, plain, calls, cuts)
def test_rendered_qwen_output_round_trips(
    reasoning: str, content: str, tool_calls: list[tuple[str, dict[str, Any]]], positions: list[int]
) -> None:
    text = f"<think>\n{reasoning}\n</think>\n\n{content}"
    text += "".join("\n" + call_text(name, args) for name, args in tool_calls)
    result, _ = parse_chunks(chunk(text, positions))
    assert result.reasoning == reasoning.strip()
    assert result.content == content.strip()
    assert [(c.name, json.loads(c.arguments)) for c in result.tool_calls] == tool_calls
    assert [c.index for c in result.tool_calls] == list(range(len(tool_calls)))
