"""The `/v1/models` catalogue (docs/gateway.md): models.toml x observed fleet, pure.

Listed: every models.toml entry (file order), every model some neuron holds
that models.toml does not know (sorted), then every exact alias as its own
entry pointing at its target (sorted). Pattern aliases ("claude-*") are not
listed, since no client would pick "claude-*" from a menu, but
`lookup` resolves any name a request could use, patterns included.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from helexa.config.aliases import is_pattern
from helexa.config.models import ModelsConfig, ModelSpec
from helexa.fleet.placement import feasible
from helexa.fleet.state import FleetState, ModelLocation
from helexa.gateway.router import resolve

OWNER = "helexa"


@dataclass(frozen=True)
class CatalogueEntry:
    id: str  # the name a client uses
    model_id: str  # what neurons call it (differs for aliases)
    created: int
    loaded: bool
    locations: tuple[tuple[str, str], ...]  # (neuron, state)
    feasible_on: tuple[str, ...]
    pinned: bool
    context_length: int | None

    @property
    def alias_of(self) -> str | None:
        return self.model_id if self.model_id != self.id else None

    def to_json(self) -> dict[str, Any]:
        """OpenAI's model object plus helexa's fleet fields."""
        return {
            "id": self.id,
            "object": "model",
            "created": self.created,
            "owned_by": OWNER,
            "alias_of": self.alias_of,
            "loaded": self.loaded,
            "locations": [{"neuron": n, "state": s} for n, s in self.locations],
            "feasible_on": list(self.feasible_on),
            "pinned": self.pinned,
            "context_length": self.context_length,
            # vLLM's name for the same number; some clients read only this one.
            "max_model_len": self.context_length,
        }


def build_catalogue(models: ModelsConfig, fleet: FleetState, created: int) -> list[CatalogueEntry]:
    """Every listed name, in listing order (see the module docstring)."""
    entries = [_entry(spec.id, spec.id, spec, fleet, created) for spec in models.models]
    known = {spec.id for spec in models.models}
    for model_id in fleet.model_ids():
        if model_id not in known:
            entries.append(_entry(model_id, model_id, None, fleet, created))
    listed = {e.id for e in entries}
    for alias, target in sorted(models.all_aliases().items()):
        if is_pattern(alias) or alias in listed:
            continue
        spec = models.get(target)
        if spec is not None or target in listed:
            entries.append(_entry(alias, target, spec, fleet, created))
    return entries


def lookup(
    name: str, models: ModelsConfig, fleet: FleetState, created: int
) -> CatalogueEntry | None:
    """The entry for any name a request may use (`GET /v1/models/{id}`), or None (404)."""
    resolved = resolve(name, models, fleet)
    if resolved is None:
        return None
    return _entry(name, resolved.model_id, resolved.spec, fleet, created)


def catalogue_json(entries: list[CatalogueEntry]) -> dict[str, Any]:
    """The `GET /v1/models` body."""
    return {"object": "list", "data": [e.to_json() for e in entries]}


def _entry(
    name: str, model_id: str, spec: ModelSpec | None, fleet: FleetState, created: int
) -> CatalogueEntry:
    locations = fleet.locations(model_id)
    healthy = {n.name for n in fleet.healthy_neurons()}
    return CatalogueEntry(
        id=name,
        model_id=model_id,
        created=created,
        loaded=any(loc.servable and loc.neuron in healthy for loc in locations),
        locations=tuple((loc.neuron, loc.state) for loc in locations),
        feasible_on=_feasible_on(model_id, spec, fleet, locations),
        pinned=spec.pin if spec is not None else False,
        context_length=_context_length(spec, locations),
    )


def _feasible_on(
    model_id: str, spec: ModelSpec | None, fleet: FleetState, locations: list[ModelLocation]
) -> tuple[str, ...]:
    """Where it could run: placement's feasibility, plus foreign servers listing it."""
    names = {loc.neuron for loc in locations if fleet.neurons[loc.neuron].healthy}
    if spec is not None:
        ok, _ = feasible(spec, fleet.neurons.values(), new_copy=False)
        names |= {n.name for n in ok}
    names |= {
        n.name for n in fleet.healthy_neurons() if not n.managed and model_id in n.static_models
    }
    return tuple(sorted(names))


def _context_length(spec: ModelSpec | None, locations: list[ModelLocation]) -> int | None:
    """What a loaded copy reports (already capped by models.toml), else the configured cap."""
    reported = [loc.context_length for loc in locations if loc.context_length]
    if reported:
        return min(reported)
    return spec.context_length if spec is not None else None
