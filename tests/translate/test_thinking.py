"""Thinking block signatures: deterministic, distinct per text, recognisably helexa's."""

from __future__ import annotations

from helexa.translate.thinking import SIGNATURE_PREFIX, thinking_signature


def test_signature_is_deterministic_and_depends_on_the_text() -> None:
    assert thinking_signature("abc") == thinking_signature("abc")
    assert thinking_signature("abc") != thinking_signature("abd")
    assert thinking_signature("").startswith(SIGNATURE_PREFIX)
    assert len(thinking_signature("x" * 10_000)) == len(SIGNATURE_PREFIX) + 32
