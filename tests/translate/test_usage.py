"""OpenAI cached-prompt counts -> Anthropic's input split (pure)."""

from __future__ import annotations

from typing import Any

import pytest

from helexa.translate.usage import anthropic_input_usage, cached_tokens


@pytest.mark.parametrize(
    ("usage", "expected"),
    [
        ({"prompt_tokens": 9}, None),
        ({"prompt_tokens": 9, "prompt_tokens_details": None}, None),
        ({"prompt_tokens": 9, "prompt_tokens_details": {}}, None),
        ({"prompt_tokens": 9, "prompt_tokens_details": {"cached_tokens": 0}}, 0),
        ({"prompt_tokens": 9, "prompt_tokens_details": {"cached_tokens": 8}}, 8),
        ({"prompt_tokens": 9, "prompt_tokens_details": {"cached_tokens": -1}}, None),
        ({"prompt_tokens": 9, "prompt_tokens_details": {"cached_tokens": True}}, None),
        ({"prompt_tokens": 9, "prompt_tokens_details": {"cached_tokens": "8"}}, None),
    ],
)
def test_cached_tokens(usage: dict[str, Any], expected: int | None) -> None:
    assert cached_tokens(usage) == expected


def test_no_cached_count_is_input_tokens_alone() -> None:
    assert anthropic_input_usage(40, None) == {"input_tokens": 40}


def test_cached_count_splits_input_as_anthropic_counts() -> None:
    assert anthropic_input_usage(40, 32) == {
        "input_tokens": 8,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 32,
    }


def test_an_overcounted_cache_never_makes_input_negative() -> None:
    assert anthropic_input_usage(10, 12)["input_tokens"] == 0
