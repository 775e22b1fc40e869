"""Everything the neuron's routes share, hung on `app.state.neuron`."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from starlette.requests import Request

from helexa.neuron.config import NeuronConfig
from helexa.neuron.loading import TokenizerCache
from helexa.neuron.metrics import NeuronMetrics
from helexa.neuron.registry import Registry


@dataclass
class NeuronState:
    config: NeuronConfig
    registry: Registry
    metrics: NeuronMetrics
    tokenizers: TokenizerCache
    started: float = field(default_factory=time.monotonic)


def neuron_state(request: Request) -> NeuronState:
    state: NeuronState = request.app.state.neuron
    return state
