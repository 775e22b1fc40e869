"""The neuron's body limits (helexa.limits): every error in the OpenAI envelope."""

from __future__ import annotations

import json
from collections.abc import Callable

from starlette.types import ASGIApp

from helexa.errors import APIError
from helexa.limits import MB, BodyLimitMiddleware, BodyLimits
from helexa.neuron.config import NeuronConfig


def render_error(_: str, error: APIError) -> bytes:
    return json.dumps(error.to_openai()).encode()


def neuron_body_limits(app: ASGIApp, limits: Callable[[], BodyLimits]) -> BodyLimitMiddleware:
    return BodyLimitMiddleware(app, limits, render_error)


def body_limits(config: NeuronConfig) -> BodyLimits:
    return BodyLimits(max_bytes=config.neuron.max_body_mb * MB)
