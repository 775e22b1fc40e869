"""Alias resolution (pure): exact names beat patterns; the most specific pattern wins.

A pattern's `*` matches any run of characters (including none). Among matching
patterns the one with the most literal characters wins; ties go to the longer pattern,
then to the lexically smallest, so the choice never depends on file order.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache

WILDCARD = "*"


def is_pattern(name: str) -> bool:
    return WILDCARD in name


@lru_cache(maxsize=1024)
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(".*".join(re.escape(part) for part in pattern.split(WILDCARD)))


def pattern_matches(pattern: str, name: str) -> bool:
    return _compiled(pattern).fullmatch(name) is not None


def specificity(pattern: str) -> tuple[int, int]:
    """Sort key, larger = more specific: literal characters, then total length."""
    return (len(pattern) - pattern.count(WILDCARD), len(pattern))


def best_pattern(patterns: list[str], name: str) -> str | None:
    """The most specific of `patterns` matching `name`, or None."""
    matching = [p for p in patterns if pattern_matches(p, name)]
    if not matching:
        return None
    # max by specificity; among equals the lexically smallest, hence the negated sort.
    return sorted(matching, key=lambda p: (tuple(-k for k in specificity(p)), p))[0]


def resolve_alias(aliases: Mapping[str, str], name: str) -> str | None:
    """The target of `name` in `aliases` (exact key first, then patterns), or None."""
    if name in aliases and not is_pattern(name):
        return aliases[name]
    pattern = best_pattern([p for p in aliases if is_pattern(p)], name)
    return aliases[pattern] if pattern is not None else None
