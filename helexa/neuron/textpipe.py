"""Token ids -> Pieces: the pure text stages between the engine and the response.

id -> IncrementalDetokenizer (text delta) -> StopMatcher (holds back what may
start a stop string, cuts at one) -> OutputParser (<think>, <tool_call>) -> Piece
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from helexa.neuron.detok import IncrementalDetokenizer, decoder_for
from helexa.neuron.parser import (
    THINK_OPEN,
    ContentDelta,
    OutputParser,
    ParseEvent,
    ReasoningDelta,
    ToolCall,
)
from helexa.neuron.stops import StopMatcher
from helexa.protocol.openai import FunctionCallDelta, ToolCallDelta


@dataclass(frozen=True)
class Piece:
    """What one step adds to the answer (any part may be empty)."""

    content: str = ""
    reasoning: str = ""
    tool_calls: tuple[ToolCall, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.content or self.reasoning or self.tool_calls)

    def tool_call_deltas(self) -> list[ToolCallDelta]:
        return [
            ToolCallDelta(
                index=call.index,
                id=call.id,
                type="function",
                function=FunctionCallDelta(name=call.name, arguments=call.arguments),
            )
            for call in self.tool_calls
        ]


def _piece(events: Iterable[ParseEvent]) -> Piece:
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
    return Piece("".join(content), "".join(reasoning), tuple(calls))


class TextPipeline:
    """One sequence's text state. `parse_output=False` (completions) passes text through."""

    def __init__(
        self, tokenizer: Any, prompt_ids: Sequence[int], stops: list[str], parse_output: bool
    ) -> None:
        self._detok = IncrementalDetokenizer(decoder_for(tokenizer), prompt_ids)
        self._stops = StopMatcher(stops)
        self._parser: OutputParser | None = None
        if parse_output:
            # A template that ends its generation prompt inside "<think>" means the
            # output starts as reasoning.
            tail = tokenizer.decode(list(prompt_ids[-3:]), skip_special_tokens=False)
            self._parser = OutputParser(starts_in_reasoning=tail.rstrip().endswith(THINK_OPEN))
        self.saw_tool_call = False

    @property
    def stopped(self) -> bool:
        """A stop string was hit: nothing more will be emitted."""
        return self._stops.stopped

    @property
    def matched_stop(self) -> str | None:
        """The stop string that ended the text, if one did."""
        return self._stops.matched_stop

    def push(self, token_id: int) -> Piece:
        return self._parse(self._stops.feed(self._detok.push(token_id)).text, final=False)

    def finish(self) -> Piece:
        """Everything still held back, at the end of the sequence."""
        text = ""
        if not self._stops.stopped:
            text = self._stops.feed(self._detok.flush()).text
            text += self._stops.flush()
        return self._parse(text, final=True)

    def _parse(self, text: str, final: bool) -> Piece:
        if self._parser is None:
            return Piece(content=text)
        events = self._parser.feed(text) if text else []
        if final:
            events += self._parser.finish()
        piece = _piece(events)
        self.saw_tool_call = self.saw_tool_call or bool(piece.tool_calls)
        return piece
