"""The desired state: what models.toml and fleet.toml ask of the fleet, as plain data.

`desired_from_config` is pure; `load_desired` adds the one disk fact placement can
use without a measurement (the size of a local model's safetensors files).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from helexa.config import Config, ModelSpec, NeuronEntry, config_fingerprint
from helexa.config.fleet import ReconcileConfig
from helexa.fleet.placement import Strategy
from helexa.fleet.weights import weights_by_id


@dataclass(frozen=True)
class DesiredState:
    """Pinned models x replicas per affinity, plus what placement needs to decide."""

    generation: str  # config_fingerprint: changes exactly when the meaning of a file does
    specs: Mapping[str, ModelSpec]  # every models.toml entry by id (pin, priority, dtype)
    neurons: Mapping[str, NeuronEntry]  # fleet.toml [[neurons]] by name
    strategy: Strategy = "lru"
    reconcile: ReconcileConfig = field(default_factory=ReconcileConfig)
    weights_bytes: Mapping[str, int] = field(default_factory=dict)  # model id -> safetensors
    # [eviction]: idle unpinned models go after keep_alive (a model's own overrides it);
    # an idle neuron is restarted after defrag_after_cycles load/unload cycles (0 = never).
    keep_alive: float = math.inf
    defrag_after_cycles: int = 0

    @property
    def pinned(self) -> list[ModelSpec]:
        """Pinned models, the most important first (they get memory before the others)."""
        return sorted((s for s in self.specs.values() if s.pin), key=lambda s: (-s.priority, s.id))


def desired_from_config(
    config: Config, weights_bytes: Mapping[str, int] | None = None
) -> DesiredState:
    return DesiredState(
        generation=config_fingerprint(config),
        specs={spec.id: spec for spec in config.models.models},
        neurons={entry.name: entry for entry in config.fleet.neurons},
        strategy=config.fleet.eviction.strategy,
        reconcile=config.fleet.reconcile,
        weights_bytes=dict(weights_bytes or {}),
        keep_alive=config.fleet.eviction.keep_alive,
        defrag_after_cycles=config.fleet.eviction.defrag_after_cycles,
    )


def load_desired(config: Config) -> DesiredState:
    """desired_from_config plus the weights sizes read from disk (blocking, cheap)."""
    return desired_from_config(config, weights_by_id(s for s in config.models.models if s.pin))
