"""Constrained decoding: a grammar per row that masks the row's logits every step.

A request that must answer in a shape (a JSON schema, a forced tool call)
carries a `Grammar` in its SamplingParams. Each such sequence gets its own
`RowConstraint` (an llguidance matcher). Before a step's tokens are chosen,
`mask_logits` sets every token the grammar does not allow next to -inf in
that row's logits; after, `advance` feeds each chosen token to its matcher.
Rows without a grammar are not touched, so free requests sharing the batch
decode exactly as they would alone. When the grammar is complete it allows
only the end-of-sequence ids, which end the row as any stop id does.

llguidance was picked over xgrammar and outlines-core by measurement
(docs/neuron.md "Constrained decoding"): schemas compile in about a
millisecond, so nothing needs caching per schema; the per-token mask costs
the same as xgrammar's; and it needs no torch extension of its own.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import llguidance
import llguidance.hf
import torch

from helexa.errors import BadRequest

# Row b: which of byte value b's 8 bits (least significant first) are clear, i.e. which
# of the 8 tokens that byte of a bitmask covers are NOT allowed.
_BLOCKED_BY_BYTE = torch.tensor([[not (b >> i) & 1 for i in range(8)] for b in range(256)])
# Under torch's parallel grain (32768 elements), so each op runs on the calling thread
# whatever the vocabulary size (SmolLM2's 49k tokens are 4 chunks).
_CHUNK_TOKENS = 16384


class TokenizerGrammars:
    """The llguidance view of one tokenizer (built once: ~0.2 s for a 8k vocabulary)."""

    def __init__(self, tokenizer: Any, vocab_size: int, eos_ids: Iterable[int]) -> None:
        eos = sorted(eos_ids) or None
        self.vocab_size = vocab_size
        self.eos_ids = eos or []
        self.tokenizer = llguidance.hf.from_tokenizer(tokenizer, n_vocab=vocab_size, eos_token=eos)
        self._hf = tokenizer

    def special_token(self, text: str) -> bool:
        """Whether `text` is one token that llguidance treats as special (a lark `<tag>`)."""
        ids = self._hf.convert_tokens_to_ids([text])
        return (
            len(ids) == 1
            and isinstance(ids[0], int)
            and ids[0] != getattr(self._hf, "unk_token_id", None)
            and 0 <= ids[0] < self.vocab_size
            and self.tokenizer.is_special_token(ids[0])
        )

    def compile(self, grammar: str, param: str) -> Grammar:
        """Check an llguidance grammar (from `json_schema_grammar` / `lark_grammar`); a
        400 naming `param` and the library's reason (the unsupported keyword) if it fails."""
        is_error, messages = llguidance.LLMatcher.validate_grammar_with_warnings(
            grammar, self.tokenizer
        )
        if is_error:
            lines = messages[0].splitlines() if messages else ["invalid grammar"]
            reason = " ".join(line.strip() for line in lines if line.strip())
            raise BadRequest(f"{param}: cannot be enforced: {reason}", param=param)
        return Grammar(self, grammar)


_cache: weakref.WeakKeyDictionary[Any, TokenizerGrammars] = weakref.WeakKeyDictionary()
_cache_lock = threading.Lock()


def grammars_for(tokenizer: Any, vocab_size: int, eos_ids: Iterable[int]) -> TokenizerGrammars:
    """The cached TokenizerGrammars of a loaded model's tokenizer (dropped with it)."""
    eos = frozenset(eos_ids)
    with _cache_lock:
        found = _cache.get(tokenizer)
        if found is None or (found.vocab_size, found.eos_ids) != (vocab_size, sorted(eos)):
            found = _cache[tokenizer] = TokenizerGrammars(tokenizer, vocab_size, eos)
        return found


def json_schema_grammar(schema: dict[str, Any]) -> str:
    """The grammar of one JSON value matching `schema`, written compactly (no free
    whitespace: a model cannot pad the answer with spaces and newlines)."""
    return llguidance.LLMatcher.grammar_from_json_schema(
        schema, defaults={"whitespace_flexible": False}
    )


def lark_grammar(lark: str) -> str:
    return llguidance.LLMatcher.grammar_from_lark(lark)


@dataclass(frozen=True, eq=False)
class Grammar:
    """A grammar checked against one model's tokenizer; immutable, shared by requests."""

    grammars: TokenizerGrammars
    text: str

    def start(self) -> RowConstraint:
        matcher = llguidance.LLMatcher(self.grammars.tokenizer, self.text, log_level=0)
        return RowConstraint(matcher, self.grammars.eos_ids)


class RowConstraint:
    """One sequence's progress through its grammar."""

    def __init__(self, matcher: llguidance.LLMatcher, eos_ids: list[int]) -> None:
        self.matcher = matcher
        self.eos_ids = eos_ids

    def fill_mask(self, words: torch.Tensor) -> None:
        """Write the allowed-next-token bits into `words` (contiguous int32, on CPU)."""
        self.matcher.unsafe_compute_mask_ptr(words.data_ptr(), words.numel() * 4)

    def allow_only_end(self, words: torch.Tensor) -> None:
        words.zero_()
        for eos in self.eos_ids:
            words[eos // 32] |= _bit(eos % 32)

    def advance(self, token: int) -> None:
        # A token outside the mask (never chosen while the mask holds) puts the matcher in
        # its error state, where it allows nothing but end-of-sequence.
        self.matcher.consume_token(token)


class Constrained(Protocol):
    """What the engine's sequences expose: their constraint, if any."""

    @property
    def constraint(self) -> RowConstraint | None: ...


def mask_logits(logits: torch.Tensor, rows: Sequence[Constrained]) -> None:
    """Set the disallowed tokens of constrained rows to -inf in `logits` (B, V), in place.

    Row by row and in chunks, with one table lookup per mask byte: every op stays small
    enough to run serially. Unpacking all rows' bits in one go made ops big enough for torch to run
    them in parallel, and with other work on the CPUs those cost 20-40 ms a step
    instead of well under 1 ms (measured; bench/structured.py).
    """
    vocab = logits.shape[-1]
    words: torch.Tensor | None = None
    for row, sequence in enumerate(rows):
        constraint = sequence.constraint
        if constraint is None:
            continue
        if words is None:
            words = torch.empty((vocab + 31) // 32, dtype=torch.int32)
        constraint.fill_mask(words)
        if not bool(words.any()):  # an errored matcher: end the row, never sample NaN
            constraint.allow_only_end(words)
        # Little-endian bytes: byte j of word w covers tokens 32w + 8j .. 32w + 8j + 7.
        mask_bytes = words.view(torch.uint8)
        for start in range(0, vocab, _CHUNK_TOKENS):
            end = min(start + _CHUNK_TOKENS, vocab)
            byte_index = mask_bytes[start // 8 : (end + 7) // 8].long()
            blocked = _BLOCKED_BY_BYTE.index_select(0, byte_index).view(-1)[: end - start]
            blocked = blocked.to(logits.device, non_blocking=True)
            logits[row, start:end].masked_fill_(blocked, float("-inf"))


def _bit(position: int) -> int:
    """The int32 word value with only bit `position` set (bit 31 is the sign bit)."""
    return -(2**31) if position == 31 else 1 << position


def advance(rows: Sequence[Constrained], tokens: Sequence[int]) -> None:
    """Feed each constrained row the token it was given this step."""
    for row, token in zip(rows, tokens, strict=True):
        if row.constraint is not None:
            row.constraint.advance(token)
