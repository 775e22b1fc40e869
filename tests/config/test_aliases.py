from __future__ import annotations

import pytest

from helexa.config.aliases import best_pattern, pattern_matches, resolve_alias, specificity


@pytest.mark.parametrize(
    ("pattern", "name", "matches"),
    [
        ("claude-*", "claude-3-5-haiku-20241022", True),
        ("claude-*", "claude-", True),
        ("claude-*", "my-claude-x", False),
        ("*-haiku-*", "claude-3-5-haiku-2024", True),
        ("gpt-4.1*", "gpt-4x1", False),  # "." is literal, not a regex wildcard
        ("a*b*c", "aXbYc", True),
        ("a*b*c", "aXbY", False),
    ],
)
def test_pattern_matches(pattern: str, name: str, matches: bool) -> None:
    assert pattern_matches(pattern, name) is matches


def test_specificity_counts_literal_characters_first() -> None:
    assert specificity("claude-*-haiku-*") > specificity("claude-*")
    assert specificity("ab*") > specificity("a*")


def test_most_literal_characters_win() -> None:
    patterns = ["claude-*", "claude-*-haiku-*", "*"]
    assert best_pattern(patterns, "claude-3-5-haiku-2024") == "claude-*-haiku-*"
    assert best_pattern(patterns, "claude-opus-4") == "claude-*"


def test_equal_literals_prefer_the_longer_pattern_then_lexical() -> None:
    # Both have 7 literal characters; the longer (more wildcards) wins.
    assert best_pattern(["claude-*", "claude*-*"], "claude-x") == "claude*-*"
    # Same literals and length: the lexically smallest, whatever the order given.
    assert best_pattern(["b*x", "a*x"], "abx") == best_pattern(["a*x", "b*x"], "abx") == "a*x"


def test_exact_name_beats_any_pattern() -> None:
    aliases = {"claude-3-5-haiku": "small", "claude-*-haiku": "medium", "claude-*": "big"}
    assert resolve_alias(aliases, "claude-3-5-haiku") == "small"
    assert resolve_alias(aliases, "claude-3-haiku") == "medium"
    assert resolve_alias(aliases, "claude-opus") == "big"
    assert resolve_alias(aliases, "gpt-4o") is None
