"""Requests to a server engine: relayed to its loopback port, bytes passed through.

The neuron keeps what it owns for every engine: the admission slot (so drain,
unload and max_in_flight behave the same), the model's sampling defaults, and
metrics. A client that goes away closes the upstream connection, which is how
llama.cpp's server (and vLLM) learn to free the slot.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any, TypeVar

import aiohttp
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from helexa.errors import APIError, ModelUnloading, UpstreamError
from helexa.neuron.engines.served import ServedModel
from helexa.neuron.registry import Generation, ModelEntry
from helexa.neuron.state import NeuronState
from helexa.protocol.neuron import TokenizeRequest

T = TypeVar("T")
Guard = Callable[[Request, Awaitable[T]], Awaitable[T | None]]
PATHS = {"chat": "/v1/chat/completions", "completion": "/v1/completions"}
# models.toml [models.sampling] names -> the body keys a server reads.
SAMPLING_KEYS = {"repetition_penalty": {"llama.cpp": "repeat_penalty"}}
# No read timeout: a long generation may be silent for a while (a big prefill).
TIMEOUT = aiohttp.ClientTimeout(total=None, sock_connect=10)


def with_defaults(payload: dict[str, Any], defaults: dict[str, Any], engine: str) -> dict[str, Any]:
    """The body with the model's sampling defaults filled in where the client gave none."""
    out = dict(payload)
    for key, value in defaults.items():
        name = SAMPLING_KEYS.get(key, {}).get(engine, key)
        if key == "max_tokens" and ("max_completion_tokens" in out or "max_tokens" in out):
            continue
        out.setdefault(name, value)
    return out


