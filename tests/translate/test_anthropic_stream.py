"""OpenAI chunk sequences -> Anthropic stream events: exact sequences, re-chunking
invariance, and the real anthropic SDK assembling the rendered SSE."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable
from typing import Any

import anthropic
import pytest
from hypothesis import given
from hypothesis import strategies as st

from helexa.errors import Overloaded, UpstreamError
from helexa.translate.anthropic_stream import (
    PING_SSE,
    AnthropicStreamTranslator,
    Event,
    ping_event,
    render_anthropic_sse,
)
from helexa.translate.thinking import thinking_signature
from tests.translate.canned_anthropic import CannedServer

MSG_ID = "msg_test"


def chunk(
    delta: dict[str, Any] | None = None, finish: str | None = None, **choice: Any
) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "Qwen/Qwen3-8B",
        "choices": [{"index": 0, "delta": delta or {}, "finish_reason": finish, **choice}],
    }


def usage_chunk(prompt: int, completion: int) -> dict[str, Any]:
    usage = {"prompt_tokens": prompt, "completion_tokens": completion}
    return {"id": "chatcmpl-1", "object": "chat.completion.chunk", "choices": [], "usage": usage}


def tool_delta(
    index: int, arguments: str, call_id: str | None = None, name: str | None = None
) -> dict[str, Any]:
    call: dict[str, Any] = {"index": index, "function": {"arguments": arguments}}
    if call_id is not None:
        call.update(id=call_id, type="function")
        call["function"]["name"] = name
    return {"tool_calls": [call]}


ROLE = chunk({"role": "assistant", "content": ""})


def translate(
    chunks: Iterable[dict[str, Any]], stop_sequences: tuple[str, ...] = (), **kwargs: Any
) -> list[Event]:
    translator = AnthropicStreamTranslator("claude-x", stop_sequences, message_id=MSG_ID, **kwargs)
    events: list[Event] = []
    for item in chunks:
        events.extend(translator.feed(item))
    events.extend(translator.finish())
    assert translator.done
    return events


def message_start(input_tokens: int = 0) -> Event:
    message: dict[str, Any] = {
        "id": MSG_ID,
        "type": "message",
        "role": "assistant",
        "model": "claude-x",
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {"input_tokens": input_tokens, "output_tokens": 0},
    }
    return ("message_start", {"type": "message_start", "message": message})


def block_start(index: int, block: dict[str, Any]) -> Event:
    return (
        "content_block_start",
        {"type": "content_block_start", "index": index, "content_block": block},
    )


def block_delta(index: int, delta: dict[str, Any]) -> Event:
    return ("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta})


def block_stop(index: int) -> Event:
    return ("content_block_stop", {"type": "content_block_stop", "index": index})


def text(index: int, value: str) -> Event:
    return block_delta(index, {"type": "text_delta", "text": value})


def message_end(
    stop_reason: str, input_tokens: int, output_tokens: int, stop_sequence: str | None = None
) -> list[Event]:
    delta = {"stop_reason": stop_reason, "stop_sequence": stop_sequence}
    usage = {"input_tokens": input_tokens, "output_tokens": output_tokens}
    return [
        ("message_delta", {"type": "message_delta", "delta": delta, "usage": usage}),
        ("message_stop", {"type": "message_stop"}),
    ]


TEXT_BLOCK = {"type": "text", "text": ""}
THINKING_BLOCK = {"type": "thinking", "thinking": "", "signature": ""}


def tool_block(call_id: str, name: str) -> dict[str, Any]:
    return {"type": "tool_use", "id": call_id, "name": name, "input": {}}


def partial(index: int, fragment: str) -> Event:
    return block_delta(index, {"type": "input_json_delta", "partial_json": fragment})


def test_text_only() -> None:
    chunks = [ROLE, chunk({"content": "Hel"}), chunk({"content": "lo"}), chunk(None, "stop")]

    events = translate([*chunks, usage_chunk(9, 2)])

    assert events == [
        message_start(),
        block_start(0, TEXT_BLOCK),
        text(0, "Hel"),
        text(0, "lo"),
        block_stop(0),
        *message_end("end_turn", 9, 2),
    ]


def test_thinking_then_text() -> None:
    chunks = [
        ROLE,
        chunk({"reasoning_content": "Let me "}),
        chunk({"reasoning_content": "think."}),
        chunk({"content": "42"}),
        chunk(None, "stop"),
        usage_chunk(5, 4),
    ]

    events = translate(chunks, input_tokens=5)

    thinking = {"type": "thinking_delta", "thinking": "Let me "}
    assert events == [
        message_start(5),
        block_start(0, THINKING_BLOCK),
        block_delta(0, thinking),
        block_delta(0, {"type": "thinking_delta", "thinking": "think."}),
        block_delta(
            0, {"type": "signature_delta", "signature": thinking_signature("Let me think.")}
        ),
        block_stop(0),
        block_start(1, TEXT_BLOCK),
        text(1, "42"),
        block_stop(1),
        *message_end("end_turn", 5, 4),
    ]


def test_tool_call_with_arguments_split_across_chunks() -> None:
    fragments = ['{"ci', 'ty": ', '"Os', 'lo"', "}"]
    chunks = [
        ROLE,
        chunk({"content": "Checking."}),
        chunk(tool_delta(0, "", "call_1", "get_weather")),
        *(chunk(tool_delta(0, fragment)) for fragment in fragments),
        chunk(None, "tool_calls"),
        usage_chunk(20, 9),
    ]

    events = translate(chunks)

    assert events == [
        message_start(),
        block_start(0, TEXT_BLOCK),
        text(0, "Checking."),
        block_stop(0),
        block_start(1, tool_block("call_1", "get_weather")),
        *(partial(1, fragment) for fragment in fragments),
        block_stop(1),
        *message_end("tool_use", 20, 9),
    ]


def test_two_parallel_tool_calls() -> None:
    chunks = [
        ROLE,
        chunk(tool_delta(0, '{"city": ', "call_a", "get_weather")),
        chunk(tool_delta(0, '"Oslo"}')),
        chunk(tool_delta(1, '{"city": "Bergen"}', "call_b", "get_weather")),
        chunk(None, "tool_calls"),
        usage_chunk(20, 30),
    ]

    events = translate(chunks)

    assert events == [
        message_start(),
        block_start(0, tool_block("call_a", "get_weather")),
        partial(0, '{"city": '),
        partial(0, '"Oslo"}'),
        block_stop(0),
        block_start(1, tool_block("call_b", "get_weather")),
        partial(1, '{"city": "Bergen"}'),
        block_stop(1),
        *message_end("tool_use", 20, 30),
    ]


def test_finish_length() -> None:
    chunks = [ROLE, chunk({"content": "a"}), chunk({"content": "b"}, "length"), usage_chunk(3, 2)]

    events = translate(chunks)

    assert events == [
        message_start(),
        block_start(0, TEXT_BLOCK),
        text(0, "a"),
        text(0, "b"),
        block_stop(0),
        *message_end("max_tokens", 3, 2),
    ]


def test_stop_sequence_named_by_upstream() -> None:
    chunks = [ROLE, chunk({"content": "1 2 3"}), chunk(None, "stop", stop_reason="4")]

    events = translate(chunks, ("4", "9"))

    assert events[-2:] == message_end("stop_sequence", 0, 1, stop_sequence="4")


def test_stop_sequence_seen_at_the_end_of_text_split_across_chunks() -> None:
    chunks = [chunk({"content": "a\n\nHu"}), chunk({"content": "man:"}), chunk(None, "stop")]

    events = translate(chunks, ("\n\nHuman:",))

    assert events[-2:] == message_end("stop_sequence", 0, 2, stop_sequence="\n\nHuman:")


def test_without_usage_input_tokens_come_from_construction_and_output_is_chunk_count() -> None:
    chunks = [ROLE, chunk({"content": "a"}), chunk({"content": "b"}), chunk(None, "stop")]

    events = translate(chunks, input_tokens=17)

    assert events[0] == message_start(17)
    assert events[-2:] == message_end("end_turn", 17, 2)


def test_error_mid_stream_is_an_error_event_not_end_turn() -> None:
    translator = AnthropicStreamTranslator("claude-x", message_id=MSG_ID)
    events = translator.feed(ROLE) + translator.feed(chunk({"content": "par"}))

    events += translator.error(Overloaded("neuron queue full"))

    assert events == [
        message_start(),
        block_start(0, TEXT_BLOCK),
        text(0, "par"),
        (
            "error",
            {
                "type": "error",
                "error": {"type": "overloaded_error", "message": "neuron queue full"},
            },
        ),
    ]
    assert translator.done
    assert translator.finish() == []
    assert translator.feed(chunk({"content": "late"})) == []


def test_upstream_eof_without_finish_reason_is_an_error() -> None:
    translator = AnthropicStreamTranslator("claude-x", message_id=MSG_ID)
    translator.feed(chunk({"content": "par"}))

    events = translator.finish()

    assert events == [
        (
            "error",
            {
                "type": "error",
                "error": {
                    "type": "api_error",
                    "message": "upstream stream ended before it finished",
                },
            },
        )
    ]


def test_error_object_in_place_of_a_chunk() -> None:
    translator = AnthropicStreamTranslator("claude-x", message_id=MSG_ID)
    translator.feed(ROLE)

    events = translator.feed({"error": {"message": "model unloading", "code": "model_unloading"}})

    assert events == [
        (
            "error",
            {"type": "error", "error": {"type": "overloaded_error", "message": "model unloading"}},
        )
    ]
    assert translator.done


def test_unexpected_exception_is_an_api_error() -> None:
    translator = AnthropicStreamTranslator("claude-x", message_id=MSG_ID)

    events = translator.start() + translator.error(ConnectionResetError("peer reset"))

    assert events == [
        message_start(),
        ("error", {"type": "error", "error": {"type": "api_error", "message": "peer reset"}}),
    ]


def test_start_is_sent_once_even_before_the_first_chunk() -> None:
    translator = AnthropicStreamTranslator("claude-x", message_id=MSG_ID)

    assert translator.start() == [message_start()]
    assert translator.start() == []
    assert translator.feed(chunk({"content": "a"}))[0] == block_start(0, TEXT_BLOCK)


def test_tool_call_without_id_and_arguments_as_an_object() -> None:
    call = {"index": 0, "function": {"name": "f", "arguments": {"a": 1}}}
    events = translate([chunk({"tool_calls": [call]}, "tool_calls")])

    assert events[1] == block_start(0, tool_block("toolu_test_0", "f"))
    assert events[2] == partial(0, '{"a": 1}')


def test_other_choices_are_ignored() -> None:
    other = chunk({"content": "other"})
    other["choices"][0]["index"] = 1

    events = translate([other, chunk({"content": "mine"}, "stop")])

    assert text(0, "mine") in events
    assert all("other" not in json.dumps(data) for _, data in events)


def test_render_sse() -> None:
    assert render_anthropic_sse([ping_event(), ("message_stop", {"type": "message_stop"})]) == (
        b'event: ping\ndata: {"type":"ping"}\n\n'
        b'event: message_stop\ndata: {"type":"message_stop"}\n\n'
    )
    assert PING_SSE == b'event: ping\ndata: {"type":"ping"}\n\n'
    assert render_anthropic_sse([("x", {"t": "é"})]) == 'event: x\ndata: {"t":"é"}\n\n'.encode()


# --- any re-chunking of the tool arguments gives the same result ----------------

ARGUMENTS = json.dumps({"path": "/tmp/ü.txt", "lines": [1, 2, 3], "opts": {"force": True}})


def _split(whole: str, cuts: list[int]) -> list[str]:
    points = [0, *sorted(cuts), len(whole)]
    return [whole[a:b] for a, b in itertools.pairwise(points)]


def _collapse(types: list[str]) -> list[str]:
    return [t for i, t in enumerate(types) if i == 0 or t != types[i - 1]]


def _tool_stream(fragments: list[str]) -> list[Event]:
    first, *rest = fragments
    chunks = [
        ROLE,
        chunk({"content": "ok"}),
        chunk(tool_delta(0, first, "call_1", "write")),
        *(chunk(tool_delta(0, fragment)) for fragment in rest),
        chunk(tool_delta(1, "{}", "call_2", "noop")),
        chunk(None, "tool_calls"),
        usage_chunk(10, 20),
    ]
    return translate(chunks)


BASELINE = _tool_stream([ARGUMENTS])


@given(st.lists(st.integers(min_value=0, max_value=len(ARGUMENTS)), max_size=40))
def test_any_rechunking_of_tool_arguments_gives_the_same_json_and_event_types(
    cuts: list[int],
) -> None:
    events = _tool_stream(_split(ARGUMENTS, cuts))

    deltas = [data["delta"] for name, data in events if name == "content_block_delta"]
    tool_0 = [d["partial_json"] for d in deltas if d["type"] == "input_json_delta"][:-1]
    assert "".join(tool_0) == ARGUMENTS
    assert all(tool_0)  # empty fragments are not sent
    assert _collapse([name for name, _ in events]) == _collapse([name for name, _ in BASELINE])
    assert [e for e in events if e[0] != "content_block_delta"] == [
        e for e in BASELINE if e[0] != "content_block_delta"
    ]


# --- the real anthropic SDK assembles the translated streams --------------------


def _sdk_final_message(server: CannedServer, events: list[Event]) -> anthropic.types.Message:
    server.serve_sse(PING_SSE + render_anthropic_sse(events))
    with server.client().messages.stream(
        model="claude-x", max_tokens=64, messages=[{"role": "user", "content": "hi"}]
    ) as stream:
        return stream.get_final_message()


def test_sdk_assembles_thinking_text_and_tool_calls(canned_server: CannedServer) -> None:
    fragments = ['{"ci', 'ty": "Os', 'lo", "days"', ": 2}"]
    chunks = [
        ROLE,
        chunk({"reasoning_content": "Weather "}),
        chunk({"reasoning_content": "needed."}),
        chunk({"content": "Checking"}),
        chunk({"content": " now."}),
        chunk(tool_delta(0, "", "call_1", "get_weather")),
        *(chunk(tool_delta(0, fragment)) for fragment in fragments),
        chunk(tool_delta(1, "", "call_2", "get_time")),
        chunk(None, "tool_calls"),
        usage_chunk(31, 12),
    ]

    message = _sdk_final_message(canned_server, translate(chunks, input_tokens=31))

    assert [block.type for block in message.content] == ["thinking", "text", "tool_use", "tool_use"]
    thinking, said, weather, clock = message.content
    assert thinking.type == "thinking" and thinking.thinking == "Weather needed."
    assert thinking.signature == thinking_signature("Weather needed.")
    assert said.type == "text" and said.text == "Checking now."
    assert weather.type == "tool_use" and clock.type == "tool_use"
    assert (weather.id, weather.name, weather.input) == (
        "call_1",
        "get_weather",
        {"city": "Oslo", "days": 2},
    )
    assert (clock.id, clock.name, clock.input) == ("call_2", "get_time", {})
    assert message.stop_reason == "tool_use"
    assert message.model == "claude-x"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (31, 12)


def test_sdk_assembles_text_with_stop_sequence(canned_server: CannedServer) -> None:
    chunks = [ROLE, chunk({"content": "1 2"}), chunk({"content": " 3"}, "stop", stop_reason="4")]

    message = _sdk_final_message(canned_server, translate([*chunks, usage_chunk(4, 3)], ("4",)))

    assert [(b.type, getattr(b, "text", None)) for b in message.content] == [("text", "1 2 3")]
    assert (message.stop_reason, message.stop_sequence) == ("stop_sequence", "4")
    assert (message.usage.input_tokens, message.usage.output_tokens) == (4, 3)


def test_sdk_assembles_max_tokens(canned_server: CannedServer) -> None:
    chunks = [ROLE, chunk({"content": "trunc"}, "length"), usage_chunk(2, 1)]

    message = _sdk_final_message(canned_server, translate(chunks))

    assert message.stop_reason == "max_tokens"
    assert message.content[0].type == "text" and message.content[0].text == "trunc"


def test_sdk_raises_on_a_mid_stream_error(canned_server: CannedServer) -> None:
    translator = AnthropicStreamTranslator("claude-x", message_id=MSG_ID)
    events = translator.feed(ROLE) + translator.feed(chunk({"content": "par"}))
    events += translator.error(UpstreamError("neuron went away"))

    with pytest.raises(anthropic.APIStatusError) as caught:
        _sdk_final_message(canned_server, events)

    assert caught.value.body == {
        "type": "error",
        "error": {"type": "api_error", "message": "neuron went away"},
    }
