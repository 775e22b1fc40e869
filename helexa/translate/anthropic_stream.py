"""OpenAI chat completion chunks -> Anthropic Messages stream events (pure state machine).

    translator = AnthropicStreamTranslator("claude-x", stop_sequences, input_tokens=n)
    translator.start()            # message_start, whenever the caller wants it out
    translator.feed(chunk)        # per decoded OpenAI chunk (a dict), any number of times
    translator.finish()           # upstream ended ([DONE]): message_delta + message_stop
    translator.error(exc)         # upstream failed mid-stream: `event: error`

Every method returns a list of (event name, data) pairs; render them with
render_anthropic_sse. Anthropic streams one content block at a time, so a delta of a new
kind (thinking -> text -> tool call N) closes the open block and opens the next.
A thinking block gets its signature_delta just before it stops. Tool arguments
are passed on fragment by fragment as input_json_delta on the tool call's own
block; a late fragment for an already closed block (servers that interleave
parallel calls; the neuron and vLLM do not) still goes to that block's index.

Usage: OpenAI reports it only at the very end, so message_start carries the
input token count given at construction (else 0) and the final message_delta
carries both counts; when the upstream reported cached prompt tokens, the
message_delta splits the input as Anthropic does (helexa.translate.usage:
input_tokens the uncached rest, cache_read_input_tokens the cached part; the
SDKs let these override message_start's). When the upstream sent no usage, output_tokens is the
number of chunks that carried content (the neuron sends one per token).
A stream that ends without a finish_reason is an upstream failure and becomes
an error event, never a silent end_turn.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from helexa import fastjson
from helexa.errors import UpstreamError
from helexa.translate.anthropic_response import reasoning_text
from helexa.translate.errors import exception_to_anthropic, openai_stream_error_to_anthropic
from helexa.translate.stop_reason import anthropic_stop_reason, detect_stop_sequence
from helexa.translate.thinking import thinking_signature
from helexa.translate.usage import anthropic_input_usage, cached_tokens

Event = tuple[str, dict[str, Any]]
BlockKind = Literal["thinking", "text", "tool_use"]


def ping_event() -> Event:
    """A keep-alive (`event: ping`): Anthropic clients skip it."""
    return ("ping", {"type": "ping"})


def render_anthropic_sse(events: Iterable[Event]) -> bytes:
    """`event: NAME\\ndata: {json}\\n\\n` for each event, as one byte string."""
    return b"".join(_sse_event(name, data) for name, data in events)


def _sse_event(name: str, data: Mapping[str, Any]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + fastjson.dumps(data) + b"\n\n"


PING_SSE: bytes = render_anthropic_sse([ping_event()])


@dataclass
class _Block:
    index: int
    kind: BlockKind
    thinking: list[str] = field(default_factory=list)  # for the signature


class AnthropicStreamTranslator:
    """One instance per client stream; not thread-safe (one stream, one task)."""

    def __init__(
        self,
        request_model: str,
        stop_sequences: Sequence[str] = (),
        *,
        input_tokens: int | None = None,
        message_id: str | None = None,
    ) -> None:
        self.request_model = request_model
        self.stop_sequences = tuple(stop_sequences)
        self.message_id = message_id or f"msg_{uuid.uuid4().hex}"
        self._known_input_tokens = input_tokens
        self._started = False
        self._done = False
        self._failed = False
        self._open: _Block | None = None
        self._block_count = 0
        self._tool_blocks: dict[int, _Block] = {}  # OpenAI tool call index -> block
        self._text_tail = ""  # end of the text so far, for stop-sequence detection
        self._tail_size = max((len(s) for s in self.stop_sequences), default=0)
        self._finish_reason: str | None = None
        self._upstream_stop_reason: object = None
        self._prompt_tokens: int | None = None
        self._completion_tokens: int | None = None
        self._cached_tokens: int | None = None
        self._content_chunks = 0

    @property
    def done(self) -> bool:
        """True once message_stop or an error event has been produced."""
        return self._done

    @property
    def failed(self) -> bool:
        """True when the stream ended with an error event."""
        return self._failed

    def start(self) -> list[Event]:
        """message_start (once); feed/finish/error call it when the caller has not."""
        if self._started or self._done:
            return []
        self._started = True
        message: dict[str, Any] = {
            "id": self.message_id,
            "type": "message",
            "role": "assistant",
            "model": self.request_model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": self._known_input_tokens or 0, "output_tokens": 0},
        }
        return [("message_start", {"type": "message_start", "message": message})]

    def feed(self, chunk: Mapping[str, Any]) -> list[Event]:
        """Events for one decoded OpenAI chunk (`data: {...}` of the upstream stream)."""
        if self._done:
            return []
        events = self.start()
        if "error" in chunk:  # an error object sent in place of a chunk
            self._done = True
            return [*events, ("error", openai_stream_error_to_anthropic(chunk))]
        self._read_usage(chunk.get("usage"))
        choices = chunk.get("choices") or []
        # n > 1 has no Anthropic equivalent: only the first choice is translated.
        choice = next((c for c in choices if isinstance(c, dict) and c.get("index", 0) == 0), None)
        if choice is None:
            return events
        delta = choice.get("delta")
        # `dict`, not `Mapping`: chunks are decoded JSON, and an ABC check per chunk
        # was a measurable share of translating a stream.
        if isinstance(delta, dict):
            events.extend(self._delta(delta))
        if choice.get("finish_reason"):
            self._finish_reason = str(choice["finish_reason"])
            self._upstream_stop_reason = choice.get("stop_reason")
        return events

    def finish(self) -> list[Event]:
        """The closing events once the upstream stream has ended."""
        if self._done:
            return []
        if self._finish_reason is None:
            return self.error(UpstreamError("upstream stream ended before it finished"))
        events = [*self.start(), *self._close_open()]
        stop_sequence = None
        if self._finish_reason == "stop":
            stop_sequence = detect_stop_sequence(
                self._upstream_stop_reason, self._text_tail, self.stop_sequences
            )
        stop_reason = anthropic_stop_reason(
            self._finish_reason, has_tool_calls=bool(self._tool_blocks), stop_sequence=stop_sequence
        )
        input_tokens = self._prompt_tokens
        if input_tokens is None:
            input_tokens = self._known_input_tokens or 0
        output_tokens = self._completion_tokens
        if output_tokens is None:
            output_tokens = self._content_chunks
        events.append(
            (
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": stop_reason, "stop_sequence": stop_sequence},
                    "usage": {
                        **anthropic_input_usage(input_tokens, self._cached_tokens),
                        "output_tokens": output_tokens,
                    },
                },
            )
        )
        events.append(("message_stop", {"type": "message_stop"}))
        self._done = True
        return events

    def error(self, exc: BaseException) -> list[Event]:
        """An `event: error` for a mid-stream failure; the stream is over after it."""
        if self._done:
            return []
        self._done = True
        self._failed = True
        return [("error", exception_to_anthropic(exc))]

    # --- deltas --------------------------------------------------------------

    def _delta(self, delta: Mapping[str, Any]) -> list[Event]:
        events: list[Event] = []
        reasoning = reasoning_text(delta)
        if reasoning:
            block, opening = self._block_for(
                "thinking", {"type": "thinking", "thinking": "", "signature": ""}
            )
            block.thinking.append(reasoning)
            events.extend(opening)
            events.append(
                self._block_delta(block, {"type": "thinking_delta", "thinking": reasoning})
            )
        text = delta.get("content")
        if isinstance(text, str) and text:
            block, opening = self._block_for("text", {"type": "text", "text": ""})
            events.extend(opening)
            events.append(self._block_delta(block, {"type": "text_delta", "text": text}))
            if self._tail_size:
                self._text_tail = (self._text_tail + text)[-self._tail_size :]
        for call in delta.get("tool_calls") or []:
            if isinstance(call, dict):
                events.extend(self._tool_call(call))
        if reasoning or text or delta.get("tool_calls"):
            self._content_chunks += 1
        return events

    def _tool_call(self, call: Mapping[str, Any]) -> list[Event]:
        events: list[Event] = []
        tool_index = call.get("index", 0)
        function = call.get("function")
        function = function if isinstance(function, Mapping) else {}
        block = self._tool_blocks.get(tool_index)
        if block is None:
            events.extend(self._close_open())
            call_id = call.get("id")
            if not isinstance(call_id, str) or not call_id:
                call_id = self._tool_id(tool_index)
            name = str(function.get("name") or "")
            content_block = {"type": "tool_use", "id": call_id, "name": name, "input": {}}
            block, start = self._open_block("tool_use", content_block)
            events.append(start)
            self._tool_blocks[tool_index] = block
        fragment = function.get("arguments")
        if isinstance(fragment, Mapping):  # some servers send the object itself
            fragment = json.dumps(fragment, ensure_ascii=False)
        if isinstance(fragment, str) and fragment:
            events.append(
                self._block_delta(block, {"type": "input_json_delta", "partial_json": fragment})
            )
        return events

    # --- blocks --------------------------------------------------------------

    def _block_for(
        self, kind: BlockKind, content_block: dict[str, Any]
    ) -> tuple[_Block, list[Event]]:
        """The open block if it is of `kind`, else a new one, with the events that
        switch to it (the previous block's stop, this block's start)."""
        if self._open is not None and self._open.kind == kind:
            return self._open, []
        closing = self._close_open()
        block, start = self._open_block(kind, content_block)
        return block, [*closing, start]

    def _open_block(self, kind: BlockKind, content_block: dict[str, Any]) -> tuple[_Block, Event]:
        block = _Block(index=self._block_count, kind=kind)
        self._block_count += 1
        self._open = block
        start = {
            "type": "content_block_start",
            "index": block.index,
            "content_block": content_block,
        }
        return block, ("content_block_start", start)

    def _close_open(self) -> list[Event]:
        block, self._open = self._open, None
        if block is None:
            return []
        events: list[Event] = []
        if block.kind == "thinking":
            signature = thinking_signature("".join(block.thinking))
            events.append(
                self._block_delta(block, {"type": "signature_delta", "signature": signature})
            )
        events.append(("content_block_stop", {"type": "content_block_stop", "index": block.index}))
        return events

    @staticmethod
    def _block_delta(block: _Block, delta: dict[str, Any]) -> Event:
        return (
            "content_block_delta",
            {"type": "content_block_delta", "index": block.index, "delta": delta},
        )

    def _tool_id(self, tool_index: object) -> str:
        return f"toolu_{self.message_id.removeprefix('msg_')}_{tool_index}"

    def _read_usage(self, usage: object) -> None:
        if not isinstance(usage, dict):
            return
        prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
        if isinstance(prompt, int):
            self._prompt_tokens = prompt
        if isinstance(completion, int):
            self._completion_tokens = completion
        cached = cached_tokens(usage)
        if cached is not None:
            self._cached_tokens = cached
