"""helexa.config: fleet.toml + models.toml (+ the generic loader neuron.toml uses).

Strict schemas, errors located by file:line:key, HELEXA_* overrides, tomlkit edits.
See docs/configuration.md for every key.
"""

from helexa.config.config import (
    Config,
    ConfigFile,
    config_fingerprint,
    find_config_file,
    load_config,
)
from helexa.config.durations import Duration, format_duration, parse_duration
from helexa.config.edit import EditResult, pin_model, unpin_model, upsert_neuron
from helexa.config.fields import ListenAddress, RelativePath, parse_listen
from helexa.config.fleet import (
    EvictionConfig,
    FleetConfig,
    GatewayConfig,
    NeuronEntry,
    ReconcileConfig,
)
from helexa.config.loader import load_toml
from helexa.config.models import ModelsConfig, ModelSpec, Sampling

__all__ = [
    "Config",
    "ConfigFile",
    "Duration",
    "EditResult",
    "EvictionConfig",
    "FleetConfig",
    "GatewayConfig",
    "ListenAddress",
    "ModelSpec",
    "ModelsConfig",
    "NeuronEntry",
    "ReconcileConfig",
    "RelativePath",
    "Sampling",
    "config_fingerprint",
    "find_config_file",
    "format_duration",
    "load_config",
    "load_toml",
    "parse_duration",
    "parse_listen",
    "pin_model",
    "unpin_model",
    "upsert_neuron",
]
