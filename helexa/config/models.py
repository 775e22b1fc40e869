"""models.toml: what to serve, how, and under which names (docs/configuration.md)."""

from __future__ import annotations

from collections.abc import Mapping
from functools import cached_property
from typing import Any

from pydantic import Field, model_validator

from helexa.config.aliases import is_pattern, resolve_alias
from helexa.config.base import Problem, StrictModel, table_entries
from helexa.config.command_template import check_template
from helexa.config.durations import Duration
from helexa.config.fields import RelativePath
from helexa.errors import APIError
from helexa.protocol.neuron import Dtype, EngineName, LoadRequest

# Validation-context keys load_config passes when checking models.toml against fleet.toml.
KNOWN_NEURONS = "known_neurons"  # set[str]: names of [[neurons]]
FOREIGN_MODELS = "foreign_models"  # set[str]: models served by kind = "openai" neurons


class Sampling(StrictModel):
    """Defaults for requests that do not say; unset keys fall to generation_config."""

    temperature: float | None = Field(default=None, ge=0)
    top_p: float | None = Field(default=None, gt=0, le=1)
    top_k: int | None = Field(default=None, ge=0)
    min_p: float | None = Field(default=None, ge=0, le=1)
    max_tokens: int | None = Field(default=None, ge=1)
    repetition_penalty: float | None = Field(default=None, gt=0)
    seed: int | None = None
    stop: list[str] | None = None

    def as_request(self) -> dict[str, Any]:
        """Only the keys the operator set, as sent with a load."""
        return self.model_dump(exclude_none=True)


class ModelSpec(StrictModel):
    """One `[[models]]` entry."""

    id: str = Field(min_length=1)
    path: RelativePath | None = None
    revision: str = "main"
    dtype: Dtype = "auto"
    vram_mb: int | None = Field(default=None, ge=1)
    devices: int = Field(default=1, ge=1)
    min_device_vram_mb: int = Field(default=0, ge=0)
    neurons: list[str] = Field(default_factory=list)
    pin: bool = False
    replicas: int = Field(default=1, ge=1)
    priority: int = 0
    keep_alive: Duration | None = None  # None = [eviction] keep_alive
    context_length: int | None = Field(default=None, ge=1)
    # The neuron's prefix cache for this model, in MB (0 = off); None = the neuron's
    # [neuron] prefix_cache_mb. The neuron clamps it to the memory left past the weights.
    prefix_cache_mb: int | None = Field(default=None, ge=0)
    aliases: list[str] = Field(default_factory=list)
    sampling: Sampling = Sampling()
    engine: EngineName = "transformers"
    # engine = "command": the server's command line, e.g. "vllm serve {path} --port {port}"
    # (placeholders in docs/configuration.md).
    command: str | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _command_matches_engine(self) -> ModelSpec:
        if self.engine == "command" and self.command is None:
            raise ValueError('engine = "command" needs a `command` template')
        if self.command is not None:
            try:
                check_template(self.command)
            except APIError as exc:
                raise ValueError(exc.message) from exc
        if self.engine != "command" and self.command is not None:
            raise ValueError('`command` is only used with engine = "command"')
        if self.engine == "llama.cpp" and self.path is None:
            raise ValueError('engine = "llama.cpp" needs `path` (the .gguf file)')
        return self

    def load_request(self) -> LoadRequest:
        """The neuron `/models/load` body for this model."""
        sampling = self.sampling.as_request()
        return LoadRequest(
            model=self.id,
            path=str(self.path) if self.path else None,
            revision=self.revision,
            dtype=self.dtype,
            devices=self.devices,
            context_length=self.context_length,
            prefix_cache_mb=self.prefix_cache_mb,
            sampling=sampling or None,
            engine=None if self.engine == "transformers" else self.engine,
            command=self.command,
        )


