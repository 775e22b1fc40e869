"""POST /v1/chat/completions and /v1/completions, streaming (SSE) and not.

Order of work: validate -> find the model -> build prompt ids and sampling
(400s happen here, before any slot is taken) -> take an admission slot (503
here, still before the response starts) -> generate. The slot is held by the
response object, so it is released however the response ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from helexa.errors import APIError
from helexa.neuron.admission import priority_of
from helexa.neuron.chat import (
    chat_request_ids,
    check_n,
    completion_request_ids,
    resolve_sampling,
)
from helexa.neuron.engine.spec import SamplingParams
from helexa.neuron.engines.relay import relay
from helexa.neuron.engines.served import ServedModel
from helexa.neuron.generate import Outcome, Piece, generate
from helexa.neuron.http import parse_body
from helexa.neuron.metrics import NeuronMetrics
from helexa.neuron.registry import ModelEntry
from helexa.neuron.state import NeuronState, neuron_state
from helexa.neuron.structured import constrained_params, wants_grammar
from helexa.protocol.neuron import PRIORITY_HEADER
from helexa.protocol.openai import (
    AssistantMessage,
    ChatChoice,
    ChatChunkChoice,
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    ChatDelta,
    Completion,
    CompletionChoice,
    CompletionChunk,
    CompletionRequest,
    FunctionCall,
    PromptTokensDetails,
    SamplingFields,
    ToolCall,
    Usage,
)
from helexa.sse import SSEResponse, sse_stream

log = logging.getLogger("helexa.neuron.routes")
T = TypeVar("T")


@dataclass(frozen=True)
class Job:
    """One admitted request: everything generation needs, resolved up front."""

    kind: str  # "chat" | "completion" (metrics label, output parsing)
    entry: ModelEntry
    prompt_ids: list[int]
    params: SamplingParams
    stops: list[str]
    response_id: str
    created: int
    single_tool_call: bool = False  # parallel_tool_calls: false


class SlotResponse(SSEResponse):
    """A streaming response that releases its admission slot however it ends,
    even when the client is gone before the body iterator ever starts."""

    def __init__(
        self, content: AsyncIterator[bytes], release: Callable[[], Awaitable[None]]
    ) -> None:
        super().__init__(content)
        self._release = release

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self._release()


def _served_by_server(state: NeuronState, body: SamplingFields) -> ModelEntry | None:
    """The model's entry when a server engine runs it (checked like any other model)."""
    entry = state.registry.entry(body.model)
    if entry is None or not isinstance(entry.model, ServedModel):
        return None
    check_n(body)
    return state.registry.servable(body.model)


async def models_list(request: Request) -> Response:
    """GET /v1/models: the loaded models, OpenAI-shaped (what an OpenAI client or a
    parent neuron running this one as a `command` engine asks first)."""
    infos = [i for i in neuron_state(request).registry.infos() if i.state == "loaded"]
    data = [
        {"id": i.id, "object": "model", "created": int(i.loaded_at or 0), "owned_by": "helexa"}
        for i in infos
    ]
    return JSONResponse({"object": "list", "data": data})


def _prepare(state: NeuronState, body: SamplingFields, kind: str, limit: int | None) -> Job:
    check_n(body)
    entry = state.registry.servable(body.model)
    model = entry.model
    assert model is not None  # servable() guarantees a loaded model
    if isinstance(body, ChatCompletionRequest):
        prompt_ids = chat_request_ids(model.tokenizer, body)
    else:
        assert isinstance(body, CompletionRequest)
        prompt_ids = completion_request_ids(model.tokenizer, body)
    params = resolve_sampling(
        body,
        limit,
        len(prompt_ids),
        model.context_length,
        entry.sampling_defaults,
        entry.generation_config,
        frozenset(getattr(model, "eos_token_ids", frozenset())),
    )
    single_tool_call = False
    if isinstance(body, ChatCompletionRequest):
        params = constrained_params(params, body, model)
        single_tool_call = body.parallel_tool_calls is False
    prefix = "chatcmpl" if kind == "chat" else "cmpl"
    return Job(
        kind,
        entry,
        prompt_ids,
        params,
        body.stop_strings() or _default_stops(entry.sampling_defaults),
        f"{prefix}-{uuid.uuid4().hex}",
        int(time.time()),
        single_tool_call,
    )


async def chat_completions(request: Request) -> Response:
    body = await parse_body(request, ChatCompletionRequest)
    return await _serve(request, body, "chat", body.token_limit())


