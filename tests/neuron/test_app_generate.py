"""Generation through the real openai SDK: streaming vs not, usage, stops, concurrency,
disconnects, completions."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from helexa.testing.neuron_proc import TINY_MODEL_ID as TINY
from helexa.testing.neuron_proc import InProcessNeuron, chat_body, eventually, exact_length

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "lookup",
            "description": "Look a word up",
            "parameters": {"type": "object", "properties": {"word": {"type": "string"}}},
        },
    }
]


async def _stream_text(neuron: InProcessNeuron, **kwargs: Any) -> tuple[list[str], str, Any]:
    """(content pieces, finish_reason, usage) of a streamed chat completion."""
    stream = await neuron.openai().chat.completions.create(
        stream=True, stream_options={"include_usage": True}, **kwargs
    )
    pieces: list[str] = []
    finish, usage = "", None
    async for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            if choice.delta.content:
                pieces.append(choice.delta.content)
            if choice.finish_reason:
                finish = choice.finish_reason
    return pieces, finish, usage


async def test_same_seed_same_text_streaming_and_not(neuron: InProcessNeuron) -> None:
    args = {**chat_body(content="tell me"), **exact_length(24), "seed": 42, "temperature": 1.0}
    whole = await neuron.openai().chat.completions.create(**args)
    pieces, finish, usage = await _stream_text(neuron, **args)
    assert whole.choices[0].message.content == "".join(pieces)
    assert len(pieces) > 1  # really streamed, piece by piece
    assert finish == whole.choices[0].finish_reason == "length"
    assert usage.completion_tokens == whole.usage.completion_tokens == 24
    other = await neuron.openai().chat.completions.create(**{**args, "seed": 43})
    assert other.choices[0].message.content != whole.choices[0].message.content


async def test_usage_matches_the_tokenizer_and_tokenize(
    neuron: InProcessNeuron, tiny_tokenizer: Any
) -> None:
    messages = [{"role": "system", "content": "be terse"}, {"role": "user", "content": "hi"}]
    reply = await neuron.openai().chat.completions.create(
        model=TINY, messages=messages, tools=TOOLS, **exact_length(7)
    )
    expected = tiny_tokenizer.apply_chat_template(
        messages,
        tools=TOOLS,
        add_generation_prompt=True,
        tokenize=True,
        return_dict=True,
        enable_thinking=False,
    )["input_ids"]
    assert reply.usage is not None
    assert reply.usage.prompt_tokens == len(expected)
    assert reply.usage.completion_tokens == 7
    assert reply.usage.total_tokens == len(expected) + 7
    async with neuron.http() as http:
        counted = await http.post(
            "/v1/tokenize", json={"model": TINY, "messages": messages, "tools": TOOLS}
        )
    assert counted.json()["count"] == reply.usage.prompt_tokens


async def test_stop_string_spanning_chunks_is_cut_exactly(neuron: InProcessNeuron) -> None:
    args = {**chat_body(content="go"), **exact_length(40), "seed": 5, "temperature": 1.0}
    pieces, _, _ = await _stream_text(neuron, **args)
    full = "".join(pieces)
    # A stop string made of the end of one streamed piece and the start of the next.
    border = next(i for i in range(1, len(pieces)) if len(pieces[i - 1]) >= 2 and pieces[i])
    stop = pieces[border - 1][-2:] + pieces[border][:2]
    expected = full[: full.find(stop)]
    cut_pieces, finish, _ = await _stream_text(neuron, **args, stop=[stop])
    whole = await neuron.openai().chat.completions.create(**args, stop=[stop])
    assert "".join(cut_pieces) == expected
    assert whole.choices[0].message.content == expected
    assert finish == whole.choices[0].finish_reason == "stop"


async def test_eight_concurrent_streams_all_progress(neuron: InProcessNeuron) -> None:
    started = time.monotonic()
    first_token: dict[int, float] = {}
    finished: dict[int, float] = {}

    async def one(n: int) -> None:
        stream = await neuron.openai().chat.completions.create(
            **chat_body(content=f"stream {n}"), **exact_length(32), stream=True
        )
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content and n not in first_token:
                first_token[n] = time.monotonic() - started
        finished[n] = time.monotonic() - started

    tasks = []
    for n in range(8):
        tasks.append(asyncio.create_task(one(n)))
        await asyncio.sleep(0)  # start in order
    await asyncio.gather(*tasks)
    assert len(finished) == 8
    # Batched, not serial: the last request's first token comes before the first ends.
    assert first_token[7] < finished[0], (first_token, finished)


async def test_closing_a_stream_frees_its_slot_and_stops_generation(
    neuron: InProcessNeuron,
) -> None:
    entry = neuron.state.registry.entry(TINY)
    assert entry is not None and entry.model is not None
    stream = await neuron.openai().chat.completions.create(
        **chat_body(), **exact_length(3000), stream=True
    )
    seen = 0
    async for chunk in stream:
        seen += bool(chunk.choices and chunk.choices[0].delta.content)
        if seen == 3:
            break
    assert entry.admission.in_flight == 1
    await stream.close()
    await eventually(lambda: entry.admission.in_flight == 0, within_s=1.0)
    await eventually(lambda: getattr(entry.model, "active_sequences", 0) == 0, within_s=1.0)


async def test_raw_sse_frames_end_with_done(neuron: InProcessNeuron) -> None:
    body = {**chat_body(max_tokens=3, min_tokens=3), "stream": True}
    async with neuron.http() as http, http.stream("POST", "/v1/chat/completions", json=body) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        frames = [line async for line in r.aiter_lines() if line]
    assert frames[0].startswith("data: ") and '"role":"assistant"' in frames[0]
    assert frames[-1] == "data: [DONE]"


async def test_completions_streaming_and_not(neuron: InProcessNeuron, tiny_tokenizer: Any) -> None:
    client = neuron.openai()
    args = {"model": TINY, "prompt": "the quick brown", "seed": 3, **exact_length(12)}
    whole = await client.completions.create(**args)
    stream = await client.completions.create(
        **args, stream=True, stream_options={"include_usage": True}
    )
    text, usage = "", None
    async for chunk in stream:
        text += "".join(c.text for c in chunk.choices)
        usage = chunk.usage or usage
    assert whole.choices[0].text == text
    assert whole.usage is not None and usage is not None
    assert (
        whole.usage.prompt_tokens
        == usage.prompt_tokens
        == len(tiny_tokenizer("the quick brown")["input_ids"])
    )
    assert whole.usage.completion_tokens == 12


async def test_streaming_client_leaving_cancels_its_generation_and_frees_its_slot(
    neuron: InProcessNeuron,
) -> None:
    # The stream is a helexa.sse.SSEResponse: its disconnect listener ends the relay.
    entry = neuron.state.registry.entry(TINY)
    assert entry is not None and entry.model is not None
    body = chat_body(max_tokens=3000, min_tokens=3000, ignore_eos=True, stream=True)
    async with neuron.http() as http, http.stream("POST", "/v1/chat/completions", json=body) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        assert r.headers["x-accel-buffering"] == "no"
        async for line in r.aiter_lines():
            if line.startswith("data: "):
                break  # generating: now leave mid-stream
        assert entry.admission.in_flight == 1
    await eventually(lambda: entry.admission.in_flight == 0, within_s=1.0)
    await eventually(lambda: getattr(entry.model, "active_sequences", 0) == 0, within_s=1.0)


async def test_non_streaming_client_leaving_cancels_its_generation(
    neuron: InProcessNeuron,
) -> None:
    entry = neuron.state.registry.entry(TINY)
    assert entry is not None and entry.model is not None
    body = chat_body(max_tokens=3000, min_tokens=3000, ignore_eos=True)
    async with neuron.http() as http:
        request = asyncio.create_task(http.post("/v1/chat/completions", json=body))
        await eventually(lambda: getattr(entry.model, "active_sequences", 0) == 1)
        request.cancel()  # closes the connection mid-request
        await asyncio.gather(request, return_exceptions=True)
    await eventually(lambda: entry.admission.in_flight == 0, within_s=1.0)
    await eventually(lambda: getattr(entry.model, "active_sequences", 0) == 0, within_s=1.0)


async def test_usage_reports_the_prompt_tokens_taken_from_the_prefix_cache(
    neuron: InProcessNeuron,
) -> None:
    content = "a long shared system prompt for every turn of this agent " * 4
    first = await neuron.openai().chat.completions.create(
        **chat_body(content=content), **exact_length(3)
    )
    assert first.usage is not None and first.usage.prompt_tokens_details is not None
    assert first.usage.prompt_tokens_details.cached_tokens == 0

    again = await neuron.openai().chat.completions.create(
        **chat_body(content=content), **exact_length(3)
    )
    _, _, streamed = await _stream_text(neuron, **chat_body(content=content), **exact_length(3))

    assert again.usage is not None and again.usage.prompt_tokens_details is not None
    prompt_tokens = again.usage.prompt_tokens
    assert again.usage.prompt_tokens_details.cached_tokens == prompt_tokens - 1
    assert streamed.prompt_tokens_details.cached_tokens == prompt_tokens - 1
    async with neuron.http() as http:
        (info,) = (await http.get("/models")).json()["models"]
    assert info["prefix_cache_mb"] == 512  # neuron.toml's default
    assert info["prefix_cache_bytes"] > 0
