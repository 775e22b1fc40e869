"""fleet.toml: gateway, eviction and reconcile settings, neurons (docs/configuration.md)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field, model_validator
from pydantic_core import PydanticCustomError

from helexa.config.base import Problem, StrictModel, table_entries
from helexa.config.durations import Duration
from helexa.config.fields import (
    HttpEndpoint,
    ListenAddress,
    RelativePath,
    endpoint_host,
    is_loopback_host,
    parse_listen,
)

NEURON_PORT = 13131


class GatewayConfig(StrictModel):
    listen: ListenAddress = "127.0.0.1:31313"
    metrics_listen: ListenAddress = "127.0.0.1:31314"
    # Accepted as Bearer or x-api-key; empty = open (the gateway warns off loopback).
    api_keys: list[str] = Field(default_factory=list)
    # Named keys with roles and limits (docs/keys.md); default: keys.toml next to fleet.toml.
    keys_file: RelativePath | None = None
    # One JSON line per keyed request (docs/keys.md); rotated past usage_log_max_mb.
    usage_log: RelativePath | None = None
    usage_log_max_mb: int = Field(default=64, ge=1)
    usage_log_keep: int = Field(default=5, ge=0)
    # Operator knobs beyond the core schema, documented in docs/configuration.md.
    poll_interval: Duration = 2.0
    unhealthy_after: int = Field(default=3, ge=1)
    connect_timeout: Duration = 5.0
    request_timeout: Duration = 600.0
    load_timeout: Duration = 600.0
    # Larger request bodies get 413 (helexa.limits); Anthropic's own limit is 32 MB.
    max_body_mb: int = Field(default=32, ge=1)
    # Connection limits (helexa.httpguard), read at start: a larger request head gets
    # 431, a head or body slower than its timeout is cut off, past max_connections 503.
    max_header_kb: int = Field(default=64, ge=1)
    header_timeout: Duration = 10.0
    body_timeout: Duration = 60.0
    max_connections: int = Field(default=2048, ge=1)
    # Which replica of a model serves a request (docs/gateway.md, routing):
    # "prefix_affinity" keeps a conversation where its prefix is cached unless that
    # replica carries over (1 + affinity_slack) x the mean load; "least_busy" ignores it.
    routing: Literal["prefix_affinity", "least_busy"] = "prefix_affinity"
    affinity_slack: float = Field(default=0.25, ge=0)

    @property
    def is_open_to_network(self) -> bool:
        """Listening off loopback with no API keys: anyone who can reach it may use it."""
        return not self.api_keys and not is_loopback_host(parse_listen(self.listen)[0])


class EvictionConfig(StrictModel):
    strategy: Literal["lru", "priority"] = "lru"
    keep_alive: Duration = 1800.0
    defrag_after_cycles: int = Field(default=50, ge=0)


class ReconcileConfig(StrictModel):
    watch: bool = True
    interval: Duration = 30.0
    auto_apply: Literal["off", "models", "all"] = "models"


class NeuronEntry(StrictModel):
    """One `[[neurons]]` entry: a helexa neuron, or a foreign OpenAI-compatible server."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    endpoint: HttpEndpoint
    kind: Literal["neuron", "openai"] = "neuron"
    ssh: str | None = None
    install: Literal["rpm", "pip"] = "rpm"
    token_file: RelativePath | None = None
    local: bool = False
    models: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _kind_rules(self) -> NeuronEntry:
        # Each rule names the key to blame through the error context (see loader).
        if self.local and not is_loopback_host(endpoint_host(self.endpoint)):
            raise _blame("endpoint", "a `local = true` neuron must listen on loopback")
        if self.kind == "openai":
            if not self.models:
                raise _blame("models", 'kind = "openai" needs a static `models` list')
            if self.local:
                raise _blame("local", 'kind = "openai" servers are not started by helexa')
            if self.ssh:
                raise _blame("ssh", 'kind = "openai" servers are not managed over SSH')
        elif self.models:
            raise _blame("models", 'a static `models` list is only for kind = "openai"')
        return self

    @property
    def managed(self) -> bool:
        """Whether plan/apply/bootstrap may touch this host."""
        return self.kind == "neuron" and self.ssh is not None


class FleetConfig(StrictModel):
    gateway: GatewayConfig = GatewayConfig()
    eviction: EvictionConfig = EvictionConfig()
    reconcile: ReconcileConfig = ReconcileConfig()
    neurons: list[NeuronEntry] = Field(default_factory=list)

    def neuron(self, name: str) -> NeuronEntry | None:
        return next((n for n in self.neurons if n.name == name), None)

    def foreign_models(self) -> dict[str, list[str]]:
        """Model id -> names of the `kind = "openai"` neurons that serve it."""
        served: dict[str, list[str]] = {}
        for entry in self.neurons:
            for model_id in entry.models:
                served.setdefault(model_id, []).append(entry.name)
        return served

    @classmethod
    def cross_check(cls, data: Mapping[str, Any], context: Mapping[str, Any]) -> list[Problem]:
        problems: list[Problem] = []
        first_index: dict[str, int] = {}
        for index, entry in table_entries(data, "neurons"):
            name = entry.get("name")
            if not isinstance(name, str):
                continue
            if name in first_index:
                problems.append(
                    Problem(
                        ("neurons", index, "name"),
                        f"duplicate neuron name {name!r} (first at neurons[{first_index[name]}])",
                    )
                )
            else:
                first_index[name] = index
        return problems


def _blame(key: str, message: str) -> PydanticCustomError:
    return PydanticCustomError("config_rule", message, {"key": key})