class ModelsConfig(StrictModel):
    models: list[ModelSpec] = Field(default_factory=list)
    # Names clients hard-code -> model id; keys may contain `*`.
    aliases: dict[str, str] = Field(default_factory=dict)

    @cached_property
    def by_id(self) -> dict[str, ModelSpec]:
        """Entries by id (computed once: the gateway resolves a model per request)."""
        return {spec.id: spec for spec in self.models}

    @cached_property
    def alias_targets(self) -> dict[str, str]:
        """Every alias (per-model `aliases` and the `[aliases]` table) -> model id."""
        targets: dict[str, str] = {}
        for spec in self.models:
            targets.update(dict.fromkeys(spec.aliases, spec.id))
        targets.update(self.aliases)
        return targets

    def get(self, model_id: str) -> ModelSpec | None:
        return self.by_id.get(model_id)

    def alias_target(self, name: str) -> str | None:
        """The model id an alias (exact, else the most specific pattern) points at."""
        return resolve_alias(self.alias_targets, name)

    def resolve(self, name: str) -> ModelSpec | None:
        """The spec a client's model name means: id, then exact alias, then pattern.

        None also when the alias targets a model only a kind = "openai" neuron serves;
        use alias_target for that case.
        """
        spec = self.get(name)
        if spec is not None:
            return spec
        target = self.alias_target(name)
        return self.get(target) if target is not None else None

    def all_aliases(self) -> dict[str, str]:
        """Every alias and pattern (models[].aliases and [aliases]) -> model id."""
        return dict(self.alias_targets)

    @classmethod
    def cross_check(cls, data: Mapping[str, Any], context: Mapping[str, Any]) -> list[Problem]:
        entries = table_entries(data, "models")
        ids = _ids(entries)
        problems = _duplicate_ids(entries)
        problems += _model_alias_problems(entries, ids)
        problems += _alias_table_problems(data, entries, ids, context)
        if KNOWN_NEURONS in context:
            problems += _affinity_problems(entries, context[KNOWN_NEURONS])
        return problems


def _ids(entries: list[tuple[int, Mapping[str, Any]]]) -> set[str]:
    return {entry["id"] for _, entry in entries if isinstance(entry.get("id"), str)}


def _str_list(value: Any) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def _duplicate_ids(entries: list[tuple[int, Mapping[str, Any]]]) -> list[Problem]:
    problems: list[Problem] = []
    first_index: dict[str, int] = {}
    for index, entry in entries:
        model_id = entry.get("id")
        if not isinstance(model_id, str):
            continue
        if model_id in first_index:
            problems.append(
                Problem(
                    ("models", index, "id"),
                    f"duplicate model id {model_id!r} (first at models[{first_index[model_id]}])",
                )
            )
        else:
            first_index[model_id] = index
    return problems


def _model_alias_problems(
    entries: list[tuple[int, Mapping[str, Any]]], ids: set[str]
) -> list[Problem]:
    problems: list[Problem] = []
    owner: dict[str, str] = {}
    for index, entry in entries:
        loc = ("models", index, "aliases")
        for alias in _str_list(entry.get("aliases")):
            if alias in ids:
                problems.append(Problem(loc, f"alias {alias!r} is also a model id"))
            elif alias in owner and owner[alias] != entry.get("id"):
                problems.append(
                    Problem(loc, f"alias {alias!r} is already used by {owner[alias]!r}")
                )
            else:
                owner[alias] = str(entry.get("id"))
    return problems


def _alias_table_problems(
    data: Mapping[str, Any],
    entries: list[tuple[int, Mapping[str, Any]]],
    ids: set[str],
    context: Mapping[str, Any],
) -> list[Problem]:
    table = data.get("aliases")
    if not isinstance(table, Mapping):
        return []
    model_aliases = {a for _, entry in entries for a in _str_list(entry.get("aliases"))}
    servable = ids | set(context.get(FOREIGN_MODELS, ()))
    problems: list[Problem] = []
    for alias, target in table.items():
        loc = ("aliases", alias)
        if alias in ids:
            problems.append(Problem(loc, f"alias {alias!r} is also a model id"))
        elif alias in model_aliases:
            problems.append(Problem(loc, f"alias {alias!r} is also declared in a models[].aliases"))
        if isinstance(target, str) and target not in servable:
            where = (
                "models.toml"
                if FOREIGN_MODELS not in context
                else 'models.toml or an "openai" neuron'
            )
            problems.append(
                Problem(
                    loc, f"alias {alias!r} points at {target!r}, which is not a model in {where}"
                )
            )
        if is_pattern(alias) and alias.strip("*") == "":
            problems.append(Problem(loc, "a pattern needs at least one literal character"))
    return problems


def _affinity_problems(
    entries: list[tuple[int, Mapping[str, Any]]], known: set[str]
) -> list[Problem]:
    return [
        Problem(("models", index, "neurons"), f"unknown neuron {name!r} (not in fleet.toml)")
        for index, entry in entries
        for name in _str_list(entry.get("neurons"))
        if name not in known
    ]
