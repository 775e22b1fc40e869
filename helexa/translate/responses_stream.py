"""OpenAI chat stream -> Responses API stream events, as a state machine (pure).

Feed it the upstream's chunks one by one; each call returns the events to
send. The event grammar (every event carries `sequence_number`, from 0):

    response.created, response.in_progress
    per reasoning run:  output_item.added, content_part.added,
                        reasoning_text.delta*, reasoning_text.done, content_part.done,
                        output_item.done
    per text run:       output_item.added, content_part.added, output_text.delta*,
                        output_text.done, content_part.done, output_item.done
    per tool call:      output_item.added, function_call_arguments.delta*,
                        function_call_arguments.done, output_item.done
    per custom tool call: output_item.added, custom_tool_call_input.done,
                        output_item.done (the model writes the input as JSON
                        arguments, so it is known whole only at the end)
    response.completed  (response.incomplete after a length cut)

A reasoning or text run ends when output of another kind starts; tool calls
stay open until the end (a model may interleave the arguments of parallel
calls). A failure becomes `error` then `response.failed`, never a silent
completion.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from helexa import fastjson
from helexa.errors import APIError
from helexa.protocol.openai import ChatCompletionChunk, ToolCallDelta
from helexa.translate.responses_response import (
    ResponseContext,
    function_call_item,
    message_item,
    reasoning_item,
    response_object,
    text_part,
    usage_object,
)
from helexa.translate.usage import cached_tokens

Event = dict[str, Any]


@dataclass
class _Run:
    """An open reasoning or message item: text accumulates until it is closed."""

    kind: str  # "reasoning" | "message"
    index: int
    text: str = ""


@dataclass
class _ToolRun:
    index: int
    call_id: str
    name: str
    arguments: str = ""


@dataclass
class ResponsesStreamTranslator:
    ctx: ResponseContext
    sequence: int = 0
    items: list[dict[str, Any]] = field(default_factory=list)  # by output_index, latest state
    done: bool = False
    failed: bool = False
    _run: _Run | None = None
    _tools: dict[int, _ToolRun] = field(default_factory=dict)  # by the chunk's tool index
    _usage: dict[str, Any] | None = None
    _incomplete: bool = False

    def start(self) -> list[Event]:
        snapshot = response_object(self.ctx, status="in_progress", output=[])
        return [
            self._event("response.created", response=snapshot),
            self._event("response.in_progress", response=snapshot),
        ]

    def feed(self, chunk: dict[str, Any]) -> list[Event]:
        """The events for one upstream chunk (already decoded from JSON)."""
        if self.done:
            return []
        if "error" in chunk:
            detail = chunk["error"] if isinstance(chunk["error"], dict) else {}
            return self.fail(str(detail.get("code") or "upstream_error"), _message(detail))
        self._read_usage(chunk.get("usage"))
        try:
            # Usage was read leniently above: upstreams differ on which counts they send.
            parsed = ChatCompletionChunk.model_validate(chunk | {"usage": None})
        except ValidationError as exc:
            return self.fail("upstream_error", f"upstream sent a malformed chunk: {exc}")
        events: list[Event] = []
        for choice in parsed.choices[:1]:
            delta = choice.delta
            if delta.reasoning_content:
                events += self._text_delta("reasoning", delta.reasoning_content)
            if delta.content:
                events += self._text_delta("message", delta.content)
            for call in delta.tool_calls or []:
                events += self._tool_delta(call)
            if choice.finish_reason == "length":
                self._incomplete = True
        return events

    def _read_usage(self, usage: object) -> None:
        if not isinstance(usage, dict):
            return
        prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
        if isinstance(prompt, int) and isinstance(completion, int):
            self._usage = usage_object(prompt, completion, cached_tokens(usage) or 0)

    def finish(self) -> list[Event]:
        """Close every open item and complete the response (the upstream sent [DONE])."""
        if self.done:
            return []
        events = self._close_run()
        for tool in self._tools.values():
            events += self._close_tool(tool)
        self._tools.clear()
        self.done = True
        status = "incomplete" if self._incomplete else "completed"
        final = response_object(
            self.ctx,
            status=status,
            output=list(self.items),
            usage=self._usage,
            incomplete=self._incomplete,
        )
        events.append(self._event(f"response.{status}", response=final))
        return events

    def error(self, exc: APIError) -> list[Event]:
        return self.fail(exc.code, exc.message)

    def fail(self, code: str, message: str) -> list[Event]:
        """`error`, then `response.failed` with what was produced so far."""
        if self.done:
            return []
        self.done = True
        self.failed = True
        error = {"code": code, "message": message}
        failed = response_object(self.ctx, status="failed", output=list(self.items), error=error)
        return [
            self._event("error", code=code, message=message, param=None),
            self._event("response.failed", response=failed),
        ]

    # --- runs of text ------------------------------------------------------

    def _text_delta(self, kind: str, text: str) -> list[Event]:
        events: list[Event] = []
        if self._run is None or self._run.kind != kind:
            events += self._close_run()
            events += self._open_run(kind)
        assert self._run is not None
        self._run.text += text
        delta_type = "reasoning_text" if kind == "reasoning" else "output_text"
        events.append(self._event(f"response.{delta_type}.delta", **self._where(), delta=text))
        if kind == "message":
            events[-1]["logprobs"] = []
        return events

    def _open_run(self, kind: str) -> list[Event]:
        run = _Run(kind, len(self.items))
        self._run = run
        if kind == "reasoning":
            item = reasoning_item(self.ctx, run.index, "", "in_progress")
            item["content"] = []
            part: dict[str, Any] = {"type": "reasoning_text", "text": ""}
        else:
            item = message_item(self.ctx, run.index, [], "in_progress")
            part = text_part("")
        self.items.append(item)
        return [
            self._event("response.output_item.added", output_index=run.index, item=item),
            self._event("response.content_part.added", **self._where(), part=part),
        ]

    def _close_run(self) -> list[Event]:
        run = self._run
        if run is None:
            return []
        where = self._where()
        self._run = None
        if run.kind == "reasoning":
            item = reasoning_item(self.ctx, run.index, run.text, "completed")
            part = item["content"][0]
            done = self._event("response.reasoning_text.done", **where, text=run.text)
        else:
            part = text_part(run.text)
            item = message_item(self.ctx, run.index, [part], "completed")
            done = self._event("response.output_text.done", **where, text=run.text, logprobs=[])
        self.items[run.index] = item
        return [
            done,
            self._event("response.content_part.done", **where, part=part),
            self._event("response.output_item.done", output_index=run.index, item=item),
        ]

    def _where(self) -> dict[str, Any]:
        assert self._run is not None
        item_id = self.items[self._run.index]["id"]
        return {"item_id": item_id, "output_index": self._run.index, "content_index": 0}

    # --- tool calls --------------------------------------------------------

    def _tool_delta(self, call: ToolCallDelta) -> list[Event]:
        events: list[Event] = []
        tool = self._tools.get(call.index)
        function = call.function
        if tool is None:
            events += self._close_run()
            index = len(self.items)
            call_id = call.id or self.ctx.item_id("call", index)
            tool = _ToolRun(index, call_id, function.name if function and function.name else "")
            self._tools[call.index] = tool
            item = function_call_item(self.ctx, index, tool.call_id, tool.name, "", "in_progress")
            self.items.append(item)
            events.append(self._event("response.output_item.added", output_index=index, item=item))
        if function is not None and function.arguments:
            tool.arguments += function.arguments
            if tool.name in self.ctx.tool_names.custom:
                return events
            events.append(
                self._event(
                    "response.function_call_arguments.delta",
                    item_id=self.items[tool.index]["id"],
                    output_index=tool.index,
                    delta=function.arguments,
                )
            )
        return events

    def _close_tool(self, tool: _ToolRun) -> list[Event]:
        item = function_call_item(
            self.ctx, tool.index, tool.call_id, tool.name, tool.arguments, "completed"
        )
        self.items[tool.index] = item
        where = {"item_id": item["id"], "output_index": tool.index}
        done = (
            self._event("response.custom_tool_call_input.done", **where, input=item["input"])
            if item["type"] == "custom_tool_call"
            else self._event(
                "response.function_call_arguments.done",
                **where,
                name=item["name"],
                arguments=tool.arguments,
            )
        )
        return [
            done,
            self._event("response.output_item.done", output_index=tool.index, item=item),
        ]

    def _event(self, event_type: str, **fields: Any) -> Event:
        event = {"type": event_type, "sequence_number": self.sequence, **fields}
        self.sequence += 1
        return event


def render_responses_sse(events: list[Event]) -> bytes:
    """Server-sent events, named by type as OpenAI sends them."""
    return b"".join(
        b"event: " + str(event["type"]).encode() + b"\ndata: " + fastjson.dumps(event) + b"\n\n"
        for event in events
    )


def _message(detail: dict[str, Any]) -> str:
    message = detail.get("message")
    return message if isinstance(message, str) and message else "upstream stream failed"
