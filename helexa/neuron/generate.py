"""One request's generation: engine token ids -> text pieces -> an outcome.

    engine ids -> detokenizer (text deltas) -> stop matcher (holds back a
    possible stop prefix, cuts at a stop) -> output parser (<think>, <tool_call>)
    -> Piece events, then one Outcome with the finish reason and usage.

Streaming and non-streaming responses consume the same events, so the same
seed gives the same text either way.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

from helexa.neuron.engine.spec import SamplingParams, StreamStats
from helexa.neuron.registry import Generation, ModelEntry
from helexa.neuron.textpipe import Piece, TextPipeline
from helexa.protocol.openai import FinishReason
from helexa.sse import aclose

__all__ = ["Outcome", "Piece", "generate"]


@dataclass(frozen=True)
class Outcome:
    finish_reason: FinishReason
    prompt_tokens: int
    completion_tokens: int
    first_token_s: float | None  # from the start of generation
    decode_rate: float | None  # tokens/s after the first token
    # The stop string that ended it: the choice's `stop_reason` (vLLM's field), which
    # the gateway turns into Anthropic's stop_reason "stop_sequence".
    stop_string: str | None = None
    # Prompt tokens taken from the model's prefix cache (not prefilled); `cache_queried`
    # says whether the model has a cache at all (metrics count only those).
    cached_tokens: int = 0
    cache_queried: bool = False


async def generate(
    entry: ModelEntry,
    generation: Generation,
    prompt_ids: list[int],
    params: SamplingParams,
    stops: list[str],
    parse_output: bool,
    single_tool_call: bool = False,
) -> AsyncIterator[Piece | Outcome]:
    """Pieces as tokens decode, then one Outcome. Closing it stops the engine sequence.

    `single_tool_call` (parallel_tool_calls: false) ends the output after its first call.
    """
    model = entry.model
    assert model is not None
    text = TextPipeline(model.tokenizer, prompt_ids, stops, parse_output)
    started = time.monotonic()
    first_at: float | None = None
    count = 0
    # Closing the engine stream on any exit (stop string, abort, client gone) drops the
    # sequence at the owner thread's next step.
    stats = StreamStats()
    tokens = model.stream(prompt_ids, params, stats)
    try:
        async for token_id in tokens:
            count += 1
            if first_at is None:
                first_at = time.monotonic()
            piece = text.push(token_id)
            if piece:
                yield piece
            if text.stopped or generation.aborted.is_set():
                break
            if single_tool_call and text.saw_tool_call:
                break
    finally:
        await aclose(tokens)
    tail = text.finish()
    if tail:
        yield tail
    decode_s = time.monotonic() - first_at if first_at is not None else 0.0
    if text.saw_tool_call:
        reason: FinishReason = "tool_calls"
    elif text.stopped or count < params.max_new_tokens:
        reason = "stop"
    else:
        reason = "length"
    yield Outcome(
        finish_reason=reason,
        prompt_tokens=len(prompt_ids),
        completion_tokens=count,
        first_token_s=None if first_at is None else first_at - started,
        decode_rate=(count - 1) / decode_s if count > 1 and decode_s > 0 else None,
        stop_string=text.matched_stop,
        cached_tokens=stats.cached_tokens,
        cache_queried=getattr(model, "prefix_cache_mb", 0) > 0,
    )
