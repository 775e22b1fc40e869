"""Thinking block signatures: deterministic, distinct per text, recognisably helexa's."""

from __future__ import annotations

from helexa.translate.thinking import (
    REASONING_TOKEN_PREFIX,
    SIGNATURE_PREFIX,
    read_reasoning_token,
    reasoning_token,
    thinking_signature,
)


def test_signature_is_deterministic_and_depends_on_the_text() -> None:
    assert thinking_signature("abc") == thinking_signature("abc")
    assert thinking_signature("abc") != thinking_signature("abd")
    assert thinking_signature("").startswith(SIGNATURE_PREFIX)
    assert len(thinking_signature("x" * 10_000)) == len(SIGNATURE_PREFIX) + 32


def test_reasoning_token_reads_back_to_its_text() -> None:
    for text in ["", "plain", "ünïcödé ✓ and\nnewlines", "x" * 5000]:
        token = reasoning_token(text)
        assert token.startswith(REASONING_TOKEN_PREFIX)
        assert read_reasoning_token(token) == text


def test_foreign_or_damaged_tokens_read_as_nothing() -> None:
    token = reasoning_token("the plan")
    encoded, _, digest = token.rpartition(".")
    assert read_reasoning_token("gAAAAABo-an-openai-blob") is None
    assert read_reasoning_token(reasoning_token("other").rpartition(".")[0] + "." + digest) is None
    assert read_reasoning_token(encoded + "." + "0" * 32) is None
    assert read_reasoning_token(REASONING_TOKEN_PREFIX + "%%%not-base64%%%.x") is None