class _RelayResponse(StreamingResponse):
    """Streams upstream bytes; whatever ends it closes upstream and frees the slot."""

    def __init__(self, content: AsyncIterator[bytes], cleanup: AsyncExitStack) -> None:
        super().__init__(
            content,
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
        self._cleanup = cleanup

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self._cleanup.aclose()


async def relay(
    request: Request,
    state: NeuronState,
    entry: ModelEntry,
    kind: str,
    stream: bool,
    guard: Guard[tuple[int, bytes]],
) -> Response:
    """Serve one chat/completion request of a server engine's model."""
    model = entry.model
    assert isinstance(model, ServedModel)
    payload = with_defaults(json.loads(await request.body()), entry.sampling_defaults, model.engine)
    metrics = state.metrics
    cleanup = AsyncExitStack()
    started = time.monotonic()
    url = model.base_url + PATHS[kind]
    try:
        generation = await cleanup.enter_async_context(state.registry.generation(entry))
        metrics.queue_wait.labels(entry.id).observe(time.monotonic() - started)
        session = await cleanup.enter_async_context(aiohttp.ClientSession(timeout=TIMEOUT))
        upstream = None
        if stream:  # a streaming server answers its headers at once
            upstream = await cleanup.enter_async_context(_Upstream(session, url, payload, model))
    except APIError as exc:
        await cleanup.aclose()
        metrics.requests.labels(entry.id, kind, str(exc.status)).inc()
        raise
    except BaseException:
        await cleanup.aclose()
        raise
    if upstream is None or upstream.status != 200:
        # Not streamed, the whole exchange (a server answers only when done) is watched for
        # the client going away and for an unload's drain time running out.
        work = _exchange(session, url, payload, model) if upstream is None else _read(upstream)
        async with cleanup:
            result = await guard(request, _unless_aborted(work, generation))
        if result is None:
            metrics.requests.labels(entry.id, kind, "499").inc()
            return Response(status_code=499)
        status, body = result
        metrics.requests.labels(entry.id, kind, str(status)).inc()
        if status == 200:
            _count_usage(state, entry.id, body)
        return Response(body, status_code=status, media_type="application/json")
    return _RelayResponse(_passthrough(state, entry.id, kind, upstream, generation), cleanup)


class _Upstream:
    """session.post as an async context manager whose connect errors are UpstreamErrors."""

    def __init__(
        self, session: aiohttp.ClientSession, url: str, payload: Any, model: ServedModel
    ) -> None:
        self._request = session.post(url, json=payload)
        self._model = model

    async def __aenter__(self) -> aiohttp.ClientResponse:
        try:
            return await self._request.__aenter__()
        except aiohttp.ClientError as exc:
            raise UpstreamError(f"{self._model.engine} server failed: {exc}") from exc

    async def __aexit__(self, *exc: Any) -> None:
        await self._request.__aexit__(*exc)


async def _exchange(
    session: aiohttp.ClientSession, url: str, payload: Any, model: ServedModel
) -> tuple[int, bytes]:
    try:
        async with _Upstream(session, url, payload, model) as upstream:
            return await _read(upstream)
    except UpstreamError as exc:
        return exc.status, json.dumps(exc.to_openai()).encode()


async def _unless_aborted(
    work: Awaitable[tuple[int, bytes]], generation: Generation
) -> tuple[int, bytes]:
    """`work`'s answer, or a 503 if an unload's drain time runs out first."""
    task = asyncio.ensure_future(work)
    aborted = asyncio.ensure_future(generation.aborted.wait())
    try:
        await asyncio.wait({task, aborted}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        aborted.cancel()
        if not task.done():
            task.cancel()
        await asyncio.gather(task, aborted, return_exceptions=True)
    if task.cancelled():
        error = ModelUnloading("the model was unloaded before the answer was complete")
        return error.status, json.dumps(error.to_openai()).encode()
    return task.result()


async def _read(upstream: aiohttp.ClientResponse) -> tuple[int, bytes]:
    body = await upstream.read()
    if upstream.status != 200 and not _is_error_envelope(body):
        error = UpstreamError(f"server engine answered {upstream.status}: {body[:200]!r}")
        return upstream.status, json.dumps(error.to_openai()).encode()
    return upstream.status, body


def _is_error_envelope(body: bytes) -> bool:
    try:
        data = json.loads(body)
    except ValueError:
        return False
    return isinstance(data, dict) and isinstance(data.get("error"), dict)


def _count_usage(state: NeuronState, model: str, body: bytes) -> None:
    try:
        usage = json.loads(body).get("usage") or {}
    except (ValueError, AttributeError):
        return
    state.metrics.prompt_tokens.labels(model).inc(int(usage.get("prompt_tokens") or 0))
    state.metrics.generated_tokens.labels(model).inc(int(usage.get("completion_tokens") or 0))


async def _passthrough(
    state: NeuronState,
    model: str,
    kind: str,
    upstream: aiohttp.ClientResponse,
    generation: Generation,
) -> AsyncIterator[bytes]:
    status = "499"
    try:
        async for chunk in upstream.content.iter_any():
            yield chunk
            if generation.aborted.is_set():  # drain timed out: unload aborts this stream
                status = "503"
                return
        status = "200"
    except aiohttp.ClientError as exc:
        status = "502"
        error = UpstreamError(f"server engine stream broke: {exc}")
        yield f"data: {json.dumps(error.to_openai())}\n\n".encode()
    finally:
        state.metrics.requests.labels(model, kind, status).inc()


async def count_tokens(model: ServedModel, body: TokenizeRequest) -> int:
    """The prompt length the server will report, counted by the server's own tokenizer."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
        if model.tokenize_style == "llama.cpp":
            return await _count_llama_cpp(session, model.base_url, body)
        request = body.model_dump(exclude_none=True, exclude={"path"})
        data = await _post(session, model.base_url + model.tokenize_path, request)
        if isinstance(data.get("count"), int):
            return int(data["count"])
        return len(data.get("tokens") or [])


async def _count_llama_cpp(
    session: aiohttp.ClientSession, base_url: str, body: TokenizeRequest
) -> int:
    """Chat: render the template exactly as the chat endpoint does, then tokenize the text
    with the same flags (special tokens added and parsed)."""
    if body.messages is not None:
        template_body: dict[str, Any] = {"messages": body.messages}
        if body.tools:
            template_body["tools"] = body.tools
        if body.chat_template_kwargs:
            template_body["chat_template_kwargs"] = body.chat_template_kwargs
        rendered = await _post(session, base_url + "/apply-template", template_body)
        text = str(rendered.get("prompt", ""))
    else:
        text = body.prompt or ""
    tokens = await _post(
        session,
        base_url + "/tokenize",
        {"content": text, "add_special": True, "parse_special": True},
    )
    return len(tokens.get("tokens") or [])


async def _post(session: aiohttp.ClientSession, url: str, body: dict[str, Any]) -> dict[str, Any]:
    try:
        async with session.post(url, json=body) as response:
            data = await response.json(content_type=None)
            if response.status != 200:
                raise UpstreamError(f"server engine tokenizer answered {response.status}: {data}")
    except (aiohttp.ClientError, ValueError) as exc:
        raise UpstreamError(f"server engine tokenizer failed: {exc}") from exc
    if not isinstance(data, dict):
        raise UpstreamError("server engine tokenizer answered with something not an object")
    return data
