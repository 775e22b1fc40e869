"""Unbuffered OpenAI proxy to neurons, with failover before the first byte.

`Proxy.open` walks the candidate targets in order and commits to the first
that answers with something other than a connect error, a 503 or a stale
`model_not_loaded`; nothing has reached the client by then, so trying the
next one is safe. `relay` then copies the stream event by event; past that
point an upstream failure can only end the stream with an OpenAI-shaped
error event. The only parsing on the per-chunk path is what metrics need:
the first content delta (TTFT) and the usage chunk.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from helexa import fastjson
from helexa.errors import APIError, Overloaded, UpstreamError, UpstreamTimeout
from helexa.fleet.sessions import LazySession, SessionFactory
from helexa.protocol.neuron import PRIORITY_HEADER
from helexa.sse import KEEP_ALIVE

# The calling key's priority, set by the fast lane for the request's task (and the
# tasks it starts): sent upstream as X-Helexa-Priority when not 0 (docs/keys.md).
UPSTREAM_PRIORITY: ContextVar[int] = ContextVar("upstream_priority", default=0)

log = logging.getLogger("helexa.gateway.proxy")


# SSE events end with a blank line; foreign servers may use CRLF.
_EVENT_END = re.compile(rb"\r?\n\r?\n")
_RETRY_STATUSES = frozenset({502, 503})
_JSON: Mapping[str, str] = {"Content-Type": "application/json"}


def default_session_factory() -> aiohttp.ClientSession:
    """One pooled session for all upstream calls (created inside the running loop).

    No cookie jar: the session is shared by every client, so a cookie one
    upstream answer set must never ride along on someone else's request.
    """
    connector = aiohttp.TCPConnector(limit=1024, limit_per_host=256, keepalive_timeout=30)
    return aiohttp.ClientSession(
        connector=connector, auto_decompress=False, cookie_jar=aiohttp.DummyCookieJar()
    )


@dataclass(frozen=True)
class Target:
    """One place a request may go: a neuron and the full upstream URL."""

    neuron: str
    url: str
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ProxyTimeouts:
    connect: float = 5.0
    stream_read: float = 60.0  # between chunks; neurons send keep-alives every second
    read: float = 900.0  # a whole non-streamed completion


@dataclass
class ResponseStats:
    """One upstream response's timings and token counts: what the metrics and the
    calling key's ticket are fed from once the response has ended."""

    started: float = field(default_factory=time.monotonic)
    first_token_at: float | None = None
    finished_at: float | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cached_tokens: int | None = None  # part of prompt_tokens (prompt_tokens_details)

    def read_usage(self, usage: Any) -> None:
        if isinstance(usage, dict):
            self.prompt_tokens = _int_or_none(usage.get("prompt_tokens"))
            self.completion_tokens = _int_or_none(usage.get("completion_tokens"))
            details = usage.get("prompt_tokens_details")
            if isinstance(details, dict):
                self.cached_tokens = _int_or_none(details.get("cached_tokens"))


@dataclass
class Opened:
    """An upstream response the proxy committed to (status already known)."""

    target: Target
    response: aiohttp.ClientResponse


