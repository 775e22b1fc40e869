"""Incremental parser for a model's raw output text (pure).

Qwen3 (and Hermes-style models) write their reasoning as `<think>...</think>`
and their tool calls as `<tool_call>{"name": ..., "arguments": {...}}</tool_call>`.
`OutputParser` turns a stream of decoded text pieces into events: reasoning
text (OpenAI `reasoning_content`), content text, and complete tool calls.

Tags may arrive split across any pieces: only the shortest suffix that could
still start a tag is held back. The combined result never depends on how the
text was chunked. Malformed tool-call JSON, or a `<tool_call>` left open at
the end, is passed through as content: the parser never raises on model output.

Whitespace next to tags is layout, not text: reasoning is stripped, content
loses its leading/trailing whitespace and the whitespace around tool calls.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import Enum

THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"
TOOL_OPEN = "<tool_call>"
TOOL_CLOSE = "</tool_call>"


@dataclass(frozen=True)
class ContentDelta:
    text: str


@dataclass(frozen=True)
class ReasoningDelta:
    text: str


@dataclass(frozen=True)
class ToolCall:
    index: int  # position among this output's tool calls (OpenAI stream `index`)
    id: str
    name: str
    arguments: str  # a JSON object, as a string (OpenAI `function.arguments`)


ParseEvent = ContentDelta | ReasoningDelta | ToolCall


@dataclass(frozen=True)
class ParsedOutput:
    """A whole output, for non-streaming responses."""

    content: str = ""
    reasoning: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)

    @classmethod
    def from_events(cls, events: Iterable[ParseEvent]) -> ParsedOutput:
        content: list[str] = []
        reasoning: list[str] = []
        calls: list[ToolCall] = []
        for event in events:
            if isinstance(event, ContentDelta):
                content.append(event.text)
            elif isinstance(event, ReasoningDelta):
                reasoning.append(event.text)
            else:
                calls.append(event)
        return cls("".join(content), "".join(reasoning), calls)


def prompt_opens_reasoning(prompt: str) -> bool:
    """Whether a rendered prompt leaves a think block open (`starts_in_reasoning`).

    Qwen3 thinking-only templates end the generation prompt with "<think>\n";
    Qwen3's enable_thinking=False ends it with a closed, empty block instead.
    """
    return prompt.rstrip().endswith(THINK_OPEN)


def random_call_id() -> str:
    return "call_" + secrets.token_hex(12)


class _Mode(Enum):
    CONTENT = "content"
    REASONING = "reasoning"
    TOOL_CALL = "tool_call"


class OutputParser:
    """Feed decoded text with `feed`, end with `finish`; both return new events.

    `starts_in_reasoning`: the prompt already opened a think block (a template
    that ends its generation prompt with "<think>\\n"), so output is reasoning
    until "</think>". A leading "<think>" opens one too; a leading lone
    "</think>" (an empty, pre-closed block) is dropped.
    """

    def __init__(
        self,
        *,
        starts_in_reasoning: bool = False,
        parse_reasoning: bool = True,
        parse_tool_calls: bool = True,
        new_call_id: Callable[[], str] = random_call_id,
    ) -> None:
        self._parse_reasoning = parse_reasoning
        self._parse_tool_calls = parse_tool_calls
        self._new_call_id = new_call_id
        self._mode = _Mode.REASONING if starts_in_reasoning and parse_reasoning else _Mode.CONTENT
        self._at_start = not starts_in_reasoning  # think tags are recognised only here
        self._buffer = ""  # text that may still be (the start of) a tag
        self._tool_text = ""  # the body of an open <tool_call>
        self._skip_space = True  # drop whitespace at the start of a text run
        self._held_space = ""  # trailing whitespace, emitted only if text follows
        self._calls = 0
        self._events: list[ParseEvent] = []
        self._finished = False

    def feed(self, text: str) -> list[ParseEvent]:
        if self._finished:
            raise RuntimeError("feed() after finish()")
        self._buffer += text
        self._consume(final=False)
        return self._take_events()

    def finish(self) -> list[ParseEvent]:
        if not self._finished:
            self._finished = True
            self._consume(final=True)
            if self._mode is _Mode.TOOL_CALL:  # never closed: it was just text
                self._mode = _Mode.CONTENT
                self._text(TOOL_OPEN + self._tool_text)
            self._held_space = ""
        return self._take_events()

    # -- scanning ---------------------------------------------------------

    def _consume(self, *, final: bool) -> None:
        while True:
            found = self._next_tag()
            if found is None:
                keep = 0 if final else self._partial_tag_length()
                cut = len(self._buffer) - keep
                self._text(self._buffer[:cut])
                self._buffer = self._buffer[cut:]
                return
            index, tag = found
            self._text(self._buffer[:index])
            self._buffer = self._buffer[index + len(tag) :]
            self._tag(tag)

    def _tags(self) -> list[str]:
        if self._mode is _Mode.REASONING:
            return [THINK_CLOSE]
        if self._mode is _Mode.TOOL_CALL:
            return [TOOL_CLOSE]
        tags = [TOOL_OPEN] if self._parse_tool_calls else []
        if self._at_start and self._parse_reasoning:
            tags += [THINK_OPEN, THINK_CLOSE]
        return tags

    def _tag_allowed(self, tag: str, before: str) -> bool:
        # In content, think tags count only before any text: later they are literal.
        if self._mode is not _Mode.CONTENT or tag not in (THINK_OPEN, THINK_CLOSE):
            return True
        return not before.strip()

    def _next_tag(self) -> tuple[int, str] | None:
        best: tuple[int, str] | None = None
        for tag in self._tags():
            index = self._buffer.find(tag)
            if index < 0 or not self._tag_allowed(tag, self._buffer[:index]):
                continue
            if best is None or index < best[0]:
                best = (index, tag)
        return best

    def _partial_tag_length(self) -> int:
        """Length of the longest buffer suffix that a tag could still complete."""
        tags = self._tags()
        longest = max((len(t) for t in tags), default=0)
        for start in range(max(0, len(self._buffer) - longest + 1), len(self._buffer)):
            tail = self._buffer[start:]
            before = self._buffer[:start]
            if any(t.startswith(tail) and self._tag_allowed(t, before) for t in tags):
                return len(tail)
        return 0

    # -- handling ---------------------------------------------------------

    def _tag(self, tag: str) -> None:
        if tag == TOOL_OPEN:
            self._at_start = False
            self._mode = _Mode.TOOL_CALL
            self._tool_text = ""
        elif tag == TOOL_CLOSE:
            self._mode = _Mode.CONTENT
            self._close_tool_call()
        elif tag == THINK_OPEN:
            self._at_start = False
            self._mode = _Mode.REASONING
            self._skip_space, self._held_space = True, ""
        else:  # THINK_CLOSE: ends reasoning, or is a stray pre-closed block at the start
            self._at_start = False
            self._mode = _Mode.CONTENT
            self._skip_space, self._held_space = True, ""

    def _close_tool_call(self) -> None:
        parsed = _parse_tool_call(self._tool_text)
        if parsed is None:
            self._text(TOOL_OPEN + self._tool_text + TOOL_CLOSE)
            return
        name, arguments = parsed
        self._events.append(ToolCall(self._calls, self._new_call_id(), name, arguments))
        self._calls += 1
        # Whitespace after a call is layout; whitespace held from before it
        # separates the content on either side, if content follows.
        self._skip_space = True

    def _text(self, text: str) -> None:
        if not text:
            return
        if self._mode is _Mode.TOOL_CALL:
            self._tool_text += text
            return
        if self._skip_space:
            text = text.lstrip()
            if not text:
                return
            self._skip_space = False
        body = text.rstrip()
        if not body:
            self._held_space += text
            return
        self._at_start = False
        out = self._held_space + body
        self._held_space = text[len(body) :]
        if self._mode is _Mode.REASONING:
            self._events.append(ReasoningDelta(out))
        else:
            self._events.append(ContentDelta(out))

    def _take_events(self) -> list[ParseEvent]:
        events, self._events = _merge(self._events), []
        return events


def _parse_tool_call(body: str) -> tuple[str, str] | None:
    """(name, arguments JSON) from a Hermes/Qwen tool-call body, or None if malformed."""
    try:
        call = json.loads(body)
    except ValueError:
        return None
    if not isinstance(call, dict):
        return None
    name = call.get("name")
    arguments = call.get("arguments", call.get("parameters", {}))
    if not isinstance(name, str) or not name:
        return None
    if isinstance(arguments, str):
        return name, arguments  # already encoded by the model
    if not isinstance(arguments, dict):
        return None
    return name, json.dumps(arguments, ensure_ascii=False)


def _merge(events: list[ParseEvent]) -> list[ParseEvent]:
    """Join adjacent text events of one kind, so each feed yields few, larger deltas."""
    merged: list[ParseEvent] = []
    for event in events:
        last = merged[-1] if merged else None
        if isinstance(event, ContentDelta) and isinstance(last, ContentDelta):
            merged[-1] = ContentDelta(last.text + event.text)
        elif isinstance(event, ReasoningDelta) and isinstance(last, ReasoningDelta):
            merged[-1] = ReasoningDelta(last.text + event.text)
        else:
            merged.append(event)
    return merged


def parse_output(text: str, parser: OutputParser | None = None) -> ParsedOutput:
    """Parse a whole output at once (non-streaming responses)."""
    parser = parser or OutputParser()
    return ParsedOutput.from_events([*parser.feed(text), *parser.finish()])
