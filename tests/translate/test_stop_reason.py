"""finish_reason -> stop_reason, and which stop sequence matched."""

from __future__ import annotations

import pytest

from helexa.translate.stop_reason import anthropic_stop_reason, detect_stop_sequence


@pytest.mark.parametrize(
    ("upstream", "text", "stops", "expected"),
    [
        ("END", "abc", ["END"], "END"),
        ("END", "abc", ["STOP"], None),  # the upstream matched a stop the client did not send
        (151645, "abc", ["END"], None),  # a stop token id (vLLM), not a string
        (None, "abcEND", ["END"], "END"),
        (None, "abc\n\nH:", ["H:", "\n\nH:"], "\n\nH:"),
        (None, "abc", ["", "x"], None),
        (None, "", [], None),
    ],
)
def test_detect_stop_sequence(
    upstream: object, text: str, stops: list[str], expected: str | None
) -> None:
    assert detect_stop_sequence(upstream, text, stops) == expected


@pytest.mark.parametrize(
    ("finish", "tools", "stop", "expected"),
    [
        ("stop", False, None, "end_turn"),
        ("stop", False, "END", "stop_sequence"),
        ("stop", True, None, "tool_use"),
        ("tool_calls", True, None, "tool_use"),
        ("function_call", False, None, "tool_use"),
        ("length", True, None, "max_tokens"),
        ("length", False, "END", "max_tokens"),
        ("content_filter", False, None, "refusal"),
        (None, False, None, "end_turn"),
        ("eos", False, None, "end_turn"),
    ],
)
def test_anthropic_stop_reason(
    finish: str | None, tools: bool, stop: str | None, expected: str
) -> None:
    assert anthropic_stop_reason(finish, has_tool_calls=tools, stop_sequence=stop) == expected