class Proxy:
    """Owns the pooled aiohttp session; opens upstream calls with failover."""

    def __init__(
        self,
        session_factory: SessionFactory = default_session_factory,
        timeouts: ProxyTimeouts | None = None,
    ) -> None:
        self._session = LazySession(session_factory)
        self.timeouts = timeouts or ProxyTimeouts()
        # Built once: a ClientTimeout per request is measurable at thousands of req/s.
        self._timeout = {
            stream: aiohttp.ClientTimeout(
                total=None,
                sock_connect=self.timeouts.connect,
                sock_read=self.timeouts.stream_read if stream else self.timeouts.read,
            )
            for stream in (False, True)
        }

    @property
    def session(self) -> aiohttp.ClientSession:
        return self._session.get()

    async def close(self) -> None:
        await self._session.close()

    async def open(self, targets: Sequence[Target], body: bytes, *, stream: bool) -> Opened:
        """POST `body` to the first target that takes it; raise when none does."""
        timeout = self._timeout[stream]
        last: APIError | None = None
        priority = UPSTREAM_PRIORITY.get()
        for target in targets:
            headers = {**_JSON, **target.headers} if target.headers else _JSON
            if priority:
                headers = {**headers, PRIORITY_HEADER: str(priority)}
            try:
                resp = await self.session.post(
                    target.url, data=body, headers=headers, timeout=timeout
                )
            except (aiohttp.ClientConnectionError, TimeoutError) as exc:
                log.warning("upstream=%s failover reason=%r", target.neuron, str(exc) or type(exc))
                last = UpstreamError(f"neuron {target.neuron} unreachable: {exc}")
                continue
            if resp.status in _RETRY_STATUSES or await _is_stale_location(resp):
                last = await _error_of(resp, target)
                resp.close()
                log.warning("upstream=%s failover status=%d", target.neuron, resp.status)
                continue
            return Opened(target, resp)
        raise last or UpstreamError("no neuron to send the request to")

    async def read_all(self, opened: Opened, stats: ResponseStats) -> bytes:
        """A non-streamed response body, its end time and token counts noted in `stats`."""
        try:
            body = await opened.response.read()
        except TimeoutError as exc:
            raise UpstreamTimeout(f"neuron {opened.target.neuron} did not answer in time") from exc
        except aiohttp.ClientError as exc:
            raise UpstreamError(f"neuron {opened.target.neuron} failed: {exc}") from exc
        finally:
            opened.response.release()
        stats.finished_at = time.monotonic()
        if opened.response.status == 200 and b'"usage"' in body:
            stats.read_usage(_usage_of(body))
        return body

    async def relay(
        self, opened: Opened, stats: ResponseStats, *, drop_usage_event: bool = False
    ) -> AsyncIterator[bytes]:
        """Copy the SSE stream event by event; end it with an error event on failure.

        `drop_usage_event` hides the usage chunk when the gateway asked for it
        only for its own metrics (the client did not set include_usage).
        """
        meter = _EventMeter(stats, drop_usage_event)
        resp = opened.response
        pending = b""
        completed = False
        try:
            async for chunk in resp.content.iter_any():
                if not pending and meter.passes_whole(chunk):
                    yield chunk  # the common case: whole events, nothing to look at
                    continue
                pending += chunk
                events = split_events(pending)
                pending = events.pop()
                out = meter.filter(events)
                if out:
                    yield out
            if pending.strip():
                yield pending + b"\n\n"
            completed = True
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("upstream=%s stream cut: %r", opened.target.neuron, exc)
            cut = UpstreamTimeout if isinstance(exc, TimeoutError) else UpstreamError
            err = cut(
                f"neuron {opened.target.neuron} failed mid-stream: {exc or type(exc).__name__}"
            )
            yield error_event(err)
        finally:
            stats.finished_at = time.monotonic()
            # A half-read response must drop its connection so the neuron sees the disconnect.
            if completed:
                resp.release()
            else:
                resp.close()


def split_events(buffer: bytes) -> list[bytes]:
    """SSE events split at blank lines; the last item is the unfinished rest (maybe b"")."""
    if b"\r" in buffer:
        return _EVENT_END.split(buffer)
    return buffer.split(b"\n\n")  # the usual LF-only stream: several times the regex's speed


