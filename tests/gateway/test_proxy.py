"""The streaming proxy against a scripted upstream on loopback."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncGenerator, AsyncIterator

import pytest

from helexa.errors import Overloaded, UpstreamError
from helexa.gateway.proxy import Proxy, ProxyTimeouts, ResponseStats, Target, split_events
from tests.gateway.scripted_upstream import ScriptedUpstream


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1/chat/completions"


def chat_body(stream: bool, include_usage: bool = False) -> bytes:
    body: dict[str, object] = {
        "model": "vendor/big",
        "messages": [{"role": "user", "content": "hi"}],
        "stream": stream,
    }
    if include_usage:
        body["stream_options"] = {"include_usage": True}
    return json.dumps(body).encode()


@pytest.fixture
async def proxy() -> AsyncIterator[Proxy]:
    p = Proxy(timeouts=ProxyTimeouts(connect=2, stream_read=1.0, read=5))
    yield p
    await p.close()


def target(upstream: ScriptedUpstream, name: str = "up") -> Target:
    return Target(name, upstream.url + "/v1/chat/completions", {"Authorization": "Bearer t"})


def data_events(raw: bytes) -> list[str]:
    return [e.removeprefix("data: ") for e in raw.decode().split("\n\n") if e.startswith("data:")]


async def collect(stream: AsyncIterator[bytes]) -> bytes:
    return b"".join([chunk async for chunk in stream])


async def test_stream_is_copied_whole_and_metered(
    proxy: Proxy, scripted_upstream: ScriptedUpstream
) -> None:
    stats = ResponseStats()
    opened = await proxy.open([target(scripted_upstream)], chat_body(True, True), stream=True)
    raw = await collect(proxy.relay(opened, stats))
    events = data_events(raw)
    assert events[-1] == "[DONE]"
    pieces = [json.loads(e)["choices"][0]["delta"].get("content") for e in events[1:4]]
    assert pieces == ["Hello", " world", "!"]
    assert json.loads(events[-2])["usage"]["completion_tokens"] == 3
    assert (stats.prompt_tokens, stats.completion_tokens) == (7, 3)
    assert stats.first_token_at is not None and stats.finished_at is not None
    assert scripted_upstream.headers[0]["Authorization"] == "Bearer t"


async def test_usage_asked_only_by_the_gateway_is_hidden(
    proxy: Proxy, scripted_upstream: ScriptedUpstream
) -> None:
    stats = ResponseStats()
    opened = await proxy.open([target(scripted_upstream)], chat_body(True, True), stream=True)
    raw = await collect(proxy.relay(opened, stats, drop_usage_event=True))
    assert b'"usage"' not in raw and raw.endswith(b"data: [DONE]\n\n")
    assert stats.completion_tokens == 3


async def test_ttft_is_the_first_content_piece_not_the_role_chunk(
    proxy: Proxy, scripted_upstream: ScriptedUpstream
) -> None:
    scripted_upstream.script.piece_delay = 0.3
    stats = ResponseStats()
    opened = await proxy.open([target(scripted_upstream)], chat_body(True), stream=True)
    raw = await collect(proxy.relay(opened, stats))
    assert stats.first_token_at is not None
    assert stats.first_token_at - stats.started >= 0.3
    assert raw.count(b"data: ") == 6  # role, 3 pieces, finish, [DONE]


async def test_non_stream_body_and_usage(proxy: Proxy, scripted_upstream: ScriptedUpstream) -> None:
    stats = ResponseStats()
    opened = await proxy.open([target(scripted_upstream)], chat_body(False), stream=False)
    body = json.loads(await proxy.read_all(opened, stats))
    assert body["choices"][0]["message"]["content"] == "Hello world!"
    assert (stats.prompt_tokens, stats.completion_tokens) == (7, 3)


async def test_connect_error_fails_over_to_the_next_target(
    proxy: Proxy, scripted_upstream: ScriptedUpstream
) -> None:
    dead = Target("dead", closed_port_url())
    opened = await proxy.open(
        [dead, target(scripted_upstream, "alive")], chat_body(False), stream=False
    )
    assert opened.target.neuron == "alive"
    await proxy.read_all(opened, ResponseStats())


async def test_503_fails_over_and_all_503_raises_overloaded(
    proxy: Proxy, scripted_upstream: ScriptedUpstream
) -> None:
    other = await ScriptedUpstream(["vendor/big"]).start()
    try:
        scripted_upstream.script.status = 503
        opened = await proxy.open(
            [target(scripted_upstream, "busy"), target(other, "free")],
            chat_body(False),
            stream=False,
        )
        assert opened.target.neuron == "free"
        await proxy.read_all(opened, ResponseStats())
        other.script.status = 503
        with pytest.raises(Overloaded) as info:
            await proxy.open(
                [target(scripted_upstream), target(other)], chat_body(False), stream=False
            )
        assert info.value.retry_after == 2.0
    finally:
        await other.stop()


async def test_stale_model_not_loaded_fails_over(
    proxy: Proxy, scripted_upstream: ScriptedUpstream
) -> None:
    other = await ScriptedUpstream(["vendor/big"]).start()
    try:
        scripted_upstream.script.status = 404
        scripted_upstream.script.error_code = "model_not_loaded"
        opened = await proxy.open(
            [target(scripted_upstream, "stale"), target(other, "holder")],
            chat_body(False),
            stream=False,
        )
        assert opened.target.neuron == "holder"
        await proxy.read_all(opened, ResponseStats())
    finally:
        await other.stop()


async def test_other_errors_pass_through(proxy: Proxy, scripted_upstream: ScriptedUpstream) -> None:
    scripted_upstream.script.status = 400
    scripted_upstream.script.error_code = "invalid_request"
    opened = await proxy.open([target(scripted_upstream)], chat_body(False), stream=False)
    assert opened.response.status == 400
    assert b"invalid_request" in await proxy.read_all(opened, ResponseStats())


async def test_all_targets_unreachable_raises_upstream_error(proxy: Proxy) -> None:
    with pytest.raises(UpstreamError):
        await proxy.open([Target("a", closed_port_url())], chat_body(False), stream=False)


async def test_stream_cut_midway_ends_with_an_error_event(
    proxy: Proxy, scripted_upstream: ScriptedUpstream
) -> None:
    scripted_upstream.script.cut_after = 1
    opened = await proxy.open([target(scripted_upstream)], chat_body(True), stream=True)
    started = time.monotonic()
    events = data_events(await collect(proxy.relay(opened, ResponseStats())))
    assert time.monotonic() - started < 3
    assert json.loads(events[1])["choices"][0]["delta"]["content"] == "Hello"
    assert json.loads(events[-1])["error"]["code"] == "upstream_error"


async def test_silent_upstream_hits_the_read_timeout(
    proxy: Proxy, scripted_upstream: ScriptedUpstream
) -> None:
    scripted_upstream.script.hang_after = 1
    opened = await proxy.open([target(scripted_upstream)], chat_body(True), stream=True)
    events = data_events(await collect(proxy.relay(opened, ResponseStats())))
    assert json.loads(events[-1])["error"]["code"] == "upstream_timeout"


async def test_closing_the_relay_disconnects_the_upstream(
    proxy: Proxy, scripted_upstream: ScriptedUpstream
) -> None:
    scripted_upstream.script.piece_delay = 0.2
    scripted_upstream.script.pieces = ["x"] * 50
    opened = await proxy.open([target(scripted_upstream)], chat_body(True), stream=True)
    relay = proxy.relay(opened, ResponseStats())
    assert isinstance(relay, AsyncGenerator)
    await relay.__anext__()
    await relay.aclose()  # what starlette does when the client goes away
    await asyncio.wait_for(scripted_upstream.disconnected.wait(), timeout=5)
    assert scripted_upstream.disconnects == 1


@pytest.mark.parametrize("end", [b"\n\n", b"\r\n\r\n", b"\n\r\n"])
def test_events_split_at_blank_lines_of_either_newline(end: bytes) -> None:
    buffer = b"data: 1" + end + b"data: 2" + end + b"data: 3"
    assert split_events(buffer) == [b"data: 1", b"data: 2", b"data: 3"]


async def test_a_cookie_one_answer_sets_never_rides_on_another_request(
    proxy: Proxy, scripted_upstream: ScriptedUpstream
) -> None:
    # The session is shared by every client of the gateway: it must keep no cookies.
    scripted_upstream.script.set_cookie = "session=alice; Path=/"
    # By name: aiohttp's default jar ignores cookies from bare IP addresses anyway.
    by_name = Target(
        "up", scripted_upstream.url.replace("127.0.0.1", "localhost") + "/v1/chat/completions"
    )
    for _ in range(2):
        opened = await proxy.open([by_name], chat_body(False), stream=False)
        await proxy.read_all(opened, ResponseStats())
    assert [h.get("Cookie") for h in scripted_upstream.headers] == [None, None]
