"""Prompt-cache counts across dialects (pure).

OpenAI servers (the neuron, vLLM, llama.cpp) report the cached part of the
prompt as `usage.prompt_tokens_details.cached_tokens`, inside `prompt_tokens`.
Anthropic counts differently: `input_tokens` is only the uncached rest, the
cached part is `cache_read_input_tokens`, and `cache_creation_input_tokens`
is what the request wrote to a cache it asked for (helexa's cache is implicit,
so 0). The Responses API keeps OpenAI's meaning under
`input_tokens_details.cached_tokens`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def cached_tokens(usage: Mapping[str, Any]) -> int | None:
    """`prompt_tokens_details.cached_tokens` of an OpenAI usage object, or None when
    the upstream did not say (a negative or non-integer count is ignored)."""
    details = usage.get("prompt_tokens_details")
    if not isinstance(details, dict):
        return None
    value = details.get("cached_tokens")
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return None


def anthropic_input_usage(prompt_tokens: int, cached: int | None) -> dict[str, int]:
    """Anthropic's input counts for an OpenAI prompt of `prompt_tokens`, `cached` of
    them from the cache: {"input_tokens": n} alone when the upstream reported no
    cached count (as before caching existed), else the uncached rest plus the
    two cache fields."""
    if cached is None:
        return {"input_tokens": prompt_tokens}
    cached = min(cached, prompt_tokens)  # a server that overcounts cannot make input negative
    return {
        "input_tokens": prompt_tokens - cached,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": cached,
    }
