"""The prefix cache: KV states of earlier sequences, found again by token prefix.

An entry is one sequence's tokens (prompt plus the generated tokens that were
fed back) and the keys/values of every layer for them, one row (1, H, n, D)
per tensor, RoPE already applied at positions 0..n-1. Entries are indexed by
chained block hashes as vLLM's prefix caching does: the hash of block k
covers the token ids of blocks 0..k, so one dict lookup per block finds the
deepest block depth some entry shares with a prompt; the match is then
extended token by token against that entry and checked in full (a hash
collision can never hand over foreign states).

A new entry that extends the entry it was matched against (a conversation's
next turn) replaces it, so a conversation holds one entry, not one per turn.
Entries are evicted least-recently-used once the bytes held would pass the
budget; an entry larger than the whole budget is not kept.

Only the owner thread of the model touches it: no locking. The counters are
read by the metrics endpoint from another thread (plain ints: a torn read is
impossible in CPython).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

import torch

BLOCK_TOKENS = 16  # granularity of the hash index (the match itself is per token)


@dataclass(eq=False)
class CachedPrefix:
    tokens: tuple[int, ...]
    states: list[torch.Tensor]  # keys then values of each layer, each (1, H, n, D)
    nbytes: int
    hashes: list[int] = field(default_factory=list)  # index keys that point at this entry


@dataclass(frozen=True)
class PrefixMatch:
    """The first `length` tokens of a prompt, found cached in `states` (sliced to length)."""

    length: int
    states: list[torch.Tensor]


@dataclass
class PrefixCacheCounters:
    queried_tokens: int = 0  # prompt tokens looked up
    hit_tokens: int = 0  # of those, taken from the cache
    evictions: int = 0  # entries dropped for room


class PrefixCache:
    """Entries of one model within `budget_bytes`, least recently used evicted first."""

    def __init__(self, budget_bytes: int) -> None:
        self.budget_bytes = budget_bytes
        self.bytes_held = 0
        self.counters = PrefixCacheCounters()
        self._entries: OrderedDict[int, CachedPrefix] = OrderedDict()  # by id(), LRU first
        self._index: dict[int, CachedPrefix] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def lookup(self, prompt: list[int]) -> PrefixMatch | None:
        """The longest cached prefix of `prompt`, leaving at least its last token to prefill
        (whose logits start the generation); None when fewer than a block's tokens match."""
        self.counters.queried_tokens += len(prompt)
        entry, _ = self._deepest(prompt)
        if entry is None:
            return None
        length = min(_common_prefix(entry.tokens, prompt), len(prompt) - 1)
        if length < BLOCK_TOKENS:
            return None
        self._entries.move_to_end(id(entry))
        self.counters.hit_tokens += length
        return PrefixMatch(length, [s[:, :, :length, :] for s in entry.states])

    def insert(self, tokens: list[int], states: list[torch.Tensor]) -> None:
        """Keep `states` (owned by the cache from now on) as the KV of `tokens`."""
        if len(tokens) < BLOCK_TOKENS:
            return
        nbytes = sum(s.numel() * s.element_size() for s in states)
        if nbytes > self.budget_bytes:
            return
        previous, _ = self._deepest(tokens)
        if previous is not None and _common_prefix(previous.tokens, tokens) == len(previous.tokens):
            self._drop(previous)  # the new entry holds all of it
        while self._entries and self.bytes_held + nbytes > self.budget_bytes:
            self._drop(next(iter(self._entries.values())))
            self.counters.evictions += 1
        entry = CachedPrefix(tuple(tokens), states, nbytes, _block_hashes(tokens))
        for key in entry.hashes:
            self._index[key] = entry  # the newest entry answers for shared blocks
        self._entries[id(entry)] = entry
        self.bytes_held += nbytes

    def clear(self) -> None:
        self._entries.clear()
        self._index.clear()
        self.bytes_held = 0

    def _deepest(self, tokens: list[int]) -> tuple[CachedPrefix | None, int]:
        found: CachedPrefix | None = None
        depth = 0
        for depth_now, key in enumerate(_block_hashes(tokens), start=1):
            entry = self._index.get(key)
            if entry is None:
                break
            found, depth = entry, depth_now
        return found, depth

    def _drop(self, entry: CachedPrefix) -> None:
        if self._entries.pop(id(entry), None) is None:
            return
        for key in entry.hashes:
            if self._index.get(key) is entry:
                del self._index[key]
        self.bytes_held -= entry.nbytes


def _block_hashes(tokens: list[int] | tuple[int, ...]) -> list[int]:
    """One chained hash per full block of `tokens`."""
    hashes = []
    previous = 0
    for start in range(0, len(tokens) - BLOCK_TOKENS + 1, BLOCK_TOKENS):
        previous = hash((previous, tuple(tokens[start : start + BLOCK_TOKENS])))
        hashes.append(previous)
    return hashes


def _common_prefix(cached: tuple[int, ...], prompt: list[int]) -> int:
    n = min(len(cached), len(prompt))
    for i in range(n):
        if cached[i] != prompt[i]:
            return i
    return n