async def completions(request: Request) -> Response:
    body = await parse_body(request, CompletionRequest)
    return await _serve(request, body, "completion", body.token_limit())


async def _serve(request: Request, body: SamplingFields, kind: str, limit: int | None) -> Response:
    state = neuron_state(request)
    metrics = state.metrics
    served = _served_by_server(state, body)
    if served is not None:  # llama.cpp / command engine: its server does the work
        return await relay(request, state, served, kind, bool(body.stream), _unless_disconnected)
    try:
        if isinstance(body, ChatCompletionRequest) and wants_grammar(body):
            # Compiling a grammar (and, once per model, the tokenizer's view) takes
            # milliseconds to a second: off the event loop.
            job = await asyncio.to_thread(_prepare, state, body, kind, limit)
        else:
            job = _prepare(state, body, kind, limit)
        slot = contextlib.AsyncExitStack()
        started = time.monotonic()
        priority = priority_of(request.headers.get(PRIORITY_HEADER))
        generation = await slot.enter_async_context(state.registry.generation(job.entry, priority))
        metrics.queue_wait.labels(job.entry.id).observe(time.monotonic() - started)
    except APIError as exc:
        metrics.requests.labels(body.model, kind, str(exc.status)).inc()
        if exc.code == "model_unloading":
            metrics.rejections.labels(body.model, "unloading").inc()
        raise
    events = _metered(
        metrics,
        job,
        generate(
            job.entry,
            generation,
            job.prompt_ids,
            job.params,
            job.stops,
            parse_output=kind == "chat",
            single_tool_call=job.single_tool_call,
        ),
    )
    if not body.stream:
        async with slot:
            result = await _unless_disconnected(request, _collect(job, events))
        # 499 (nginx's "client closed request"): nobody reads it, but the access log does.
        return Response(status_code=499) if result is None else JSONResponse(result)
    include_usage = bool(body.stream_options and body.stream_options.include_usage)
    frames = (
        _chat_frames(job, events, include_usage)
        if kind == "chat"
        else _completion_frames(job, events, include_usage)
    )
    keep_alive = state.config.neuron.keep_alive_interval
    return SlotResponse(sse_stream(_error_event_on_failure(frames), keep_alive), slot.aclose)


async def _error_event_on_failure(frames: AsyncIterator[str]) -> AsyncIterator[str]:
    """After the first byte a status code can no longer say it: end with an error event."""
    try:
        async for frame in frames:
            yield frame
    except Exception as exc:
        error = exc if isinstance(exc, APIError) else APIError(f"generation failed: {exc}")
        if not isinstance(exc, APIError):
            log.exception("generation failed mid-stream", exc_info=exc)
        yield f"data: {json.dumps(error.to_openai(), separators=(',', ':'))}\n\n"


async def _metered(
    metrics: NeuronMetrics, job: Job, events: AsyncIterator[Piece | Outcome]
) -> AsyncIterator[Piece | Outcome]:
    """Counts the request into the neuron_* metrics as its events pass."""
    model = job.entry.id
    status = "499"  # client closed before the end, unless we see the end
    try:
        async for event in events:
            if isinstance(event, Outcome):
                status = "200"
                metrics.prompt_tokens.labels(model).inc(event.prompt_tokens)
                metrics.generated_tokens.labels(model).inc(event.completion_tokens)
                if event.cache_queried:
                    metrics.prefix_cache_queried.labels(model).inc(event.prompt_tokens)
                    metrics.prefix_cache_hits.labels(model).inc(event.cached_tokens)
                if event.first_token_s is not None:
                    metrics.ttft.labels(model).observe(event.first_token_s)
                if event.decode_rate is not None:
                    metrics.decode_rate.labels(model).observe(event.decode_rate)
            yield event
    except APIError as exc:
        status = str(exc.status)
        raise
    finally:
        metrics.requests.labels(model, job.kind, status).inc()


async def _unless_disconnected(request: Request, work: Awaitable[T]) -> T | None:
    """Await `work`, or cancel it and return None if the client hangs up first (the body
    is already read, so the next ASGI message can only be the disconnect)."""
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(request.receive())
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
        if not task.done():
            task.cancel()
        # Wait for the generation to unwind so the engine sequence is gone before the slot.
        await asyncio.gather(task, return_exceptions=True)
    return None if task.cancelled() else task.result()


