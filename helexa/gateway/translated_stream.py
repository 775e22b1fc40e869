"""Streams in a translated dialect (Anthropic Messages, OpenAI Responses).

Both routes do the same thing around their pure translator: send the
dialect's opening event at once, keep the client alive while the upstream
opens (a cold load can take minutes), relay the neuron's OpenAI SSE through
the translator, and end with a visible error event whatever goes wrong after
the headers are out. Only the translator, its renderer and the keep-alive
bytes differ, so they are parameters here.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from helexa import fastjson
from helexa.errors import APIError, UpstreamError
from helexa.fleet.neuron_client import error_from_response
from helexa.gateway import router
from helexa.gateway.core import Gateway
from helexa.gateway.dispatch import (
    open_upstream,
    pick_replicas,
    track_request,
    untrack_request,
)
from helexa.gateway.metrics import RequestMeter
from helexa.gateway.proxy import Opened, keep_alive_while_loading

log = logging.getLogger("helexa.gateway.translated")

CHAT_PATH = "/chat/completions"
E = TypeVar("E")
E_co = TypeVar("E_co", covariant=True)


class StreamTranslator(Protocol[E_co]):
    """What helexa.translate's stream state machines offer."""

    @property
    def done(self) -> bool: ...

    @property
    def failed(self) -> bool: ...

    def start(self) -> E_co: ...

    def feed(self, chunk: dict[str, Any]) -> E_co: ...

    def finish(self) -> E_co: ...

    def error(self, exc: APIError) -> E_co: ...


@dataclass(frozen=True)
class StreamDialect(Generic[E]):
    render: Callable[[E], bytes]  # events -> SSE bytes
    keep_alive: bytes  # what a waiting client gets (`event: ping` or an SSE comment)


async def translated_stream(
    gw: Gateway,
    model_id: str,
    payload: bytes,
    translator: StreamTranslator[E],
    dialect: StreamDialect[E],
    meter: RequestMeter,
    opened: Opened | None,
    hint: router.RoutingHint = router.NO_HINT,
) -> AsyncIterator[bytes]:
    """The whole event stream of one request; `opened` when the upstream is already open."""
    render = dialect.render
    yield render(translator.start())
    opening = asyncio.ensure_future(
        _already(opened)
        if opened is not None
        else open_upstream(gw, model_id, CHAT_PATH, payload, stream=True, hint=hint)
    )
    neuron: str | None = None
    status: int | str = "client_closed"
    tracked = False  # counted in flight while relayed (the load bound sees it)
    try:
        while not opening.done():
            done, _ = await asyncio.wait({opening}, timeout=gw.keep_alive_interval)
            if not done:
                percent = gw.fleet.load_percent(model_id)
                yield keep_alive_while_loading(dialect.keep_alive, model_id, percent)
        try:
            opened = opening.result()
        except APIError as exc:
            status = exc.status
            yield render(translator.error(exc))
            return
        neuron = opened.target.neuron
        if opened.response.status != 200:
            status = opened.response.status
            raw = await opened.response.read()
            opened.response.release()
            yield render(translator.error(error_from_response(neuron, status, raw)))
            return
        track_request(gw, model_id, neuron)
        tracked = True
        try:
            async for block in gw.proxy.relay(opened, meter.stats):
                out = _translate_block(block, translator, dialect)
                if out:
                    yield out
            if not translator.done:  # the upstream ended without [DONE]
                yield render(translator.finish())
        except Exception as exc:  # headers are out: a failure must still end the stream visibly
            log.exception("relaying the stream from %s failed", neuron)
            if not isinstance(exc, APIError):
                exc = UpstreamError(f"the gateway failed mid-stream ({type(exc).__name__})")
            yield render(translator.error(exc))
        status = "stream_error" if translator.failed else 200
    finally:
        if tracked and neuron is not None:
            untrack_request(gw, model_id, neuron)
        if not opening.done():
            opening.cancel()
        meter.finish(neuron, status)


async def open_if_loaded(
    gw: Gateway,
    model_id: str,
    payload: bytes,
    meter: RequestMeter,
    hint: router.RoutingHint = router.NO_HINT,
) -> Opened | None:
    """Open the upstream before answering when the model is loaded somewhere.

    A failure then still gets its HTTP status (raised as APIError, already
    metered, for the route to render in its dialect); None means the model
    must be waited for, which `translated_stream` does inside the stream.
    """
    candidates = pick_replicas(gw, model_id, hint)
    if not candidates:
        return None
    try:
        opened = await open_upstream(
            gw, model_id, CHAT_PATH, payload, stream=True, candidates=candidates
        )
    except APIError as exc:
        meter.finish(None, exc.status)
        raise
    if opened.response.status != 200:  # refused (a prompt too long, ...): said as a status
        neuron, status = opened.target.neuron, opened.response.status
        raw = await opened.response.read()
        opened.response.release()
        meter.finish(neuron, status)
        raise error_from_response(neuron, status, raw)
    return opened


async def _already(opened: Opened) -> Opened:
    return opened


def _translate_block(
    block: bytes, translator: StreamTranslator[E], dialect: StreamDialect[E]
) -> bytes:
    """Whole OpenAI SSE events from the relay -> the dialect's SSE."""
    out: list[bytes] = []
    for data in sse_payloads(block):
        if data is None:
            out.append(dialect.keep_alive)  # the neuron's keep-alive, in the dialect's words
        elif data == b"[DONE]":
            out.append(dialect.render(translator.finish()))
        else:
            try:
                chunk = fastjson.loads(data)
            except ValueError:
                continue
            out.append(dialect.render(translator.feed(chunk)))
    return b"".join(out)


def sse_payloads(block: bytes) -> Iterator[bytes | None]:
    """Each event's `data:` payload; None for a comment (a keep-alive)."""
    for event in block.split(b"\n\n"):
        if event.startswith(b":"):
            yield None
            continue
        for line in event.split(b"\n"):
            if line.startswith(b"data:"):
                yield line[5:].strip()
                break
