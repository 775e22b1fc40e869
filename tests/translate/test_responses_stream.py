"""Chat stream -> Responses events: golden sequences, and any re-chunking gives the
same final response as the non-streaming translation."""

from __future__ import annotations

import itertools
import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from helexa.errors import UpstreamError
from helexa.translate.responses_request import parse_responses_request
from helexa.translate.responses_response import ResponseContext, chat_completion_to_response
from helexa.translate.responses_stream import ResponsesStreamTranslator, render_responses_sse
from helexa.translate.thinking import reasoning_token

CTX = ResponseContext("resp_x", 1, "m", parse_responses_request({"model": "m", "input": "x"}))
USAGE = {"prompt_tokens": 4, "completion_tokens": 2, "total_tokens": 6}


def chunk(delta: dict[str, Any] | None = None, finish: str | None = None) -> dict[str, Any]:
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
    out: dict[str, Any] = {"id": "c", "object": "chat.completion.chunk", "created": 1}
    return out | {"model": "m", "choices": choices}


def usage_chunk() -> dict[str, Any]:
    return chunk() | {"usage": USAGE}


def tool_delta(
    index: int, *, args: str = "", head: tuple[str, str] | None = None
) -> dict[str, Any]:
    call: dict[str, Any] = {"index": index, "function": {"arguments": args}}
    if head:
        call |= {"id": head[0], "type": "function", "function": {"name": head[1], "arguments": ""}}
    return chunk({"tool_calls": [call]})


def run(chunks: list[dict[str, Any]], *, done: bool = True) -> list[dict[str, Any]]:
    t = ResponsesStreamTranslator(CTX)
    events = t.start()
    for c in chunks:
        events += t.feed(c)
    if done:
        events += t.finish()
    return events


