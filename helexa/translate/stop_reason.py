"""OpenAI `finish_reason` -> Anthropic `stop_reason` (+ which stop sequence matched).

OpenAI's finish_reason "stop" covers both end-of-sequence and a matched stop
string, and does not say which string. Detection, in order:
1. the choice's `stop_reason` field (vLLM's convention, which the neuron follows)
   names the matched string;
2. the generated text ends with one of the request's stop sequences (servers
   that keep the stop string in the output), longest first;
otherwise it is an ordinary end_turn. The text is never trimmed: OpenAI
servers already exclude the stop string, and a stream cannot take text back.
"""

from __future__ import annotations

from collections.abc import Sequence

from helexa.protocol.anthropic import StopReason


def detect_stop_sequence(
    upstream_stop_reason: object, text: str, stop_sequences: Sequence[str]
) -> str | None:
    """The request stop sequence that ended generation, or None when none can be seen."""
    if isinstance(upstream_stop_reason, str) and upstream_stop_reason in stop_sequences:
        return upstream_stop_reason
    for candidate in sorted((s for s in stop_sequences if s), key=len, reverse=True):
        if text.endswith(candidate):
            return candidate
    return None


def anthropic_stop_reason(
    finish_reason: str | None, *, has_tool_calls: bool, stop_sequence: str | None
) -> StopReason:
    """Map a finish_reason; `stop_sequence` comes from detect_stop_sequence."""
    if finish_reason == "length":
        return "max_tokens"
    if finish_reason in ("tool_calls", "function_call") or has_tool_calls:
        return "tool_use"
    if finish_reason == "content_filter":
        return "refusal"
    if finish_reason == "stop" and stop_sequence is not None:
        return "stop_sequence"
    return "end_turn"