def _usage(outcome: Outcome) -> Usage:
    return Usage(
        prompt_tokens=outcome.prompt_tokens,
        completion_tokens=outcome.completion_tokens,
        total_tokens=outcome.prompt_tokens + outcome.completion_tokens,
        prompt_tokens_details=PromptTokensDetails(cached_tokens=outcome.cached_tokens),
    )


async def _collect(job: Job, events: AsyncIterator[Piece | Outcome]) -> dict[str, Any]:
    content: list[str] = []
    reasoning: list[str] = []
    calls: list[ToolCall] = []
    outcome: Outcome | None = None
    async for event in events:
        if isinstance(event, Outcome):
            outcome = event
            continue
        content.append(event.content)
        reasoning.append(event.reasoning)
        calls += [
            ToolCall(id=c.id, function=FunctionCall(name=c.name, arguments=c.arguments))
            for c in event.tool_calls
        ]
    assert outcome is not None
    text = "".join(content)
    if job.kind == "completion":
        return Completion(
            id=job.response_id,
            created=job.created,
            model=job.entry.id,
            choices=[
                CompletionChoice(
                    text=text, finish_reason=outcome.finish_reason, stop_reason=outcome.stop_string
                )
            ],
            usage=_usage(outcome),
        ).model_dump(mode="json")
    message = AssistantMessage(
        content=text if text or not calls else None,
        reasoning_content="".join(reasoning) or None,
        tool_calls=calls or None,
    )
    return ChatCompletion(
        id=job.response_id,
        created=job.created,
        model=job.entry.id,
        choices=[
            ChatChoice(
                message=message,
                finish_reason=outcome.finish_reason,
                stop_reason=outcome.stop_string,
            )
        ],
        usage=_usage(outcome),
    ).model_dump(mode="json", exclude_none=True)


def _frame(model: ChatCompletionChunk | CompletionChunk) -> str:
    payload = json.dumps(model.model_dump(mode="json", exclude_none=True), separators=(",", ":"))
    return f"data: {payload}\n\n"


async def _chat_frames(
    job: Job, events: AsyncIterator[Piece | Outcome], include_usage: bool
) -> AsyncIterator[str]:
    def chunk(
        delta: ChatDelta, finish: Any = None, usage: Usage | None = None, stop: str | None = None
    ) -> str:
        choices = (
            []
            if usage is not None
            else [ChatChunkChoice(delta=delta, finish_reason=finish, stop_reason=stop)]
        )
        return _frame(
            ChatCompletionChunk(
                id=job.response_id,
                created=job.created,
                model=job.entry.id,
                choices=choices,
                usage=usage,
            )
        )

    yield chunk(ChatDelta(role="assistant", content=""))
    async for event in events:
        if isinstance(event, Outcome):
            yield chunk(ChatDelta(), event.finish_reason, stop=event.stop_string)
            if include_usage:
                yield chunk(ChatDelta(), usage=_usage(event))
            break
        deltas = event.tool_call_deltas()
        if event:
            yield chunk(
                ChatDelta(
                    content=event.content or None,
                    reasoning_content=event.reasoning or None,
                    tool_calls=deltas or None,
                )
            )
    yield "data: [DONE]\n\n"


async def _completion_frames(
    job: Job, events: AsyncIterator[Piece | Outcome], include_usage: bool
) -> AsyncIterator[str]:
    def chunk(
        text: str, finish: Any = None, usage: Usage | None = None, stop: str | None = None
    ) -> str:
        choices = (
            []
            if usage is not None
            else [CompletionChoice(text=text, finish_reason=finish, stop_reason=stop)]
        )
        return _frame(
            CompletionChunk(
                id=job.response_id,
                created=job.created,
                model=job.entry.id,
                choices=choices,
                usage=usage,
            )
        )

    async for event in events:
        if isinstance(event, Outcome):
            yield chunk("", event.finish_reason, stop=event.stop_string)
            if include_usage:
                yield chunk("", usage=_usage(event))
            break
        if event.content:
            yield chunk(event.content)
    yield "data: [DONE]\n\n"


ROUTES = [
    Route("/v1/models", models_list, methods=["GET"]),
    Route("/v1/chat/completions", chat_completions, methods=["POST"]),
    Route("/v1/completions", completions, methods=["POST"]),
]


def _default_stops(sampling: dict[str, Any]) -> list[str]:
    """models.toml `[models.sampling] stop`, sent with the load, when the request has none."""
    stop = sampling.get("stop")
    if isinstance(stop, str):
        return [stop] if stop else []
    return [s for s in stop or [] if isinstance(s, str) and s]
