"""The neuron's body limits (helexa.limits): every error in the OpenAI envelope."""

from __future__ import annotations

import json
from collections.abc import Callable

from starlette.types import ASGIApp

from helexa.errors import APIError
from helexa.httpguard import ConnectionLimits, GuardedHttpToolsProtocol, guarded_protocol
from helexa.limits import MB, BodyLimitMiddleware, BodyLimits
from helexa.neuron.config import NeuronConfig


def render_error(_: str, error: APIError) -> bytes:
    return json.dumps(error.to_openai()).encode()


def neuron_body_limits(app: ASGIApp, limits: Callable[[], BodyLimits]) -> BodyLimitMiddleware:
    return BodyLimitMiddleware(app, limits, render_error)


def body_limits(config: NeuronConfig) -> BodyLimits:
    return BodyLimits(max_bytes=config.neuron.max_body_mb * MB)


def neuron_protocol(config: NeuronConfig) -> type[GuardedHttpToolsProtocol]:
    """The uvicorn protocol the neuron runs: httptools with connection limits."""
    section = config.neuron
    limits = ConnectionLimits(
        max_header_bytes=section.max_header_kb * 1024,
        header_timeout=section.header_timeout,
        body_timeout=section.body_timeout,
        max_connections=section.max_connections,
    )
    return guarded_protocol(GuardedHttpToolsProtocol, limits, render_error)
