"""Incremental detokenization: token ids in, text deltas out, O(1) per token.

Decoding one token at a time is wrong twice over: a byte-level BPE token may
hold half of a multi-byte UTF-8 character (it decodes to U+FFFD until the rest
arrives), and SentencePiece-style tokenizers drop or add a leading space
depending on what precedes a token. Re-decoding the whole sequence each step
is right but quadratic. The prefix-offset window (as in vLLM and TGI) decodes
only a few tokens: the last emitted token(s) as context plus the new ones,
and emits the difference once it no longer ends in an incomplete character.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

REPLACEMENT_CHAR = "\ufffd"

Decode = Callable[[Sequence[int]], str]

# Prompt tokens kept as leading context; a few are enough for any tokenizer's spacing.
_CONTEXT_TOKENS = 5


def decoder_for(tokenizer: Any) -> Decode:
    """The fastest faithful `decode(ids, skip_special_tokens=True)` of a HF tokenizer.

    The Rust `tokenizers` backend skips transformers' Python wrapper; it gives the
    same text unless the tokenizer post-processes spaces (clean_up_tokenization_spaces).
    """
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None and not getattr(tokenizer, "clean_up_tokenization_spaces", False):
        return lambda ids: str(backend.decode(list(ids), skip_special_tokens=True))
    return lambda ids: str(tokenizer.decode(list(ids), skip_special_tokens=True))


class IncrementalDetokenizer:
    """`push(token_id)` returns the new text (often "", while a character is incomplete)."""

    def __init__(self, decode: Decode, prompt_ids: Sequence[int] = ()) -> None:
        self._decode = decode
        # Seed the context with the prompt's tail so the first generated token gets
        # the spacing it would have in the full text; unless the prompt ends inside
        # a character, whose bytes must not merge into the generated text.
        context = list(prompt_ids[-_CONTEXT_TOKENS:])
        if decode(context).endswith(REPLACEMENT_CHAR):
            context = []
        self._ids: list[int] = context  # context tokens, then tokens not yet emitted
        self._read_offset = len(context)  # where the not-yet-emitted tokens start

    @classmethod
    def for_tokenizer(
        cls, tokenizer: Any, prompt_ids: Sequence[int] = ()
    ) -> IncrementalDetokenizer:
        return cls(decoder_for(tokenizer), prompt_ids)

    def push(self, token_id: int) -> str:
        self._ids.append(token_id)
        return self._advance(final=False)

    def flush(self) -> str:
        """Whatever is still held back (an incomplete character stays as U+FFFD)."""
        return self._advance(final=True)

    def _advance(self, *, final: bool) -> str:
        context_text = self._decode(self._ids[: self._read_offset])
        text = self._decode(self._ids)
        if len(text) <= len(context_text) or (text.endswith(REPLACEMENT_CHAR) and not final):
            return ""  # nothing new yet, or a character still waits for its last bytes
        # The tokens just emitted become the next context; older ones are never
        # decoded again, so drop them: memory and work stay O(1) per token.
        del self._ids[: self._read_offset]
        self._read_offset = len(self._ids)
        return text[len(context_text) :]