def brief(events: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """(type, the interesting field) per event, for golden comparisons."""
    out: list[tuple[Any, ...]] = []
    for e in events:
        detail = e.get("delta", e.get("text", e.get("arguments")))
        if e["type"].startswith("response.output_item"):
            detail = (e["item"]["type"], e["item"]["status"])
        out.append((e["type"], detail) if detail is not None else (e["type"],))
    return out


def test_text_only_golden() -> None:
    events = run(
        [
            chunk({"role": "assistant", "content": ""}),
            chunk({"content": "Hel"}),
            chunk({"content": "lo"}),
            chunk({}, "stop"),
            usage_chunk(),
        ]
    )
    assert brief(events) == [
        ("response.created",),
        ("response.in_progress",),
        ("response.output_item.added", ("message", "in_progress")),
        ("response.content_part.added",),
        ("response.output_text.delta", "Hel"),
        ("response.output_text.delta", "lo"),
        ("response.output_text.done", "Hello"),
        ("response.content_part.done",),
        ("response.output_item.done", ("message", "completed")),
        ("response.completed",),
    ]
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    delta = events[4]
    assert (delta["item_id"], delta["output_index"], delta["content_index"]) == ("msg_x_0", 0, 0)
    final = events[-1]["response"]
    assert final["status"] == "completed"
    assert final["usage"]["input_tokens"] == 4 and final["usage"]["output_tokens"] == 2
    assert final["output"][0]["content"][0]["text"] == "Hello"


def test_reasoning_then_text_golden() -> None:
    events = run(
        [
            chunk({"reasoning_content": "hm"}),
            chunk({"content": "ok"}),
            chunk({}, "stop"),
        ]
    )
    assert brief(events)[2:] == [
        ("response.output_item.added", ("reasoning", "in_progress")),
        ("response.content_part.added",),
        ("response.reasoning_text.delta", "hm"),
        ("response.reasoning_text.done", "hm"),
        ("response.content_part.done",),
        ("response.output_item.done", ("reasoning", "completed")),
        ("response.output_item.added", ("message", "in_progress")),
        ("response.content_part.added",),
        ("response.output_text.delta", "ok"),
        ("response.output_text.done", "ok"),
        ("response.content_part.done",),
        ("response.output_item.done", ("message", "completed")),
        ("response.completed",),
    ]
    assert events[-1]["response"]["output"][1]["id"] == "msg_x_1"


def test_text_and_two_parallel_tool_calls_split_across_chunks() -> None:
    events = run(
        [
            chunk({"content": "Calling."}),
            tool_delta(0, head=("call_a", "weather")),
            tool_delta(0, args='{"ci'),
            tool_delta(1, head=("call_b", "clock")),
            tool_delta(0, args='ty": "Oslo"}'),  # interleaved with the second call
            tool_delta(1, args="{}"),
            chunk({}, "tool_calls"),
        ]
    )
    kinds = brief(events)
    assert kinds[8:] == [
        ("response.output_item.added", ("function_call", "in_progress")),
        ("response.function_call_arguments.delta", '{"ci'),
        ("response.output_item.added", ("function_call", "in_progress")),
        ("response.function_call_arguments.delta", 'ty": "Oslo"}'),
        ("response.function_call_arguments.delta", "{}"),
        ("response.function_call_arguments.done", '{"city": "Oslo"}'),
        ("response.output_item.done", ("function_call", "completed")),
        ("response.function_call_arguments.done", "{}"),
        ("response.output_item.done", ("function_call", "completed")),
        ("response.completed",),
    ]
    output = events[-1]["response"]["output"]
    assert [(i["type"], i.get("call_id")) for i in output] == [
        ("message", None),
        ("function_call", "call_a"),
        ("function_call", "call_b"),
    ]
    assert events[-3]["output_index"] == 2 and events[-3]["name"] == "clock"


def test_tool_call_with_empty_arguments() -> None:
    events = run([tool_delta(0, head=("call_e", "noop")), chunk({}, "tool_calls")])
    (call,) = events[-1]["response"]["output"]
    assert (call["name"], call["arguments"], call["status"]) == ("noop", "", "completed")


def test_length_cut_ends_incomplete() -> None:
    events = run([chunk({"content": "ab"}), chunk({}, "length")])
    assert events[-1]["type"] == "response.incomplete"
    assert events[-1]["response"]["incomplete_details"] == {"reason": "max_output_tokens"}


def test_upstream_error_mid_stream_fails_the_response() -> None:
    error = {"error": {"message": "neuron a failed", "type": "api_error", "code": "upstream_error"}}
    t = ResponsesStreamTranslator(CTX)
    events = t.start() + t.feed(chunk({"content": "par"})) + t.feed(error) + t.finish()
    assert [e["type"] for e in events[-2:]] == ["error", "response.failed"]
    assert events[-2]["message"] == "neuron a failed" and events[-2]["code"] == "upstream_error"
    failed = events[-1]["response"]
    assert failed["status"] == "failed" and failed["error"]["code"] == "upstream_error"
    assert t.failed and t.feed(chunk({"content": "more"})) == []


def test_error_before_any_output() -> None:
    t = ResponsesStreamTranslator(CTX)
    events = t.start() + t.error(UpstreamError("down"))
    assert [e["type"] for e in events] == [
        "response.created",
        "response.in_progress",
        "error",
        "response.failed",
    ]


def test_render_sse_names_each_event() -> None:
    raw = render_responses_sse(run([chunk({"content": "é"}), chunk({}, "stop")]))
    first = raw.split(b"\n\n")[0].decode()
    assert first.startswith("event: response.created\ndata: ")
    assert json.loads(first.split("data: ", 1)[1])["type"] == "response.created"
    assert "é".encode() in raw


TEXT = "The quick brown fox."
ARGS = '{"path": "/tmp/x", "n": 3}'


def _pieces(text: str, cuts: list[int]) -> list[str]:
    bounds = sorted({0, len(text), *(c % (len(text) + 1) for c in cuts)})
    return [text[a:b] for a, b in itertools.pairwise(bounds)]


@given(st.lists(st.integers(0, 100), max_size=12), st.lists(st.integers(0, 100), max_size=12))
def test_any_rechunking_gives_the_non_streaming_response(
    text_cuts: list[int], arg_cuts: list[int]
) -> None:
    chunks = [chunk({"content": piece}) for piece in _pieces(TEXT, text_cuts)]
    chunks.append(tool_delta(0, head=("call_1", "read")))
    chunks += [tool_delta(0, args=piece) for piece in _pieces(ARGS, arg_cuts)]
    chunks += [chunk({}, "tool_calls"), usage_chunk()]
    streamed = run(chunks)[-1]["response"]
    whole = chat_completion_to_response(
        {
            "id": "c",
            "created": 1,
            "model": "m",
            "choices": [
                {
                    "index": 0,
                    "message": {
                        "role": "assistant",
                        "content": TEXT,
                        "tool_calls": [
                            {"id": "call_1", "function": {"name": "read", "arguments": ARGS}}
                        ],
                    },
                    "finish_reason": "tool_calls",
                }
            ],
            "usage": USAGE,
        },
        CTX,
    )
    assert streamed == whole


def test_usage_without_total_tokens_is_read() -> None:
    lenient = chunk() | {"usage": {"prompt_tokens": 3, "completion_tokens": 1}}
    events = run([chunk({"content": "a"}), chunk({}, "stop"), lenient])
    assert events[-1]["response"]["usage"]["total_tokens"] == 4


def test_a_malformed_chunk_fails_the_response_instead_of_crashing() -> None:
    events = run([chunk({"content": "a"}), {"choices": [{"delta": {"tool_calls": "x"}}]}])
    assert [e["type"] for e in events[-2:]] == ["error", "response.failed"]
    assert "malformed" in events[-2]["message"]


CODEX_CTX = ResponseContext(
    "resp_cx",
    1,
    "m",
    parse_responses_request(
        {
            "model": "m",
            "input": "x",
            "include": ["reasoning.encrypted_content"],
            "tools": [
                {
                    "type": "namespace",
                    "name": "multi_agent_v1",
                    "tools": [{"type": "function", "name": "wait_agent"}],
                }
            ],
        }
    ),
)


def test_codex_stream_splits_namespaced_calls_and_signs_reasoning() -> None:
    t = ResponsesStreamTranslator(CODEX_CTX)
    events = t.start() + t.feed(chunk({"reasoning_content": "wait"}))
    events += t.feed(tool_delta(0, head=("call_1", "multi_agent_v1__wait_agent")))
    events += t.feed(tool_delta(0, args="{}")) + t.feed(chunk({}, "tool_calls")) + t.finish()
    added = [e["item"] for e in events if e["type"] == "response.output_item.added"]
    done = [e["item"] for e in events if e["type"] == "response.output_item.done"]
    assert "encrypted_content" not in added[0]  # the text is not known yet
    assert done[0]["encrypted_content"] == reasoning_token("wait")
    for item in (added[1], done[1]):
        assert (item["namespace"], item["name"]) == ("multi_agent_v1", "wait_agent")
    (args_done,) = [e for e in events if e["type"] == "response.function_call_arguments.done"]
    assert args_done["name"] == "wait_agent"
    assert events[-1]["response"]["output"] == done


def test_a_custom_tool_call_streams_its_input_whole_at_the_end() -> None:
    patch_tool = {"type": "custom", "name": "apply_patch"}
    ctx = ResponseContext(
        "resp_p",
        1,
        "m",
        parse_responses_request({"model": "m", "input": "x", "tools": [patch_tool]}),
    )
    t = ResponsesStreamTranslator(ctx)
    arguments = json.dumps({"input": "*** Begin Patch\n*** End Patch\n"})
    events = t.start() + t.feed(tool_delta(0, head=("call_p", "apply_patch")))
    for piece in (arguments[:7], arguments[7:]):
        events += t.feed(tool_delta(0, args=piece))
    events += t.feed(chunk({}, "tool_calls")) + t.finish()
    assert [e["type"] for e in events[2:]] == [
        "response.output_item.added",
        "response.custom_tool_call_input.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert events[2]["item"]["type"] == "custom_tool_call" and events[2]["item"]["input"] == ""
    assert events[3]["input"] == events[4]["item"]["input"] == "*** Begin Patch\n*** End Patch\n"