class _EventMeter:
    """Finds TTFT and usage in whole SSE events; parses JSON only when it must."""

    def __init__(self, stats: ResponseStats, drop_usage_event: bool) -> None:
        self.stats = stats
        self.drop_usage_event = drop_usage_event

    def passes_whole(self, chunk: bytes) -> bool:
        """True when `chunk` is whole events the meter has no interest in (TTFT seen, no usage)."""
        return (
            self.stats.first_token_at is not None
            and chunk.endswith(b"\n\n")
            and b'"usage"' not in chunk
        )

    def filter(self, events: list[bytes]) -> bytes:
        """The whole events to forward, re-terminated (a partial one waits for its end)."""
        kept: list[bytes] = []
        for event in events:
            if self._keep(event):
                kept.append(event)
        if not kept:
            return b""
        return b"\n\n".join(kept) + b"\n\n"

    def _keep(self, event: bytes) -> bool:
        if self.stats.first_token_at is None and _has_content(event):
            self.stats.first_token_at = time.monotonic()
        if b'"usage"' not in event:
            return True
        payload = _data_json(event)
        if payload is None or not payload.get("usage"):
            return True
        self.stats.read_usage(payload["usage"])
        return not (self.drop_usage_event and not payload.get("choices"))


def _has_content(event: bytes) -> bool:
    """True for a chunk carrying a generated piece (text, reasoning or a tool call)."""
    if not (b'"content"' in event or b'"tool_calls"' in event or b'"text"' in event):
        return False
    payload = _data_json(event)
    if payload is None:
        return False
    for choice in payload.get("choices") or ():
        if not isinstance(choice, dict):
            continue
        if choice.get("text"):  # /v1/completions
            return True
        delta = choice.get("delta") or {}
        if delta.get("content") or delta.get("reasoning_content") or delta.get("tool_calls"):
            return True
    return False


# A flat usage object (no nested *_details): parsed alone, not with the whole body.
_FLAT_USAGE = re.compile(rb'"usage"\s*:\s*(\{[^{}]*\})')


def _usage_of(body: bytes) -> Any:
    """The `usage` object of a whole completion body (None when it is not JSON)."""
    flat = _FLAT_USAGE.search(body)
    try:
        if flat is not None:
            return fastjson.loads(flat.group(1))
        parsed = json.loads(body)
    except ValueError:
        return None
    return parsed.get("usage") if isinstance(parsed, dict) else None


def _data_json(event: bytes) -> dict[str, Any] | None:
    for line in event.splitlines():
        if line.startswith(b"data:"):
            data = line[5:].strip()
            if data == b"[DONE]":
                return None
            try:
                parsed = fastjson.loads(data)
            except ValueError:
                return None
            return parsed if isinstance(parsed, dict) else None
    return None


def error_event(err: APIError) -> bytes:
    """The OpenAI-shaped error event that ends a broken stream."""
    return b"data: " + json.dumps(err.to_openai()).encode() + b"\n\n"


def keep_alive_while_loading(keep_alive: bytes, model_id: str, percent: int | None) -> bytes:
    """A waiting client's keep-alive, with the load's progress as an SSE comment when known.

    `: loading model X 42%` replaces the plain comment; a dialect's own keep-alive
    (Anthropic's ping event) follows it.
    """
    if percent is None:
        return keep_alive
    name = "".join(c for c in model_id if c.isprintable())  # a comment is one line
    note = f": loading model {name} {percent}%\n\n".encode()
    return note if keep_alive == KEEP_ALIVE else note + keep_alive


async def _is_stale_location(resp: aiohttp.ClientResponse) -> bool:
    """A 404 model_not_loaded means our fleet view is stale: the next replica may have it."""
    if resp.status != 404:
        return False
    try:
        body = await resp.read()
    except aiohttp.ClientError:
        return True
    return b"model_not_loaded" in body


async def _error_of(resp: aiohttp.ClientResponse, target: Target) -> APIError:
    retry_after = _float_or_none(resp.headers.get("Retry-After"))
    message = f"neuron {target.neuron} answered {resp.status}"
    try:
        body = await asyncio.wait_for(resp.read(), timeout=2.0)
        message = json.loads(body)["error"]["message"]
    except (ValueError, KeyError, TypeError, TimeoutError, aiohttp.ClientError):
        pass
    if resp.status == 503:
        return Overloaded(message, retry_after=retry_after)
    return UpstreamError(message)


def _int_or_none(value: object) -> int | None:
    return value if isinstance(value, int) else None


def _float_or_none(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None
