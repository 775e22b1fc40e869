"""Control routes: health, discovery, models, load/unload, tokenize, metrics.

None of these waits on inference: they read registry state or run blocking
work (discovery, tokenizer loads) in a thread.
"""

from __future__ import annotations

import asyncio
import importlib.util
import socket
import time
from typing import Any

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from helexa import __version__
from helexa.errors import BadRequest
from helexa.neuron.chat import chat_prompt_ids, completion_prompt_ids, template_message
from helexa.neuron.engines.launch import check_engine
from helexa.neuron.engines.relay import count_tokens
from helexa.neuron.engines.served import ServedModel
from helexa.neuron.hardware import discover
from helexa.neuron.http import parse_body, validation_error
from helexa.neuron.metrics import CONTENT_TYPE
from helexa.neuron.sources import confined_path
from helexa.neuron.state import neuron_state
from helexa.protocol.neuron import (
    Discovery,
    Health,
    LoadRequest,
    ModelsList,
    TokenizeRequest,
    TokenizeResponse,
    UnloadRequest,
)
from helexa.protocol.openai import ChatMessage, Tool


def _json(model: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(model.model_dump(mode="json", exclude_none=True), status_code=status)


async def health(request: Request) -> Response:
    return _json(Health(uptime_s=round(time.monotonic() - neuron_state(request).started, 3)))


async def discovery(request: Request) -> Response:
    state = neuron_state(request)
    report = await asyncio.to_thread(
        discover, state.config.devices.max_memory_mb, state.registry.memory_by_device()
    )
    return _json(
        Discovery(
            hostname=socket.gethostname(),
            name=state.config.neuron.name,
            version=__version__,
            engine=report.engine,
            devices=report.devices,
            formats=weight_formats(),
        )
    )


def weight_formats() -> list[str]:
    """What this neuron can load (without importing torch or the gguf package)."""
    has_gguf = importlib.util.find_spec("gguf") is not None
    return ["safetensors", "gguf"] if has_gguf else ["safetensors"]


async def models(request: Request) -> Response:
    registry = neuron_state(request).registry
    registry.expire_failed()
    return _json(ModelsList(models=registry.infos(), cycles=registry.cycles))


async def load(request: Request) -> Response:
    body = await parse_body(request, LoadRequest)
    state = neuron_state(request)
    # Checked, not rewritten: the path stays as requested (the reconciler compares it).
    confined_path(body.path, state.config.neuron)
    check_engine(body)  # a bad engine request is a 400 that leaves /models as it was
    entry = await state.registry.load(body)
    return _json(entry.info())


async def unload(request: Request) -> Response:
    body = await parse_body(request, UnloadRequest)
    registry = neuron_state(request).registry
    await registry.unload(body.model, body.drain_timeout_s)
    return _json(ModelsList(models=registry.infos(), cycles=registry.cycles))


async def tokenize(request: Request) -> Response:
    body = await parse_body(request, TokenizeRequest)
    if body.messages is None and body.prompt is None:
        raise BadRequest("give messages or prompt to count", param="messages")
    state = neuron_state(request)
    entry = state.registry.entry(body.model)
    if entry is not None and isinstance(entry.model, ServedModel):
        return _json(TokenizeResponse(count=await count_tokens(entry.model, body)))
    if entry is not None and entry.model is not None and body.path in (None, entry.request.path):
        # The loaded copy's tokenizer (a GGUF's takes seconds to rebuild from the file).
        tokenizer = entry.model.tokenizer
    else:
        confined_path(body.path, state.config.neuron)
        tokenizer = await asyncio.to_thread(state.tokenizers.get, body.model, body.path)
    count = await asyncio.to_thread(_count, tokenizer, body)
    return _json(TokenizeResponse(count=count))


def _count(tokenizer: Any, body: TokenizeRequest) -> int:
    """The prompt length a completion with this input would report (same code path)."""
    if body.messages is not None:
        try:
            messages = [ChatMessage.model_validate(m) for m in body.messages]
            tools = [Tool.model_validate(t) for t in body.tools or []]
        except ValidationError as exc:
            raise validation_error(exc) from exc
        return len(
            chat_prompt_ids(
                tokenizer,
                [template_message(m) for m in messages],
                [t.model_dump(exclude_none=True) for t in tools] or None,
                body.chat_template_kwargs,
            )
        )
    return len(completion_prompt_ids(tokenizer, body.prompt or ""))


async def metrics(request: Request) -> Response:
    return Response(neuron_state(request).metrics.render(), media_type=CONTENT_TYPE)


ROUTES = [
    Route("/health", health, methods=["GET"]),
    Route("/discovery", discovery, methods=["GET"]),
    Route("/models", models, methods=["GET"]),
    Route("/models/load", load, methods=["POST"]),
    Route("/models/unload", unload, methods=["POST"]),
    Route("/v1/tokenize", tokenize, methods=["POST"]),
    Route("/metrics", metrics, methods=["GET"]),
]
